"""HeadAdapter: logits(pixel_features(x)) equals the head conv at every pixel, for every SMP architecture."""

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from vos_seg.head import HeadAdapter

ARCHS = [
    ("Unet", 64),
    ("UnetPlusPlus", 64),
    ("MAnet", 64),
    ("Linknet", 64),
    ("FPN", 64),
    ("PSPNet", 64),
    ("DeepLabV3", 64),
    ("DeepLabV3Plus", 64),
    ("PAN", 128),  # its feature pyramid attention pools 1/32 features three times: needs >= 128 px
    ("UPerNet", 64),
    ("Segformer", 64),
]


def _per_pixel_logits(head: HeadAdapter, x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) logits computed through the adapter, one pixel per row."""
    feats = head.pixel_features(x)
    n, d, h, w = feats.shape
    logits = head.logits(feats.permute(0, 2, 3, 1).reshape(-1, d))
    return logits.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def _check_model(model: nn.Module, size: int, expected_kernel: int | None = None) -> None:
    model.eval()
    head = HeadAdapter.from_model(model)
    captured = {}
    handle = head.conv.register_forward_hook(lambda m, inp, out: captured.update(x=inp[0], y=out))
    with torch.no_grad():
        model(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1)))
    handle.remove()
    x, y = captured["x"], captured["y"]
    assert head.num_classes == 3
    assert head.feature_dim == x.shape[1] * head.conv.kernel_size[0] * head.conv.kernel_size[1]
    if expected_kernel is not None:
        assert head.conv.kernel_size == (expected_kernel, expected_kernel)
    with torch.no_grad():
        ours = _per_pixel_logits(head, x)
    assert ours.shape == y.shape
    diff = (ours - y).abs().max().item()
    scale = y.abs().max().item()
    assert diff <= 1e-5 * max(scale, 1.0), f"max |diff| {diff:.3g} (logit scale {scale:.3g})"


@pytest.mark.parametrize("arch,size", ARCHS, ids=[a for a, _ in ARCHS])
def test_every_smp_architecture(arch, size):
    torch.manual_seed(0)  # SMP initialises weights from the global RNG; tests may seed it
    model = smp.create_model(arch, encoder_name="resnet18", encoder_weights=None, classes=3)
    assert model.segmentation_head[0] is HeadAdapter.from_model(model).conv
    _check_model(model, size)


def test_dpt_last_1x1_conv():
    torch.manual_seed(0)
    try:
        model = smp.create_model(
            "DPT", encoder_name="tu-vit_tiny_patch16_224", encoder_weights=None, classes=3, dynamic_img_size=True
        )
    except Exception as error:  # pragma: no cover - depends on the installed timm
        pytest.skip(f"DPT with a tiny ViT does not build offline here: {error}")
    assert HeadAdapter.from_model(model).conv is model.segmentation_head.head[-1]
    _check_model(model, 64, expected_kernel=1)


def test_from_model_looks_through_wrappers():
    model = smp.Unet("resnet18", encoder_weights=None, classes=3, encoder_depth=3, decoder_channels=(16, 8, 4))
    assert HeadAdapter.from_model(nn.DataParallel(model)).conv is model.segmentation_head[0]
    assert HeadAdapter.from_model(torch.compile(model)).conv is model.segmentation_head[0]  # compiles lazily


def test_from_model_without_head_tells_to_pass_the_conv():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    with pytest.raises(ValueError, match=r"Sequential.*pass the classifier conv explicitly: HeadAdapter"):
        HeadAdapter.from_model(model)


def _reference(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return conv(x)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, padding=1),
        dict(kernel_size=3, padding=1, bias=False),
        dict(kernel_size=3, padding=1, padding_mode="reflect"),
        dict(kernel_size=3, padding=1, padding_mode="replicate", bias=False),
        dict(kernel_size=3, padding=1, padding_mode="circular"),
        dict(kernel_size=3, padding=2, dilation=2, padding_mode="reflect"),
        dict(kernel_size=(3, 5), padding=(1, 2), dilation=(2, 1)),
        dict(kernel_size=3, padding=0),
        dict(kernel_size=4, padding="same"),
        dict(kernel_size=2, padding="same", dilation=3, padding_mode="reflect"),
        dict(kernel_size=3, padding="valid", bias=False),
        dict(kernel_size=1),
        dict(kernel_size=1, padding=1),
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_kxk_conv_exact(kwargs, generator):
    conv = nn.Conv2d(5, 4, **kwargs).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    x = torch.randn(2, 5, 9, 11, generator=generator, dtype=torch.float64)
    head = HeadAdapter(conv)
    y = _reference(conv, x)
    ours = _per_pixel_logits(head, x)
    assert head.output_size(x) == tuple(y.shape[2:])
    assert ours.shape == y.shape
    diff = (ours - y).abs().max().item()
    assert diff < 1e-12, f"max |diff| {diff:.3g}"
    if head.is_pointwise:
        assert head.pixel_features(x) is x


@pytest.mark.parametrize(
    "kwargs",
    [dict(kernel_size=3, padding=1, padding_mode="reflect"), dict(kernel_size=(3, 2), padding=2, dilation=2),
     dict(kernel_size=1)],
)
def test_gather_features_matches_pixel_features(kwargs, generator):
    conv = nn.Conv2d(5, 4, **kwargs)
    head = HeadAdapter(conv)
    x = torch.randn(3, 5, 7, 6, generator=generator)
    full = head.pixel_features(x)
    flat = full.permute(0, 2, 3, 1).reshape(-1, head.feature_dim)
    index = torch.randint(0, flat.shape[0], (40,), generator=generator)
    torch.testing.assert_close(head.gather_features(x, index), flat[index], rtol=0, atol=0)


def test_gradients_reach_conv_weight_and_bias(generator):
    conv = nn.Conv2d(4, 3, 3, padding=1).double()
    head = HeadAdapter(conv)
    x = torch.randn(1, 4, 5, 5, generator=generator, dtype=torch.float64)
    feats = head.pixel_features(x).permute(0, 2, 3, 1).reshape(-1, head.feature_dim)
    head.logits(feats).square().sum().backward()
    ours = (conv.weight.grad.clone(), conv.bias.grad.clone())
    conv.zero_grad()
    conv(x).square().sum().backward()
    for a, b in zip(ours, (conv.weight.grad, conv.bias.grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_adapter_is_not_a_module():
    # Held by reference: a module storing an adapter must not own the model's conv as a submodule.
    conv = nn.Conv2d(4, 3, 1)
    holder = nn.Module()
    holder.head = HeadAdapter(conv)
    assert list(holder.parameters()) == [] and holder.state_dict() == {}


def test_rejections():
    with pytest.raises(TypeError, match="needs an nn.Conv2d, got Linear"):
        HeadAdapter(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"stride 1, got stride=\(2, 2\)"):
        HeadAdapter(nn.Conv2d(3, 2, 3, stride=2))
    with pytest.raises(ValueError, match="groups=1, got groups=3"):
        HeadAdapter(nn.Conv2d(3, 3, 3, groups=3))
    head = HeadAdapter(nn.Conv2d(3, 2, 3, padding=1))
    with pytest.raises(ValueError, match=r"\(N, 3, h, w\), got \(1, 4, 5, 5\)"):
        head.pixel_features(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(M, 27\), got \(5, 26\)"):
        head.logits(torch.zeros(5, 26))
    with pytest.raises(ValueError, match=r"1-D integer index, got shape \(2, 2\)"):
        head.gather_features(torch.zeros(1, 3, 4, 4), torch.zeros(2, 2, dtype=torch.long))


def test_functional_conv_equivalence_under_float32(generator):
    # The float32 path (as in training) agrees with F.conv2d to float rounding.
    conv = nn.Conv2d(16, 5, 3, padding=1)
    x = torch.randn(2, 16, 12, 12, generator=generator)
    ours = _per_pixel_logits(HeadAdapter(conv), x)
    ref = F.conv2d(x, conv.weight, conv.bias, padding=1)
    diff = (ours - ref).abs().max().item()
    assert diff < 1e-5, f"max |diff| {diff:.3g}"


@pytest.mark.cuda
def test_head_adapter_does_not_sync_on_cuda():
    conv = nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect").cuda().double()  # float64: no TF32 in the check
    head = HeadAdapter(conv)
    x = torch.randn(2, 8, 16, 16, device="cuda", dtype=torch.float64)
    index = torch.randint(0, 2 * 16 * 16, (100,), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        full = head.logits(head.pixel_features(x).permute(0, 2, 3, 1).reshape(-1, head.feature_dim))
        picked = head.logits(head.gather_features(x, index))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.testing.assert_close(picked, full[index])
    torch.testing.assert_close(full, conv(x).permute(0, 2, 3, 1).reshape(-1, 4), rtol=1e-10, atol=1e-10)
