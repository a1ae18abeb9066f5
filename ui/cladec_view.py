"""The "Decode a layer" page's parts: decoder sets, per-layer rows with audio, the evaluation, training jobs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import display, jobs, state
from xai_core.audio import wav_bytes_set
from xai_core.checkpoints import Bundle
from xai_core.errors import ParameterError, XaiError
from xai_core.explain.cladec import (
    NAMES,
    VARIANTS,
    CladecConfig,
    CladecEvaluation,
    DecodeResult,
    DecoderSet,
    EvalConfig,
    decode,
    decoder_file_name,
    draw_excerpts,
    evaluate_decoders,
    load_decoder_set,
    rows_figure,
    save_decoder,
    train_decoders,
)
from xai_core.fileio import atomic_write_bytes
from xai_core.store.jobs import format_eta
from xai_core.viz import depth_curve_figure

JOB_KIND = "cladec"
EVAL_JOB_KIND = "cladec-eval"


def trained_root() -> Path:
    return state.runs_dir() / "decoders"


def folder_stamp(folder: Path) -> tuple:
    """Names and modification times of a folder's files (a cache key that changes when they do)."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime) for p in folder.iterdir() if p.is_file()))
    except OSError:
        return ()


@st.cache_resource(max_entries=8, show_spinner="Loading decoders…")
def _load_set(folder: str, stamp: tuple, clf_id: str, _clf: Bundle) -> DecoderSet:
    return load_decoder_set(folder, classifier=_clf)


def decoder_sets() -> dict[str, Path]:
    """Decoder folders to choose from: the demo's, then those trained from this page (newest first)."""
    out = {}
    demo = state.demo_folder() / "cladec"
    if demo.is_dir():
        out["demo decoders"] = demo
    root = trained_root()
    if root.is_dir():
        for p in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
            if p.is_dir() and any(p.glob("*.safetensors")):
                out[f"trained: {p.name}"] = p
    return out


def choose_set(clf: Bundle) -> DecoderSet | None:
    sets = decoder_sets()
    if not sets:
        st.warning("No decoders yet: the demo's are missing and none were trained here. Train some below.")
        return None
    nxt = st.session_state.pop("cladec_set_next", None)
    if nxt in sets:  # a training job of this session just finished: show its decoders
        st.session_state["cladec_set"] = nxt
    name = st.selectbox("Decoders", list(sets), key="cladec_set",
                        help="Each set holds, per decoded layer, a ClaDec decoder, a reference auto-encoder "
                             "(RefAE) and a random-feature decoder trained for one classifier.")
    folder = sets[name]
    with display.errors_shown("Could not load these decoders"):
        dset = _load_set(str(folder), folder_stamp(folder), clf.identity, clf)
        if dset.skipped:
            st.caption("Not loaded: " + "; ".join(f"`{k}`: {v}" for k, v in dset.skipped.items()))
        return dset
    return None


@st.cache_data(max_entries=32, show_spinner=False)
def decoded(clf_id: str, folder: str, stamp: tuple, key: str, variants: tuple[str, ...], _clf: Bundle,
            _dset: DecoderSet, _x: np.ndarray) -> DecodeResult:
    return decode(_clf, _dset.ordered(variants), torch.from_numpy(_x)[None], device=state.DEVICE)


