"""Virtual outlier synthesis: class-conditional Gaussians with a tied covariance, sampled in their tails.

VOS (Du et al., ICLR 2022, https://arxiv.org/abs/2202.01197; original code github.com/deeplearning-wisc/vos)
models the classifier's input features as :math:`z \\mid y=k \\sim \\mathcal{N}(\\mu_k, \\Sigma)` and, per class,
draws ``sample_from`` points and keeps the ``select`` of lowest likelihood as virtual outliers.

The fast sampler draws exactly that distribution without the ``sample_from`` draws. With
:math:`\\Sigma = L L^T` and :math:`x = \\mu_k + L z`, :math:`z \\sim \\mathcal{N}(0, I_D)`, the likelihood is a
decreasing function of :math:`r^2 = |z|^2 \\sim \\chi^2_D` alone, and the direction :math:`z/|z|` is uniform on the
sphere and independent of :math:`r`. The ``select`` least likely of S draws therefore have the ``select`` largest
of S chi-square radii and independent uniform directions. Writing those radii as chi-square quantiles of the top
uniform order statistics, the Renyi representation gives their upper tails in closed form:

.. math::

    1 - U_{(S-j+1)} = 1 - \\exp\\Big(-\\sum_{i=1}^{j} \\frac{E_i}{S - i + 1}\\Big), \\qquad E_i \\sim \\mathrm{Exp}(1),

computed with ``expm1`` so that tails from 1e-4 down to 1e-250 keep full precision, and :math:`r_j^2` is the chi-square
upper quantile of that tail (Newton steps on ``torch.special.gammaincc``, on the device, no host sync).
"""

from __future__ import annotations

import math

import torch

__all__ = ["sample_outliers", "fit_tied_gaussian", "cholesky_with_jitter", "chi2_isf"]

_METHODS = ("fast", "reference")
_NEWTON_STEPS = 12
_MIN_TAIL = 1e-250  # below it gammaincc underflows during the iteration; reached w.p. ~1e-246


