import numpy as np
import pytest
import scipy.linalg
import torch

from xai_core.errors import ParameterError
from xai_core.metrics import feature_statistics, fid_from_features, frechet_distance


def _scipy_fid(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False, ddof=1), np.cov(y, rowvar=False, ddof=1)
    covmean = scipy.linalg.sqrtm(np.atleast_2d(s1) @ np.atleast_2d(s2)).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(np.atleast_2d(s1) + np.atleast_2d(s2) - 2 * covmean))


def test_equal_covariances_give_squared_mean_distance():
    s = torch.tensor([[2.0, 0.3], [0.3, 1.0]])
    mu1, mu2 = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(4.0 + 2.25, rel=1e-10)


def test_one_dimensional_closed_form():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, generator=g) * 2 + 1, torch.randn(30, generator=g) * 0.5 - 3
    expected = float((x.double().mean() - y.double().mean()) ** 2 + (x.double().std() - y.double().std()) ** 2)
    assert fid_from_features(x, y) == pytest.approx(expected, rel=1e-10)
    assert fid_from_features(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n, d", [(50, 1), (50, 8), (20, 64), (60, 30)])
def test_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=d)
    y = rng.normal(size=(n + 3, d)) + 0.3
    assert fid_from_features(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(_scipy_fid(x, y), rel=1e-6)


def test_nuclear_route_equals_eigen_route():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(10, 40, generator=g, dtype=torch.float64), torch.randn(12, 40, generator=g, dtype=torch.float64)
    exact = fid_from_features(x, y)  # n < d: nuclear norm
    eig = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    # the eigen route loses ~1e-8 here: sqrt of the rounding noise in the zero eigenvalues
    assert exact == pytest.approx(eig, rel=1e-6)


def test_identical_and_rank_deficient_sets():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 100, generator=g)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    low = torch.randn(30, 2, generator=g) @ torch.randn(2, 16, generator=g)  # rank 2 in 16-D, n > d
    v = fid_from_features(low, low + 0.1)
    assert np.isfinite(v) and v >= 0 and v == pytest.approx(16 * 0.01, rel=1e-4)  # float32 input
    const = torch.ones(10, 5)
    assert fid_from_features(const, const) == 0.0
    mu, s = feature_statistics(low)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_rejects_bad_input():
    with pytest.raises(ParameterError):
        fid_from_features(torch.ones(1, 3), torch.ones(5, 3))
    with pytest.raises(ParameterError):
        fid_from_features(torch.ones(4, 3), torch.ones(5, 2))
    with pytest.raises(ParameterError, match="non-finite"):
        fid_from_features(torch.tensor([1.0, float("nan")]), torch.ones(3))