def show_rows(res: DecodeResult, dset: DecoderSet, variants: tuple[str, ...], clf: Bundle, *,
              label: str, gl_iters: int) -> None:
    """One row per layer: input, each variant's reconstruction, ClaDec - RefAE; players below."""
    x = res.logmel[0].numpy()
    layers = [lay for lay in dset.layers if any((lay, v) in res.recon for v in variants)]
    display.show_png(rows_figure(res, layers, variants, cfg=clf.mel))
    keys = [k for layer in layers for k in [(layer, v) for v in variants] if k in res.recon]
    logmels = np.stack([x] + [res.recon[k][0].numpy() for k in keys])  # (1 + K, T, M)
    wavs = wav_bytes_set(display.invert(logmels, clf.mel.to_dict(), gl_iters), sample_rate=clf.mel.sample_rate)
    st.caption(f"Audio of {label}: Griffin-Lim ({gl_iters} iterations) of each spectrogram; all players share one "
               "gain, so a quieter reconstruction is really quieter.")
    st.markdown("**Input**")
    display.players(wavs[:1], [f"input · p(vocal) {float(res.prob_input[0]):.2f}"], ncols=len(variants) + 1,
                    key="cladec_in")
    for layer in layers:
        idx = [i for i, k in enumerate(keys) if k[0] == layer]
        st.markdown(f"**{layer}**")
        display.players([wavs[1 + i] for i in idx],
                        [f"{NAMES[keys[i][1]]} · p(vocal) {float(res.prob[keys[i]][0]):.2f}" for i in idx],
                        ncols=len(variants) + 1, key=f"cladec_{layer}")


def show_evaluation(ev: CladecEvaluation, dset: DecoderSet) -> None:
    """The per-layer table, the depth plot and a CSV download."""
    rows = [{"layer": "input", "decoder": "original classifier", "MSE": 0.0,
             "classifier on it: error": ev.original["error"], "AUC": ev.original["auc"]},
            {"layer": "input", "decoder": "retrained on originals", "MSE": 0.0,
             "retrained: error": ev.retrained_input["error"], "retrained: AUC": ev.retrained_input["auc"]}]
    for r in ev.rows:
        rows.append({"layer": r["layer"], "decoder": NAMES.get(r["variant"], r["variant"]), "MSE": r["mse"],
                     "retrained: error": r["retrained_error"], "retrained: AUC": r["retrained_auc"],
                     "classifier on it: error": r["original_on_recon_error"], "AUC": r["original_on_recon_auc"],
                     "agreement": r["agreement"]})
    st.dataframe(pd.DataFrame(rows).round(4), hide_index=True)
    layers = list(dict.fromkeys(r["layer"] for r in ev.rows))
    by = {(r["layer"], r["variant"]): r for r in ev.rows}
    present = [v for v in VARIANTS if any((lay, v) in by for lay in layers)]

    def series(col: str) -> dict[str, list]:
        return {NAMES[v]: [by[(lay, v)][col] if (lay, v) in by else None for lay in layers] for v in present}

    c1, c2 = st.columns(2)
    c1.plotly_chart(depth_curve_figure(layers, {k: [None if e is None else 1 - e for e in v]
                                                for k, v in series("retrained_error").items()},
                                       title="Accuracy of a classifier retrained on reconstructions",
                                       y_title="test accuracy",
                                       reference={"retrained on originals": 1 - ev.retrained_input["error"]}),
                    key="cladec_acc")
    c2.plotly_chart(depth_curve_figure(layers, series("mse"), title="Reconstruction error on the test excerpts",
                                       y_title="MSE (normalised units)"), key="cladec_mse")
    verdict = []
    for layer, c in ev.claim().items():
        verdict.append(f"{layer}: ClaDec {'keeps more' if c['cladec_more_informative'] else 'does not keep more'} "
                       f"class information than RefAE; RefAE {'reconstructs better' if c['refae_reconstructs_better'] else 'does not reconstruct better'}"
                       + ("" if "cladec_beats_random" not in c else
                          f"; ClaDec {'beats' if c['cladec_beats_random'] else 'does not beat'} the random floor"))
    st.caption(f"{ev.data.get('n_test', '?')} test-split excerpts, {ev.data.get('n_train', '?')} training-split "
               f"excerpts, {ev.config.steps} steps per retrained classifier. The paper's claim per layer: "
               + " · ".join(verdict))
    st.download_button("Download the evaluation (CSV)", ev.csv(), f"cladec_eval_{dset.folder.name}.csv", "text/csv",
                       key="cladec_csv")


