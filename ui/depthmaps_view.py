"""The "Where does it listen?" page's parts: unit and explainer choice, depth maps, listening, the checks
(deletion/insertion, randomisation), training explainers in the background."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import display, jobs, state
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError, XaiError
from xai_core.explain.depthmaps import (
    VARIANTS,
    ExplainerBundle,
    ExplainerConfig,
    FaithConfig,
    UnitSpec,
    explain,
    faithfulness,
    load_explainer,
    randomisation_check,
    save_explainer,
    train_explainer,
)
from xai_core.explain.depthmaps.config import TARGET_TITLES, VARIANT_TITLES
from xai_core.explain.depthmaps.faithfulness import as_numpy
from xai_core.explain.depthmaps.listen import split_by_relevance
from xai_core.explain.depthmaps.viz import (
    depth_maps_figure,
    faithfulness_figure,
    relevance_figure,
    sanity_figure,
)
from xai_core.store.jobs import format_eta

JOB_KIND = "explainer"


def trained_root() -> Path:
    return state.runs_dir() / "explainers"


def choose_unit(clf: Bundle) -> UnitSpec | None:
    """The explained unit: the vocal logit by default, any unit of any layer allowed."""
    shapes = clf.model.layer_shapes()
    with st.expander("Explained unit: " + st.session_state.get("dm_unit_label", "the vocal logit")):
        c1, c2, c3 = st.columns([2, 1, 1])
        layers = list(clf.model.layer_names)
        layer = c1.selectbox("Layer", layers, index=layers.index("logit"), key="dm_unit_layer",
                             help="Grad-CAM explains one unit; a convolutional unit (a channel) is its mean over "
                                  "time and frequency, and its maps exist at its own layer and the shallower ones.")
        n = shapes[layer][0] if shapes[layer] else 1
        index = int(c2.number_input(f"Unit (0 … {n - 1})", 0, max(0, n - 1), 0, key="dm_unit_index"))
        negate = c3.toggle("Negate", key="dm_unit_negate", help="Explain the negated unit: for the logit, the "
                           "evidence against singing.")
    with display.errors_shown("Not a unit of this classifier"):
        unit = UnitSpec(layer=layer, index=index, sign=-1 if negate else 1)
        st.session_state["dm_unit_label"] = unit.label
        return unit
    return None


@st.cache_resource(max_entries=16, show_spinner="Loading explainers…")
def _load(path: str, mtime: float, clf_id: str, _clf: Bundle) -> ExplainerBundle:
    return load_explainer(path, classifier=_clf)


def explainer_files() -> dict[str, Path]:
    """Explainer bundles to choose from: the demo's, then those trained from this page (newest first)."""
    out = {}
    demo = state.demo_folder() / "explainers"
    for p in sorted(demo.glob("*.safetensors")) if demo.is_dir() else ():
        out[f"demo {p.stem}"] = p
    root = trained_root()
    if root.is_dir():
        for p in sorted(root.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True):
            out[f"trained: {p.stem}"] = p
    return out


def choose_explainers(clf: Bundle, unit: UnitSpec) -> dict[str, ExplainerBundle]:
    """Multiselect of the explainers that belong to this classifier and explain this unit; the others are
    listed with the reason."""
    usable, skipped = {}, {}
    for name, p in explainer_files().items():
        try:
            e = _load(str(p), p.stat().st_mtime, clf.identity, clf)
        except (XaiError, OSError) as exc:
            skipped[name] = str(exc)
            continue
        if e.unit != unit:
            skipped[name] = f"explains {e.unit.label}, not {unit.label}"
            continue
        usable[name] = e
    nxt = st.session_state.pop("dm_explainer_next", None)
    default = [nxt] if nxt in usable else list(usable)[:2]
    chosen = st.multiselect("Conditional-GAN explainers", list(usable), default=default, key="dm_explainers",
                            help="Explainers trained for the loaded classifier and unit (the demo ships a global "
                                 "and a local SFT variant for the demo classifier's logit; train others below).")
    if skipped:
        with st.expander(f"{len(skipped)} explainer(s) not usable here"):
            for k, v in skipped.items():
                st.caption(f"**{k}**: {v}")
    return {k: usable[k] for k in chosen}


@st.cache_data(max_entries=16, show_spinner="Computing Grad-CAM at every layer…")
def depth_maps(clf_id: str, input_key: str, unit_dict: dict, names: tuple, _clf: Bundle, _logmel: np.ndarray,
               _explainers: dict):
    return explain(_clf, torch.as_tensor(_logmel)[None], unit=UnitSpec(**unit_dict), explainers=_explainers,
                   device=state.DEVICE)


