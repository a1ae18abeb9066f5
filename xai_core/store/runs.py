"""Persistent run store: an embedded SQLite database for metadata and results, arrays as files.

Layout under ``root`` (default ``$XAI_RUNS_DIR`` or ``./runs``)::

    runs.sqlite                      runs, grid parts, per-example numbers, FID tables
    <run id>/am.safetensors          an AM run's arrays (z, scores, traces, log-mel)
    <run id>/part-<dir>-<lr>-<lam>.safetensors   one finished grid group (all iteration counts)
    <run id>/eval.json               a ClaDec evaluation
    <run id>/consistency.safetensors a neuron-consistency result (scores, top-k, excerpts, adversarial versions)
    <run id>/depthmaps.safetensors  Grad-CAM depth maps of one excerpt (every layer, cumulative, explainers) + checks
    <run id>/counterfactual.safetensors  an excerpt, its GAN reconstruction, its more / less vocal versions, trajectory

Atomicity: array files are written to a temporary name and renamed; their database rows are
inserted afterwards in one transaction. A run is marked ``complete`` only in the transaction that
writes its last rows, so an interrupted run is never complete; a grid whose process died stays
``running`` (or ``failed``/``cancelled``) and :func:`~xai_core.actmax.engine.run_grid` resumes it,
skipping the groups already stored. Log-mel arrays are stored as float16 (error < 0.004 in log units);
everything else as float32 / int64.

Faults are :class:`~xai_core.errors.StoreError` (an :class:`~xai_core.errors.XaiError`, shown by the
app, exit status 1 on the command line), never a raw ``sqlite3`` / ``OSError`` / ``KeyError``: a
``runs.sqlite`` that is not a database (or is a folder), a root that is a file or cannot be written,
a run whose array file was deleted or damaged, a database row that is not JSON, an unknown run id.
Run ids are plain names (no ``/`` or ``..``), so no row can make the store read or delete outside
its folder.

Non-finite results: a run whose kept numbers contain NaN or infinity is stored, but with status
``failed`` and a message naming the fields, never ``complete`` (:data:`NON_FINITE` explains the
rule per kind); :meth:`RunStore.ensure_complete` turns that into a :class:`StoreError` for callers
that must fail (the command line). A grid keeps diverged cells (their FID is infinite by the
engine's rule, so they are never selected); it fails when a NaN FID appears or a direction's
selected configuration is not finite.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import torch

from xai_core.actmax.config import AMConfig, GridConfig
from xai_core.actmax.engine import AMResult, GridResult
from xai_core.actmax.flags import ExampleFlags, RealRange, reflag
from xai_core.errors import ParameterError, StoreError, XaiError
from xai_core.fileio import atomic_write_bytes

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, created TEXT NOT NULL, status TEXT NOT NULL,
    name TEXT, config TEXT NOT NULL, summary TEXT, classifier TEXT, generator TEXT,
    device TEXT, seconds REAL, message TEXT);
CREATE TABLE IF NOT EXISTS parts (
    run_id TEXT NOT NULL, direction TEXT NOT NULL, lr REAL NOT NULL, lam REAL NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (run_id, direction, lr, lam));
CREATE TABLE IF NOT EXISTS examples (
    run_id TEXT NOT NULL, direction TEXT, lr REAL, lam REAL, n_iter INTEGER, idx INTEGER, seed INTEGER,
    score_best REAL, response_best REAL, logit_best REAL, prob_best REAL, best_step INTEGER,
    score_last REAL, response_last REAL, z_norm_best REAL);
CREATE INDEX IF NOT EXISTS examples_run ON examples (run_id);
CREATE TABLE IF NOT EXISTS fid (
    run_id TEXT NOT NULL, direction TEXT, feature TEXT, n_iter INTEGER, lr REAL, lam REAL, fid REAL,
    selected INTEGER);
"""

_FIELDS = ("z_best", "z_last", "score_best", "score_last", "response_best", "response_last", "logit_best",
           "prob_best", "logmel_best", "trace", "best_step", "z_norm_best")
