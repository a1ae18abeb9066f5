"""The "Neuron consistency" page's parts: attack view, consistency across depth, one unit, robust training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import compute, display, jobs, state
from xai_core.assets import ReferenceSet
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle, save_bundle
from xai_core.errors import ParameterError
from xai_core.explain.consistency import (
    GOAL_TITLES,
    GOALS,
    AttackConfig,
    AttackResult,
    ConsistencyConfig,
    ConsistencyResult,
    RobustConfig,
    attack,
    available_schemes,
    neuron_consistency,
)
from xai_core.explain.consistency.listen import reanalysed_logits
from xai_core.explain.consistency.robust import train_robust
from xai_core.explain.consistency.viz import (
    attack_pair_figure,
    consistency_depth_figure,
    success_curve_figure,
    unit_grid_figure,
)
from xai_core.store.jobs import format_eta

JOB_KIND = "robust"
EPS_HELP = ("L-infinity bound: every time-frequency bin may get at most this many dB louder or quieter. About 1 dB "
            "is the just-noticeable difference of level; the default PGD changes every decision of the demo "
            "classifier on unseen songs at 1 dB (78 % at 0.25 dB), about half of its adversarially trained versions'.")


def robust_root() -> Path:
    return state.runs_dir() / "robust"


@st.cache_resource(max_entries=4, show_spinner="Loading the concept set…")
def _load_set(path: str, mtime: float) -> ReferenceSet:
    # as built: the concept set's own silence rule decided what is in it, and the README's numbers use all 256
    return ReferenceSet.load(path, clean=False)


def choose_concept_set(ref: ReferenceSet | None) -> tuple[str, ReferenceSet] | None:
    """The excerpt set whose concepts are counted: the demo's concept set, or the loaded reference set."""
    opts: dict[str, object] = {}
    demo = state.demo_folder() / "concepts.safetensors"
    if demo.is_file():
        opts["demo concept set"] = demo
    if ref is not None:
        opts["loaded reference set"] = ref
    if not opts:
        st.warning("No concept set: the demo's concepts.safetensors is missing and no reference set is loaded.")
        return None
    name = st.selectbox("Excerpt set", list(opts), key="cons_set",
                        help="Labelled excerpts with concept tags (vocal always; the demo's also singer family, "
                             "backing song, instrument negative and voice level). The demo's set holds random "
                             "excerpts of songs the classifier was not trained on, silence excluded.")
    src = opts[name]
    with display.errors_shown("Could not load the excerpt set"):
        s = _load_set(str(src), os.stat(src).st_mtime) if isinstance(src, Path) else src
        return f"{name}:{compute.ref_key(s)}:{sorted(s.tags)}", s
    return None


def robust_models() -> dict[str, Path]:
    """Robust classifier bundles: the demo's, then those trained from this page (newest first)."""
    out = {}
    demo = state.demo_folder() / "robust"
    if demo.is_dir():
        for p in sorted(demo.glob("*.safetensors")):
            out[f"demo: {p.stem}"] = p
    root = robust_root()
    if root.is_dir():
        for p in sorted(root.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True):
            out[f"trained: {p.stem}"] = p
    return out


def choose_comparison(clf: Bundle) -> tuple[str, Bundle] | None:
    models = robust_models()
    if not models:
        return None
    nxt = st.session_state.pop("cons_model_next", None)
    if nxt in models:
        st.session_state["cons_beside"] = nxt
    opts = ["none", *models]
    name = st.selectbox("Beside it, a robust classifier", opts, index=1 if len(opts) > 1 else 0, key="cons_beside",
                        help="Classifiers fine-tuned with adversarial training: plain (mu = 0) or with the "
                             "consistent loss that pulls the features of x and x_adv together. Load one on the "
                             "Models page to explain it with every other page too.")
    if name == "none":
        return None
    with display.errors_shown("Could not load that classifier"):
        b = state.load_classifier_file(models[name])
        if b.identity == clf.identity:
            return None
        return name, b
    return None


def load_form() -> None:
    """Make a robust classifier the session's loaded classifier, so every page explains it."""
    models = robust_models()
    if not models:
        return
    c1, c2 = st.columns([3, 1])
    name = c1.selectbox("Robust classifier", list(models), key="cons_load_name")
    c2.write("")
    if c2.button("Load it as the classifier", key="cons_load",
                 help="Every page (activation maximisation, FID grid, decoding, this one) then explains it; the "
                      "Models page loads the demo classifier back."):
        with display.errors_shown("Could not load it"):
            state.set_source(state.Source("classifier", "path", path=str(models[name])))
            st.rerun()


