"""vos_seg.data.transforms: label values survive augmentation, padding uses the ignore index, seeding."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vos_seg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    image_to_tensor,
    train_transform,
)

MEAN = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
STD = np.array(IMAGENET_STD, np.float32)[:, None, None]


def _denormalise(image: torch.Tensor) -> np.ndarray:
    """float (3, H, W) normalised -> 0..255 float (3, H, W)."""
    return (image.numpy() * STD + MEAN) * 255.0


def _coordinate_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) is RGB (y, x, 77): a crop's position can be read back from its pixels."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.dstack([yy, xx, np.full_like(yy, 77)]).astype(np.uint8)


def test_imagenet_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_image_to_tensor_matches_numpy_reference(rng):
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = image_to_tensor(image)
    ref = (image.transpose(2, 0, 1).astype(np.float64) / 255.0 - MEAN) / STD
    assert out.dtype == torch.float32 and out.shape == (3, 5, 7)
    diff = np.abs(out.numpy() - ref).max()
    assert diff < 1e-5, diff


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)])
def test_image_to_tensor_rejects_non_rgb_uint8(bad):
    with pytest.raises(TypeError, match=r"np.uint8 array \(H, W, 3\)"):
        image_to_tensor(bad)


def test_train_crop_is_an_exact_window_of_image_and_mask(rng):
    h, w = 40, 60
    image = _coordinate_image(h, w)
    mask = rng.integers(-3, 300, (h, w)).astype(np.int64)  # negative, >255 and 255 all present
    mask[0, 0], mask[1, 1] = 255, -1
    t = train_transform((16, 24), scale_range=(1.0, 1.0), hflip=False, color_jitter=False, seed=3)
    for _ in range(5):
        out = t(image=image, mask=mask)
        assert out["image"].shape == (3, 16, 24) and out["image"].dtype == torch.float32
        assert out["mask"].shape == (16, 24) and out["mask"].dtype == torch.int64
        pixels = np.rint(_denormalise(out["image"])).astype(int)
        y0, x0 = pixels[0, 0, 0], pixels[1, 0, 0]
        np.testing.assert_array_equal(pixels[0], np.arange(y0, y0 + 16)[:, None].repeat(24, 1))
        np.testing.assert_array_equal(out["mask"].numpy(), mask[y0:y0 + 16, x0:x0 + 24])


def test_train_pads_mask_with_ignore_index_and_image_with_mean(rng):
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    mask = np.full((10, 12), 4, np.uint8)
    t = train_transform((32, 32), scale_range=(1.0, 1.0), ignore_index=250, hflip=False, color_jitter=False, seed=0)
    out = t(image=image, mask=mask)
    m = out["mask"].numpy()
    assert (m == 4).sum() == 10 * 12 and (m == 250).sum() == 32 * 32 - 10 * 12
    padded = out["image"].numpy()[:, m == 250]
    assert np.abs(padded).max() < 0.01, np.abs(padded).max()  # ImageNet mean -> ~0 after normalising


def test_train_scaling_uses_nearest_for_masks():
    mask = (np.indices((20, 20)).sum(0) % 2 * 10).astype(np.uint8)  # checkerboard of 0 and 10
    image = np.zeros((20, 20, 3), np.uint8)
    for scale in [(0.63, 0.63), (1.7, 1.7)]:
        t = train_transform((8, 8), scale_range=scale, hflip=False, color_jitter=False, seed=0)
        values = set(np.unique(t(image=image, mask=mask)["mask"].numpy()).tolist())
        assert values <= {0, 10}, values  # linear interpolation would create 5


def test_train_scale_range_sets_output_size_before_crop():
    image, mask = np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30), np.uint8)
    t = train_transform((200, 200), scale_range=(2.0, 2.0), hflip=False, color_jitter=False, seed=0)
    m = t(image=image, mask=mask)["mask"].numpy()
    assert (m == 0).sum() == 40 * 60  # scaled image area, the rest is padding


def test_train_seed_reproducible_and_distinct(rng):
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (30, 40)).astype(np.uint8)
    a = [train_transform((16, 16), seed=7)(image=image, mask=mask) for _ in range(2)]
    torch.testing.assert_close(a[0]["image"], a[1]["image"], rtol=0, atol=0)
    b = train_transform((16, 16), seed=8)(image=image, mask=mask)
    assert not torch.equal(a[0]["image"], b["image"])
    t = train_transform((16, 16), seed=7)
    first = t(image=image, mask=mask)["image"]
    t.set_random_seed(7)
    torch.testing.assert_close(t(image=image, mask=mask)["image"], first, rtol=0, atol=0)


def test_train_hflip_happens_about_half_the_time():
    image = _coordinate_image(8, 8)
    t = train_transform((8, 8), scale_range=(1.0, 1.0), color_jitter=False, seed=0)
    flips = 0
    for _ in range(40):
        x_first_col = np.rint(_denormalise(t(image=image)["image"]))[1, 0, 0]
        flips += int(x_first_col == 7)
    assert 8 <= flips <= 32, flips


def test_train_transform_uses_strict_compose():
    assert train_transform(8).compose.strict is True
    assert eval_transform().compose.strict is True


def test_eval_pads_bottom_right_to_multiple(rng):
    image = rng.integers(0, 256, (33, 50, 3), dtype=np.uint8)
    mask = rng.integers(-1, 3, (33, 50)).astype(np.int32)
    mask[0, 0] = 1000
    out = eval_transform(ignore_index=255)(image=image, mask=mask)
    assert out["image"].shape == (3, 64, 64) and out["mask"].shape == (64, 64)
    diff = (out["image"][:, :33, :50] - image_to_tensor(image)).abs().max().item()
    assert diff < 1e-5, diff
    np.testing.assert_array_equal(out["mask"][:33, :50].numpy(), mask)
    assert (out["mask"][33:] == 255).all() and (out["mask"][:, 50:] == 255).all()
    assert out["image"][:, 33:].abs().max() == 0


def test_eval_without_padding_and_image_only(rng):
    image = rng.integers(0, 256, (33, 50, 3), dtype=np.uint8)
    out = eval_transform(pad_multiple=1)(image=image)
    assert set(out) == {"image"} and out["image"].shape == (3, 33, 50)


def test_argument_and_input_errors(rng):
    with pytest.raises(ValueError, match="crop_size"):
        train_transform((0, 8))
    with pytest.raises(ValueError, match="scale_range"):
        train_transform(8, scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="pad_multiple"):
        eval_transform(pad_multiple=0)
    t = eval_transform()
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(4, 6\) differs from image size \(4, 5\)"):
        t(image=image, mask=np.zeros((4, 6), np.uint8))
    with pytest.raises(TypeError, match="integer `mask`"):
        t(image=image, mask=np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        t(image=image.astype(np.float32))
    with pytest.raises(ValueError, match="do not fit int32"):
        t(image=image, mask=np.full((4, 5), 2**40, np.int64))


class _Repeat(Dataset):
    def __init__(self, transform):
        self.transform = transform
        self.image = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.transform(image=self.image)["image"]


def test_dataloader_workers_do_not_repeat_augmentations():
    # albumentations 2.0.8 copies one generator into every forked worker; the wrapper reseeds per worker.
    loader = DataLoader(_Repeat(train_transform((16, 16), seed=0)), batch_size=1, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    items = list(loader)  # worker 0 reads items 0, 2; worker 1 reads items 1, 3
    assert not torch.equal(items[0], items[1]), "both workers produced the same augmentation"
