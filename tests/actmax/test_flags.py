"""Out-of-range flags (actmax/flags.py): closed forms on hand-made ranges and results, per-cell shares of a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xai_core.actmax import AMConfig, GridConfig, run_am, run_grid
from xai_core.actmax.engine import AMResult, GridResult
from xai_core.actmax.flags import (
    DB_PER_LOG,
    ExampleFlags,
    RealRange,
    cell_shares,
    chi_tail,
    flag_examples,
    mean_level,
    reflag,
    z_bounds,
)
from xai_core.errors import ParameterError

# responses 0 .. 10, levels -1 .. 1: with margins 0.1 the limits are 11 / -1 (response), [-1.2, 1.2] (level)
RANGE = RealRange.from_values(np.linspace(0.0, 10.0, 11), np.linspace(-1.0, 1.0, 11), source="hand-made")


def _result(responses, norms, levels, *, direction="max", layer="logit", unit=0, T=3, M=2) -> AMResult:
    """An AMResult with given kept responses, ||z|| (z_dim 2: z = (r, 0)) and constant log-mel levels."""
    s = len(responses)
    z = torch.zeros(s, 2, dtype=torch.float64)
    z[:, 0] = torch.tensor(norms, dtype=torch.float64)
    resp = torch.tensor(responses, dtype=torch.float64)
    x = torch.tensor(levels, dtype=torch.float32)[:, None, None].expand(s, T, M).clone()
    zeros = torch.zeros(s)
    return AMResult(config=AMConfig(layer=layer, unit=unit, direction=direction, n_examples=s), z_best=z, z_last=z,
                    score_best=resp, score_last=resp, response_best=resp, response_last=resp, logit_best=resp,
                    prob_best=torch.sigmoid(resp), logmel_best=x, trace=resp[:, None], best_step=zeros.long(),
                    z_norm_best=z.norm(dim=1), seconds=0.0, device="cpu")


def test_chi_tail_closed_forms():
    r = np.array([0.01, 0.5, 1.0, 1.1774100225154747, 2.0, 4.0])
    # chi(2) is the Rayleigh distribution: F(r) = 1 - exp(-r^2 / 2)
    F = 1.0 - np.exp(-r ** 2 / 2)
    assert chi_tail(r, 2) == pytest.approx(2 * np.minimum(F, 1 - F), rel=1e-9)
    assert chi_tail([1.1774100225154747], 2)[0] == pytest.approx(1.0)  # the median: p = 1
    # chi(1) is the half-normal: F(r) = erf(r / sqrt 2)
    F1 = np.array([math.erf(v / math.sqrt(2)) for v in r])
    assert chi_tail(r, 1) == pytest.approx(2 * np.minimum(F1, 1 - F1), rel=1e-9)
    # far in the upper tail the survival function keeps precision (1 - cdf would be 0)
    assert 0 < chi_tail([30.0], 2)[0] == pytest.approx(2 * math.exp(-450), rel=1e-6)
    lo, hi = z_bounds(2, 1e-3)
    assert lo == pytest.approx(math.sqrt(-2 * math.log(1 - 5e-4))) and hi == pytest.approx(math.sqrt(-2 * math.log(5e-4)))
    lo, hi = z_bounds(128)
    assert 9.0 < lo < 9.1 and 13.6 < hi < 13.7  # the demo GAN's z_dim, the bounds quoted in flags.py
    for bad in (0, 1.5, True):
        with pytest.raises(ParameterError, match="z_dim"):
            chi_tail([1.0], bad)
    with pytest.raises(ParameterError, match="alpha"):
        z_bounds(2, 0.0)


def test_real_range_from_values_bounds_and_round_trip():
    assert (RANGE.response_min, RANGE.response_max, RANGE.level_min, RANGE.level_max) == (0.0, 10.0, -1.0, 1.0)
    assert RANGE.n == 11 and RANGE.response_quantiles[2] == pytest.approx(5.0)  # the median
    assert RANGE.response_bounds() == pytest.approx((-1.0, 11.0))
    assert RANGE.response_bounds(0.0) == (0.0, 10.0)
    assert RANGE.level_bounds() == pytest.approx((-1.2, 1.2))
    assert RealRange.from_dict(RANGE.to_dict()) == RANGE
    with pytest.raises(ParameterError, match="NaN"):
        RealRange.from_values([0.0, float("nan")], [0.0, 1.0])
    with pytest.raises(ParameterError, match="same excerpts"):
        RealRange.from_values([0.0, 1.0], [0.0])
    with pytest.raises(ParameterError, match="response_min <= response_max"):
        RealRange(layer="logit", unit=0, n=1, response_min=1.0, response_max=0.0, level_min=0.0, level_max=0.0)
    with pytest.raises(ParameterError, match="margin"):
        RANGE.response_bounds(-0.1)
    assert mean_level(torch.full((2, 3, 4), 0.5)) == pytest.approx([0.5, 0.5])


def test_flags_max_direction_closed_forms():
    # responses: inside, inside the margin, beyond it, the paper's worst case (60 vs a real max of 10)
    # norms (chi(2)): typical, typical, too long (p = 2 exp(-8) = 6.7e-4 < 1e-3), too short (p ~ 1e-4)
    # levels: inside, inside the margin, louder, quieter
    r = _result([5.0, 10.9, 11.1, 60.0], [1.0, 1.5, 4.0, 0.01], [0.0, 1.15, 1.25, -1.5])
    f = flag_examples(r, RANGE)
    assert f.z_dim == 2 and f.checked == ("response", "z", "level") and f.unknown == ()
    assert f.response_out.tolist() == [False, False, True, True]
    assert f.z_p[2] == pytest.approx(2 * math.exp(-8)) and f.z_out.tolist() == [False, False, True, True]
    assert f.level == pytest.approx([0.0, 1.15, 1.25, -1.5]) and f.level_out.tolist() == [False, False, True, True]
    assert f.in_range.tolist() == [True, True, False, False] and f.share_in_range == 0.5
    assert f.counts() == {"response": 2, "z": 2, "level": 2}
    assert f.fired(2) == ["response", "z", "level"] and f.fired(0) == []
    assert f.badge(0) == "in range"
    assert f.badge(3).startswith("response 6.0x the real maximum · ||z|| improbable (0.0;")
    assert f"louder than any real excerpt (+{0.25 * DB_PER_LOG:.1f} dB)" in f.badge(2)
    assert f"quieter than any real excerpt (−{0.5 * DB_PER_LOG:.1f} dB)" in f.badge(3)
    assert f.describe() == "in range: 2/4 (50 %); fired: response 2, ||z|| 2, loudness 2"
    s = f.summary()
    assert s["share_in_range"] == 0.5 and s["response_bounds"] == pytest.approx([-1.0, 11.0])
    assert s["z_bounds"] == pytest.approx(list(z_bounds(2)))
    # a wider margin lets 11.1 pass; a stricter alpha lets ||z|| = 4 pass
    f2 = flag_examples(r, RANGE, margin=0.2, alpha=1e-4)
    assert f2.response_out.tolist() == [False, False, False, True] and f2.z_out.tolist() == [False, False, False, True]


def test_flags_min_direction_only_too_low_fires():
    # for "min" a response above the real maximum is not the issue; below min - margin (-1) is
    r = _result([60.0, -0.5, -1.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], direction="min")
    f = flag_examples(r, RANGE)
    assert f.response_out.tolist() == [False, False, True]
    assert f.badge(2) == "response -1.5 below the real minimum 0"  # no ratio against a minimum of 0
    neg = RealRange.from_values([-8.0, 2.0], [0.0, 0.0])
    f = flag_examples(_result([-30.0], [1.0], [0.0], direction="min"), neg)
    assert f.badge(0) == "response 3.8x the real minimum"
    # a maximum below zero: no misleading ratio
    f = flag_examples(_result([5.0], [1.0], [0.0]), RealRange.from_values([-8.0, -2.0], [0.0, 0.0]))
    assert f.badge(0) == "response 5 above the real maximum -2"


def test_flags_without_range_and_non_finite():
    r = _result([5.0, float("nan")], [1.0, 4.0], [0.0, 0.0])
    f = flag_examples(r)
    assert f.response_out is None and f.level_out is None and f.real_range is None
    assert f.checked == ("z",) and f.unknown == ("response", "level")
    assert f.in_range.tolist() == [True, False] and f.badge(0) == "in range (||z|| only: no reference set)"
    assert "unknown (no real range): response, loudness" in f.describe()
    assert flag_examples(r, RANGE).response_out.tolist() == [False, True]  # NaN never passes
    with pytest.raises(ParameterError, match="fc2"):
        flag_examples(r, RealRange.from_values([0.0], [0.0], layer="fc2"))
    assert flag_examples(_result([5.0], [700.0], [0.0])).badge(0) == "||z|| improbable (700.0; p < 1e-300)"
    g = reflag(r, RANGE)
    assert g.recomputed and g.real_range == RANGE and not f.recomputed


def test_flags_serialise_round_trip():
    r = _result([5.0, 60.0], [1.0, 4.0], [0.0, 2.0])
    for rr in (RANGE, None):
        f = flag_examples(r, rr)
        back = ExampleFlags.from_stored(f.meta(), f.arrays(), response=f.response, z_norm=f.z_norm)
        assert back.real_range == rr and back.in_range.tolist() == f.in_range.tolist()
        assert back.badges() == f.badges() and back.summary() == f.summary()
    bad = dict(flag_examples(r, RANGE).arrays())
    del bad["level_out"]
    with pytest.raises(ParameterError, match="real range"):
        ExampleFlags.from_stored(flag_examples(r, RANGE).meta(), bad, response=f.response, z_norm=f.z_norm)


def test_cell_shares_layout():
    cfg = GridConfig(lrs=(0.1, 0.01), lams=(0.1, 0.01, 0.001), iters=(5, 10), directions=("max",), n_examples=2)
    examples = {}
    for n_iter in cfg.iters:
        for lr in cfg.lrs:
            for lam in cfg.lams:
                r = _result([60.0 if lr == 0.1 and n_iter == 10 else 5.0, 5.0 if lam != 0.001 else 60.0],
                            [1.0, 1.0], [0.0, 0.0])
                r.config = cfg.am_config("max", lr, lam, n_iter)
                r.flags = flag_examples(r, RANGE)
                examples[("max", lr, lam, n_iter)] = r
    grid = GridResult(config=cfg, fid={}, selected={}, examples=examples, reference={}, seconds=0.0, device="cpu")
    share = cell_shares(grid)["max"]  # (iters, lrs, lams)
    assert share.shape == (2, 2, 3)
    want = np.array([[[1, 1, .5], [1, 1, .5]], [[.5, .5, 0], [1, 1, .5]]])
    assert share == pytest.approx(want)
    del examples[("max", 0.01, 0.1, 5)]
    assert np.isnan(cell_shares(grid)["max"][0, 1, 0])


def test_run_am_attaches_flags(tiny_bundles):
    clf, gen, ref = tiny_bundles
    cfg = AMConfig(n_iter=2, n_examples=3)
    rr = RealRange.from_reference(clf, ref)
    assert rr.n == len(ref) and rr.source.startswith(f"{len(ref)} excerpts")
    with_range = run_am(clf, gen, cfg, device="cpu", real_range=rr)
    without = run_am(clf, gen, cfg, device="cpu")
    assert with_range.flags.real_range == rr and with_range.flags.checked == ("response", "z", "level")
    assert without.flags.checked == ("z",)
    assert with_range.flags.z_out.tolist() == without.flags.z_out.tolist()
    assert with_range.flags.level == pytest.approx(mean_level(with_range.logmel_best))
    assert "in_range_share" in with_range.summary() and "flags_unknown" in without.summary()


def test_grid_cells_carry_flags_and_shares(tiny_bundles):
    clf, gen, ref = tiny_bundles
    cfg = GridConfig(lrs=(0.5, 0.01), lams=(0.0, 0.1), iters=(2, 4), directions=("max", "min"), n_examples=4,
                     n_reference=4, feature_layers=("response",))
    grid = run_grid(clf, gen, cfg, reference=ref, device="cpu")
    assert grid.real_range == RealRange.from_reference(clf, ref)  # the whole set, not only its top / bottom N
    shares = cell_shares(grid)
    for (d, lr, lam, n_iter), r in grid.examples.items():
        assert r.flags.real_range == grid.real_range and r.flags.direction == d
        want = flag_examples(r, grid.real_range)
        assert r.flags.in_range.tolist() == want.in_range.tolist()
        i, j, k = cfg.iters.index(n_iter), cfg.lrs.index(lr), cfg.lams.index(lam)
        assert shares[d][i, j, k] == want.share_in_range
    # closed form on the same examples: a hand-made range whose loudness spans them all and whose response limit
    # (margin 0) is the median of the max cells' responses, so the share per cell is its count below the median
    resp = torch.cat([r.response_best for (d, *_), r in grid.examples.items() if d == "max"]).double()
    levels = np.concatenate([mean_level(r.logmel_best) for r in grid.examples.values()])
    med = float(resp.median())
    rr = RealRange.from_values([med - 1.0, med], [levels.min(), levels.max()])
    flags = {k: flag_examples(r, rr, margin=0.0, level_margin=0.0, alpha=1e-300) for k, r in grid.examples.items()}
    mine = cell_shares(grid, flags)["max"]
    for (d, lr, lam, n_iter), r in grid.examples.items():
        if d == "max":
            i, j, k = cfg.iters.index(n_iter), cfg.lrs.index(lr), cfg.lams.index(lam)
            assert mine[i, j, k] == pytest.approx(float((r.response_best.double() <= med).float().mean()))