def attack_settings(key: str) -> AttackConfig | None:
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Attack", ["pgd", "fgsm"], key=f"{key}_method", format_func=str.upper,
                          help="FGSM: one signed-gradient step of size epsilon. PGD: iterated steps of 2.5 eps / "
                               "steps from a random point of the ball, projected back (Madry et al.).")
    eps = c2.slider("epsilon (dB)", 0.1, 6.0, 1.0, step=0.1, key=f"{key}_eps", help=EPS_HELP)
    steps = int(c3.number_input("PGD steps", 1, 200, 10, key=f"{key}_steps", disabled=method == "fgsm"))
    goal = c4.selectbox("Goal", list(GOALS), key=f"{key}_goal", format_func=GOAL_TITLES.get)
    with display.errors_shown("Invalid attack settings"):
        return AttackConfig(method=method, eps_db=float(eps), steps=steps, goal=goal)
    return None


@st.cache_data(max_entries=32, show_spinner="Attacking…")
def attacked(clf_id: str, key: str, cfg: AttackConfig, truth: float | None, _clf: Bundle,
             _x: np.ndarray) -> AttackResult:
    labels = None if truth is None else torch.tensor([float(truth > 0.5)])
    return attack(_clf, torch.from_numpy(np.asarray(_x, dtype=np.float32))[None], labels=labels, config=cfg,
                  device=state.DEVICE)


def show_attack(clf: Bundle, chosen, cfg: AttackConfig, *, gl_iters: int) -> None:
    """The excerpt and its adversarial version: spectrograms, the change in dB, p(vocal), players."""
    res = attacked(clf.identity, chosen.key, cfg, chosen.truth, clf, chosen.logmel)
    s = res.summary()
    p0, p1 = float(res.prob[0]), float(res.prob_adv[0])
    c1, c2, c3 = st.columns(3)
    c1.metric("p(vocal) before", f"{p0:.2f}", help=f"decision threshold {res.threshold:.2f}")
    c2.metric("p(vocal) after", f"{p1:.2f}", delta=f"{p1 - p0:+.2f}")
    verdict = ("decision changed" if bool(res.success[0]) else
               ("already the target class" if not bool(res.eligible[0]) else "decision kept"))
    c3.metric("outcome", verdict, help=f"{cfg.describe()}; mean |change| {s['mean_abs_change_db']:.2f} dB")
    display.show_png(attack_pair_figure(res.logmel[0].numpy(), res.adversarial[0].numpy(), cfg=clf.mel,
                                        titles=(f"{chosen.label[:60]} · p {p0:.2f}", f"adversarial · p {p1:.2f}"),
                                        eps_db=cfg.eps_db))
    logmels = np.stack([res.logmel[0].numpy(), res.adversarial[0].numpy()])  # (2, T, M)
    waves = display.invert(logmels, clf.mel.to_dict(), gl_iters)  # (2, L)
    wavs = wav_bytes_set(waves, sample_rate=clf.mel.sample_rate)
    display.players(wavs, [f"original · p(vocal) {p0:.2f}", f"adversarial · p(vocal) {p1:.2f}"], ncols=2,
                    key="cons_attack", downloads=True)
    q0, q1 = torch.sigmoid(reanalysed_logits(clf, waves, device=state.DEVICE)).tolist()
    verdict = ""
    if bool(res.success[0]):
        survives = (q1 > res.threshold) == bool(res.targets[0] > 0.5)
        verdict = f": the attack {'survives' if survives else 'does not survive'} the trip through audio"
    st.caption(f"Can you hear the attack? Both players go through the same Griffin-Lim inversion ({gl_iters} "
               "iterations) at one common gain, so what differs is the attack, not the inversion. "
               f"Played back and analysed again, the detector hears p(vocal) {q0:.2f} (original) and {q1:.2f} "
               f"(adversarial){verdict}. "
               f"{'The label of this excerpt is known.' if res.labels_known else 'No label: the attack pushes away from the classifier’s own decision.'}")