def chi2_isf(q: torch.Tensor, df: int) -> torch.Tensor:
    """Chi-square inverse survival function: x with P(chi2_df > x) = q, elementwise, on q's device, no host sync.

    Newton steps in (log x, log tail) coordinates from a Wilson-Hilferty start, solving the upper tail
    ``gammaincc`` for q < 1/2 and the lower tail ``gammainc`` (with p = 1 - q, exact there) otherwise, so that
    neither tail cancels. Computed in float64 (returned in q's dtype); relative error below 1e-9 (typically
    1e-12) against ``scipy.stats.chi2.isf`` for q in [1e-250, 1 - 1e-12] and df up to 4096 (tails are clamped
    to >= 1e-250, where ``gammaincc`` would underflow).

    Args:
        q: upper-tail probabilities in (0, 1).
        df: degrees of freedom (D), a positive integer.

    Shape:
        q: any shape; returns the same shape.
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    q64 = q.to(torch.float64)
    a = df / 2.0
    upper = q64 < 0.5
    target = torch.where(upper, q64, 1.0 - q64).clamp_min(_MIN_TAIL).log()  # log of the smaller tail
    # Wilson-Hilferty start: chi2_df ~ df * (1 - 2/(9 df) + Z sqrt(2/(9 df)))^3.
    z = torch.where(upper, -torch.special.ndtri(q64), torch.special.ndtri(1.0 - q64))
    c = 2.0 / (9.0 * df)
    base = 1.0 - c + z * math.sqrt(c)
    wilson = 0.5 * df * base.clamp_min(1e-3) ** 3
    # For small df deep in the lower tail, P(a, y) ~ y^a / Gamma(a + 1).
    small = torch.exp((target + math.lgamma(a + 1.0)) / a)
    y = torch.where(upper | (base > 0.3), wilson, small)
    log_y = y.clamp_min(1e-300).log()
    lgamma_a = math.lgamma(a)
    a_t = torch.full_like(q64, a)
    sign = torch.where(upper, -1.0, 1.0).to(q64)
    for _ in range(_NEWTON_STEPS):
        y = log_y.exp()
        tail = torch.where(upper, torch.special.gammaincc(a_t, y), torch.special.gammainc(a_t, y))
        log_tail = tail.clamp_min(1e-308).log()
        # d log(tail) / d log(y) = -+ y * pdf(y) / tail, with pdf the Gamma(a, 1) density.
        inverse_slope = sign * torch.exp(log_tail - a * log_y + y + lgamma_a)
        step = ((log_tail - target) * inverse_slope).clamp(-1.0, 1.0)
        # An underflowed upper tail only says "y is too large": shrink y by a fixed factor instead.
        step = torch.where(upper & (tail < 1e-300), 0.2, step)
        log_y = log_y - step.nan_to_num(nan=0.0)
    return (2.0 * log_y.exp()).to(q.dtype)


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{name}` must be an int, got {value!r}")
    return value


def sample_outliers(
    means: torch.Tensor,
    cov: torch.Tensor | None,
    sample_from: int,
    select: int,
    *,
    method: str = "fast",
    generator: torch.Generator | None = None,
    scale_tril: torch.Tensor | None = None,
) -> torch.Tensor:
    """Virtual outliers: per class, the ``select`` least likely of ``sample_from`` draws of N(mu_k, cov).

    ``method="reference"`` is the published VOS procedure (a Python loop over classes: ``MultivariateNormal``
    with the tied covariance, ``sample_from`` draws, ``topk`` of the negative log-likelihood), O(K * S * D) memory
    and time. ``method="fast"`` draws from the same distribution in O(K * select * D): squared Mahalanobis radii
    from the closed-form top order statistics of S chi-square(D) variables (see the module docstring) and
    independent uniform directions; no Python loop over classes and no host sync (given ``scale_tril``).
    Both return the samples least likely first.

    Args:
        means: class means mu_k.
        cov: tied covariance; or None when ``scale_tril`` is given. With ``method="fast"`` it is factorised by
            ``cholesky_with_jitter(cov)`` (check=True: a host sync per jitter level tried); pass ``scale_tril``
            to amortise the factorisation and stay sync-free.
        sample_from: S, draws per class (VOS: 10000).
        select: how many of the least likely draws to keep per class (VOS: 1).
        method: ``"fast"`` or ``"reference"``.
        generator: optional torch.Generator on means' device, for reproducible draws; the global RNG otherwise.
        scale_tril: lower-triangular L with cov = L L^T, instead of ``cov``.

    Shape:
        means: (K, D), cov / scale_tril: (D, D) -> (K, select, D), on means' device and in means' dtype.

    Raises:
        ValueError: on a wrong shape, both or neither of ``cov`` / ``scale_tril``, ``sample_from < select``,
            ``select < 1`` or an unknown ``method``.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}")
    sample_from, select = _check_size("sample_from", sample_from), _check_size("select", select)
    if not 1 <= select <= sample_from:
        raise ValueError(f"need sample_from >= select >= 1, got sample_from={sample_from}, select={select}")
    if means.ndim != 2 or not means.is_floating_point():
        raise ValueError(f"`means` must be a floating (K, D) tensor, got shape {tuple(means.shape)} {means.dtype}")
    if (cov is None) == (scale_tril is None):
        raise ValueError("pass exactly one of `cov` and `scale_tril`")
    num_classes, dim = means.shape
    matrix_name, matrix = ("cov", cov) if cov is not None else ("scale_tril", scale_tril)
    if matrix.shape != (dim, dim):
        raise ValueError(f"`{matrix_name}` must be ({dim}, {dim}) for means {tuple(means.shape)}, "
                         f"got {tuple(matrix.shape)}")
    work = torch.promote_types(means.dtype, torch.float32)
    if method == "reference":
        return _sample_reference(means.to(work), cov, scale_tril, sample_from, select, generator).to(means.dtype)
    if scale_tril is None:
        scale_tril = cholesky_with_jitter(cov)
    scale_tril = scale_tril.to(work)
    # Squared radii of the `select` least likely draws: chi-square quantiles of the top uniform order statistics.
    spacings = torch.empty(num_classes, select, dtype=torch.float64, device=means.device)
    spacings.exponential_(generator=generator)
    spacings = spacings / torch.arange(sample_from, sample_from - select, -1, device=means.device)
    upper_tail = -torch.expm1(-spacings.cumsum(dim=1))  # 1 - U_(S-j+1), no cancellation for tiny tails
    radius = chi2_isf(upper_tail, dim).sqrt().to(work)
    direction = torch.randn(num_classes, select, dim, dtype=work, device=means.device, generator=generator)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    z = direction * radius[..., None]
    return (means.to(work)[:, None, :] + z @ scale_tril.T).to(means.dtype)