def show_maps(res, clf: Bundle, label: str, *, key: str = "dm_live") -> None:
    p = float(torch.sigmoid(res.logit[0]))
    st.caption(f"p(vocal) {p:.2f} · {res.unit.label} = {float(res.value[0]):.3f}. Top row: each layer's Grad-CAM "
               "(shallow → deep; each map divided by its own maximum, whose value is in the table below). Second "
               "row: cumulative averages from the deepest layer up (the explainer's conditions). Last row: the "
               "explainers' maps.")
    display.show_png(depth_maps_figure(res, cfg=clf.mel, title=label))
    st.dataframe(pd.DataFrame([res.peak[0].numpy()], columns=res.layers, index=["map maximum before normalising"]),
                 width="stretch")
    if res.relevance:
        rel = {n: (res.conditions[n], (r[0] / r[0].sum().clamp_min(1e-12)).tolist()) for n, r in res.relevance.items()}
        st.plotly_chart(relevance_figure(rel, title="Per-depth relevance: how much the explainer's map "
                                         "changes when one condition map is dropped"), width="stretch",
                        key=f"{key}_relevance")
        first_last = {n: float(r[0][0] / r[0][-1].clamp_min(1e-12)) for n, r in res.relevance.items()}
        st.caption("The paper finds the first and the last layers about equally important. Here, first "
                   "(deepest only) / last (all layers down to the first) condition: "
                   + ", ".join(f"{n} {v:.2f}" for n, v in first_last.items()) + ".")


def show_listen(res, clf: Bundle, *, gl_iters: int) -> None:
    maps = res.maps()
    names = list(maps)
    default = next((n for n in names if n.startswith("GAN")), names[-1])
    c1, c2 = st.columns([2, 1])
    name = c1.selectbox("Map", names, index=names.index(default), key="dm_listen_map")
    share = c2.slider("Most relevant share of bins", 0.05, 0.5, 0.2, 0.05, key="dm_listen_share",
                      help="The mask is applied to the spectrogram before inversion: the other bins drop to silence.")
    x = res.logmel[0]
    only, rest = split_by_relevance(x, maps[name][0], share=share, floor=clf.mel.log_min)
    trio = torch.stack([x, only, rest])  # (3, T, M)
    with torch.no_grad():
        p = torch.sigmoid(clf.model(clf.normaliser.apply(trio.to(next(clf.model.parameters()).device)))).cpu()
    wavs = wav_bytes_set(display.invert(trio.numpy(), clf.mel.to_dict(), gl_iters), sample_rate=clf.mel.sample_rate)
    display.players(wavs, [f"original · p(vocal) {float(p[0]):.2f}",
                           f"only the top {share:.0%} of {name} · p(vocal) {float(p[1]):.2f}",
                           f"everything but it · p(vocal) {float(p[2]):.2f}"], ncols=3, key="dm_listen")
    st.caption("If the detector listens to the voice, the relevant part alone sounds like (part of) the singing and "
               "keeps p(vocal) high, while the rest loses it. One common gain for the three clips.")


@st.cache_data(max_entries=8, show_spinner="Deletion and insertion curves…")
def curves(clf_id: str, input_key: str, unit_dict: dict, names: tuple, _clf: Bundle, _res):
    f = faithfulness(_clf, _res.logmel, _res.maps(), unit=UnitSpec(**unit_dict), config=FaithConfig(n_random=5),
                     device=state.DEVICE)
    return f.fractions.numpy(), as_numpy(f), f.table(references=True)


@st.cache_data(max_entries=8, show_spinner="Randomising the classifier layer by layer…")
def sanity(clf_id: str, input_key: str, unit_dict: dict, names: tuple, _clf: Bundle, _res, _explainers: dict):
    return randomisation_check(_clf, _res.logmel, unit=UnitSpec(**unit_dict), explainers=_explainers,
                               device=state.DEVICE).to_dict()