def consistency_settings(clf: Bundle, cset: ReferenceSet) -> ConsistencyConfig | None:
    schemes = available_schemes(cset.concepts()) + ["cluster"]
    c1, c2, c3, c4 = st.columns(4)
    concept = c1.selectbox("Concepts", schemes, key="cons_concept",
                           help="'graded': same singer family 1 > both vocal (or both non-vocal, another "
                                "instrument) 0.5 > unrelated 0. A tag name: purity of that tag (A = identity). "
                                "'cluster': k-means of the log-mel (for data without tags).")
    k = int(c2.number_input("k (top inputs per unit)", 1, max(1, len(cset)), min(20, len(cset)), key="cons_k",
                            help="20 by default: about 8 % of the demo's 256 excerpts."))
    reduce = c3.selectbox("Conv channel response", ["mean", "max"], key="cons_reduce",
                          help="A convolutional channel's response to an excerpt: its spatial mean (default) or "
                               "its largest value.")
    clusters = int(c4.number_input("k-means clusters", 2, 64, 8, key="cons_clusters",
                                   disabled=concept != "cluster"))
    with display.errors_shown("Invalid consistency settings"):
        return ConsistencyConfig(k=k, concept=concept, reduce=reduce, layers=tuple(clf.model.layer_names),
                                 clusters=clusters if concept == "cluster" else 0)
    return None


@st.cache_data(max_entries=8, show_spinner=False)
def scored(clf_id: str, set_key: str, cfg: ConsistencyConfig, acfg: AttackConfig, _clf: Bundle,
           _cset: ReferenceSet) -> ConsistencyResult:
    bar = st.progress(0.0, text="Attacking every excerpt and scoring every unit…")
    try:
        return neuron_consistency(_clf, _cset, config=cfg, attack_config=acfg, device=state.DEVICE,
                                  progress=lambda d, t, i: bar.progress(min(1.0, d / max(t, 1)),
                                                                        text=f"{i.get('stage', '')} {d}/{t}"))
    finally:
        bar.empty()


def show_depth(results: dict[str, ConsistencyResult]) -> None:
    """Consistency over units per layer, real vs adversarial, each model; the table; a CSV download."""
    st.plotly_chart(consistency_depth_figure(results, title="Consistency of the units of each layer"),
                    key="cons_depth")
    rows = []
    for name, r in results.items():
        s = r.summary()
        for layer, v in s["layers"].items():
            rows.append({"model": name, "layer": layer, "units": v["units"], "real (mean)": v["real_mean"],
                         "adversarial (mean)": v.get("adv_mean"), "drop": v.get("drop"),
                         "units less consistent": v.get("share_units_less_consistent"),
                         "agreement real ↔ adversarial": v.get("agreement_mean")})
    st.dataframe(pd.DataFrame(rows).round(3), hide_index=True)
    first = next(iter(results.values()))
    a = first.attack.summary() if first.attack is not None else None
    st.caption(f"{first.space.name} concepts, k = {first.config.k}, {len(first.space)} excerpts; chance level "
               f"{first.chance:.3f}. "
               + (f"Adversarial inputs: {a['attack']} on every excerpt ({a['success_rate']:.0%} of the decisions of "
                  f"{next(iter(results))} changed); each keeps the concepts of the excerpt it was made from. "
                  "Consistency only asks whether a unit's top inputs share *a* concept; the agreement "
                  "(pᵀ_real A p_adv, the dotted lines) asks whether its adversarial top inputs carry the concept of "
                  "its real ones: a unit can stay perfectly consistent while its concept flips." if a else ""))
    name = st.selectbox("Per-unit table of", list(results), key="cons_csv_model")
    st.download_button("Download the per-unit table (CSV)", results[name].csv(), "consistency.csv", "text/csv",
                       key="cons_csv")


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def stored(run_id: str) -> ConsistencyResult:
    return state.run_store().load(run_id)


def reopened() -> dict[str, ConsistencyResult]:
    """The consistency run this session reopened from the Runs page (if any), to show beside the others."""
    rid = st.session_state.get("cons_reopened")
    if not rid:
        return {}
    with display.errors_shown("Could not reopen the run"):
        res = stored(rid)
        c1, c2 = st.columns([4, 1])
        c1.caption(f"Reopened from the run store: `{rid}` ({res.classifier.get('name', '?')}).")
        if c2.button("Close it", key="cons_close_run"):
            st.session_state.pop("cons_reopened")
            st.rerun()
        return {f"run {rid}": res}
    st.session_state.pop("cons_reopened", None)
    return {}