# the kept (best-iterate) results of an AM run: NaN / inf in any of them fails the run; the last iterate
# and the trace may diverge after the kept one without harm
_AM_KEPT = ("z_best", "score_best", "response_best", "logit_best", "prob_best", "logmel_best", "z_norm_best")
NON_FINITE = {
    "am": "the kept examples (z, score, response, logit, p(vocal), log-mel, |z|, FID features)",
    "grid": "the FID tables (NaN; an infinite FID marks a diverged cell) and each direction's selection "
            "(its FID and kept examples), the reference responses",
    "cladec": "the table (errors, MSEs of every layer and variant, the references)",
    "consistency": "the scores, responses, agreement and the attack's logits",
    "depthmaps": "the maps, logits, unit values, relevances and the summary",
    "counterfactual": "the reconstruction, its error and logits, the kept examples, their logits and the summary",
}
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DAMAGED = (KeyError, IndexError, TypeError, ValueError, OverflowError, AttributeError)


def default_runs_dir() -> Path:
    """``$XAI_RUNS_DIR`` if set, else ``./runs``."""
    return Path(os.environ.get("XAI_RUNS_DIR") or "runs")


def _model_info(bundle) -> dict:
    return {"identity": bundle.identity, "preset": bundle.preset, "path": str(bundle.path) if bundle.path else None}