def show_checks(res, clf: Bundle, explainers: dict, input_key: str) -> dict:
    """Deletion/insertion curves and the randomisation check of this excerpt's maps; returns both (JSON-ready)."""
    key = (clf.identity, input_key, res.unit.to_dict(), tuple(explainers))
    fr, mean, table = curves(*key, clf, res)
    pick = st.multiselect("Curves", list(res.maps()), default=[res.layers[-1], f"cumulative {res.cumulative_names[-1]}"]
                          + [f"GAN {n}" for n in res.gan][:2], key="dm_curves")
    c1, c2 = st.columns(2)
    for col, kind in ((c1, "deletion"), (c2, "insertion")):
        data = {n: mean[f"{kind}/{n}"] for n in pick} | {"random blobs": mean[f"{kind}/random"],
                                                          "random bins": mean[f"{kind}/random bins"]}
        col.plotly_chart(faithfulness_figure(fr, data, kind=kind, y_title=res.unit.label,
                                             title=f"{kind.capitalize()} on this excerpt"), width="stretch",
                        key=f"dm_curve_{kind}")
    st.dataframe(pd.DataFrame(table).set_index("map"), width="stretch")
    st.caption("Areas under the curves over the share of bins (removed bins take the per-band training mean). "
               "Gains are against random blobs (random maps with the coarse shape of deep Grad-CAM maps): deletion "
               "gain = random area − map area, insertion gain = map area − random area, positive = better than "
               "chance; gap = insertion − deletion area. Random single bins punch scattered holes the classifier "
               "has never seen, which alone crash its logit: not a fair reference. One excerpt is noisy: the "
               "demo's table over 64 unseen excerpts is below.")
    san = sanity(*key, clf, res, explainers)
    show_sanity(san)
    return {"faithfulness": table, "sanity": san}


def show_sanity(san: dict, *, title: str = "Model randomisation on this excerpt", key: str = "dm_sanity") -> None:
    st.plotly_chart(sanity_figure(san["stages"], san["mean_correlation"], fail_above=san["fail_above"], title=title),
                    width="stretch", key=key)
    fails = [k for k, ok in san["passes"].items() if not ok]
    if fails:
        st.error("**Fails the randomisation check** (its maps hardly change when the classifier's weights are "
                 f"random, so they do not explain what it learned): {', '.join(fails)}.")
    else:
        st.success(f"Every map changes once the classifier is randomised (Spearman ρ ≤ {san['fail_above']:g}).")


def show_shipped_evaluation(clf: Bundle) -> None:
    ev = state.demo_folder() / "explainers" / "eval.json"
    try:
        report = json.loads(ev.read_text())
    except (OSError, ValueError):
        st.caption("No shipped evaluation (the demo's explainers/eval.json is missing).")
        return
    if report.get("classifier") != clf.identity:
        st.caption("The shipped evaluation is of the demo classifier; load it to compare, or run "
                   "`python -m xai_core faithfulness --data CORPUS --json report.json` for this one.")
        return
    st.caption(f"The demo: {report['data']}.")
    st.dataframe(pd.DataFrame(report["faithfulness"]).set_index("map"), width="stretch")
    if "sanity" in report:
        show_sanity(report["sanity"], title="Model randomisation on the demo's unseen excerpts", key="dm_sanity_demo")


def training_form(clf: Bundle, ref, unit: UnitSpec) -> None:
    """Train an explainer of ``unit`` in the background on the reference excerpts or a corpus folder of the server."""
    c1, c2, c3 = st.columns(3)
    variant = c1.selectbox("Variant", list(VARIANTS), format_func=lambda v: VARIANT_TITLES[v], key="dm_tr_variant")
    target = c2.selectbox("Target map", list(TARGET_TITLES), format_func=TARGET_TITLES.get, key="dm_tr_target")
    steps = int(c3.number_input("Steps", 10, 100_000, 300, step=50, key="dm_tr_steps",
                                help="About 0.7 s per step (batch 16) for the demo classifier on 2 CPU cores; the "
                                     "demo's explainers had 1500."))
    c4, c5 = st.columns(2)
    data_src = c4.radio("Training data", jobs.DATA_SOURCES, key="dm_tr_data",
                        help="Reference excerpts: split by song, one song in five held out for the evaluation. A "
                             "corpus folder: its train split, evaluated on its test split.")
    folder = c5.text_input("Corpus folder (Jamendo layout)", key="dm_tr_folder", disabled=data_src == jobs.DATA_SOURCES[0])
    name = st.text_input("Name", value=f"{clf.preset or 'custom'}-{variant}-{unit.layer}", key="dm_tr_name")
    mgr = state.job_manager()
    if st.button("Train in the background", type="primary", key="dm_train", disabled=bool(mgr.active(JOB_KIND))):
        with display.errors_shown("Could not start the training"):
            cfg = ExplainerConfig(variant=variant, target=target, steps=steps)
            out = trained_root() / f"{jobs.safe_name(name, 'an explainer')}.safetensors"
            if out.exists():
                raise ParameterError(f"an explainer called {out.stem!r} exists already: choose another name "
                                     "(nothing stored is overwritten)")
            data, what = jobs.training_data(data_src, ref, folder)
            test = None
            if data is not None:
                data, test = split_reference_by_song(ref)

            def target_fn(progress, _data=data, _test=test, _folder=folder):
                from xai_core.explain.cladec.evaluate import draw_excerpts
                from xai_core.explain.depthmaps import evaluate_explainer
                from xai_core.train.data import load_split

                if _data is None:
                    _data = load_split(_folder, "train")
                    _test = draw_excerpts(load_split(_folder, "test"), 256, seed=1, frames=clf.model.config.n_frames)[0]
                ckpt = out.with_suffix(".ckpt.pt")
                exp = train_explainer(clf, _data, cfg, unit=unit, device=state.DEVICE, progress=progress,
                                      checkpoint=ckpt, resume=True,
                                      provenance={"data": what, "command": "the Where does it listen? page"})
                if _test is not None and len(_test):
                    exp.metrics["heldout"] = evaluate_explainer(clf, exp, _test, device=state.DEVICE)
                out.parent.mkdir(parents=True, exist_ok=True)
                save_explainer(out, exp, classifier=clf)
                ckpt.unlink(missing_ok=True)
                return str(out)

            mgr.submit(JOB_KIND, target_fn, label=f"{variant} explainer of {unit.label} on {what}",
                       meta={"file": str(out)})
            st.rerun()


