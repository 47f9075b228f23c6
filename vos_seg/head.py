"""Per-pixel view of a segmentation head's final convolution, so that VOS can work in its feature space.

VOS (Du et al., ICLR 2022, https://arxiv.org/abs/2202.01197) fits Gaussians to the features that enter the
classifier and pushes samples from their tails through that classifier. In a segmentation network the classifier
is the head's last ``nn.Conv2d``. A k x k convolution is a linear map of each output pixel's k x k input patch:

.. math::

    \\mathrm{conv}(x)_{:, i, j} = W_{\\mathrm{flat}} \\, \\mathrm{patch}_{i, j}(x) + b,
    \\qquad W_{\\mathrm{flat}} \\in \\mathbb{R}^{C \\times D_{in} k_h k_w}

so the per-pixel feature is the patch (D = D_in * k_h * k_w; for 1x1 convolutions D = D_in and the feature map is
the input itself), and the classifier is ``F.linear`` with the flattened conv weight. Features live at the conv's
resolution: the head's upsampling comes after the conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HeadAdapter"]

_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip DataParallel / DistributedDataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


class HeadAdapter:
    """Exact per-pixel linear view of a segmentation head's final ``nn.Conv2d``.

    A plain class, not an ``nn.Module``: it holds the model's conv by reference, so a module that stores an adapter
    never registers the model's head weights as its own parameters (no parameter is listed twice in an optimizer,
    and the model's weights stay out of the plugin's ``state_dict``).

    Args:
        conv: the head's final convolution: any kernel size, stride 1, ``groups=1``, any padding (int, tuple,
            ``"same"``, ``"valid"``) and ``padding_mode``, any dilation, with or without bias.

    Shape:
        - ``pixel_features(x)``: (N, D_in, h, w) -> (N, D, h_out, w_out), D = D_in * k_h * k_w
          (h_out, w_out = conv output size, equal to h, w for "same"-style padding).
        - ``logits(f)``: (M, D) -> (M, C).
        - ``gather_features(x, index)``: (N, D_in, h, w), (M,) -> (M, D).

    Raises:
        TypeError: if ``conv`` is not an ``nn.Conv2d``.
        ValueError: if the conv has a stride other than 1 or ``groups`` other than 1.

    Example:
        >>> import segmentation_models_pytorch as smp
        >>> model = smp.Unet("resnet18", encoder_weights=None, classes=4)
        >>> head = HeadAdapter.from_model(model)
        >>> head.feature_dim, head.num_classes   # 3x3 conv on 16 channels
        (144, 4)
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"HeadAdapter needs an nn.Conv2d, got {type(conv).__name__}")
        if tuple(conv.stride) != (1, 1):
            raise ValueError(f"HeadAdapter needs a conv with stride 1, got stride={tuple(conv.stride)}")
        if conv.groups != 1:
            raise ValueError(f"HeadAdapter needs a conv with groups=1, got groups={conv.groups}")
        self.conv = conv
        self._kernel = tuple(conv.kernel_size)
        self._dilation = tuple(conv.dilation)
        self._pad = self._padding_lrtb(conv)
        self._pad_mode = _PAD_MODES[conv.padding_mode]

    @staticmethod
    def _padding_lrtb(conv: nn.Conv2d) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) padding, as F.pad takes it; "same" puts the odd pixel right/bottom like torch."""
        if isinstance(conv.padding, str):
            if conv.padding == "valid":
                return (0, 0, 0, 0)
            total_h = conv.dilation[0] * (conv.kernel_size[0] - 1)
            total_w = conv.dilation[1] * (conv.kernel_size[1] - 1)
            return (total_w // 2, total_w - total_w // 2, total_h // 2, total_h - total_h // 2)
        pad_h, pad_w = conv.padding
        return (pad_w, pad_w, pad_h, pad_h)

    @classmethod
    def from_model(cls, model: nn.Module) -> HeadAdapter:
        """Find the final conv of an SMP model's segmentation head.

        SMP heads are ``SegmentationHead(conv, upsampling, activation)`` (conv at ``segmentation_head[0]``) for
        Unet, UnetPlusPlus, MAnet, Linknet, FPN, PSPNet, DeepLabV3, DeepLabV3Plus, PAN, UPerNet and Segformer, and
        ``DPTSegmentationHead`` for DPT, whose classifier is the last layer of ``segmentation_head.head``.
        DataParallel / DistributedDataParallel / ``torch.compile`` wrappers are looked through.

        Raises:
            ValueError: if no such conv is found; pass the conv to ``HeadAdapter(conv)`` instead.
        """
        inner = _unwrap(model)
        head = getattr(inner, "segmentation_head", None)
        conv = None
        if isinstance(head, nn.Sequential) and len(head) > 0 and isinstance(head[0], nn.Conv2d):
            conv = head[0]
        elif isinstance(getattr(head, "head", None), nn.Sequential) and isinstance(head.head[-1], nn.Conv2d):
            conv = head.head[-1]
        if conv is None:
            raise ValueError(
                f"could not find the final conv of {type(inner).__name__}'s segmentation head (looked for "
                "`segmentation_head[0]` and `segmentation_head.head[-1]`, as in segmentation_models_pytorch); "
                "pass the classifier conv explicitly: HeadAdapter(model.<path to the last nn.Conv2d>)"
            )
        return cls(conv)

    @property
    def num_classes(self) -> int:
        """C, the conv's output channels."""
        return self.conv.out_channels

    @property
    def feature_dim(self) -> int:
        """D = D_in * k_h * k_w, the per-pixel feature size."""
        return self.conv.in_channels * self._kernel[0] * self._kernel[1]

    @property
    def is_pointwise(self) -> bool:
        """True for an unpadded 1x1 conv, whose per-pixel features are its input itself."""
        return self._kernel == (1, 1) and self._pad == (0, 0, 0, 0)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.conv.in_channels:
            raise ValueError(
                f"expected the conv's input of shape (N, {self.conv.in_channels}, h, w), got {tuple(x.shape)}"
            )

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad == (0, 0, 0, 0):
            return x
        return F.pad(x, self._pad, mode=self._pad_mode)

    def pixel_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel features of the conv's input: the input itself (unpadded 1x1) or each pixel's input patch.

        Shape:
            x: (N, D_in, h, w) -> (N, D, h_out, w_out); channel order (c, k_row, k_col), matching
            ``conv.weight.flatten(1)``. A k x k conv costs k*k times the input's memory here; use
            ``gather_features`` when only some pixels are needed.
        """
        self._check_input(x)
        if self.is_pointwise:
            return x
        patches = F.unfold(self._padded(x), self._kernel, dilation=self._dilation)
        h_out, w_out = self._output_size(x)
        return patches.view(x.shape[0], self.feature_dim, h_out, w_out)

    def _output_size(self, x: torch.Tensor) -> tuple[int, int]:
        left, right, top, bottom = self._pad
        h_out = x.shape[2] + top + bottom - self._dilation[0] * (self._kernel[0] - 1)
        w_out = x.shape[3] + left + right - self._dilation[1] * (self._kernel[1] - 1)
        return h_out, w_out

    def output_size(self, x: torch.Tensor) -> tuple[int, int]:
        """(h_out, w_out) of the conv (and of ``pixel_features``) for the input ``x``."""
        self._check_input(x)
        return self._output_size(x)

    def gather_features(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Features of chosen output pixels only, without building the whole patch map.

        Equals ``pixel_features(x).permute(0, 2, 3, 1).reshape(-1, D)[index]``; costs O(M * D) instead of
        O(N * h * w * D). No host sync; an out-of-range index raises IndexError (CPU) or a device assert (CUDA).

        Args:
            x: the conv's input.
            index: int64 flat indices into the N * h_out * w_out output pixels, in (n, i, j) row-major order.

        Shape:
            x: (N, D_in, h, w), index: (M,) -> (M, D).
        """
        self._check_input(x)
        if index.ndim != 1 or index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"expected a 1-D integer index, got shape {tuple(index.shape)} dtype {index.dtype}")
        if self.is_pointwise:
            return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])[index]
        h_out, w_out = self._output_size(x)
        batch, rest = index.div(h_out * w_out, rounding_mode="floor"), index.remainder(h_out * w_out)
        row, col = rest.div(w_out, rounding_mode="floor"), rest.remainder(w_out)
        k_row = torch.arange(self._kernel[0], device=x.device) * self._dilation[0]
        k_col = torch.arange(self._kernel[1], device=x.device) * self._dilation[1]
        shape = (index.shape[0], self._kernel[0], self._kernel[1])
        rows = (row[:, None, None] + k_row[None, :, None]).expand(shape).flatten(1)  # (M, kh * kw), row-major
        cols = (col[:, None, None] + k_col[None, None, :]).expand(shape).flatten(1)
        padded = self._padded(x).permute(0, 2, 3, 1)  # (N, H_pad, W_pad, D_in), a view
        patches = padded[batch[:, None], rows, cols]  # (M, kh * kw, D_in)
        return patches.transpose(1, 2).reshape(index.shape[0], self.feature_dim)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The conv as a linear map of per-pixel features; gradients reach ``conv.weight`` and ``conv.bias``.

        Shape:
            features: (M, D) -> (M, C).
        """
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"expected features of shape (M, {self.feature_dim}), got {tuple(features.shape)}")
        return F.linear(features, self.conv.weight.flatten(1), self.conv.bias)

    def __repr__(self) -> str:
        return f"HeadAdapter({self.conv}, feature_dim={self.feature_dim}, num_classes={self.num_classes})"
