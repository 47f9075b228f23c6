"""Virtual outlier synthesis: the fast sampler draws the published VOS distribution; fitting and factorising."""

import math

import numpy as np
import pytest
import torch

from vos_seg.synthesis import chi2_isf, cholesky_with_jitter, fit_tied_gaussian, sample_outliers

stats = pytest.importorskip("scipy.stats")


def _problem(num_classes: int, dim: int, seed: int = 0, dtype=torch.float64):
    """Distinct class means and a correlated, anisotropic tied covariance."""
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(num_classes, dim, generator=g, dtype=dtype)
    a = torch.randn(dim, dim, generator=g, dtype=dtype)
    cov = a @ a.T / dim + 0.5 * torch.eye(dim, dtype=dtype)
    return means, cov


def _whiten(samples, means, cov):
    """z = L^{-1} (x - mu): the standard-normal coordinates of each sample; (K, select, D)."""
    scale_tril = torch.linalg.cholesky(cov)
    centred = (samples - means[:, None, :]).transpose(1, 2)  # (K, D, select)
    return torch.linalg.solve_triangular(scale_tril, centred, upper=False).transpose(1, 2)


def _top_order_cdf(x, rank, sample_from, dim):
    """P(rank-th largest of `sample_from` chi2(dim) variables <= x) = P(fewer than `rank` of them exceed x)."""
    return stats.binom.cdf(rank - 1, sample_from, stats.chi2.sf(x, dim))


@pytest.mark.parametrize("df", [1, 2, 3, 7, 64, 256, 2048])
def test_chi2_isf_matches_scipy(df):
    q = np.concatenate([np.logspace(-250, -1, 200), np.linspace(0.1, 0.9, 17), 1 - np.logspace(-12, -1, 20)])
    ours = chi2_isf(torch.tensor(q, dtype=torch.float64), df).numpy()
    ref = stats.chi2.isf(q, df)
    rel = np.abs(ours - ref) / ref
    assert rel.max() < 1e-9, f"df={df}: max relative error {rel.max():.3g} at q={q[rel.argmax()]:.3g}"


def test_chi2_isf_keeps_dtype_and_rejects_bad_df():
    q = torch.tensor([1e-4, 0.5], dtype=torch.float32)
    out = chi2_isf(q, 10)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), stats.chi2.isf(q.double().numpy(), 10), rtol=1e-6)
    with pytest.raises(ValueError, match="df must be a positive integer, got 0"):
        chi2_isf(q, 0)


