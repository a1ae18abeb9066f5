"""Showing activation-maximisation results: spectrograms, p(vocal), ||z||, out-of-range badges, traces with the
real range shaded, players, real top-N."""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import compute, display
from xai_core.actmax import AMResult
from xai_core.actmax.flags import DB_PER_LOG, RESPONSE_MARGIN, ExampleFlags, RealRange, z_bounds
from xai_core.assets import ReferenceSet
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle
from xai_core.viz import add_range_band, colour_range, score_trace_figure, spectrogram_grid


def _ui_text(text: str) -> str:
    return text.replace("||z||", "‖z‖")


def flags_caption(flags: ExampleFlags) -> str:
    """One line: the share in range, what fired, against which range and rule."""
    lo, hi = z_bounds(flags.z_dim, flags.alpha)
    text = f"Out-of-range flags: {_ui_text(flags.describe())}. ‖z‖ fires outside [{lo:.1f}, {hi:.1f}] " \
           f"(chi, {flags.z_dim} degrees of freedom, two-sided p < {flags.alpha:g})"
    rr = flags.real_range
    if rr is not None:
        rlo, rhi = rr.response_bounds(flags.margin)
        llo, lhi = rr.level_bounds(flags.level_margin)
        side = f"above {rhi:.3g}" if flags.direction == "max" else f"below {rlo:.3g}"
        text += (f"; the response fires {side} (real range [{rr.response_min:.3g}, {rr.response_max:.3g}] widened "
                 f"by {flags.margin:g} of its span) and the loudness outside the real mean log-mel level "
                 f"[{rr.level_min:.2f}, {rr.level_max:.2f}] widened by {flags.level_margin:g} of its span "
                 f"({(lhi - rr.level_max) * DB_PER_LOG:.1f} dB each side), measured on "
                 f"{rr.source or f'{rr.n} real excerpts'}")
        if flags.recomputed:
            text += " (computed now against the loaded classifier and reference set)"
    else:
        text += "; response and loudness unknown: no reference set"
    return text + "."


def flag_badges(flags: ExampleFlags, n: int, *, ncols: int = 4) -> None:
    """A badge per kept example: "in range" (green) or what fired (red)."""
    cols = st.columns(max(1, min(ncols, n)))
    for i in range(n):
        cols[i % len(cols)].badge(f"{i}: {_ui_text(flags.badge(i))}",
                                  color="green" if flags.in_range[i] else "red")


def trace_figure(traces, *, real_range: RealRange | None = None, direction: str = "max",
                 margin: float = RESPONSE_MARGIN, **kw):
    """Response per step, one line per example (no running best: the kept iterate is marked, one legend entry),
    the real excerpts' response range shaded and the response flag's limit dotted when a real range is given."""
    fig = score_trace_figure(traces, running_best=False, xlabel="Adam step", ylabel="response", **kw)
    fig.update_traces(showlegend=False, selector=dict(mode="lines"))
    if real_range is not None:
        lo, hi = real_range.response_bounds(margin)
        add_range_band(fig, real_range.response_min, real_range.response_max,
                       label=f"real excerpts ({real_range.n})", limit=hi if direction == "max" else lo,
                       limit_label="flagged beyond")
    return fig.update_layout(height=300, margin=dict(l=40, r=10, t=40, b=40))


def trace_chart(res: AMResult, flags: ExampleFlags | None, *, key: str, title: str) -> None:
    """The response trace of every example of ``res`` with its kept iterate and the real range."""
    kw = {} if flags is None else {"real_range": flags.real_range, "direction": flags.direction,
                                   "margin": flags.margin}
    st.plotly_chart(trace_figure(res.trace.numpy(), steps=res.trace_steps.numpy(),
                                 kept=(res.best_step // res.trace_every).numpy(), title=title, **kw), key=key)


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
    titles = [f"{i}: p {pi:.2f} · a {ri:.2f} · ‖z‖ {zi:.1f}"
              for i, (pi, ri, zi) in enumerate(zip(p, r, zn, strict=True))]
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
    flags = compute.flags_for(res, clf, ref, device)
    st.caption(flags_caption(flags))
    flag_badges(flags, n)
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
