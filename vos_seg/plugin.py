"""The VOS plugin for segmentation training loops: queues, Gaussian statistics, virtual outliers, loss.

VOS (Du et al., ICLR 2022, https://arxiv.org/abs/2202.01197, code github.com/deeplearning-wisc/vos) fits
class-conditional Gaussians with a tied covariance to the features entering the classifier, samples their
low-likelihood tails and trains an energy-based uncertainty head to tell those virtual outliers from the data.
Here the classifier is the segmentation head's final conv, read per pixel through :class:`~vos_seg.head.HeadAdapter`:

.. math::
    \\mu_k = \\frac{1}{Q}\\sum_{i} z_{k,i}, \\qquad
    \\Sigma = \\frac{1}{|F| Q}\\sum_{k \\in F}\\sum_{i} (z_{k,i} - \\mu_k)(z_{k,i} - \\mu_k)^T + \\epsilon I,

over the classes ``F`` whose queue of ``Q`` features is full; virtual outliers are drawn per class in ``F`` by
:func:`~vos_seg.synthesis.sample_outliers` and enter the regulariser of :class:`~vos_seg.loss.VOSSegLoss`
beside real outlier pixels (labels ``< 0``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .head import HeadAdapter
from .labels import validate_target
from .loss import VOSSegLoss
from .queues import all_gather_picks, ring_enqueue, select_pixels_per_class
from .synthesis import cholesky_with_jitter, fit_tied_gaussian, sample_outliers

__all__ = ["VOS", "loss_from_state_dict"]


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class VOS(nn.Module):
    r"""Virtual Outlier Synthesis for a segmentation model: ``loss = vos(model(images), target)``.

    The plugin hooks the head's final conv, so that ``vos(logits, target)`` right after ``logits = model(images)``
    sees the conv's input. In a training-mode call (plugin *and* head in ``train()`` mode) it

    1. enqueues up to ``pixels_per_class`` random pixels of every known class in the batch (labels brought to the
       conv's resolution by nearest sampling; features detached, non-finite ones and whole batches with
       non-finite logits skipped) into per-class ring buffers of ``queue_size`` features;
    2. from call ``start_iter`` on (0-based count of training-mode calls), every ``refresh_every`` calls refits
       the class means and tied covariance (float64, Cholesky with growing jitter) over the classes whose queue is
       full; classes join as they fill;
    3. draws ``select`` virtual outliers per such class, the least likely of ``sample_from`` Gaussian draws
       (fast exact sampler), maps them through the head (gradients reach the head weights) and returns
       cross-entropy plus ``alpha`` times the energy regulariser on known pixels, real outlier pixels (label
       ``< 0``) and the virtual outliers.

    In ``eval()`` mode nothing is enqueued or sampled: the call is the plain :class:`VOSSegLoss`.

    The model and head are held by reference: ``vos.parameters()`` are the loss's phi and energy weights only (add
    them to the optimizer beside the model's); ``vos.state_dict()`` holds those and the plugin's statistics
    (queues, fill counts, write positions, step counter, fitted means and Cholesky factor, ready classes).
    Resuming from it, with the RNG state restored (the global one, or ``generator``'s ``get_state()``), continues
    with exactly the losses of the uninterrupted run.

    Distributed: when ``torch.distributed`` is initialised, the picked features of all ranks are all-gathered
    (fixed-size slots with a validity mask) so that every rank holds identical queues and statistics. The loss's
    few parameters are not inside the model's ``DistributedDataParallel``; wrap the plugin too
    (``criterion = DistributedDataParallel(vos)``; its buffers are identical on every rank already, so
    ``broadcast_buffers=False``, or ``forward_sync_buffers=False`` where torch deprecates the former, saves a
    broadcast) so that their gradients are averaged. The weighted energy never reads ``weights_energy.bias``; it is
    frozen (``requires_grad=False``) so that DDP does not report it as unused.

    Host-device synchronisation: none in a step except the label check (``validate=True``), and none at all with
    ``validate=False`` on CUDA. Statistics refits cost O(K * queue_size * D^2) in float64 (about 200 ms of CPU
    time at K=19, D=256), hence ``refresh_every``: the queues change by ``pixels_per_class / queue_size`` per
    step, so a refit every 10 steps keeps the statistics within 8% of the queue's content of a per-step refit.

    Args:
        model: the segmentation model (an SMP model, possibly wrapped in DistributedDataParallel; not
            ``nn.DataParallel``, whose replicas run the head once per GPU on parts of the batch).
        num_classes: number of known classes ``K``.
        head: the classifier conv or its :class:`HeadAdapter`; default ``HeadAdapter.from_model(model)``.
        ignore_index: void label (in no term, never enqueued).
        alpha: weight of the regulariser (paper: 0.1).
        queue_size: features kept per class (paper: 1000).
        pixels_per_class: pixels enqueued per class and step (per rank); about one per image and class at a batch
            of 8, so that a queue spans many images rather than neighbouring pixels of a few.
        sample_from: Gaussian draws per class among which outliers are chosen (paper: 10000).
        select: virtual outliers kept per class (paper: 1).
        start_iter: first training-mode call that synthesises (paper: 40% of training for detection).
        cov_eps: ridge added to the covariance diagonal (paper: 1e-4).
        balanced: balance in-distribution and outlier expectations in the regulariser (see VOSSegLoss).
        refresh_every: refit the statistics every this many calls from ``start_iter`` (the paper: every step).
        phi: the logistic regression on the energy: ``"linear"`` (default; VOS's ``nn.Linear(1, 2)``),
            ``"monotone"`` (:class:`~vos_seg.loss.MonotoneEnergyLogistic`, outlier probability rising with the
            energy) or any module mapping ``(M, 1)`` to ``(M, 2)``.
        generator: optional generator on the model's device for pixel picks and sampling (default: global RNG).
        validate: check label values on every call (one host sync).

    Shape:
        logits: (N, K, H, W); target: (N, H, W) integer; returns a scalar.

    Raises:
        ValueError: bad hyperparameters, shapes or labels; a call without a preceding training forward.

    Example:
        >>> model = smp.Unet("resnet18", encoder_weights=None, classes=19)
        >>> vos = VOS(model, num_classes=19)
        >>> optimizer = torch.optim.AdamW([*model.parameters(), *vos.parameters()])
        >>> loss = vos(model(images), target); loss.backward(); optimizer.step()
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        *,
        head: nn.Conv2d | HeadAdapter | None = None,
        ignore_index: int = 255,
        alpha: float = 0.1,
        queue_size: int = 1000,
        pixels_per_class: int = 8,
        sample_from: int = 10000,
        select: int = 1,
        start_iter: int = 0,
        cov_eps: float = 1e-4,
        balanced: bool = True,
        refresh_every: int = 10,
        phi: nn.Module | str | None = None,
        generator: torch.Generator | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__()
        adapter = head if isinstance(head, HeadAdapter) else (HeadAdapter(head) if head is not None else None)
        adapter = adapter if adapter is not None else HeadAdapter.from_model(model)
        num_classes = _positive_int("num_classes", num_classes)
        if adapter.num_classes != num_classes:
            raise ValueError(f"num_classes={num_classes} but the head conv has {adapter.num_classes} output channels")
        self.num_classes = num_classes
        self.queue_size = _positive_int("queue_size", queue_size)
        self.pixels_per_class = _positive_int("pixels_per_class", pixels_per_class)
        if pixels_per_class > queue_size:
            raise ValueError(f"pixels_per_class={pixels_per_class} exceeds queue_size={queue_size}")
        self.sample_from = _positive_int("sample_from", sample_from)
        self.select = _positive_int("select", select)
        if select > sample_from:
            raise ValueError(f"select={select} exceeds sample_from={sample_from}")
        if isinstance(start_iter, bool) or not isinstance(start_iter, int) or start_iter < 0:
            raise ValueError(f"start_iter must be a non-negative integer, got {start_iter!r}")
        self.start_iter = start_iter
        self.refresh_every = _positive_int("refresh_every", refresh_every)
        if not cov_eps > 0:
            raise ValueError(f"cov_eps must be > 0, got {cov_eps!r}")
        self.cov_eps = float(cov_eps)
        self.generator = generator
        # Plain attributes (not submodules): the model's weights stay out of parameters() and state_dict().
        self.__dict__["model"] = model
        self.__dict__["adapter"] = adapter
        # Labels are checked here, before any state changes, and once: the loss itself does not re-check them.
        self.validate = validate
        self.loss = VOSSegLoss(num_classes, alpha, ignore_index, "mean", balanced, phi=phi, validate=False)
        # The weighted energy reads weights_energy.weight only; a bias that never gets a gradient would make a
        # DistributedDataParallel-wrapped plugin fail ("parameters that were not used in producing loss").
        self.loss.weights_energy.bias.requires_grad_(False)

        dim, weight = adapter.feature_dim, adapter.conv.weight
        factory = {"device": weight.device}
        self.register_buffer("queue", torch.zeros(num_classes, queue_size, dim, dtype=torch.float32, **factory))
        self.register_buffer("fill", torch.zeros(num_classes, dtype=torch.long, **factory))
        self.register_buffer("position", torch.zeros(num_classes, dtype=torch.long, **factory))
        self.register_buffer("step", torch.zeros((), dtype=torch.long, **factory))
        self.register_buffer("means", torch.zeros(num_classes, dim, dtype=torch.float32, **factory))
        eye = torch.eye(dim, dtype=torch.float32, **factory)
        self.register_buffer("scale_tril", eye * self.cov_eps**0.5)
        self.register_buffer("ready", torch.zeros(num_classes, dtype=torch.bool, **factory))
        self._host_step = 0  # mirror of `step`, so the schedule needs no host sync
        self._captured: torch.Tensor | None = None
        self._hook = adapter.conv.register_forward_hook(self._capture)
        self.register_load_state_dict_post_hook(_sync_host_step)

    @property
    def last_terms(self) -> dict[str, torch.Tensor]:
        """Detached figures of the last call: VOSSegLoss's terms plus ``num_ready_classes``."""
        return {**self.loss.last_terms, "num_ready_classes": self.ready.sum().float()}

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, feature_dim={self.adapter.feature_dim}, queue_size={self.queue_size}, "
            f"pixels_per_class={self.pixels_per_class}, sample_from={self.sample_from}, select={self.select}, "
            f"start_iter={self.start_iter}, refresh_every={self.refresh_every}, cov_eps={self.cov_eps}"
        )

    def remove(self) -> None:
        """Detach the forward hook from the head conv (the plugin stops seeing features)."""
        self._hook.remove()
        self._captured = None

    def _active(self) -> bool:
        return self.training and self.adapter.conv.training

    def _capture(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._captured = inputs[0] if self._active() else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Total loss of a batch; see the class docstring. ``logits`` must come from the hooked model's forward."""
        captured, self._captured = self._captured, None
        if logits.dim() != 4 or logits.shape[1] != self.num_classes:
            raise ValueError(f"expected logits of shape (N, {self.num_classes}, H, W), got {tuple(logits.shape)}")
        if tuple(target.shape) != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}: expected "
                f"{(logits.shape[0], *logits.shape[2:])}"
            )
        if self.validate:
            validate_target(target, self.num_classes, self.loss.ignore_index)
        if not self._active():
            return self.loss(logits, target)
        if captured is None:
            raise ValueError(
                "no head features captured: call vos(logits, target) right after logits = model(images), with the "
                "model and the plugin in train() mode"
            )
        if captured.shape[0] != logits.shape[0]:
            raise ValueError(
                f"the head saw a batch of {captured.shape[0]} (input {tuple(captured.shape)}) but logits have "
                f"shape {tuple(logits.shape)}: call vos() after each model() call"
            )
        self._check_generator(captured)

        step = self._host_step
        self._host_step += 1
        self.step.add_(1)
        with torch.no_grad(), torch.autocast(captured.device.type, enabled=False):
            # NaN and inf propagate to the min/max: one allocation-free pass instead of isfinite(logits).all()
            batch_finite = torch.isfinite(torch.stack(torch.aminmax(logits.detach()))).all()
            self._enqueue(captured.detach(), target, batch_finite)
            if step >= self.start_iter and (step - self.start_iter) % self.refresh_every == 0:
                self._refresh()
        if step < self.start_iter:
            return self.loss(logits, target)
        with torch.autocast(captured.device.type, enabled=False):
            samples = sample_outliers(
                self.means, None, self.sample_from, self.select, method="fast", generator=self.generator,
                scale_tril=self.scale_tril,
            )
        weight = self.adapter.conv.weight
        outlier_logits = self.adapter.logits(samples.reshape(-1, samples.shape[-1]).to(weight.dtype))
        outlier_mask = self.ready[:, None].expand(-1, self.select).reshape(-1)  # (K * select,)
        # Classes not yet full give fixed-size placeholder rows that the mask keeps out of every term.
        return self.loss(logits, target, outlier_logits=outlier_logits, outlier_mask=outlier_mask)

    def _check_generator(self, features: torch.Tensor) -> None:
        if self.generator is not None and self.generator.device != features.device:
            raise ValueError(
                f"the plugin's generator is on {self.generator.device} but the head features are on "
                f"{features.device}: pass a generator on the model's device"
            )

    def _enqueue(self, x: torch.Tensor, target: torch.Tensor, batch_finite: torch.Tensor) -> None:
        """Pick, (all-)gather and write this step's features into the ring buffers."""
        height, width = self.adapter.output_size(x)
        labels = target
        if tuple(target.shape[1:]) != (height, width):
            labels = F.interpolate(target[:, None].float(), size=(height, width), mode="nearest")[:, 0].long()
        index, valid = select_pixels_per_class(
            labels.reshape(-1), self.num_classes, self.pixels_per_class, generator=self.generator
        )
        features = _gather(self.adapter, x, index.reshape(-1), width).float()
        features = features.reshape(self.num_classes, self.pixels_per_class, -1)
        valid = valid & torch.isfinite(features).all(-1) & batch_finite
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            features, valid = all_gather_picks(features, valid)
            if features.shape[1] > self.queue_size:
                raise ValueError(
                    f"{features.shape[1]} features per class and step (pixels_per_class x world size) exceed "
                    f"queue_size={self.queue_size}"
                )
        ring_enqueue(self.queue, self.fill, self.position, features, valid)

    def _refresh(self) -> None:
        """Refit means and the tied covariance's Cholesky factor over the full queues."""
        full = self.fill >= self.queue_size
        means, cov = fit_tied_gaussian(self.queue, full, self.cov_eps)
        self.means.copy_(means)
        self.scale_tril.copy_(cholesky_with_jitter(cov, check=False))  # no host sync
        self.ready.copy_(full)


