"""Fréchet distance between Gaussian fits of two feature sets (METHODS section 5).

Layered from pure to impure (pytorch-fid's habit): :func:`frechet_distance` works on statistics,
:func:`feature_statistics` makes them, :func:`fid_from_features` picks the exact fast route.
All numerics in float64 torch; results are real, finite and non-negative.

Covariances are the unbiased sample covariances (divisor ``n - 1``) throughout; in 1-D this gives
``(mu1 - mu2)^2 + (s1 - s2)^2`` with ``s`` the unbiased (``ddof=1``) standard deviation.
"""

from __future__ import annotations

import torch

from xai_core.errors import ParameterError

_F64 = torch.float64


def _as64(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=_F64)
    if not torch.isfinite(t).all():
        raise ParameterError(f"{name} contains non-finite values")
    return t


def _sqrt_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by ``eigh`` (negative rounding -> 0)."""
    w, v = torch.linalg.eigh((a + a.T) / 2)  # symmetrise: rounding may break exact symmetry
    return (v * w.clamp(min=0).sqrt()) @ v.T


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """``Tr (S1 S2)^(1/2)`` for symmetric PSD ``S1, S2`` (d x d), the symmetric eigen route.

    ``S1 S2`` is similar to ``S1^(1/2) S2 S1^(1/2)``, which is symmetric PSD, so its eigenvalues
    are real and non-negative: no complex numbers, no NaN for singular matrices.
    """
    r = _sqrt_psd(sigma1)
    m = r @ sigma2 @ r  # (d, d) symmetric PSD
    w = torch.linalg.eigvalsh((m + m.T) / 2)
    return w.clamp(min=0).sqrt().sum()


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2).

    Parameters
    ----------
    mu1, mu2 : array-like, shape ``(d,)``
    sigma1, sigma2 : array-like, shape ``(d, d)``, symmetric PSD (``(1, 1)`` or scalar for d = 1)

    Returns
    -------
    float, ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``, clipped at 0.
    """
    mu1, mu2 = _as64(mu1, "mu1").reshape(-1), _as64(mu2, "mu2").reshape(-1)
    d = mu1.numel()
    s1, s2 = _as64(sigma1, "sigma1").reshape(d, d), _as64(sigma2, "sigma2").reshape(d, d)
    if mu2.numel() != d:
        raise ParameterError(f"mean vectors differ in length: {d} vs {mu2.numel()}")
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    return float(value.clamp(min=0))


def feature_statistics(x) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (float64) of features ``(n, d)`` or ``(n,)``."""
    x = _as64(x, "features")
    if x.ndim == 1:
        x = x[:, None]  # (n, 1)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ParameterError(f"features must be (n >= 2, d), got shape {tuple(x.shape)}")
    mu = x.mean(0)  # (d,)
    xc = x - mu  # (n, d)
    return mu, xc.T @ xc / (x.shape[0] - 1)


def fid_from_features(x, y) -> float:
    """Fréchet distance between feature sets ``x (n1, d)`` and ``y (n2, d)`` (1-D input = d = 1).

    When a set has fewer samples than dimensions (``min(n1, n2) <= d``), uses the exact
    nuclear-norm form: ``Tr (S1 S2)^(1/2) = ||X1c X2c^T||_* / sqrt((n1-1)(n2-1))`` with centred
    feature matrices, an ``n1 x n2`` SVD instead of ``d x d`` square roots. Otherwise the
    symmetric eigen route of :func:`frechet_distance`.
    """
    x, y = _as64(x, "x"), _as64(y, "y")
    if x.ndim == 1:
        x = x[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ParameterError(f"feature sets must be (n1, d) and (n2, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    if n1 < 2 or n2 < 2:
        raise ParameterError(f"each feature set needs at least 2 samples, got {n1} and {n2}")
    if min(n1, n2) > d:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y))
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my  # (n1, d), (n2, d)
    tr1 = (xc * xc).sum() / (n1 - 1)
    tr2 = (yc * yc).sum() / (n2 - 1)
    nuc = torch.linalg.svdvals(xc @ yc.T).sum() / ((n1 - 1) * (n2 - 1)) ** 0.5  # (n1, n2) -> scalar
    diff = mx - my
    return float((diff @ diff + tr1 + tr2 - 2 * nuc).clamp(min=0))