def training_form(clf: Bundle, ref) -> None:
    """Train decoders in the background on the reference excerpts or a corpus folder of the server."""
    layers_all = list(clf.model.layer_shapes())
    c1, c2, c3 = st.columns(3)
    layers = c1.multiselect("Layers", layers_all, default=[lay for lay in ("conv2", "fc2") if lay in layers_all],
                            key="cladec_tr_layers")
    variants = c2.multiselect("Decoders", list(VARIANTS), default=list(VARIANTS), format_func=NAMES.get,
                              key="cladec_tr_variants")
    alpha = c3.number_input("alpha (classifier term)", 0.0, 0.999, 0.001, step=0.001, format="%.3f",
                            key="cladec_tr_alpha", help="(1 − alpha) MSE + alpha BCE(C(x̂), y); the paper's code "
                            "uses 0.001. RefAE always trains on the MSE alone.")
    c4, c5, c6 = st.columns(3)
    steps = int(c4.number_input("Steps per decoder", 10, 100_000, 300, step=50, key="cladec_tr_steps",
                                help="About 0.1-0.15 s per step for the lite demo classifier on 2 CPU cores."))
    data_src = c5.radio("Training data", jobs.DATA_SOURCES, key="cladec_tr_data")
    folder = c6.text_input("Corpus folder (Jamendo layout)", key="cladec_tr_folder",
                           disabled=data_src == "reference excerpts")
    name = st.text_input("Name of the decoder set", value=f"{clf.preset or 'custom'}-{'-'.join(layers)}",
                         key="cladec_tr_name")
    mgr = state.job_manager()
    if st.button("Train in the background", type="primary", key="cladec_train",
                 disabled=bool(mgr.active(JOB_KIND)) or not layers or not variants):
        with display.errors_shown("Could not start the training"):
            configs = [CladecConfig(layer=lay, variant=v, alpha=float(alpha), steps=steps) for lay in layers
                       for v in variants]
            out = trained_root() / jobs.safe_name(name, "a decoder set")
            if any(out.glob("*.safetensors")) and not (out / ".checkpoints").is_dir():
                raise ParameterError(f"a decoder set called {out.name!r} exists already: choose another name "
                                     "(nothing stored is overwritten)")
            data, what = jobs.training_data(data_src, ref, folder)

            def target(progress, _data=data, _folder=folder):
                from xai_core.train.data import load_split

                if _data is None:
                    _data = load_split(_folder, "train")

                def keep(b):  # each decoder is saved as soon as it is trained
                    name = decoder_file_name(b.layer, b.variant)
                    save_decoder(out / name, b, classifier=clf)
                    (out / ".checkpoints" / f"{Path(name).stem}.ckpt.pt").unlink(missing_ok=True)
                todo = [c for c in configs if not (out / decoder_file_name(c.layer, c.variant)).is_file()]
                done = train_decoders(clf, _data, todo, device=state.DEVICE, progress=progress,
                                      checkpoint_dir=out / ".checkpoints", resume=True, on_trained=keep,
                                      provenance={"data": what, "command": "the Decode a layer page"})
                shutil.rmtree(out / ".checkpoints", ignore_errors=True)
                return done

            mgr.submit(JOB_KIND, target, label=f"{len(configs)} decoders ({', '.join(layers)}) on {what}",
                       meta={"folder": str(out)})
            st.rerun()


def job_panel() -> None:
    """Progress of the decoder training job (any session's), cancel; reload the page once it is done."""
    def text(job) -> str:
        i = job.info
        return (f"{job.label}: {job.fraction:.0%} · decoder {i.get('decoder', '?')}/{i.get('decoders', '?')} "
                f"({i.get('layer', '')} {NAMES.get(i.get('variant'), '')}) · MSE {i.get('mse', float('nan')):.3f} · "
                f"{format_eta(job.eta_s)} left")

    def done(job) -> None:
        st.session_state["cladec_set_next"] = f"trained: {Path(job.meta['folder']).name}"

    jobs.job_panel(JOB_KIND, seen_key="cladec_job_seen", cancel_key="cladec_cancel", text=text, on_done=done,
                   caption="Training runs in the background: you may switch pages, reload or close this tab; "
                           "finished decoders are saved one by one, and a cancelled set resumes where it stopped.",
                   what="The last decoder training")


