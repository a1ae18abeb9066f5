"""Listen & compare: four sets (maximised, minimised, real most / least vocal) with one shared gain."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import compute, display, state
from ui.am_view import flag_badges, flags_caption
from xai_core.actmax import AMResult
from xai_core.audio import wav_bytes_set, zip_bytes
from xai_core.viz import colour_range, mean_band_profile_figure, spectrogram_grid


def choose_sets(grid, am_results) -> dict[str, AMResult]:
    """Let the user pick the maximised and minimised example sets (grid cell or AM run)."""
    sources = []
    if grid is not None:
        sources.append(f"FID grid {grid.run_id}")
    if am_results:
        sources.append("last activation-maximisation run")
    if not sources:
        return {}
    src = st.radio("Examples from", sources, horizontal=True)
    if src.startswith("FID grid"):
        c = grid.config
        out = {}
        cols = st.columns(len(c.directions))
        for d, col in zip(c.directions, cols, strict=True):
            sel = grid.selected.get(d, {})
            with col:
                st.markdown(f"**{d}** configuration (default: selected by FID)")
                lr = st.selectbox("lr", c.lrs, index=c.lrs.index(sel["lr"]) if sel else 0, key=f"ls_lr_{d}")
                lam = st.selectbox("lambda", c.lams, index=c.lams.index(sel["lam"]) if sel else 0, key=f"ls_lam_{d}")
                it = st.selectbox("iterations", c.iters, index=c.iters.index(sel["n_iter"]) if sel else 0,
                                  key=f"ls_it_{d}")
            out[d] = grid.examples[(d, lr, lam, it)]
        return out
    return {r.config.direction: r for r in am_results}


def show_sets(sets: dict[str, AMResult], ld, n: int) -> None:
    """Spectrograms, p(vocal), players (one gain for all four sets), downloads and the band profile."""
    clf, ref = ld.classifier, ld.reference
    named: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags = {}  # generated set name -> its out-of-range flags
    for d, r in sets.items():
        name = f"{'maximised' if d == 'max' else 'minimised'} ({d})"
        named[name] = (r.logmel_best[:n].numpy(), r.prob_best[:n].numpy())
        flags[name] = compute.flags_for(r, clf, ref, state.DEVICE)
    any_cfg = next(iter(sets.values())).config
    if ref is not None:
        for d, label in (("max", "real, most vocal"), ("min", "real, least vocal")):
            idx = compute.top_real(clf.identity, compute.ref_key(ref), "logit", 0, d, n, state.DEVICE, clf, ref)
            p = compute.classify_excerpts(clf.identity, compute.ref_key(ref), tuple(int(i) for i in idx), clf, ref)
            named[label] = (ref.logmel[idx].numpy(), p)
    allx = np.concatenate([x for x, _ in named.values()])
    vmin, vmax = colour_range(allx)
    gl = int(st.select_slider("Griffin-Lim iterations for the audio", [32, 100], value=32,
                              help="32 for a quick listen; the paper uses 100."))
    wavs = wav_bytes_set(display.invert(allx, clf.mel.to_dict(), gl), sample_rate=clf.mel.sample_rate)
    cols = st.columns(len(named))
    k = 0
    for (name, (x, p)), col in zip(named.items(), cols, strict=True):
        with col:
            st.markdown(f"**{name}**  \nmean p(vocal) {p.mean():.2f}")
            display.show_figure(spectrogram_grid(x, [f"{i}: p {v:.2f}" for i, v in enumerate(p)], cfg=clf.mel,
                                                 ncols=1, vmin=vmin, vmax=vmax))
            if name in flags:
                f = flags[name]
                st.caption(f"in range: {int(f.in_range[:len(x)].sum())} of these {len(x)} "
                           f"({100 * f.share_in_range:.0f} % of all {len(f)} kept examples)"
                           + ("" if not f.unknown else "; ‖z‖ only: no reference set"))
                flag_badges(f, len(x), ncols=1)
            mine = wavs[k:k + len(x)]
            display.players(mine, [f"{i}: p {v:.2f}" for i, v in enumerate(p)], ncols=1,
                            key=name.split()[0] + str(len(name)), downloads=True)
            st.download_button("Whole set (zip)", zip_bytes({f"{name.split()[0]}_{i}.wav": w
                                                             for i, w in enumerate(mine)}),
                               file_name=f"{name.split(' (')[0].replace(' ', '_').replace(',', '')}.zip",
                               mime="application/zip", key=f"zip_{k}")
            k += len(x)
    for f in flags.values():
        st.caption(flags_caption(f))
    display.show_figure(mean_band_profile_figure({n_: x for n_, (x, _) in named.items()}, cfg=clf.mel,
                                                 title="What changed, by frequency: mean log-mel per band"),
                        width=display.BAND_PROFILE_PX)
    st.caption(f"Target: {any_cfg.layer}[{any_cfg.unit}]. All players share one gain; Griffin-Lim with {gl} iterations.")