def split_reference_by_song(ref, *, every: int = 5):
    """``((logmel, labels) to train on, held-out logmel)``: the reference excerpts split by source file, one file in
    ``every`` (by sorted name) held out, so the explainer is tested on songs it was not trained on."""
    files = sorted({s.rsplit("@", 1)[0] for s in ref.sources})
    held = {f for i, f in enumerate(files) if i % every == every - 1}
    test = torch.tensor([s.rsplit("@", 1)[0] in held for s in ref.sources])
    if test.all() or not test.any():
        raise ParameterError("the reference set has too few songs to hold some out: train on a corpus folder")
    return (ref.logmel[~test], ref.labels[~test]), ref.logmel[test]


def job_panel() -> None:
    def text(job) -> str:
        i = job.info
        return (f"{job.label}: {job.fraction:.0%} · L1 {i.get('l1', float('nan')):.3f} · D(real) "
                f"{i.get('d_real', float('nan')):.2f} · D(fake) {i.get('d_fake', float('nan')):.2f} · "
                f"{format_eta(job.eta_s)} left")

    def done(job) -> None:
        st.session_state["dm_explainer_next"] = f"trained: {Path(job.meta['file']).stem}"

    jobs.job_panel(JOB_KIND, seen_key="dm_job_seen", cancel_key="dm_cancel", text=text, on_done=done,
                   caption="Training runs in the background: you may switch pages, reload or close this tab; a "
                           "cancelled training resumes from its checkpoint when started again with the same name.",
                   what="The last explainer training")


def save_form(res, clf: Bundle, label: str, checks: dict | None) -> None:
    """Keep this excerpt's maps (and the checks, when computed) in the run store."""
    c1, c2 = st.columns([3, 1])
    name = c1.text_input("Name (optional)", key="dm_save_name")
    if c2.button("Save to the run store", key="dm_save",
                 help="The maps of every depth, the explainers' maps and relevances, and the checks if they ran; "
                      "reopen them from the Runs page."):
        with display.errors_shown("Could not save"):
            res.checks = checks or {}
            rid = state.run_store().save_depthmaps(res, classifier=clf, input_label=label, name=name or None)
            st.success(f"Saved as run `{rid}`.")


def reopened():
    """The depth-map run reopened from the Runs page in this session, if any (with a button to close it)."""
    return state.reopened_run("dm_reopened", close_key="dm_close_run",
                              describe=lambda rid, res: state.run_store().info(rid)["config"].get("input", ""))


def show_stored(res, clf: Bundle) -> None:
    """A stored run: its maps, relevances and the checks stored with it."""
    show_maps(res, clf, "stored run", key="dm_stored")
    checks = res.checks or {}
    if checks.get("faithfulness"):
        st.dataframe(pd.DataFrame(checks["faithfulness"]).set_index("map"), width="stretch")
    if checks.get("sanity"):
        show_sanity(checks["sanity"], title="Model randomisation, as stored", key="dm_sanity_stored")