def save_form(results: dict[str, ConsistencyResult], models: dict[str, Bundle], excerpts: str) -> None:
    """Save the freshly computed scores (not the reopened ones) to the run store."""
    fresh = [n for n in results if n in models]
    if fresh and st.button("Save these scores to the run store", key="cons_save"):
        with display.errors_shown("Could not save"):
            ids = [state.run_store().save_consistency(results[n], classifier=models[n], excerpts=excerpts, name=n)
                   for n in fresh]
            st.success("Saved as " + ", ".join(f"`{i}`" for i in ids) + " (Runs page: reopen, export, compare).")


def show_unit(results: dict[str, ConsistencyResult], clf: Bundle, *, gl_iters: int) -> None:
    """One unit: its top-k real and top-k adversarial excerpts with concepts, responses and players."""
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Model", list(results), key="cons_unit_model")
    r = results[name]
    layer = c2.selectbox("Layer", list(r.layers), index=len(r.layers) - 2 if len(r.layers) > 1 else 0,
                         key="cons_unit_layer")
    n_units = int(r.real[layer].numel())
    unit = int(c3.number_input(f"Unit (0 … {n_units - 1})", 0, n_units - 1, 0, key="cons_unit"))
    if r.attack is None:
        st.caption(f"{name} was scored on real inputs only (its excerpts are not stored): consistency of this unit "
                   f"{float(r.real[layer][unit]):.2f}, top concept {r.top_concept(r.topk_real[layer][unit])}. Score the "
                   "units here to see their top inputs.")
        return
    labels = r.space.labels()
    show = int(c4.number_input(f"Shown (of the top {r.config.k})", 1, r.config.k, min(8, r.config.k),
                               key="cons_unit_show"))
    ti, ta = r.topk_real[layer][unit][:show].tolist(), r.topk_adv[layer][unit][:show].tolist()
    st.markdown(f"**{layer} unit {unit}**: consistency {float(r.real[layer][unit]):.2f} on real inputs, "
                f"{float(r.adv[layer][unit]):.2f} on adversarial ones (top {r.config.k}; the first {show} shown).")
    real, adv = r.attack.logmel, r.attack.adversarial  # (N, T, M) the excerpts and their adversarial versions
    fr, fa = unit_grid_figure(
        real[ti].numpy(), adv[ta].numpy(),
        [f"{labels[i]} · {float(r.responses_real[layer][i, unit]):.2f}" for i in ti],
        [f"adv. of {labels[i]} · {float(r.responses_adv[layer][i, unit]):.2f}" for i in ta], cfg=clf.mel)
    st.markdown("Top real inputs (concept · response)")
    display.show_png(fr)
    st.markdown("Top adversarial inputs (the concept of the excerpt each was made from · response)")
    display.show_png(fa)
    n_play = min(4, show)
    logmels = np.concatenate([real[ti[:n_play]].numpy(), adv[ta[:n_play]].numpy()])
    wavs = wav_bytes_set(display.invert(logmels, clf.mel.to_dict(), gl_iters), sample_rate=clf.mel.sample_rate)
    display.players(wavs, [f"real {j + 1}: {labels[i]}" for j, i in enumerate(ti[:n_play])]
                    + [f"adversarial {j + 1}: {labels[i]}" for j, i in enumerate(ta[:n_play])],
                    ncols=n_play, key="cons_unit_play")


def show_shipped_evaluation() -> None:
    """The demo's comparison of the original, plain adversarial and consistent-loss classifiers (eval.json)."""
    path = state.demo_folder() / "robust" / "eval.json"
    if not path.is_file():
        st.caption("No shipped comparison (the demo's robust/eval.json is missing).")
        return
    try:
        ev = json.loads(path.read_text())
        rows = []
        for name, m in ev["models"].items():
            row = {"model": name, "frame error (test split)": m.get("frame_error"),
                   "excerpt error, clean": m["clean_error"]}
            row.update({f"under attack, {e} dB": v for e, v in m["robust_error"].items()})
            c = m.get("consistency") or {}
            for layer in ("conv4", "fc1", "fc2"):
                if layer in c.get("real", {}):
                    row[f"{layer} real / adv"] = f"{c['real'][layer]:.2f} / {c['adv'][layer]:.2f}"
            rows.append(row)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        st.error(f"{path}: unreadable comparison ({exc})")
        return
    st.dataframe(pd.DataFrame(rows).round(3), hide_index=True)
    st.plotly_chart(success_curve_figure({n: m["curve"] for n, m in ev["models"].items() if m.get("curve")},
                                         title="PGD success rate against epsilon (test-split excerpts)"),
                    key="cons_curve")
    st.caption(f"From `{path}`: {ev.get('n_test')} test-split excerpts attacked with PGD ({ev['attack']['steps']} "
               f"steps, random start); consistency on the {ev.get('concept_set')}-excerpt concept set, "
               f"{ev['consistency_config']['concept']} concepts, k = {ev['consistency_config']['k']}.")


