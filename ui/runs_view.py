"""Runs page helpers: the run table, reopen, compare, export."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ui import display, state
from xai_core.actmax import AMResult
from xai_core.audio import zip_bytes
from xai_core.viz import mean_band_profile_figure


def table(runs: list[dict]) -> list[str]:
    """The run history as a selectable table; returns the selected run ids."""
    rows = [{"id": r["id"], "kind": r["kind"], "created": r["created"], "status": r["status"],
             "seconds": round(r["seconds"] or 0.0, 1), "device": r["device"],
             "summary": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in r["summary"].items() if not isinstance(v, (dict, list)))[:120]}
            for r in runs]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return st.multiselect("Select one run (reopen, export, delete) or two (compare)", [r["id"] for r in runs],
                          max_selections=2, key="runs_chosen")


def reopen(run_id: str) -> str:
    """Load a run into this session; returns the page to go to."""
    store = state.run_store()
    res = store.load(run_id)
    if hasattr(res, "claim"):  # a ClaDec evaluation: open its decoders on the Decode a layer page
        from ui.cladec_view import decoder_sets

        folder = Path(store.info(run_id)["config"].get("decoders", ""))
        for label, path in decoder_sets().items():
            if path.resolve() == folder:
                st.session_state["cladec_set_next"] = label
        st.session_state["cladec_eval_run"] = run_id
        return "pages/cladec.py"
    if hasattr(res, "z_inv"):  # a counterfactual: shown on the Counterfactuals page
        st.session_state["cf_reopened"] = run_id
        return "pages/counterfactual.py"
    if hasattr(res, "cumulative"):  # depth maps: shown on the Where does it listen? page
        st.session_state["dm_reopened"] = run_id
        return "pages/depthmaps.py"
    if hasattr(res, "topk_real"):  # a neuron-consistency run: shown on the Neuron consistency page
        st.session_state["cons_reopened"] = run_id
        return "pages/consistency.py"
    if isinstance(res, AMResult):
        st.session_state["am_results"] = [res]
        st.session_state["am_run_ids"] = [run_id]
        st.session_state["am_defaults"] = res.config
        return "pages/actmax.py"
    st.session_state["grid_run_id"] = run_id
    st.session_state.pop("grid_cell", None)
    return "pages/fid_grid.py"


def compare(a: str, b: str) -> None:
    """Side by side: configuration, summary and (for AM runs) the mean band profiles."""
    store = state.run_store()
    ia, ib = store.info(a), store.info(b)
    keys = sorted(set(ia["config"]) | set(ib["config"]))
    df = pd.DataFrame({"setting": keys, a: [str(ia["config"].get(k)) for k in keys],
                       b: [str(ib["config"].get(k)) for k in keys]})
    df["differs"] = df[a] != df[b]
    st.dataframe(df, hide_index=True, width="stretch")
    flat = lambda s: {k: v for k, v in s.items() if not isinstance(v, (dict, list))}  # noqa: E731
    sk = sorted(set(flat(ia["summary"])) | set(flat(ib["summary"])))
    st.dataframe(pd.DataFrame({"result": sk, a: [str(ia["summary"].get(k)) for k in sk],
                               b: [str(ib["summary"].get(k)) for k in sk]}), hide_index=True, width="stretch")
    ra, rb = store.load(a), store.load(b)
    sets = {}
    for rid, r in ((a, ra), (b, rb)):
        if isinstance(r, AMResult):
            sets[f"{rid} ({r.config.direction})"] = r.logmel_best.numpy()
        elif hasattr(r, "selected"):
            for d, sel in r.selected.items():
                key = (d, sel["lr"], sel["lam"], sel["n_iter"])
                if key in r.examples:
                    sets[f"{rid} selected {d}"] = r.examples[key].logmel_best.numpy()
    if sets:
        mel = state.loaded().classifier.mel if state.loaded().classifier else None
        if mel is not None:
            display.show_figure(mean_band_profile_figure(sets, cfg=mel, title="Mean log-mel per band"),
                                width=display.BAND_PROFILE_PX)


def export_zip(run_id: str) -> bytes:
    """Export a run (CSV, PNG, WAV) into a temporary folder and zip it."""
    with tempfile.TemporaryDirectory() as tmp:
        files = state.run_store().export(run_id, tmp)
        return zip_bytes({str(Path(f).relative_to(tmp)): Path(f).read_bytes() for f in files})