def _gather(adapter: HeadAdapter, x: torch.Tensor, index: torch.Tensor, width: int) -> torch.Tensor:
    """(M, D) features of flat pixel indices. A pointwise head reads x[n, :, i, j] directly: HeadAdapter's
    gather_features reshapes the permuted map first, copying all of it (about 20 ms per DeepLabV3Plus step)."""
    if not adapter.is_pointwise:
        return adapter.gather_features(x, index)
    rest = index.remainder(x.shape[2] * width)
    return x[index.div(x.shape[2] * width, rounding_mode="floor"), :, rest.div(width, rounding_mode="floor"),
             rest.remainder(width)]


def _sync_host_step(module: VOS, incompatible_keys) -> None:
    module._host_step = int(module.step)  # one host sync at load time, not in the step


def loss_from_state_dict(state: Mapping[str, torch.Tensor], num_classes: int) -> VOSSegLoss:
    """Rebuild the trained :class:`VOSSegLoss` (phi, energy weights) from a saved ``VOS.state_dict()``.

    For inference: weighted-energy and VOS-posterior scores need the loss's parameters, not the queues. Keys may
    carry a ``module.`` prefix (a DDP-wrapped plugin).

    Raises:
        ValueError: if the state holds no ``loss.`` keys, or they do not fit ``num_classes``.
    """
    prefixes = ("loss.", "module.loss.")
    loss_state = {
        key[len(prefix):]: value for key, value in state.items() for prefix in prefixes if key.startswith(prefix)
    }
    if not loss_state:
        raise ValueError(
            f"no 'loss.' keys in the plugin state (keys: {sorted(state)[:8]}...): expected a VOS.state_dict()"
        )
    phi = "monotone" if "phi.raw_slope" in loss_state else None
    loss = VOSSegLoss(num_classes, phi=phi)
    try:
        loss.load_state_dict(loss_state)
    except RuntimeError as error:
        raise ValueError(f"the plugin state's loss does not fit num_classes={num_classes}: {error}") from None
    return loss