def _result_tensors(r: AMResult, prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for k in _FIELDS:
        v = getattr(r, k).detach().cpu()
        if k == "logmel_best":
            v = v.to(torch.float16)
        out[prefix + k] = v.contiguous()
    for f, v in r.features.items():
        out[f"{prefix}feature:{f}"] = v.float().contiguous()
    if r.flags is not None:  # level and z_p as computed (the log-mel is stored as float16), flags as uint8
        for k, v in r.flags.arrays().items():
            out[f"{prefix}flags:{k}"] = torch.from_numpy(np.ascontiguousarray(v))
    return out


def _result_meta(r: AMResult) -> dict:
    meta = {"config": r.config.to_dict(), "seconds": r.seconds, "device": r.device, "trace_every": r.trace_every}
    if r.flags is not None:
        meta["flags"] = r.flags.meta()  # the rule and the real range used
    return meta


def _result_from(tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "") -> AMResult:
    kw = {k: tensors[prefix + k] for k in _FIELDS}
    kw["logmel_best"] = kw["logmel_best"].float()
    feats = {k[len(prefix) + len("feature:"):]: v for k, v in tensors.items() if k.startswith(prefix + "feature:")}
    r = AMResult(config=AMConfig.from_dict(meta["config"]), seconds=float(meta["seconds"]),
                 device=meta["device"], trace_every=int(meta["trace_every"]), features=feats, **kw)
    if "flags" in meta:
        arrays = {k[len(prefix) + len("flags:"):]: v.numpy() for k, v in tensors.items()
                  if k.startswith(prefix + "flags:")}
        r.flags = ExampleFlags.from_stored(meta["flags"], arrays, response=r.response_best.double().numpy(),
                                           z_norm=r.z_norm_best.double().numpy())
    else:  # a run stored before flags existed: ||z|| checked now, response and loudness unknown
        r.flags = reflag(r, None)
    return r


def _non_finite(values: dict, prefix: str = "", depth: int = 0) -> list[str]:
    """Names (``prefix.key[...]``) of the entries of ``values`` that hold NaN or infinity: numbers,
    floating tensors and arrays, nested in dicts, lists and dataclasses (configs skipped)."""
    bad: list[str] = []
    if depth > 6:
        return bad
    for key, v in values.items():
        name = f"{prefix}{key}"
        if isinstance(v, bool) or v is None or isinstance(v, (str, bytes)):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                bad.append(name)
        elif isinstance(v, torch.Tensor):
            if v.is_floating_point() and v.numel() and not bool(torch.isfinite(v).all()):
                n = int((~torch.isfinite(v)).sum())
                bad.append(f"{name} ({n} of {v.numel()} values)")
        elif isinstance(v, np.ndarray):
            if v.dtype.kind in "fc" and v.size and not bool(np.isfinite(v).all()):
                n = int((~np.isfinite(v)).sum())
                bad.append(f"{name} ({n} of {v.size} values)")
        elif isinstance(v, np.floating):
            if not np.isfinite(v):
                bad.append(name)
        elif isinstance(v, dict):
            bad += _non_finite(v, f"{name}.", depth + 1)
        elif isinstance(v, (list, tuple)):
            bad += _non_finite({f"[{i}]": x for i, x in enumerate(v)}, name, depth + 1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            bad += _non_finite({f.name: getattr(v, f.name) for f in dataclasses.fields(v)
                                if f.name not in ("config", "space", "classifier")}, f"{name}.", depth + 1)
    return bad


def _finite_status(bad: list[str], kind: str) -> tuple[str, str | None]:
    """``("complete", None)``, or ``("failed", message)`` naming the non-finite fields."""
    if not bad:
        return "complete", None
    shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
    return "failed", (f"non-finite results (NaN or infinity) in {shown}: stored as failed, not complete "
                      f"(checked for a {kind} run: {NON_FINITE[kind]}); a model that outputs NaN, or "
                      "settings that diverge (e.g. a smaller learning rate)")


def _am_non_finite(r: AMResult, prefix: str = "") -> list[str]:
    return _non_finite({**{k: getattr(r, k) for k in _AM_KEPT},
                        **{f"feature:{f}": v for f, v in r.features.items()}}, prefix)


def _example_rows(run_id: str, r: AMResult, *, grid: bool) -> list[tuple]:
    c = r.config
    key = (c.direction, c.lr, c.lam, c.n_iter) if grid else (c.direction, c.lr, c.lam, c.n_iter)
    cols = [r.seeds, r.score_best, r.response_best, r.logit_best, r.prob_best, r.best_step, r.score_last,
            r.response_last, r.z_norm_best]
    lists = [v.tolist() for v in cols]
    return [(run_id, *key, i, *[col[i] for col in lists]) for i in range(len(lists[0]))]


class RunStore:
    """AM and grid runs on disk. ``RunStore(root)``; default root ``$XAI_RUNS_DIR`` or ``./runs``.

    Raises :class:`~xai_core.errors.StoreError` when ``root`` is a file or cannot be created, or its
    ``runs.sqlite`` is not a usable SQLite database (a folder, random bytes, not writable).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_runs_dir()
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"run store {str(self.root)!r} is not a folder (--runs-dir / $XAI_RUNS_DIR must name a "
                             "folder)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the run store folder {str(self.root)!r}: {exc.strerror or exc} "
                             "(--runs-dir / $XAI_RUNS_DIR must be a writable folder)") from None
        self.db = self.root / "runs.sqlite"
        if self.db.is_dir():
            raise StoreError(f"run store database {str(self.db)!r} is a folder, not an SQLite file; move it away")
        with self._tx() as con:
            con.executescript(SCHEMA)

    # ---- database access -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db, timeout=30)
        con.row_factory = sqlite3.Row
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction (committed on success, rolled back on an error); database
        faults become :class:`StoreError` naming the file."""
        try:
            with closing(self._connect()) as con, con:
                yield con
        except sqlite3.Error as exc:
            raise StoreError(self._db_message(exc)) from exc
        except OverflowError as exc:  # an integer beyond SQLite's 64 bits
            raise StoreError(f"run store {str(self.db)!r}: a value does not fit the database ({exc})") from exc

    def _db_message(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            hint = "it is damaged or not an SQLite file; move it away to start a new store"
        elif "readonly" in text or "unable to open" in text:
            hint = "the folder or the file is not writable (--runs-dir / $XAI_RUNS_DIR)"
        elif "locked" in text or "busy" in text:
            hint = "another process holds it; try again"
        elif "no such table" in text or "no such column" in text or "has no column" in text:
            hint = "it is not a run store of this version; move it away to start a new store"
        else:
            hint = "a database error"
        return f"run store {str(self.db)!r}: {text} ({hint})"

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"

    def _folder(self, run_id: str) -> Path:
        """The folder of a run; ids that are not plain names never reach the file system."""
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
            raise StoreError(f"{str(run_id)[:80]!r} is not a run id (ids look like am-20250101-120000-1a2b3c; "
                             "'runs list' shows them)")
        return self.root / run_id

    def _row(self, run_id: str) -> sqlite3.Row:
        self._folder(run_id)
        with self._tx() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.root} ('runs list' shows the stored runs)")
        return row

    def _json(self, row: sqlite3.Row, column: str, *, strict: bool = True, default=None, expect: type = dict):
        """A JSON column of a row: an ``expect`` (a JSON object by default) or null (then ``default``); anything
        else is a :class:`StoreError` (``strict``) or ``default``."""
        try:
            raw = row[column]
            value = json.loads(raw) if raw else None
        except (IndexError, KeyError, TypeError, ValueError, RecursionError) as exc:
            if not strict:
                return default
            raise StoreError(f"run {row['id']!r}: its {column} in {str(self.db)!r} is not readable JSON ({exc}); "
                             "the database row is damaged") from None
        if value is None:
            return default
        if not isinstance(value, expect):
            if not strict:
                return default
            raise StoreError(f"run {row['id']!r}: its {column} in {str(self.db)!r} is a JSON {type(value).__name__}, "
                             f"not an object; the database row is damaged")
        return value

    def _write_files(self, run_id: str, write) -> None:
        """Create the run's folder and let ``write(folder)`` fill it; file-system errors as StoreError."""
        folder = self._folder(run_id)
        try:
            folder.mkdir(parents=True)
            write(folder)
        except OSError as exc:
            raise StoreError(f"cannot write the files of run {run_id} in {str(folder)!r}: {exc.strerror or exc} "
                             "(--runs-dir / $XAI_RUNS_DIR must be writable)") from None

    # ---- AM runs -----------------------------------------------------------------------------
    def save_am(self, result: AMResult, *, classifier, generator, name: str | None = None) -> str:
        """Persist one AM result; returns its run id. The run is ``complete``, or ``failed`` with a message
        if its kept results hold NaN or infinity (see :data:`NON_FINITE`)."""
        from safetensors.torch import save

        status, message = _finite_status(_am_non_finite(result), "am")
        run_id = self._new_id("am")
        self._write_files(run_id, lambda folder: atomic_write_bytes(
            folder / "am.safetensors",
            save(_result_tensors(result), metadata={"vocal_xai": json.dumps(_result_meta(result))})))
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "am", time.strftime("%Y-%m-%d %H:%M:%S"), status, name,
                         json.dumps(result.config.to_dict()), json.dumps(result.summary()),
                         json.dumps(_model_info(classifier)), json.dumps(_model_info(generator)),
                         result.device, result.seconds, message))
            con.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            _example_rows(run_id, result, grid=False))
        return run_id

    def ensure_complete(self, run_id: str) -> None:
        """Raise :class:`StoreError` with the run's message unless it is ``complete``."""
        row = self._row(run_id)
        if row["status"] != "complete":
            raise StoreError(f"run {run_id} is {row['status']}: {row['message'] or 'no message'}")

    # ---- grid runs ---------------------------------------------------------------------------
    def start_grid(self, config: GridConfig, *, classifier, generator, name: str | None = None) -> str:
        """Register a grid run as ``running``; returns its id."""
        run_id = self._new_id("grid")
        self._write_files(run_id, lambda folder: None)
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "grid", time.strftime("%Y-%m-%d %H:%M:%S"), "running", name,
                         json.dumps(config.to_dict()), None, json.dumps(_model_info(classifier)),
                         json.dumps(_model_info(generator)), None, None, None))
        return run_id

    def check_resumable(self, run_id: str, config: GridConfig, *, classifier, generator) -> None:
        """Raise unless ``run_id`` is a grid of this configuration on these models."""
        row = self._row(run_id)
        if row["kind"] != "grid":
            raise ParameterError(f"run {run_id!r} is a {row['kind']} run, not a grid")
        try:
            stored = GridConfig.from_dict(self._json(row, "config"))
        except (XaiError, *_DAMAGED) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"run {run_id!r}: its stored grid configuration is damaged ({exc})") from None
        if stored != config:
            raise ParameterError(f"run {run_id!r} was started with another grid configuration")
        for label, bundle in (("classifier", classifier), ("generator", generator)):
            info = self._json(row, label)
            identity = info.get("identity") if isinstance(info, dict) else None
            if identity != bundle.identity:
                raise ParameterError(f"run {run_id!r} was started with another {label} ({str(identity)[:12]})")
        if row["status"] != "running":
            self.mark(run_id, "running")

    def save_grid_group(self, run_id: str, key: tuple[str, float, float], cells: dict[int, AMResult]) -> None:
        """Persist one finished (direction, lr, lam) group: its results at every iteration count. A diverged
        group (NaN results) is stored as it is: its FID is infinite, so it is never selected."""
        from safetensors.torch import save

        d, lr, lam = key
        tensors, meta = {}, {}
        for n_iter, r in cells.items():
            tensors.update(_result_tensors(r, prefix=f"{n_iter}."))
            meta[str(n_iter)] = _result_meta(r)
        path = self._folder(run_id) / f"part-{d}-{lr:g}-{lam:g}.safetensors"
        try:
            atomic_write_bytes(path, save(tensors, metadata={"vocal_xai": json.dumps(meta)}))
        except OSError as exc:
            raise StoreError(f"cannot write {str(path)!r} of run {run_id}: {exc.strerror or exc}") from None
        with self._tx() as con:
            con.execute("DELETE FROM examples WHERE run_id=? AND direction=? AND lr=? AND lam=?", (run_id, d, lr, lam))
            con.execute("INSERT OR REPLACE INTO parts VALUES (?,?,?,?,?)", (run_id, d, lr, lam, path.name))
            for r in cells.values():
                con.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                _example_rows(run_id, r, grid=True))

    def load_grid_groups(self, run_id: str) -> dict[tuple[str, float, float], dict[int, AMResult]]:
        """Every stored group of a grid run: ``(direction, lr, lam) -> {n_iter: AMResult}``."""
        folder = self._folder(run_id)
        with self._tx() as con:
            parts = con.execute("SELECT * FROM parts WHERE run_id = ?", (run_id,)).fetchall()
        out = {}
        for p in parts:
            name = p["path"]
            if not isinstance(name, str) or not _RUN_ID.fullmatch(name) or ".." in name:
                raise StoreError(f"run {run_id}: the database names a part file {str(name)[:80]!r} that is not a "
                                 "plain file name; the row is damaged")
            tensors, meta = self._read_arrays(run_id, folder / name)
            try:
                out[(str(p["direction"]), float(p["lr"]), float(p["lam"]))] = {
                    int(k): _result_from(tensors, m, prefix=f"{k}.") for k, m in meta.items()}
            except (XaiError, *_DAMAGED) as exc:
                raise StoreError(f"run {run_id}: {str(folder / name)!r} is damaged ({type(exc).__name__}: {exc})") \
                    from None
        return out

    def _read_arrays(self, run_id: str, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
        """The tensors and ``vocal_xai`` metadata of one of a run's safetensors files."""
        from safetensors import SafetensorError, safe_open

        if not path.is_file():
            raise StoreError(f"run {run_id}: its file {str(path)!r} is missing (deleted?); 'runs delete {run_id}' "
                             "removes the run")
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {})["vocal_xai"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        except (SafetensorError, OSError, RecursionError, *_DAMAGED) as exc:
            raise StoreError(f"run {run_id}: {str(path)!r} is not a readable array file ({type(exc).__name__}: "
                             f"{exc})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"run {run_id}: {str(path)!r} has damaged metadata")
        return tensors, meta

    def finish_grid(self, run_id: str, result: GridResult) -> None:
        """Write FID tables and the selection; mark the run complete (one transaction), or ``failed`` when a
        FID is NaN or a direction's selection is not finite (see :data:`NON_FINITE`)."""
        bad = [f"fid[{d}/{f}] ({int(np.isnan(arr).sum())} NaN)" for (d, f), arr in result.fid.items()
               if np.isnan(np.asarray(arr, dtype=np.float64)).any()]
        for d, sel in result.selected.items():
            if not math.isfinite(float(sel.get("fid", math.nan))):
                bad.append(f"selected[{d}].fid ({sel.get('fid')}: every configuration diverged)")
            r = result.examples.get((d, sel.get("lr"), sel.get("lam"), sel.get("n_iter")))
            if r is not None:
                bad += _am_non_finite(r, prefix=f"selected[{d}].")
        bad += _non_finite({"reference_response": dict(result.reference_response)})
        status, message = _finite_status(bad, "grid")
        summary = {"selected": result.selected,
                   "reference": {d: v.tolist() for d, v in result.reference.items()},
                   "reference_response": {d: v.tolist() for d, v in result.reference_response.items()}}
        if result.real_range is not None:
            summary["real_range"] = result.real_range.to_dict()
        shares = {d: result.examples[k].flags.share_in_range for d, sel in result.selected.items()
                  if (k := (d, sel.get("lr"), sel.get("lam"), sel.get("n_iter"))) in result.examples
                  and result.examples[k].flags is not None}
        if shares:
            summary["in_range_selected"] = shares  # share of in-range examples of each selected configuration
        rows = [(run_id, r["direction"], r["feature"], r["n_iter"], r["lr"], r["lam"], r["fid"], int(r["selected"]))
                for r in result.table()]
        with self._tx() as con:
            con.execute("DELETE FROM fid WHERE run_id = ?", (run_id,))
            con.executemany("INSERT INTO fid VALUES (?,?,?,?,?,?,?,?)", rows)
            con.execute("UPDATE runs SET status=?, summary=?, device=?, seconds=?, message=? "
                        "WHERE id=?", (status, json.dumps(summary), result.device, result.seconds, message, run_id))

    def mark(self, run_id: str, status: str, *, message: str | None = None) -> None:
        """Set a run's status (``running``, ``failed``, ``cancelled``); never marks complete."""
        if status == "complete":
            raise ParameterError("a run is marked complete only by save_am / finish_grid")
        with self._tx() as con:
            con.execute("UPDATE runs SET status=?, message=? WHERE id=?", (status, message, run_id))

    # ---- queries -----------------------------------------------------------------------------
    def list_runs(self, kind: str | None = None) -> list[dict]:
        """Runs, newest first: id, kind, created, status, name, summary (dict), device, seconds.

        A row whose summary is not readable JSON is listed with an empty summary (``info`` and ``load``
        of it raise :class:`StoreError`), so one damaged row does not hide the others."""
        q = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created DESC, id DESC"
        with self._tx() as con:
            rows = con.execute(q, (kind,) if kind else ()).fetchall()
        out = []
        try:
            for r in rows:
                summary = self._json(r, "summary", strict=False, default={})
                out.append({"id": r["id"], "kind": r["kind"], "created": r["created"], "status": r["status"],
                            "name": r["name"], "summary": summary,
                            "device": r["device"], "seconds": r["seconds"], "message": r["message"]})
        except IndexError as exc:
            raise StoreError(f"run store {str(self.db)!r}: unexpected table layout ({exc}); it is not a run store "
                             "of this version") from None
        return out

    def info(self, run_id: str) -> dict:
        """Metadata of one run: the list_runs fields plus config and model identities."""
        r = self._row(run_id)
        try:
            return {"id": r["id"], "kind": r["kind"], "created": r["created"], "status": r["status"],
                    "name": r["name"], "config": self._json(r, "config", default={}),
                    "summary": self._json(r, "summary", default={}),
                    "classifier": self._json(r, "classifier"), "generator": self._json(r, "generator"),
                    "device": r["device"], "seconds": r["seconds"], "message": r["message"]}
        except IndexError as exc:
            raise StoreError(f"run store {str(self.db)!r}: unexpected table layout ({exc})") from None

    # ---- ClaDec evaluations --------------------------------------------------------------------
    def save_cladec_eval(self, evaluation, *, classifier, decoders: str | Path, name: str | None = None) -> str:
        """Persist a :class:`~xai_core.explain.cladec.CladecEvaluation` of the decoders in folder ``decoders``
        (``failed`` if its table holds NaN or infinity)."""
        status, message = _finite_status(
            _non_finite({"original": evaluation.original, "retrained_input": evaluation.retrained_input,
                         "rows": evaluation.rows}), "cladec")
        run_id = self._new_id("cladec")
        self._write_files(run_id, lambda folder: atomic_write_bytes(
            folder / "eval.json", json.dumps(evaluation.to_dict(), indent=1).encode()))
        config = {**evaluation.config.to_dict(), "decoders": str(Path(decoders).resolve()),
                  "layers": list(dict.fromkeys(r["layer"] for r in evaluation.rows))}
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "cladec", time.strftime("%Y-%m-%d %H:%M:%S"), status, name,
                         json.dumps(config), json.dumps(evaluation.summary()), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, evaluation.seconds, message))
        return run_id

    # ---- neuron consistency ---------------------------------------------------------------------
    def save_consistency(self, result, *, classifier, excerpts: str = "", name: str | None = None,
                         seconds: float | None = None) -> str:
        """Persist a :class:`~xai_core.explain.consistency.ConsistencyResult` (``excerpts``: where the
        excerpt set came from, for the table); ``failed`` if its scores hold NaN or infinity."""
        from xai_core.explain.consistency.serial import save_result

        status, message = _finite_status(_non_finite(
            {k: getattr(result, k) for k in ("chance", "real", "adv", "responses_real", "responses_adv",
                                             "agreement", "attack")}), "consistency")
        run_id = self._new_id("consistency")
        self._write_files(run_id, lambda folder: save_result(folder / "consistency.safetensors", result))
        s = result.summary()
        config = {**result.config.to_dict(), "excerpts": excerpts,
                  "attack": result.attack.config.to_dict() if result.attack is not None else None}
        deepest = [layer for layer in result.layers if layer != "logit"][-1:] or list(result.layers)[-1:]
        summary = {"concept": s["concept"], "k": s["k"], "n": s["n"], "chance": round(s["chance"], 4)}
        for layer in deepest:
            row = s["layers"][layer]
            summary[f"{layer}_real"] = round(row["real_mean"], 4)
            if "adv_mean" in row:
                summary[f"{layer}_adv"] = round(row["adv_mean"], 4)
        if "attack" in s:
            summary["success_rate"] = round(s["attack"]["success_rate"], 4)
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "consistency", time.strftime("%Y-%m-%d %H:%M:%S"), status, name,
                         json.dumps(config), json.dumps(summary), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, seconds, message))
        return run_id

    # ---- depth maps ------------------------------------------------------------------------------
    def save_depthmaps(self, result, *, classifier, input_label: str = "", name: str | None = None) -> str:
        """Persist a :class:`~xai_core.explain.depthmaps.DepthMapResult` with its checks (``input_label``: where
        the excerpt came from); ``failed`` if its maps or summary hold NaN or infinity."""
        from xai_core.explain.depthmaps.serial import save_result

        summary = {k: round(v, 4) for k, v in result.summary().items()}
        status, message = _finite_status(_non_finite(
            {**{k: getattr(result, k) for k in ("logmel", "layer_maps", "peak", "cumulative", "logit", "value",
                                                "gan", "relevance")}, "summary": summary}), "depthmaps")
        run_id = self._new_id("depthmaps")
        self._write_files(run_id, lambda folder: save_result(folder / "depthmaps.safetensors", result))
        config = {"unit": result.unit.label, "input": input_label, "layers": list(result.layers),
                  "explainers": list(result.gan), "k": len(result.kept)}
        if "sanity" in result.checks:
            summary["sanity_fails"] = [k for k, ok in result.checks["sanity"]["passes"].items() if not ok]
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "depthmaps", time.strftime("%Y-%m-%d %H:%M:%S"), status, name,
                         json.dumps(config), json.dumps(summary), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, None, message))
        return run_id

    # ---- counterfactuals ---------------------------------------------------------------------------
    def save_counterfactual(self, result, *, classifier, generator, name: str | None = None) -> str:
        """Persist a :class:`~xai_core.explain.counterfactual.CounterfactualResult` (one safetensors file);
        ``failed`` if its reconstruction, kept examples or summary hold NaN or infinity."""
        from xai_core.explain.counterfactual.serial import save_result

        summary = result.summary()
        status, message = _finite_status(_non_finite(
            {**{k: getattr(result, k) for k in ("reconstruction", "z_inv", "rec_mse", "logit_reconstruction",
                                                "z_best", "logmel_best", "logit_best")}, "summary": summary}),
            "counterfactual")
        run_id = self._new_id("counterfactual")
        self._write_files(run_id, lambda folder: save_result(folder / "counterfactual.safetensors", result))
        config = {**result.config.to_dict(), "input": result.label}
        with self._tx() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "counterfactual", time.strftime("%Y-%m-%d %H:%M:%S"), status, name,
                         json.dumps(config), json.dumps(summary), json.dumps(_model_info(classifier)),
                         json.dumps(_model_info(generator)), result.device, result.seconds.get("total"), message))
        return run_id

    def load(self, run_id: str):
        """An AM run as :class:`AMResult`; a grid as :class:`GridResult` (``status`` says if complete);
        a ClaDec evaluation as :class:`~xai_core.explain.cladec.CladecEvaluation`; a consistency run as
        :class:`~xai_core.explain.consistency.ConsistencyResult`; a depth-map run as
        :class:`~xai_core.explain.depthmaps.DepthMapResult`. A missing or damaged file: :class:`StoreError`."""
        row = self._row(run_id)
        folder = self._folder(run_id)
        try:
            return self._load(row, run_id, folder)
        except StoreError:
            raise
        except (XaiError, OSError, RecursionError, *_DAMAGED) as exc:
            raise StoreError(f"run {run_id}: its stored results are damaged ({type(exc).__name__}: {exc})") from None

    def _load(self, row: sqlite3.Row, run_id: str, folder: Path):
        kind = row["kind"]
        if kind == "counterfactual":
            from xai_core.explain.counterfactual.serial import load_result as load_counterfactual

            path = folder / "counterfactual.safetensors"
            if not path.is_file():
                raise StoreError(f"run {run_id}: its file {str(path)!r} is missing (deleted?); 'runs delete "
                                 f"{run_id}' removes the run")
            return load_counterfactual(path)
        if kind in ("depthmaps", "consistency", "cladec"):
            path = folder / {"depthmaps": "depthmaps.safetensors", "consistency": "consistency.safetensors",
                             "cladec": "eval.json"}[kind]
            if not path.is_file():
                raise StoreError(f"run {run_id}: its file {str(path)!r} is missing (deleted?); 'runs delete "
                                 f"{run_id}' removes the run")
            if kind == "depthmaps":
                from xai_core.explain.depthmaps.serial import load_result as load_depthmaps

                return load_depthmaps(path)
            if kind == "consistency":
                from xai_core.explain.consistency.serial import load_result

                return load_result(path)
            from xai_core.explain.cladec import CladecEvaluation

            try:
                return CladecEvaluation.from_dict(json.loads(path.read_text()))
            except (OSError, RecursionError, *_DAMAGED) as exc:
                raise StoreError(f"run {run_id}: its evaluation file {path} is unreadable ({exc})") from exc
        if kind == "am":
            tensors, meta = self._read_arrays(run_id, folder / "am.safetensors")
            return _result_from(tensors, meta)
        if kind != "grid":
            raise StoreError(f"run {run_id}: unknown kind {str(kind)[:40]!r} in the database")
        config = GridConfig.from_dict(self._json(row, "config"))
        examples = {}
        for key, cells in self.load_grid_groups(run_id).items():
            for n_iter, r in cells.items():
                examples[(*key, n_iter)] = r
        fid: dict = {}
        with self._tx() as con:
            for f in con.execute("SELECT * FROM fid WHERE run_id = ?", (run_id,)).fetchall():
                arr = fid.setdefault((f["direction"], f["feature"]),
                                     np.full((len(config.iters), len(config.lrs), len(config.lams)), np.nan))
                value = f["fid"]
                arr[config.iters.index(f["n_iter"]), config.lrs.index(f["lr"]), config.lams.index(f["lam"])] = \
                    np.nan if value is None else value
        summary = self._json(row, "summary", default={})
        real_range = summary.get("real_range")
        return GridResult(config=config, fid=fid, selected=summary.get("selected", {}), examples=examples,
                          reference={d: torch.tensor(v) for d, v in summary.get("reference", {}).items()},
                          seconds=float(row["seconds"] or 0.0), device=row["device"] or "",
                          reference_response={d: torch.tensor(v)
                                              for d, v in summary.get("reference_response", {}).items()},
                          status=row["status"],
                          real_range=RealRange.from_dict(real_range) if real_range is not None else None)

    def delete(self, run_id: str) -> None:
        """Remove a run's rows and files (a run folder that is a symbolic link: the link only)."""
        self._row(run_id)
        folder = self._folder(run_id)
        with self._tx() as con:
            for table, col in (("runs", "id"), ("parts", "run_id"), ("examples", "run_id"), ("fid", "run_id")):
                con.execute(f"DELETE FROM {table} WHERE {col} = ?", (run_id,))
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)

    def export(self, run_id: str, out_dir: str | Path, *, wav: bool = True, png: bool = True,
               csv: bool = True, griffin_lim_iter: int = 100, force: bool = False) -> list[Path]:
        """Write CSV tables, PNG spectrogram grids and WAVs (Griffin-Lim) of a run; returns the files.

        For a grid, the CSVs cover every cell; PNG/WAV cover the selected configuration per direction.
        WAVs of one set share one gain, so relative loudness is kept. Every file is written atomically;
        ``out_dir`` must not be a symbolic link, no file or sub-folder inside it may be one, and an
        existing file is replaced only with ``force`` (else :class:`~xai_core.errors.ParameterError`
        before anything is written).
        """
        from xai_core.store.export import export_result

        result = self.load(run_id)
        try:
            return export_result(result, Path(out_dir), run_id=run_id, wav=wav, png=png, csv=csv,
                                 griffin_lim_iter=griffin_lim_iter, force=force)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:  # a summary row that lies
            raise StoreError(f"run {run_id}: its stored results are damaged ({type(exc).__name__}: {exc})") from None