def training_form(clf: Bundle, ref: ReferenceSet | None) -> None:
    """Fine-tune the loaded classifier with (consistent-loss) adversarial training in the background."""
    c1, c2, c3, c4 = st.columns(4)
    mu = c1.number_input("mu (consistent term)", 0.0, 100.0, 1.0, step=0.5, key="cons_tr_mu",
                         help="Weight of mean((phi(x) − phi(x_adv))²); 0 is plain adversarial training (the ablation).")
    layers = [lay for lay in clf.model.layer_names if lay != "logit"]
    layer = c2.selectbox("Layer phi", layers, index=layers.index("fc2") if "fc2" in layers else 0, key="cons_tr_layer")
    eps = c3.number_input("epsilon (dB)", 0.1, 12.0, 1.0, step=0.1, key="cons_tr_eps", help=EPS_HELP)
    steps = int(c4.number_input("Steps", 10, 100_000, 300, step=50, key="cons_tr_steps",
                                help="About 0.65 s per step (batch 32, 3 PGD steps) for the lite demo classifier on "
                                     "2 CPU cores; the demo's robust models had 1,000."))
    c5, c6 = st.columns(2)
    data_src = c5.radio("Training data", jobs.DATA_SOURCES, key="cons_tr_data")
    folder = c6.text_input("Corpus folder (Jamendo layout)", key="cons_tr_folder",
                           disabled=data_src == "reference excerpts")
    name = st.text_input("Name of the new classifier", value=f"robust-mu{mu:g}-{layer}", key="cons_tr_name")
    mgr = state.job_manager()
    if st.button("Train in the background", type="primary", key="cons_train", disabled=bool(mgr.active(JOB_KIND))):
        with display.errors_shown("Could not start the training"):
            cfg = RobustConfig(mu=float(mu), layer=layer, eps_db=float(eps), steps=steps)
            out = robust_root() / f"{jobs.safe_name(name, 'a classifier')}.safetensors"
            if out.exists():
                raise ParameterError(f"a classifier called {out.stem!r} exists already: choose another name "
                                     "(nothing stored is overwritten)")
            data, what = jobs.training_data(data_src, ref, folder)

            def target(progress, _data=data, _folder=folder):
                from xai_core.train.data import load_split

                if _data is None:
                    _data = load_split(_folder, "train", mel=clf.mel)
                ckpt = robust_root() / ".checkpoints" / f"{out.stem}.ckpt.pt"
                b = train_robust(clf, _data, cfg, device=state.DEVICE, checkpoint=ckpt, resume=True,
                                 progress=progress, provenance={"data": what, "command": "the Neuron consistency page"})
                save_bundle(out, model=b.model, kind="classifier", mel=b.mel, normaliser=b.normaliser,
                            preset=b.preset, provenance=b.provenance, metrics=b.metrics)
                ckpt.unlink(missing_ok=True)
                return str(out)

            mgr.submit(JOB_KIND, target, label=f"{cfg.name} (mu {cfg.mu:g}, {cfg.eps_db:g} dB) on {what}",
                       meta={"name": f"trained: {out.stem}"})
            st.rerun()


def job_panel() -> None:
    """Progress of the robust training job (any session's), cancel; once done, this session shows the model."""
    jobs.job_panel(
        JOB_KIND, seen_key="cons_job_seen", cancel_key="cons_cancel", what="The last robust training",
        text=lambda job: (f"{job.label}: {job.fraction:.0%} · loss {job.info.get('loss', float('nan')):.3f} · "
                          f"adversarial CE {job.info.get('ce_adv', float('nan')):.3f} · {format_eta(job.eta_s)} left"),
        caption="Training runs in the background: you may switch pages, reload or close this tab; a cancelled "
                "training resumes from its checkpoint when started again with the same name and settings.",
        on_done=lambda job: st.session_state.__setitem__("cons_model_next", job.meta["name"]))
