"""The per-pixel VOS loss: cross-entropy plus the energy regulariser of Virtual Outlier Synthesis."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .labels import check_ignore_index, validate_target
from .scores import weighted_energy

__all__ = ["VOSSegLoss", "MonotoneEnergyLogistic", "make_phi", "PHI_KINDS"]

PHI_KINDS = ("linear", "monotone")

_REDUCTIONS = ("mean", "sum", "none")


class MonotoneEnergyLogistic(nn.Module):
    r"""Logistic regression on the energy whose outlier probability can only rise with the energy.

    .. math::
        \phi(E) = (s E + b,\; 0), \qquad s = \mathrm{softplus}(\rho) > 0, \qquad
        P(\text{outlier} \mid E) = \sigma(s E + b)

    VOS's ``nn.Linear(1, 2)`` may learn either sign. When the virtual outliers happen to have *lower* energy than
    in-distribution pixels (tail samples of the class Gaussians can produce large logits), a free phi learns that
    ordering and the regulariser then entrenches it, pushing in-distribution energies up and outlier energies
    down: the opposite of what the energy score needs. Constraining the slope keeps "higher energy = more
    anomalous" true throughout training. Starts at ``s = 2, b = 0``, the same map as the default linear phi.

    Shape:
        energies ``(M, 1)`` -> logits ``(M, 2)`` (class 0 outlier, class 1 in-distribution).
    """

    def __init__(self) -> None:
        super().__init__()
        self.raw_slope = nn.Parameter(torch.tensor(math.log(math.expm1(2.0))))  # softplus(raw) = 2
        self.bias = nn.Parameter(torch.zeros(()))

    @property
    def slope(self) -> torch.Tensor:
        return F.softplus(self.raw_slope)

    def forward(self, energies: torch.Tensor) -> torch.Tensor:
        outlier_logit = self.slope * energies + self.bias
        return torch.cat([outlier_logit, torch.zeros_like(outlier_logit)], dim=-1)


def make_phi(kind: str) -> nn.Module:
    """The logistic regression on the energy: ``"linear"`` (VOS's ``nn.Linear(1, 2)``, sign-correct start) or
    ``"monotone"`` (:class:`MonotoneEnergyLogistic`)."""
    if kind == "linear":
        phi = nn.Linear(1, 2)
        with torch.no_grad():
            phi.weight.copy_(torch.tensor([[1.0], [-1.0]]))  # outlier logit rises with the energy
            phi.bias.zero_()
        return phi
    if kind == "monotone":
        return MonotoneEnergyLogistic()
    raise ValueError(f"unknown phi {kind!r}; choose from {', '.join(PHI_KINDS)}")


class VOSSegLoss(nn.Module):
    r"""Cross-entropy plus the VOS energy regulariser, read per pixel.

    Paper: *VOS: Learning What You Don't Know by Virtual Outlier Synthesis*, Du et al., ICLR 2022,
    https://arxiv.org/abs/2202.01197 (code: https://github.com/deeplearning-wisc/vos). Follows
    ``pytorch_ood.loss.VOSRegLoss`` (0.4.0) and fixes its segmentation flaws: a void label distinct from classes,
    one consistent reduction, balanced in/out expectations, and a guarded weighted energy.

    With the weighted energy :math:`E(x) = -\log \sum_c \mathrm{relu}(w_c) e^{f_c(x)}` (float32, see
    :func:`vos_seg.scores.weighted_energy`) and a logistic regression :math:`\phi` mapping :math:`E` to two logits
    (class 0 outlier, class 1 in-distribution, as in VOS and pytorch-ood):

    .. math::
        \mathcal{L} = \underbrace{\frac{1}{|K|}\sum_{i \in K} \mathrm{CE}(f(x_i), y_i)}_{\text{ce}}
            + \alpha\, R, \qquad
        R = \underbrace{\frac{1}{|K|}\sum_{i \in K} -\log \sigma_1(\phi(E(x_i)))}_{\text{in-distribution}}
            + \underbrace{\frac{1}{|O|}\sum_{v \in O} -\log \sigma_0(\phi(E(v)))}_{\text{outliers}}

    :math:`K` are the known pixels (labels ``0..C-1``); :math:`O` the outliers: real outlier pixels (labels
    ``< 0``) and the virtual outliers passed as ``outlier_logits``. Void pixels (``ignore_index``) enter no term.
    ``balanced=True`` is the paper's sum of two expectations; ``balanced=False`` pools :math:`K \cup O` into one
    mean (pytorch-ood's form: with ``reduction="mean"`` the value and gradient equal
    ``pytorch_ood.loss.VOSRegLoss(phi, weights_energy, alpha)`` whenever the batch holds outliers and no void).

    Edge cases: **no outliers** in the batch (no label ``< 0`` and no ``outlier_logits``): :math:`R = 0`, the loss
    is plain cross-entropy (pytorch-ood would push every pixel towards "in-distribution" instead). **No known
    pixels**: the CE term and the in-distribution expectation are 0; the loss stays finite and differentiable.

    Reductions: ``"mean"`` is the formula above. ``"sum"`` is ``max(|K|, 1)`` times the mean, i.e. the sum of the
    per-pixel terms, each regulariser term carrying its balance factor (``1`` in-distribution,
    ``|K|/|O|`` outliers when balanced; ``|K|/(|K|+|O|)`` for all when pooled); divide by the global ``|K|``
    to average over processes. ``"none"`` returns the per-pixel map ``(N, H, W)`` of those terms (void pixels
    0); virtual outliers are not pixels, so their summed share is reported in ``last_terms["virtual_sum"]``:
    ``map.sum() + last_terms["virtual_sum"]`` equals the ``"sum"`` reduction.

    Host-device synchronisation: only the label check (``validate=True``); pass ``validate=False`` in CUDA loops
    whose data pipeline already validated the labels.

    Args:
        num_classes: number of known classes ``C``.
        alpha: weight of the regulariser (paper: 0.1).
        ignore_index: void label, ``>= C``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        balanced: balance in-distribution and outlier expectations (default) or pool them.
        phi: optional module mapping ``(M, 1)`` energies to ``(M, 2)`` logits; default ``nn.Linear(1, 2)``
            initialised to the sign-correct map ``phi(E) = (E, -E)``, i.e. ``P(outlier) = sigmoid(2E)``.
            VOS and pytorch-ood start from a random line instead; with a small learning rate a random line that
            happens to call low energy "outlier" makes the regulariser push outliers towards *low* energy for
            many steps, until phi turns around. ``"monotone"`` selects :class:`MonotoneEnergyLogistic`, whose
            slope cannot change sign; ``"linear"`` is the default.
        validate: check target values on every call (one host sync).

    Shape:
        - logits: ``(N, C, H, W)`` (or ``(N, C)``), any float dtype.
        - target: ``(N, H, W)`` (or ``(N,)``), integer.
        - outlier_logits: ``(M, C)``; outlier_mask: ``(M,)`` bool.
        - output: scalar, or ``(N, H, W)`` / ``(N,)`` with ``reduction="none"``.

    Example:
        >>> criterion = VOSSegLoss(num_classes=3)
        >>> logits = torch.randn(2, 3, 4, 4, requires_grad=True)
        >>> target = torch.randint(0, 3, (2, 4, 4))
        >>> target[0, 0, 0] = -1  # an outlier pixel
        >>> criterion(logits, target).backward()
    """

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.1,
        ignore_index: int = 255,
        reduction: str = "mean",
        balanced: bool = True,
        phi: nn.Module | str | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__()
        check_ignore_index(num_classes, ignore_index)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.num_classes = num_classes
        self.alpha = float(alpha)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.balanced = balanced
        self.validate = validate
        self.phi = make_phi("linear") if phi is None else make_phi(phi) if isinstance(phi, str) else phi
        self.weights_energy = nn.Linear(num_classes, 1)
        nn.init.uniform_(self.weights_energy.weight)  # [0, 1): relu'd weights start positive
        # The weighted energy reads the weight only (as in VOS); a bias that never gets a gradient would make a
        # DistributedDataParallel-wrapped loss fail with "parameters that were not used in producing loss".
        self.weights_energy.bias.requires_grad_(False)
        self.last_terms: dict[str, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, alpha={self.alpha}, ignore_index={self.ignore_index}, "
            f"reduction={self.reduction!r}, balanced={self.balanced}"
        )

    def weighted_energy(self, logits: torch.Tensor) -> torch.Tensor:
        """Weighted energy with this loss's weights; ``(N, C, ...)`` -> float32 ``(N, ...)``."""
        return weighted_energy(logits, self.weights_energy.weight)

    def _phi_logits(self, energies: torch.Tensor) -> torch.Tensor:
        # phi sees float32 energies even under autocast: energies span tens of units, bf16 would round them.
        param = next(self.phi.parameters(), None)
        dtype = torch.float64 if param is not None and param.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=energies.device.type, enabled=False):
            out = self.phi(energies.reshape(-1, 1).to(dtype))
        if out.dim() != 2 or out.shape[1] != 2:
            raise ValueError(f"phi must map (M, 1) energies to (M, 2) logits, got output shape {tuple(out.shape)}")
        return out if out.dtype == torch.float64 else out.float()

    def _phi_difference(self, energies: torch.Tensor) -> torch.Tensor:
        """``phi(E)[:, 0] - phi(E)[:, 1]`` (outlier minus in-distribution logit), float32 ``(M,)``."""
        out = self._phi_logits(energies)
        return out[:, 0] - out[:, 1]

    def outlier_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """``softmax(phi(E))`` of the outlier class for logits ``(N, C, ...)``; float32 ``(N, ...)`` in [0, 1]."""
        energies = self.weighted_energy(logits)
        return torch.sigmoid(self._phi_difference(energies)).reshape(energies.shape)

    def _check_shapes(self, logits: torch.Tensor, target: torch.Tensor, outlier_logits: torch.Tensor | None) -> None:
        if logits.dim() not in (2, 4):
            raise ValueError(f"expected logits of shape (N, C, H, W) or (N, C), got {tuple(logits.shape)}")
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"expected {self.num_classes} channels in logits of shape (N, C, ...), got {tuple(logits.shape)}"
            )
        expected = (logits.shape[0],) + tuple(logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}: "
                f"expected target of shape {expected}"
            )
        if outlier_logits is not None and (outlier_logits.dim() != 2 or outlier_logits.shape[1] != self.num_classes):
            raise ValueError(
                f"expected outlier_logits of shape (M, {self.num_classes}), got {tuple(outlier_logits.shape)}"
            )

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        outlier_logits: torch.Tensor | None = None,
        outlier_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of a batch; see the class docstring for the formula, shapes and reductions.

        ``outlier_mask`` ``(M,)`` bool optionally keeps only some rows of ``outlier_logits`` (the others enter no
        term and are not counted), so callers can pass a fixed-size batch of virtual outliers without a host sync.
        """
        self._check_shapes(logits, target, outlier_logits)
        if outlier_mask is not None:
            if outlier_logits is None:
                raise ValueError("outlier_mask given without outlier_logits")
            if outlier_mask.dtype != torch.bool or tuple(outlier_mask.shape) != (outlier_logits.shape[0],):
                raise ValueError(
                    f"expected a bool outlier_mask of shape ({outlier_logits.shape[0]},), "
                    f"got {outlier_mask.dtype} of shape {tuple(outlier_mask.shape)}"
                )
        if self.validate:
            validate_target(target, self.num_classes, self.ignore_index)

        # One path for every rank: every op reduces over dim 1, so (N, C, H, W) and (N, C) need no permuted copy.
        known = (target >= 0) & (target != self.ignore_index)
        outlier = target < 0
        num_known = known.sum(dtype=torch.float32)
        num_outlier = outlier.sum(dtype=torch.float32)
        ce_target = torch.where(known, target, -100).long()
        ce_logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()

        # Binary CE of phi on the weighted energy, through the logit difference d = phi_out - phi_in:
        # -log sigma_in = softplus(d) for known pixels, -log sigma_out = softplus(-d) for outliers.
        diff = self._phi_difference(self.weighted_energy(logits)).reshape(target.shape)
        reg_in = torch.where(known, F.softplus(diff), 0.0)
        reg_out = torch.where(outlier, F.softplus(-diff), 0.0)

        if outlier_logits is not None and outlier_logits.shape[0] > 0:
            virtual_reg = F.softplus(-self._phi_difference(self.weighted_energy(outlier_logits)))
            if outlier_mask is not None:
                # where(), not a product: a masked-out row may be non-finite and must not poison the sum.
                virtual_reg = torch.where(outlier_mask.to(virtual_reg.device), virtual_reg, 0.0)
                num_virtual = outlier_mask.sum(dtype=torch.float32).to(num_known.device)
            else:
                num_virtual = num_known.new_full((), float(outlier_logits.shape[0]))
        else:
            virtual_reg = num_known.new_zeros(0)
            num_virtual = num_known.new_zeros(())
        num_out = num_outlier + num_virtual

        # Balance factors, so that "sum" = max(|K|, 1) * "mean" for every reduction.
        scale = num_known.clamp_min(1)
        if self.balanced:
            in_factor = torch.ones_like(scale)
            out_factor = scale / num_out.clamp_min(1)
        else:
            in_factor = out_factor = scale / (num_known + num_out).clamp_min(1)
        # No outliers at all: R = 0 (where() keeps gradients finite and the graph sync-free).
        has_outliers = num_out > 0
        in_factor = torch.where(has_outliers, in_factor, 0.0)
        out_factor = torch.where(has_outliers, out_factor, 0.0)

        virtual_reg_sum = out_factor * virtual_reg.sum()
        if self.reduction == "none":
            ce = F.cross_entropy(ce_logits, ce_target, ignore_index=-100, reduction="none")
            pixel_reg = reg_in * in_factor + reg_out * out_factor
            pixel_terms = ce + self.alpha * pixel_reg
            ce_sum, reg_sum = ce.sum(), pixel_reg.sum() + virtual_reg_sum
        else:
            ce_sum = F.cross_entropy(ce_logits, ce_target, ignore_index=-100, reduction="sum")
            reg_sum = in_factor * reg_in.sum() + out_factor * reg_out.sum() + virtual_reg_sum
        total_sum = ce_sum + self.alpha * reg_sum
        virtual_sum = self.alpha * virtual_reg_sum

        self.last_terms = {
            "ce": (ce_sum / scale).detach(),
            "uncertainty": (reg_sum / scale).detach(),
            "num_known": num_known,
            "num_outlier": num_outlier,
            "num_virtual": num_virtual,
            "virtual_sum": virtual_sum.detach(),
            "loss": (total_sum / scale).detach(),
        }
        if self.reduction == "mean":
            loss = total_sum / scale
        elif self.reduction == "sum":
            loss = total_sum
        else:
            loss = pixel_terms
        return loss