def current_evaluation(dset: DecoderSet) -> tuple[CladecEvaluation | None, str]:
    """The evaluation to show: a run of the store opened in this session for these decoders (reopened
    on the Runs page, or just computed here), else the folder's eval.json; and where it comes from."""
    rid = st.session_state.get("cladec_eval_run")
    if rid:
        try:
            info = state.run_store().info(rid)
            if Path(info["config"].get("decoders", "")) == dset.folder.resolve():
                return state.run_store().load(rid), f"run `{rid}` of the run store"
        except XaiError:
            st.session_state.pop("cladec_eval_run", None)
    if dset.evaluation is not None:
        return CladecEvaluation.from_dict(dset.evaluation), f"`{dset.folder / 'eval.json'}`"
    return None, ""


def evaluation_form(clf: Bundle, dset: DecoderSet) -> None:
    """Run the retraining evaluation of these decoders on a corpus folder, in the background."""
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    folder = c1.text_input("Corpus folder (Jamendo layout: train and test splits)", key="cladec_ev_folder")
    n_train = int(c2.number_input("Training excerpts", 64, 100_000, 4096, step=512, key="cladec_ev_ntrain"))
    n_test = int(c3.number_input("Test excerpts", 64, 100_000, 2048, step=512, key="cladec_ev_ntest"))
    steps = int(c4.number_input("Steps per classifier", 10, 100_000, 800, step=100, key="cladec_ev_steps",
                                help="Each decoder's retrained classifier and the one on the originals train this "
                                     "long (about 0.06 s per step for lite on 2 CPU cores)."))
    mgr = state.job_manager()
    if st.button("Evaluate in the background", key="cladec_eval", disabled=bool(mgr.active(EVAL_JOB_KIND))):
        with display.errors_shown("Could not start the evaluation"):
            if not folder or not os.path.isdir(folder):
                raise ParameterError(f"corpus folder {folder!r} does not exist on the server")
            cfg = EvalConfig(n_train=n_train, n_test=n_test, steps=steps)
            decoders = dset.ordered()
            writes_file = trained_root().resolve() in dset.folder.resolve().parents  # never the shipped demo

            def target(progress, _folder=folder):
                from xai_core.train.data import load_split

                frames = clf.model.config.n_frames
                train = draw_excerpts(load_split(_folder, "train"), cfg.n_train, seed=cfg.seed, frames=frames)
                test = draw_excerpts(load_split(_folder, "test"), cfg.n_test, seed=cfg.seed + 1, frames=frames)
                ev = evaluate_decoders(clf, decoders, train=train, test=test, config=cfg, device=state.DEVICE,
                                       progress=progress, data_info={"data": _folder, "test_split": "test"})
                if writes_file:
                    atomic_write_bytes(dset.folder / "eval.json", json.dumps(ev.to_dict(), indent=1).encode())
                return state.run_store().save_cladec_eval(ev, classifier=clf, decoders=dset.folder)

            mgr.submit(EVAL_JOB_KIND, target, label=f"evaluation of {len(decoders)} decoders on {folder}",
                       meta={"folder": str(dset.folder)})
            st.rerun()


def eval_job_panel() -> None:
    """Progress of the evaluation job; once done, this session shows its result."""
    jobs.job_panel(EVAL_JOB_KIND, seen_key="cladec_eval_seen", cancel_key="cladec_eval_cancel",
                   cancel_label="Cancel the evaluation", what="The last evaluation",
                   text=lambda job: (f"{job.label}: {job.fraction:.0%} · retraining on "
                                     f"{job.info.get('training', '…')} · {format_eta(job.eta_s)} left"),
                   on_done=lambda job: st.session_state.__setitem__("cladec_eval_run", job.result))
