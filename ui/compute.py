"""Cached calls into ``xai_core`` for the pages (keyed on model identities and configs).

``st.cache_data`` keys: the leading hashable arguments; models are passed as ``_``-prefixed
arguments (not hashed) next to their identity string, so a cache entry belongs to exact weights.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from xai_core.actmax import AMConfig, AMResult, GridConfig, run_am, top_reference
from xai_core.actmax.flags import ExampleFlags, RealRange, reflag
from xai_core.actmax.objective import initial_codes
from xai_core.assets import ReferenceSet
from xai_core.checkpoints import Bundle
from xai_core.detect import Detection, detect_singing
from xai_core.errors import XaiError

PREVIEW_EXAMPLES = 4  # live preview: a few examples ...
PREVIEW_ITERS = 30  # ... and a few iterations


def preview_config(cfg: AMConfig) -> AMConfig:
    """The small configuration a changed slider runs at once."""
    return AMConfig(**{**cfg.to_dict(), "n_examples": min(cfg.n_examples, PREVIEW_EXAMPLES),
                       "n_iter": min(cfg.n_iter, PREVIEW_ITERS)})


@st.cache_data(max_entries=64, show_spinner=False)
def am_preview(clf_id: str, gen_id: str, cfg: AMConfig, device: str, _clf: Bundle, _gen: Bundle) -> AMResult:
    """run_am on the preview configuration, cached per (models, config)."""
    return run_am(_clf, _gen, preview_config(cfg), device=device)


@st.cache_data(max_entries=32, show_spinner=False)
def top_real(clf_id: str, ref_key: str, layer: str, unit: int, direction: str, n: int, device: str,
             _clf: Bundle, _ref: ReferenceSet) -> np.ndarray:
    """Indices of the ``n`` real excerpts with the highest (max) / lowest (min) response."""
    from xai_core.data.quality import DEFAULT_PER_CLIP
    from xai_core.errors import ParameterError

    n = min(n, len(_ref))
    try:  # at most DEFAULT_PER_CLIP of one clip, as the FID references; a set of few clips falls back to no cap
        idx = top_reference(_clf, _ref, layer=layer, unit=unit, direction=direction, n=n, device=device,
                            per_clip=DEFAULT_PER_CLIP)
    except ParameterError:
        idx = top_reference(_clf, _ref, layer=layer, unit=unit, direction=direction, n=n, device=device)
    return idx.numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def real_range(clf_id: str, ref_key_: str, layer: str, unit: int, device: str, _clf: Bundle,
               _ref: ReferenceSet) -> RealRange:
    """What every excerpt of the reference set produces at ``layer[unit]`` (response and loudness ranges)."""
    return RealRange.from_reference(_clf, _ref, layer=layer, unit=unit, device=device)


def range_for(cfg, clf: Bundle, ref: ReferenceSet | None, device: str) -> RealRange | None:
    """The real range of ``cfg``'s unit on the loaded reference set, or None (no usable reference set)."""
    if ref is None or ref.mel != clf.mel:
        return None
    try:
        return real_range(clf.identity, ref_key(ref), cfg.layer, cfg.unit, device, clf, ref)
    except XaiError:  # a unit the loaded classifier does not have (a run of another model)
        return None


def flags_for(res: AMResult, clf: Bundle, ref: ReferenceSet | None, device: str) -> ExampleFlags:
    """The result's out-of-range flags; when they have no real range (a preview, a run stored before flags or
    without a reference set), recomputed against the loaded reference set (``recomputed`` is then True)."""
    f = res.flags
    if f is not None and f.real_range is not None:
        return f
    rr = range_for(res.config, clf, ref, device)
    if rr is None:
        return f if f is not None else reflag(res, None)
    return reflag(res, rr)


def ref_key(ref: ReferenceSet) -> str:
    """A cheap identity of a reference set (size, first sources, a checksum of the data)."""
    return f"{len(ref)}:{ref.sources[:2]}:{float(ref.logmel[:, ::7, ::5].double().sum()):.6g}"