def test_fast_matches_reference_and_exact_law():
    # D=4, S=200, select=3; K classes act as independent replicates (each with its own mean).
    dim, sample_from, select = 4, 200, 3
    means, cov = _problem(1500, dim)
    reference = sample_outliers(means, cov, sample_from, select, method="reference",
                                generator=torch.Generator().manual_seed(1))
    fast_means, _ = _problem(20000, dim)
    fast = sample_outliers(fast_means, cov, sample_from, select, generator=torch.Generator().manual_seed(2))
    assert reference.shape == (1500, select, dim) and fast.shape == (20000, select, dim)
    z_ref, z_fast = _whiten(reference, means, cov), _whiten(fast, fast_means, cov)
    r2_ref, r2_fast = z_ref.square().sum(-1).numpy(), z_fast.square().sum(-1).numpy()
    # Least likely first: squared radii decrease along `select`, in both methods.
    assert (np.diff(r2_ref, axis=1) <= 1e-9).all() and (np.diff(r2_fast, axis=1) <= 1e-9).all()
    for j in range(select):
        rank = j + 1
        two_sample = stats.ks_2samp(r2_fast[:, j], r2_ref[:, j])
        assert two_sample.pvalue > 1e-3, f"rank {rank}: fast vs reference KS p={two_sample.pvalue:.3g}"
        for name, r2 in (("fast", r2_fast[:, j]), ("reference", r2_ref[:, j])):
            exact = stats.kstest(r2, lambda x: _top_order_cdf(x, rank, sample_from, dim))
            assert exact.pvalue > 1e-3, f"rank {rank}: {name} vs exact law KS p={exact.pvalue:.3g}"
        # Power: the law of the top of S/2 draws is told apart.
        wrong = stats.kstest(r2_fast[:, j], lambda x: _top_order_cdf(x, rank, sample_from // 2, dim))
        assert wrong.pvalue < 1e-6, f"rank {rank}: KS failed to reject a wrong law (p={wrong.pvalue:.3g})"
    # Directions: uniform on the sphere (mean 0, second moment I/D) and independent of the radius.
    for name, z, r2 in (("fast", z_fast, r2_fast), ("reference", z_ref, r2_ref)):
        u = (z / z.norm(dim=-1, keepdim=True)).reshape(-1, dim).numpy()
        n = u.shape[0]
        mean_tol = 5 * math.sqrt(1 / (dim * n))
        assert np.abs(u.mean(0)).max() < mean_tol, f"{name}: direction mean {u.mean(0)} (tol {mean_tol:.3g})"
        second = u.T @ u / n
        var_u2 = 3 / (dim * (dim + 2)) - 1 / dim**2
        second_tol = 5 * math.sqrt(var_u2 / n)
        err = np.abs(second - np.eye(dim) / dim).max()
        assert err < second_tol, f"{name}: E[uu^T] off I/D by {err:.3g} (tol {second_tol:.3g})"
        corr = np.corrcoef(r2.reshape(-1), u[:, 0] ** 2)[0, 1]
        assert abs(corr) < 5 / math.sqrt(n), f"{name}: radius/direction correlation {corr:.3g}"


def test_selected_samples_lie_in_the_tail():
    # K=19, D=16, S=10000, select=1: each class's least likely draw is beyond the 1% tail w.p. 1 - e^-100.
    means, cov = _problem(19, 16, dtype=torch.float32)
    threshold = stats.chi2.isf(1e-2, 16)
    for method in ("fast", "reference"):
        samples = sample_outliers(means, cov, 10000, 1, method=method, generator=torch.Generator().manual_seed(3))
        r2 = _whiten(samples.double(), means.double(), cov.double()).square().sum(-1)
        assert (r2 > threshold).all(), f"{method}: smallest selected r^2 {r2.min():.3g} <= {threshold:.3g}"


def test_shapes_dtypes_generator_and_global_rng():
    means, cov = _problem(5, 8, dtype=torch.float32)
    state = torch.random.get_rng_state()
    a = sample_outliers(means, cov, 100, 2, generator=torch.Generator().manual_seed(7))
    b = sample_outliers(means, None, 100, 2, generator=torch.Generator().manual_seed(7),
                        scale_tril=cholesky_with_jitter(cov))
    c = sample_outliers(means, cov, 100, 2, method="reference", generator=torch.Generator().manual_seed(7))
    d = sample_outliers(means, cov, 100, 2, method="reference", generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG was used"
    assert a.shape == c.shape == (5, 2, 8) and a.dtype == c.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    assert torch.isfinite(a).all()
    half = sample_outliers(means.bfloat16(), cov, 100, 1, generator=torch.Generator().manual_seed(7))
    assert half.dtype == torch.bfloat16


def test_sample_outliers_rejections():
    means, cov = _problem(3, 4, dtype=torch.float32)
    with pytest.raises(ValueError, match="sample_from >= select >= 1, got sample_from=5, select=6"):
        sample_outliers(means, cov, 5, 6)
    with pytest.raises(ValueError, match="sample_from >= select >= 1, got sample_from=5, select=0"):
        sample_outliers(means, cov, 5, 0)
    with pytest.raises(ValueError, match="`select` must be an int, got 1.5"):
        sample_outliers(means, cov, 5, 1.5)
    with pytest.raises(ValueError, match=r"`method` must be one of \('fast', 'reference'\), got 'slow'"):
        sample_outliers(means, cov, 5, 1, method="slow")
    with pytest.raises(ValueError, match=r"`means` must be a floating \(K, D\) tensor, got shape \(4,\)"):
        sample_outliers(means[0], cov, 5, 1)
    with pytest.raises(ValueError, match=r"`cov` must be \(4, 4\) for means \(3, 4\), got \(3, 3\)"):
        sample_outliers(means, cov[:3, :3], 5, 1)
    with pytest.raises(ValueError, match="exactly one of `cov` and `scale_tril`"):
        sample_outliers(means, cov, 5, 1, scale_tril=cov)
    with pytest.raises(ValueError, match="exactly one of `cov` and `scale_tril`"):
        sample_outliers(means, None, 5, 1)


def _numpy_tied_gaussian(features, valid, eps):
    f = features.astype(np.float64)
    means = f.mean(axis=1)
    centred = [f[k] - means[k] for k in range(len(f)) if valid[k]]
    x = np.concatenate(centred) if centred else np.zeros((1, f.shape[2]))
    cov = x.T @ x / max(sum(len(c) for c in centred), 1) + eps * np.eye(f.shape[2])
    return means, cov


@pytest.mark.parametrize("valid", [[True, True, True, True], [True, False, True, False], [False] * 4])
def test_fit_tied_gaussian_matches_numpy(valid, rng):
    features = rng.normal(size=(4, 50, 6)) * rng.uniform(0.5, 3, size=6) + rng.normal(size=(4, 1, 6)) * 5
    valid_t = torch.tensor(valid)
    means, cov = fit_tied_gaussian(torch.tensor(features), valid_t, 1e-4)
    ref_means, ref_cov = _numpy_tied_gaussian(features, valid, 1e-4)
    np.testing.assert_allclose(means.numpy(), ref_means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), ref_cov, rtol=1e-12, atol=1e-12)
    if not any(valid):
        np.testing.assert_allclose(cov.numpy(), 1e-4 * np.eye(6))


def test_fit_tied_gaussian_precision_with_large_offsets(rng):
    # Features of scale 1 sitting at 1e4: E[zz^T] - mu mu^T in float32 would lose every digit; centring does not.
    features = rng.normal(size=(3, 400, 5)) + 1e4
    ref_means, ref_cov = _numpy_tied_gaussian(features, [True] * 3, 1e-4)
    x32 = torch.tensor(features, dtype=torch.float32)
    for accumulate in (torch.float64, torch.float32):
        means, cov = fit_tied_gaussian(x32, torch.ones(3, dtype=torch.bool), 1e-4, accumulate_dtype=accumulate)
        assert means.dtype == cov.dtype == torch.float32
        err = np.abs(cov.double().numpy() - ref_cov).max()
        assert err < 2e-3, f"accumulate {accumulate}: max |cov error| {err:.3g}"
    _, cov64 = fit_tied_gaussian(x32, torch.ones(3, dtype=torch.bool), 1e-4, dtype=torch.float64)
    assert cov64.dtype == torch.float64


def test_fit_tied_gaussian_rejections():
    f = torch.zeros(3, 4, 2)
    with pytest.raises(ValueError, match=r"floating \(K, Q, D\) tensor, got shape \(4, 2\)"):
        fit_tied_gaussian(f[0], torch.ones(3, dtype=torch.bool), 1e-4)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(3,\), got shape \(2,\)"):
        fit_tied_gaussian(f, torch.ones(2, dtype=torch.bool), 1e-4)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(3,\), got shape \(3,\) torch.int64"):
        fit_tied_gaussian(f, torch.ones(3, dtype=torch.long), 1e-4)
    with pytest.raises(ValueError, match="`cov_eps` must be >= 0, got -1"):
        fit_tied_gaussian(f, torch.ones(3, dtype=torch.bool), -1)


MODES = [dict(check=True), dict(check=False, batched=False), dict(check=False, batched=True)]
MODE_IDS = ["checked", "sequential", "batched"]


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_cholesky_exact_for_positive_definite(mode):
    _, cov = _problem(1, 30)
    factor = cholesky_with_jitter(cov, **mode)
    torch.testing.assert_close(factor, torch.linalg.cholesky(cov), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_cholesky_jitter_rescues_a_rank_deficient_covariance(mode, generator):
    # VOS issue #7: a feature covariance from fewer samples than dimensions is not positive definite.
    x = torch.randn(40, 256, generator=generator) ** 2  # ReLU-like, rank 40 < 256
    cov = (x - x.mean(0)).T @ (x - x.mean(0)) / 40
    _, info = torch.linalg.cholesky_ex(cov)
    assert info.item() != 0, "the test matrix must fail a plain Cholesky"
    factor = cholesky_with_jitter(cov, compute_dtype=torch.float32, **mode)
    assert torch.isfinite(factor).all() and torch.equal(factor, factor.tril())
    # Sequential reference: the first level of the schedule at which a plain Cholesky succeeds.
    scale = cov.diagonal().mean()
    for level in (1e-6, 1e-4, 1e-2):
        expected, info = torch.linalg.cholesky_ex(cov + level * scale * torch.eye(256))
        if info.item() == 0:
            break
    assert info.item() == 0
    diff = (factor - expected).abs().max().item()
    assert diff < 1e-5, f"max |diff| to the sequential jitter loop {diff:.3g} (level {level:g})"
    rebuilt = factor.double() @ factor.double().T
    err = (rebuilt - cov.double() - level * scale.double() * torch.eye(256, dtype=torch.float64)).abs().max()
    assert err < 1e-4, f"L L^T != cov + jitter: max |error| {err:.3g}"


def test_cholesky_failure_modes():
    bad = torch.full((4, 4), float("nan"))
    assert torch.isnan(cholesky_with_jitter(bad, check=False)).all()
    assert torch.isnan(cholesky_with_jitter(bad, check=False, batched=True)).all()
    message = r"\(4, 4\) is not positive definite even with jitter 0.01 .*non-finite entries: 16"
    with pytest.raises(ValueError, match=message):
        cholesky_with_jitter(bad)
    with pytest.raises(ValueError, match="check=True needs the sequential mode"):
        cholesky_with_jitter(torch.eye(3), check=True, batched=True)
    with pytest.raises(ValueError, match=r"square \(D, D\) matrix, got shape \(3, 4\)"):
        cholesky_with_jitter(torch.zeros(3, 4))


@pytest.mark.cuda
def test_statistics_and_fast_sampling_do_not_sync_on_cuda():
    device = torch.device("cuda")
    g = torch.Generator(device=device).manual_seed(0)
    features = torch.randn(19, 200, 64, device=device, generator=g)
    valid = torch.arange(19, device=device) % 3 != 0
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        means, cov = fit_tied_gaussian(features, valid, 1e-4)
        scale_tril = cholesky_with_jitter(cov, check=False)
        samples = sample_outliers(means, None, 10000, 2, generator=g, scale_tril=scale_tril)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert samples.shape == (19, 2, 64) and samples.device.type == "cuda" and torch.isfinite(samples).all()
    # Same law as on the CPU: squared radii beyond the 1% tail of chi2(64) for S=10000.
    z = torch.linalg.solve_triangular(scale_tril, (samples - means[:, None]).transpose(1, 2), upper=False)
    assert (z.square().sum(1) > stats.chi2.isf(1e-2, 64)).all()
