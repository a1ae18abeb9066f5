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



SANITY_JOB = "am-sanity"


def sanity_section(clf: Bundle, gen: Bundle, ref: ReferenceSet | None, cfgs) -> None:
    """The randomisation check of AM (Adebayo et al. 2018): one click runs the current settings on cascadingly
    randomised copies of the classifier in the background; the latest result is shown against depth."""
    from dataclasses import replace

    import pandas as pd

    from ui import jobs, state
    from xai_core.explain.sanity import am_randomisation_check
    from xai_core.explain.sanity.viz import sanity_figure

    st.caption("The same settings and seeds on copies of the classifier re-initialised from the top (logit, fc2, "
               "… conv1): do the kept examples, and what AM changed in the GAN's starting sample, depend on the "
               "model? Each copy runs the whole optimisation: 8 runs in all (about 8 s at 4 examples x 30 "
               "iterations on 2 CPU cores, 35 s at 8 x 100).")
    c1, c2, c3 = st.columns(3)
    n = int(c1.number_input("Examples per model", 1, 64, 4, key="am_san_n",
                               help="Kept examples per copy of the classifier"))
    iters = int(c2.number_input("Iterations per model", 1, 5000, min(cfgs[0].n_iter, 30), key="am_san_iters",
                                help="AM iterations on each copy of the classifier"))
    mgr = state.job_manager()
    if c3.button("Run the check in the background", key="am_san_run", disabled=bool(mgr.active(SANITY_JOB))):
        run_cfgs = [replace(c, n_examples=n, n_iter=iters) for c in cfgs]

        def target(progress):
            out = []
            for k, cfg in enumerate(run_cfgs):
                def prog(d, t, i, _k=k):
                    return progress(_k * t + d, len(run_cfgs) * t, i)
                out.append(am_randomisation_check(clf, gen, cfg, reference=ref, device=state.DEVICE, progress=prog,
                                                  n_reference=min(50, len(ref)) if ref is not None else 50).to_dict())
            return out

        mgr.submit(SANITY_JOB, target, label=f"AM randomisation check ({', '.join(c.direction for c in run_cfgs)}, "
                   f"{n} x {iters})")
        st.rerun()
    jobs.job_panel(SANITY_JOB, seen_key="am_san_seen", cancel_key="am_san_cancel", cancel_label="Cancel the check",
                   text=lambda j: f"{j.label}: {j.fraction:.0%} · {j.info.get('stage', '')}",
                   what="The last randomisation check")
    last = mgr.latest(SANITY_JOB)
    if last is None or last.state != "done" or not last.result:
        return
    st.caption(f"Latest check: {last.label}.")
    for d in last.result:
        c = d["config"]
        st.plotly_chart(sanity_figure(d["stages"], {"kept examples": d["correlation"],
                                                    "AM's changes (x − G(z0))": d["change_correlation"]},
                                      fail_above=d["fail_above"], y_title="Spearman ρ with the trained model's",
                                      title=f"{c['direction']}: kept examples vs the randomised models'"),
                        width="stretch", key=f"am_san_fig_{c['direction']}")
        msg = (f"{c['direction']}: the kept examples {'change' if d['passes'] else 'hardly change'} once every "
               f"layer is random; AM's changes {'do' if d['changes_pass'] else 'do not'}.")
        (st.success if d["passes"] and d["changes_pass"] else st.warning)(msg)
        table = {"randomised down to": [s.split("..")[-1] for s in d["stages"]], "ρ examples": d["correlation"],
                 "ρ changes": d["change_correlation"], "level difference (dB)": d["level_db"],
                 "trained classifier's response": d["response"]}
        if d["fid"]:
            table[f"FID ({d['fid_feature']})"] = d["fid"]
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
        st.caption(f"The trained model's own examples: response {d['response_trained']:.2f}"
                   + (f", FID {d['fid_trained']:.2f}" if d["fid_trained"] is not None else "") + ".")
