"""Showing activation-maximisation results: spectrograms, p(vocal), ||z||, players, real top-N."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import compute, display
from xai_core.actmax import AMResult
from xai_core.assets import ReferenceSet
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle
from xai_core.viz import colour_range, spectrogram_grid


def show_result(res: AMResult, clf: Bundle, ref: ReferenceSet | None, *, key: str, gl_iters: int,
                max_shown: int = 8, device: str = "cpu") -> None:
    """One direction's kept examples beside the real excerpts with the most extreme response."""
    c = res.config
    n = min(max_shown, res.logmel_best.shape[0])
    x = res.logmel_best[:n].numpy()  # (n, T, M)
    p, zn, r = res.prob_best[:n].numpy(), res.z_norm_best[:n].numpy(), res.response_best[:n].numpy()
    st.markdown(f"**{'Maximised' if c.direction == 'max' else 'Minimised'}** {c.layer}[{c.unit}] · "
                f"lr {c.lr:g} · lambda {c.lam:g} ({c.prior}) · {c.n_iter} iterations · "
                f"{res.logmel_best.shape[0]} examples in {res.seconds:.1f} s on {res.device}")
    titles = [f"p {pi:.2f} · a {ri:.2f} · ‖z‖ {zi:.1f}" for pi, ri, zi in zip(p, r, zn, strict=True)]
    real = None
    if ref is not None:
        idx = compute.top_real(clf.identity, compute.ref_key(ref), c.layer, c.unit, c.direction, n, device,
                               clf, ref)
        real = ref.logmel[idx].numpy()
        real_p = compute.classify_excerpts(clf.identity, compute.ref_key(ref), tuple(int(i) for i in idx), clf, ref)
    left, right = st.columns(2)
    vmin, vmax = colour_range(x, real)
    with left:
        st.caption("Generated (kept best iterates)")
        display.show_figure(spectrogram_grid(x, titles, cfg=clf.mel, ncols=2, vmin=vmin, vmax=vmax))
    with right:
        if real is not None:
            st.caption(f"Real excerpts with the {'highest' if c.direction == 'max' else 'lowest'} response")
            display.show_figure(spectrogram_grid(
                real, [f"p {v:.2f} · {ref.sources[i]}" for v, i in zip(real_p, idx, strict=True)],
                cfg=clf.mel, ncols=2, vmin=vmin, vmax=vmax))
        else:
            st.caption("No reference set loaded: no real excerpts to compare with.")
    sets = [x] + ([real] if real is not None else [])
    waves = display.invert(np.concatenate(sets), clf.mel.to_dict(), gl_iters)
    wavs = wav_bytes_set(waves, sample_rate=clf.mel.sample_rate)
    st.caption(f"Players (one shared gain; Griffin-Lim with {gl_iters} iterations)")
    display.players(wavs[:n], [f"generated {i}: p {v:.2f}" for i, v in enumerate(p)], key=f"{key}_gen")
    if real is not None:
        display.players(wavs[n:], [f"real: p {v:.2f}" for v in real_p], key=f"{key}_real")

