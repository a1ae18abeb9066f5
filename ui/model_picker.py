"""Model and reference-set pickers for the Models page, and a bundle summary."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import state
from ui.display import errors_shown
from xai_core.checkpoints import Bundle
from xai_core.models import GENERATOR_PRESETS, SVDNET_PRESETS, SVDNet

ORIGINS = {"demo": "Bundled demo", "upload": "Upload a bundle", "path": "Server path",
           "import": "Import a state dict (.pt/.pth)"}


def picker(role: str) -> None:
    """Choose where ``role`` (classifier / generator / reference) comes from; loads on confirm."""
    origins = ["demo", "upload", "path"] + (["import"] if role != "reference" else [])
    current = state.sources().get(role)
    origin = st.radio(f"{role.title()} source", origins, format_func=ORIGINS.get, horizontal=True,
                      key=f"origin_{role}", index=origins.index(current.origin) if current else 0)
    with errors_shown(f"Could not load the {role}"):
        if origin == "demo":
            src = state.demo_source(role)
            if src is None:
                st.warning(f"The bundled demo has no {role} file in `{state.demo_folder()}`. "
                           + state.BUILD_HINT)
            elif st.button("Use the demo", key=f"use_demo_{role}", disabled=current == src):
                state.set_source(src)
                st.rerun()
        elif origin == "upload":
            up = st.file_uploader(f"{role.title()} bundle (.safetensors)", type=["safetensors"],
                                  key=f"upload_{role}")
            if up is not None:
                data = up.getvalue()
                src = state.Source(role, "upload", name=up.name, digest=state.digest(data))
                if src != current:
                    state.set_source(src, data=data)
                    st.rerun()
        elif origin == "path":
            path = st.text_input("Path on the server", key=f"path_{role}",
                                 placeholder="/path/to/" + role + ".safetensors")
            if st.button("Load", key=f"load_path_{role}") and path:
                state.set_source(state.Source(role, "path", path=path.strip()))
                st.rerun()
        else:
            presets = sorted(SVDNET_PRESETS if role == "classifier" else GENERATOR_PRESETS)
            c1, c2 = st.columns([3, 1])
            path = c1.text_input("State-dict path on the server", key=f"imp_path_{role}")
            preset = c2.selectbox("Architecture preset", presets, key=f"imp_preset_{role}")
            demo_clf = state.demo_source("classifier")
            norm_from = ""
            if role == "classifier":
                use = st.checkbox("Take the normalisation statistics from the demo classifier",
                                  value=demo_clf is not None, disabled=demo_clf is None, key="imp_norm")
                norm_from = demo_clf.path if (use and demo_clf) else ""
                if not norm_from:
                    st.caption("Without statistics the classifier cannot be paired with a generator.")
            if st.button("Import", key=f"imp_btn_{role}") and path:
                state.set_source(state.Source(role, "import", path=path.strip(), preset=preset),
                                 norm_from=norm_from)
                st.rerun()


def bundle_summary(b: Bundle) -> None:
    """Layers with shapes, parameter counts, MelConfig, recorded metrics and provenance."""
    c1, c2, c3 = st.columns(3)
    c1.metric("Parameters", f"{b.n_parameters:,}")
    c2.metric("Preset", b.preset or "custom")
    c3.metric("Identity", b.identity[:10])
    if isinstance(b.model, SVDNet):
        params = {n: sum(p.numel() for p in getattr(b.model, n).parameters()) for n in b.model.layer_names}
        rows = [{"layer": n, "output shape": str(s), "parameters": params[n]}
                for n, s in b.model.layer_shapes().items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        cfg = b.model.config
        st.write(f"z in R^{cfg.z_dim} → log-mel ({cfg.n_frames} frames × {cfg.n_mels} bands)")
    with st.expander("MelConfig, metrics, provenance"):
        st.json({"mel": b.mel.to_dict(), "metrics": b.metrics, "provenance": b.provenance}, expanded=1)
