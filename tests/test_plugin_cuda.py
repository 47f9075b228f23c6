"""The VOS plugin on CUDA: no host-device sync inside a training step, correct under bf16 autocast."""

import pytest
import segmentation_models_pytorch as smp
import torch

from vos_seg.plugin import VOS

pytestmark = pytest.mark.cuda
K = 5


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = smp.Unet("resnet18", encoder_weights=None, decoder_channels=(32, 16, 16, 16, 16), classes=K).cuda()
    vos = VOS(model, K, queue_size=16, pixels_per_class=8, refresh_every=2, validate=False,
              generator=torch.Generator(device="cuda").manual_seed(seed)).cuda()
    data = torch.Generator(device="cuda").manual_seed(seed + 1)
    images = torch.randn(2, 3, 64, 64, device="cuda", generator=data)
    target = torch.randint(0, K, (2, 64, 64), device="cuda", generator=data)
    target[:, :4] = 255
    target[:, 4:8] = -1
    return model, vos, images, target


def test_no_host_sync_inside_a_step():
    model, vos, images, target = setup()
    optimizer = torch.optim.AdamW([*model.parameters(), *vos.parameters()], lr=1e-3)
    for _ in range(3):  # warm-up: fills the queues, refits, initialises cuDNN and the optimizer state
        loss = vos(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):  # one of the two steps refits the statistics
            loss = vos(model(images), target)
            optimizer.zero_grad()
            loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert float(vos.last_terms["num_virtual"]) == K
    assert torch.isfinite(loss)


def test_bf16_autocast_matches_float32():
    model, vos, images, target = setup()
    model32, vos32, _, _ = setup()  # same weights, generator and data: only the precision differs
    for call in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(images)
            loss = vos(logits, target)
        loss32 = vos32(model32(images), target)
        assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
        assert torch.isfinite(loss)
        diff = (loss - loss32).abs().item()
        assert diff < 0.05 * max(1.0, loss32.abs().item()), f"call {call}: bf16 {loss.item()} vs fp32 {loss32.item()}"
    assert float(vos.last_terms["num_virtual"]) == K
    loss.backward()
    conv = vos.adapter.conv
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0
    assert vos.queue.dtype == torch.float32 and torch.isfinite(vos.queue).all()
    queue_diff = (vos.queue - vos32.queue).abs().max().item()
    scale = vos32.queue.abs().max().item()
    assert queue_diff < 0.05 * scale, f"bf16 queues differ by {queue_diff:.3g} (scale {scale:.3g})"