@torch.no_grad()
def _logits(clf: Bundle, logmel: torch.Tensor) -> torch.Tensor:
    dev = next(clf.model.parameters()).device
    return clf.model(clf.normaliser.apply(logmel.to(dev))).float().cpu()  # (N,)


@st.cache_data(max_entries=16, show_spinner="Sampling the generator…")
def generator_samples(clf_id: str, gen_id: str, n: int, seed: int, _clf: Bundle,
                      _gen: Bundle) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples G(z), z ~ N(0, I) from ``seed``: log-mel ``(n, T, M)`` and p(vocal) ``(n,)``."""
    z = initial_codes(seed, n, _gen.model.z_dim)  # (n, d)
    dev = next(_gen.model.parameters()).device
    with torch.no_grad():
        logmel = _gen.model(z.to(dev)).float().cpu()  # (n, T, M)
    return logmel.numpy(), torch.sigmoid(_logits(_clf, logmel)).numpy()


@st.cache_data(max_entries=8, show_spinner="Sampling the generator…")
def sample_range(clf_id: str, gen_id: str, ref_key_: str, n: int, _clf: Bundle, _gen: Bundle,
                 _ref: ReferenceSet) -> dict[str, np.ndarray]:
    """p(vocal) of ``n`` generator samples and of the reference set's real excerpts.

    Of the reference set only the excerpts drawn at random are used when it records how each was
    chosen (the demo's also holds the top and bottom responders, which would skew the comparison).
    """
    z = initial_codes(0, n, _gen.model.z_dim)  # (n, d)
    dev = next(_gen.model.parameters()).device
    with torch.no_grad():
        p_gen = torch.cat([torch.sigmoid(_logits(_clf, _gen.model(c.to(dev)).float())) for c in z.split(256)])
        sel = _ref.info.get("selection")
        idx = [i for i, s in enumerate(sel) if s == "random"] if sel and "random" in sel else list(range(len(_ref)))
        p_real = torch.sigmoid(_logits(_clf, _ref.logmel[idx]))
    return {"generated": p_gen.numpy(), "real": p_real.numpy()}


@st.cache_data(max_entries=16, show_spinner="Classifying…")
def classify_wave(clf_id: str, audio_key: str, _clf: Bundle, _wave: np.ndarray) -> Detection:
    """Frame-wise singing detection of a waveform at the classifier's rate (bundle's threshold and filter)."""
    return detect_singing(_clf, _wave)


@st.cache_data(max_entries=16, show_spinner=False)
def classify_excerpts(clf_id: str, ref_key_: str, idx: tuple[int, ...], _clf: Bundle,
                      _ref: ReferenceSet) -> np.ndarray:
    """p(vocal) of reference excerpts ``idx`` (whole 115-frame windows)."""
    return torch.sigmoid(_logits(_clf, _ref.logmel[list(idx)])).numpy()


@st.cache_data(max_entries=16, show_spinner="Timing a few steps of the engine for an estimate…")
def grid_seconds_estimate(clf_id: str, gen_id: str, grid: GridConfig, device: str, _clf: Bundle,
                          _gen: Bundle) -> float:
    """Estimated seconds for ``grid``: measured per-row-step time of the batched engine x row-steps.

    Times ``run_am`` on one chunk of rows for 1 and for 4 updates; the difference is the cost of 3
    updates (set-up and the final decoding cancel out), scaled to ``rows x max(iters)``, plus the
    measured set-up once per iteration snapshot and group (decoding the kept examples).
    """
    import time

    rows = len(grid.groups()) * grid.n_examples
    probe = min(rows, 64)
    times = []
    for n_iter in (1, 4):
        cfg = grid.am_config(grid.directions[0], grid.lrs[0], grid.lams[0], n_iter)
        cfg = AMConfig(**{**cfg.to_dict(), "n_examples": probe})
        t0 = time.perf_counter()
        run_am(_clf, _gen, cfg, device=device)
        times.append(time.perf_counter() - t0)
    per_row_step = max(times[1] - times[0], 1e-9) / (3 * probe)
    overhead_per_row = max(times[0] - per_row_step * probe, 0.0) / probe
    return per_row_step * rows * grid.n_iter + overhead_per_row * rows * len(grid.iters)
