"""Which models are loaded, cached once per process; device; run store; job manager.

The user's choice of classifier / generator / reference set is a small :class:`Source` kept in
``st.session_state``; the loaded objects are ``st.cache_resource`` entries keyed by that source
(and the file's modification time), so every session and every rerun shares one copy.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from xai_core.assets import DemoPaths, ReferenceSet, demo_dir
from xai_core.checkpoints import Bundle, check_compatible, import_state_dict, load_bundle, load_bundle_bytes
from xai_core.errors import CheckpointError, XaiError
from xai_core.store.jobs import JobManager, get_manager

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROLES = ("classifier", "generator", "reference")
BUILD_HINT = ("Build them with `make demo-assets` (or point `XAI_DEMO_DIR` at a folder holding "
              "classifier.safetensors, generator.safetensors and reference.safetensors).")


@dataclass(frozen=True)
class Source:
    """Where one model (or the reference set) comes from."""

    role: str  # classifier | generator | reference
    origin: str  # demo | path | upload | import
    path: str = ""  # file path (demo, path, import)
    name: str = ""  # display name (upload file name)
    digest: str = ""  # sha256 of uploaded bytes
    preset: str = ""  # architecture preset (import)

    @property
    def label(self) -> str:
        if self.origin == "upload":
            return f"upload {self.name}"
        return f"{self.origin}: {Path(self.path).name}"


def demo_source(role: str) -> Source | None:
    """The demo file for ``role`` if it exists."""
    p = getattr(DemoPaths.at(), role)
    return Source(role, "demo", str(p)) if p.is_file() else None


def missing_demo() -> list[Path]:
    return DemoPaths.at().missing()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError as exc:
        raise CheckpointError(f"{path}: no such file") from exc


@st.cache_resource(max_entries=6, show_spinner="Loading model…")
def _load_path(path: str, mtime: float, kind: str, device: str) -> Bundle:
    return load_bundle(path, device=device, expected_kind=kind)


@st.cache_resource(max_entries=6, show_spinner="Loading uploaded model…")
def _load_upload(digest: str, kind: str, device: str, _data: bytes | None, _name: str) -> Bundle:
    if _data is None:
        raise CheckpointError(f"the uploaded {kind} {_name!r} is no longer in memory; upload it again")
    return load_bundle_bytes(_data, name=_name, device=device, expected_kind=kind)


@st.cache_resource(max_entries=6, show_spinner="Importing state dict…")
def _load_import(path: str, mtime: float, kind: str, preset: str, device: str, norm_from: str) -> Bundle:
    normaliser = None
    if norm_from:
        normaliser = load_bundle(norm_from, expected_kind="classifier").normaliser
    return import_state_dict(path, kind=kind, preset=preset, normaliser=normaliser, device=device)


@st.cache_resource(max_entries=4, show_spinner="Loading reference excerpts…")
def _load_reference(path: str, mtime: float) -> ReferenceSet:
    return ReferenceSet.load(path)


def load_classifier_file(path: str | Path) -> Bundle:
    """A classifier bundle from a file on the server (process cache, reloaded when the file changes)."""
    return _load_path(str(path), _mtime(str(path)), "classifier", DEVICE)


def load_source(src: Source, *, data: bytes | None = None, norm_from: str = "") -> Bundle | ReferenceSet:
    """Load (or fetch from the process cache) what ``src`` designates. Raises XaiError."""
    if src.role == "reference":
        if src.origin == "upload":
            return _load_reference_upload(src.digest, data, src.name)
        return _load_reference(src.path, _mtime(src.path))
    if src.origin in ("demo", "path"):
        return _load_path(src.path, _mtime(src.path), src.role, DEVICE)
    if src.origin == "upload":
        return _load_upload(src.digest, src.role, DEVICE, data, src.name)
    if src.origin == "import":
        return _load_import(src.path, _mtime(src.path), src.role, src.preset, DEVICE, norm_from)
    raise CheckpointError(f"unknown model origin {src.origin!r}")


@st.cache_resource(max_entries=4, show_spinner="Loading reference excerpts…")
def _load_reference_upload(digest: str, _data: bytes | None, _name: str) -> ReferenceSet:
    if _data is None:
        raise CheckpointError(f"the uploaded reference set {_name!r} is no longer in memory; upload it again")
    return ReferenceSet.from_bytes(_data, name=_name)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources() -> dict[str, Source | None]:
    """The session's current sources (demo files by default)."""
    ss = st.session_state
    if "sources" not in ss:
        ss["sources"] = {r: demo_source(r) for r in ROLES}
    return ss["sources"]


