import numpy as np
import pytest
import torch

from vos_seg.engine.inference import pad_to_multiple, predict_logits, preprocess
from vos_seg.engine.model import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model({"arch": "Unet", "encoder_name": "resnet18", "num_classes": 3,
                     "options": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}})
    return m.eval()


def _reference_whole(model, x):
    """Independent reference: zero-free reflect pad by hand with numpy indices, run, crop."""
    h, w = x.shape[-2:]
    H, W = -(-h // 32) * 32, -(-w // 32) * 32
    rows = np.r_[np.arange(h), h - 2 - np.arange(H - h)]
    cols = np.r_[np.arange(w), w - 2 - np.arange(W - w)]
    padded = x[:, :, rows][:, :, :, cols]
    with torch.no_grad():
        return model(padded)[:, :, :h, :w]


@pytest.mark.parametrize("size", [(64, 64), (45, 71), (33, 100)])
def test_whole_matches_reference_at_odd_sizes(model, size):
    x = torch.randn(2, 3, *size)
    out = predict_logits(model, x)
    assert out.shape == (2, 3, *size) and out.dtype == torch.float32
    diff = (out - _reference_whole(model, x)).abs().max()
    assert diff < 1e-5, f"max diff {diff}"


def test_batch_equals_single_images(model):
    x = torch.randn(3, 3, 40, 56)
    batched = predict_logits(model, x)
    single = torch.cat([predict_logits(model, x[i : i + 1]) for i in range(3)])
    diff = (batched - single).abs().max()
    assert diff < 1e-5, f"max diff {diff}"


def test_slide_equals_whole_when_crop_covers_image(model):
    x = torch.randn(2, 3, 50, 70)
    diff = (predict_logits(model, x, mode="slide", crop_size=(64, 96)) - predict_logits(model, x)).abs().max()
    assert diff < 1e-6, f"max diff {diff}"


def test_slide_averages_overlapping_windows(model):
    x = torch.randn(1, 3, 64, 96)
    out = predict_logits(model, x, mode="slide", crop_size=(64, 64), stride=(64, 32))
    # windows at x=0 and x=32: columns 32..63 are the mean of both, the rest come from one window
    a = predict_logits(model, x[..., :64])
    b = predict_logits(model, x[..., 32:])
    ref = torch.cat([a[..., :32], (a[..., 32:] + b[..., :32]) / 2, b[..., 32:]], dim=-1)
    diff = (out - ref).abs().max()
    assert diff < 1e-5, f"max diff {diff}"
    assert out.shape == (1, 3, 64, 96)


def test_amp_returns_float32_close(model):
    x = torch.randn(1, 3, 32, 32)
    out = predict_logits(model, x, amp=True)
    assert out.dtype == torch.float32
    ref = predict_logits(model, x)
    assert (out - ref).abs().max() < 0.1 * ref.abs().max() + 0.1


def test_pad_small_image_uses_replicate():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded, size = pad_to_multiple(x, 4)
    assert size == (2, 3) and padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[0, 0, 3], torch.tensor([3.0, 4, 5, 5]))


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\), got torch.float32 \(3, 32, 32\)"):
        predict_logits(model, torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="mode must be 'whole' or 'slide', got 'tiles'"):
        predict_logits(model, torch.zeros(1, 3, 32, 32), mode="tiles")
    with pytest.raises(ValueError, match=r"RGB uint8 image \(H, W, 3\), got float64"):
        preprocess(np.zeros((4, 4, 3)))


def test_preprocess_normalises_and_scales():
    transforms = pytest.importorskip("vos_seg.data.transforms")
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = preprocess(img)
    mean = np.asarray(transforms.IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(transforms.IMAGENET_STD, dtype=np.float32)
    if mean.max() <= 1.0:  # constants given on the 0..1 scale
        mean, std = mean * 255, std * 255
    ref = (img.astype(np.float32) - mean) / std
    diff = np.abs(out.numpy() - ref.transpose(2, 0, 1)).max()
    assert out.dtype == torch.float32 and diff < 1e-4, f"max diff {diff}"
    assert preprocess(img, scale=0.5).shape == (3, 10, 15)