def _sample_reference(means, cov, scale_tril, sample_from, select, generator) -> torch.Tensor:
    """The published loop (github.com/deeplearning-wisc/vos, ``classification/CIFAR/train_virtual.py``)."""
    outliers = []
    for mean in means:
        if cov is not None:
            dist = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov.to(means.dtype))
        else:
            dist = torch.distributions.MultivariateNormal(mean, scale_tril=scale_tril.to(means.dtype))
        # dist.rsample((S,)) is loc + L eps with eps ~ N(0, I); drawn here with `generator` for reproducibility.
        eps = torch.randn(sample_from, means.shape[1], dtype=means.dtype, device=means.device, generator=generator)
        draws = mean + eps @ dist.scale_tril.T
        log_prob = dist.log_prob(draws)
        _, index = torch.topk(-log_prob, select)
        outliers.append(draws[index])
    return torch.stack(outliers)


def fit_tied_gaussian(
    features: torch.Tensor,
    valid_classes: torch.Tensor,
    cov_eps: float,
    *,
    accumulate_dtype: torch.dtype = torch.float64,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and the tied covariance over the valid classes' features, as in VOS.

    .. math::

        \\mu_k = \\frac{1}{Q} \\sum_i z_{k,i}, \\qquad
        \\Sigma = \\frac{1}{N} \\sum_{k\\ \\mathrm{valid}} \\sum_i (z_{k,i} - \\mu_k)(z_{k,i} - \\mu_k)^T
        + \\epsilon I, \\qquad N = Q \\cdot \\#\\{k\\ \\mathrm{valid}\\}

    Features are centred per class before the product (no E[zz^T] - mu mu^T cancellation) and accumulated in
    ``accumulate_dtype`` (float64 by default; float32 with the centring is accurate to ~1e-6 and much faster on
    GPUs with slow float64). Invalid classes are masked out, not indexed away: no host sync, fixed shapes. With
    no valid class the covariance is ``cov_eps * I``.

    Args:
        features: per-class feature queues (e.g. the plugin's ring buffers).
        valid_classes: which classes take part in the covariance (e.g. full queues).
        cov_eps: the ridge added to the diagonal (VOS: 1e-4), >= 0.
        accumulate_dtype: precision of the accumulation.
        dtype: dtype of the returned tensors (default: features' dtype).

    Shape:
        features: (K, Q, D), valid_classes: (K,) bool -> means (K, D) (every class's mean, valid or not; rows of
        invalid classes are the plain mean of whatever their queue holds), cov (D, D).

    Raises:
        ValueError: on wrong shapes or dtypes, or a negative ``cov_eps``.
    """
    if features.ndim != 3 or not features.is_floating_point():
        raise ValueError(f"`features` must be a floating (K, Q, D) tensor, got shape {tuple(features.shape)} "
                         f"{features.dtype}")
    if valid_classes.shape != features.shape[:1] or valid_classes.dtype != torch.bool:
        raise ValueError(f"`valid_classes` must be a bool tensor of shape ({features.shape[0]},), got shape "
                         f"{tuple(valid_classes.shape)} {valid_classes.dtype}")
    if not cov_eps >= 0:
        raise ValueError(f"`cov_eps` must be >= 0, got {cov_eps}")
    num_classes, per_class, dim = features.shape
    out_dtype = dtype or features.dtype
    z = features.to(accumulate_dtype)
    means = z.mean(dim=1)
    centred = (z - means[:, None, :]) * valid_classes.to(accumulate_dtype)[:, None, None]
    centred = centred.reshape(num_classes * per_class, dim)
    count = (valid_classes.sum() * per_class).clamp_min(1).to(accumulate_dtype)
    cov = centred.T @ centred / count
    cov = cov + cov_eps * torch.eye(dim, dtype=accumulate_dtype, device=features.device)
    return means.to(out_dtype), cov.to(out_dtype)


def cholesky_with_jitter(
    cov: torch.Tensor,
    *,
    jitters: tuple[float, ...] = (0.0, 1e-6, 1e-4, 1e-2),
    check: bool = True,
    compute_dtype: torch.dtype = torch.float64,
    batched: bool | None = None,
) -> torch.Tensor:
    """Lower Cholesky factor of ``cov + j * mean(diag(cov)) * I`` for the smallest jitter j that works.

    VOS's published code fails on some covariances (deeplearning-wisc/vos issue #7: a 2048-d covariance "not
    positive definite"); here the jitter is raised until ``torch.linalg.cholesky_ex`` succeeds, in one of two
    ways:

    - sequential: one level after the other, reading ``info`` on the host after each (one factorisation and one
      sync when the matrix is positive definite). Used when ``check=True`` and, by default, on the CPU, where
      reading ``info`` costs nothing.
    - batched (default on accelerators with ``check=False``, the training hot path): all levels in one batched
      call, the first success picked on the device: no host sync, at the cost of ``len(jitters)``
      factorisations.

    With ``check=False`` a total failure returns a factor of NaNs (samples and loss become NaN, which AMP's
    scaler skips); with ``check=True`` it raises.
    Jitters are relative to the mean variance, so they do not depend on the features' scale.

    Args:
        cov: symmetric covariance.
        jitters: increasing relative jitter levels to try, starting with 0.
        check: raise ValueError if every level fails (host syncs; implies the sequential mode).
        compute_dtype: precision of the factorisation (float64 default); the factor is returned in cov's dtype.
        batched: force the batched (True) or sequential (False) mode; default: batched only for ``check=False``
            on a non-CPU device.

    Shape:
        cov: (D, D) -> (D, D) lower triangular.

    Raises:
        ValueError: on a non-square ``cov``, empty ``jitters``, ``check=True`` with ``batched=True``, or (with
            ``check=True``) when even the largest jitter leaves the matrix not positive definite (e.g. NaN).
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"`cov` must be a square (D, D) matrix, got shape {tuple(cov.shape)}")
    if len(jitters) == 0:
        raise ValueError("`jitters` must list at least one level")
    if check and batched:
        raise ValueError("check=True needs the sequential mode: pass batched=False or None")
    dim = cov.shape[0]
    matrix = cov.to(compute_dtype)
    scale = matrix.diagonal().mean().abs().clamp_min(torch.finfo(compute_dtype).tiny)
    eye = torch.eye(dim, dtype=compute_dtype, device=cov.device)
    if batched is None:
        batched = not check and cov.device.type != "cpu"
    if not batched:
        for level in jitters:
            factor, info = torch.linalg.cholesky_ex(matrix + (level * scale) * eye)
            if int(info) == 0:  # host sync
                return factor.to(cov.dtype)
        if not check:
            return torch.full_like(cov, float("nan"))
        raise ValueError(
            f"covariance of shape ({dim}, {dim}) is not positive definite even with jitter "
            f"{jitters[-1]:g} x mean variance (non-finite entries: {int((~torch.isfinite(cov)).sum())})"
        )
    # Built from Python floats on the device: a host-to-device copy of the jitter list would synchronise.
    factors, info = torch.linalg.cholesky_ex(torch.stack([matrix + (level * scale) * eye for level in jitters]))
    ok = info == 0
    first = torch.argmax(ok.to(torch.int32)).reshape(1)  # first success (0 when none: masked to NaN below)
    factor = factors.index_select(0, first)[0]  # index_select, not factors[first]: no .item() on the device
    factor = torch.where(ok.any(), factor, torch.full_like(factor, float("nan")))
    return factor.to(cov.dtype)