def set_source(src: Source, **load_kwargs) -> None:
    """Load ``src`` now (raising XaiError on a defect) and make it current."""
    load_source(src, **load_kwargs)
    if src.origin == "import":
        st.session_state.setdefault("import_norm", {})[src.role] = load_kwargs.get("norm_from", "")
    sources()[src.role] = src


@dataclass
class Loaded:
    """What is loaded in this session; ``errors`` maps a role to its loading error."""

    classifier: Bundle | None
    generator: Bundle | None
    reference: ReferenceSet | None
    errors: dict[str, str]

    @property
    def compatible_error(self) -> str | None:
        if self.classifier is None or self.generator is None:
            return None
        try:
            check_compatible(self.classifier, self.generator)
        except XaiError as exc:
            return str(exc)
        return None


def loaded() -> Loaded:
    """Load the session's current sources (cached); never raises."""
    out: dict[str, object] = {}
    errors: dict[str, str] = {}
    norms = st.session_state.get("import_norm", {})
    for role, src in sources().items():
        out[role] = None
        if src is None:
            continue
        try:
            out[role] = load_source(src, norm_from=norms.get(role, ""))
        except XaiError as exc:
            errors[role] = str(exc)
    return Loaded(out["classifier"], out["generator"], out["reference"], errors)


def require(*roles: str) -> Loaded:
    """Loaded models, or an explanation on the page and ``st.stop()`` if one of ``roles`` is missing."""
    ld = loaded()
    missing = [r for r in roles if getattr(ld, r) is None]
    if missing:
        for r in missing:
            if r in ld.errors:
                st.error(f"The {r} could not be loaded: {ld.errors[r]}")
        st.warning(f"No {' / '.join(missing)} loaded. Load one on the **Models** page. "
                   + (BUILD_HINT if missing_demo() else ""))
        st.stop()
    if "classifier" in roles and "generator" in roles and ld.compatible_error:
        st.error(ld.compatible_error)
        st.stop()
    return ld


@st.cache_resource
def job_manager() -> JobManager:
    """The process-wide job manager (the same object for every session)."""
    return get_manager()


def runs_dir() -> Path:
    return Path(os.environ.get("XAI_RUNS_DIR") or "runs")


def demo_folder() -> Path:
    return demo_dir()


def run_store():
    """The run store (a fresh handle: it opens one SQLite connection per call, so any thread may use it)."""
    from xai_core.store import RunStore

    return RunStore(runs_dir())


def save_am(results, classifier: Bundle, generator: Bundle) -> list[str]:
    """Persist full AM results (one per direction); returns their run ids."""
    store = run_store()
    ids = [store.save_am(r, classifier=classifier, generator=generator) for r in results]
    for run_id in ids:  # a run with NaN results is stored as failed, never complete: say so on the page
        store.ensure_complete(run_id)
    return ids


def reopened_run(session_key: str, *, close_key: str, describe):
    """The run of the store reopened from the Runs page into ``session_key`` in this session, if any: loaded,
    shown in a caption (``describe(run_id, result)``) with a Close button; a run that cannot be loaded is an
    error box and is forgotten."""
    rid = st.session_state.get(session_key)
    if not rid:
        return None
    try:
        res = run_store().load(rid)
    except (XaiError, OSError) as exc:
        st.error(f"Could not reopen run {rid}: {exc}")
        st.session_state.pop(session_key, None)
        return None
    c1, c2 = st.columns([5, 1])
    c1.caption(f"Reopened from the run store: run `{rid}` ({describe(rid, res)}).")
    if c2.button("Close", key=close_key):
        st.session_state.pop(session_key, None)
        st.rerun()
    return res
