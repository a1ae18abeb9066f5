"""Persistent run store: an embedded SQLite database for metadata and results, arrays as files.

Layout under ``root`` (default ``$XAI_RUNS_DIR`` or ``./runs``)::

    runs.sqlite                      runs, grid parts, per-example numbers, FID tables
    <run id>/am.safetensors          an AM run's arrays (z, scores, traces, log-mel)
    <run id>/part-<dir>-<lr>-<lam>.safetensors   one finished grid group (all iteration counts)
    <run id>/eval.json               a ClaDec evaluation
    <run id>/consistency.safetensors a neuron-consistency result (scores, top-k, excerpts, adversarial versions)
    <run id>/depthmaps.safetensors  Grad-CAM depth maps of one excerpt (every layer, cumulative, explainers) + checks

Atomicity: array files are written to a temporary name and renamed; their database rows are
inserted afterwards in one transaction. A run is marked ``complete`` only in the transaction that
writes its last rows, so an interrupted run is never complete; a grid whose process died stays
``running`` (or ``failed``/``cancelled``) and :func:`~xai_core.actmax.engine.run_grid` resumes it,
skipping the groups already stored. Log-mel arrays are stored as float16 (error < 0.004 in log units);
everything else as float32 / int64.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import torch

from xai_core.actmax.config import AMConfig, GridConfig
from xai_core.actmax.engine import AMResult, GridResult
from xai_core.errors import ParameterError
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
    return out


def _result_meta(r: AMResult) -> dict:
    return {"config": r.config.to_dict(), "seconds": r.seconds, "device": r.device, "trace_every": r.trace_every}


def _result_from(tensors: dict[str, torch.Tensor], meta: dict, prefix: str = "") -> AMResult:
    kw = {k: tensors[prefix + k] for k in _FIELDS}
    kw["logmel_best"] = kw["logmel_best"].float()
    feats = {k[len(prefix) + len("feature:"):]: v for k, v in tensors.items() if k.startswith(prefix + "feature:")}
    return AMResult(config=AMConfig.from_dict(meta["config"]), seconds=float(meta["seconds"]),
                    device=meta["device"], trace_every=int(meta["trace_every"]), features=feats, **kw)


def _example_rows(run_id: str, r: AMResult, *, grid: bool) -> list[tuple]:
    c = r.config
    key = (c.direction, c.lr, c.lam, c.n_iter) if grid else (c.direction, c.lr, c.lam, c.n_iter)
    cols = [r.seeds, r.score_best, r.response_best, r.logit_best, r.prob_best, r.best_step, r.score_last,
            r.response_last, r.z_norm_best]
    lists = [v.tolist() for v in cols]
    return [(run_id, *key, i, *[col[i] for col in lists]) for i in range(len(lists[0]))]


class RunStore:
    """AM and grid runs on disk. ``RunStore(root)``; default root ``$XAI_RUNS_DIR`` or ``./runs``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = self.root / "runs.sqlite"
        with closing(self._connect()) as con, con:
            con.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db, timeout=30)
        con.row_factory = sqlite3.Row
        return con

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"

    def _row(self, run_id: str) -> sqlite3.Row:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ParameterError(f"no run {run_id!r} in {self.root}")
        return row

    # ---- AM runs -----------------------------------------------------------------------------
    def save_am(self, result: AMResult, *, classifier, generator, name: str | None = None) -> str:
        """Persist one AM result; returns its run id."""
        from safetensors.torch import save

        run_id = self._new_id("am")
        folder = self.root / run_id
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / "am.safetensors",
                      save(_result_tensors(result), metadata={"vocal_xai": json.dumps(_result_meta(result))}))
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "am", time.strftime("%Y-%m-%d %H:%M:%S"), "complete", name,
                         json.dumps(result.config.to_dict()), json.dumps(result.summary()),
                         json.dumps(_model_info(classifier)), json.dumps(_model_info(generator)),
                         result.device, result.seconds, None))
            con.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            _example_rows(run_id, result, grid=False))
        return run_id

    # ---- grid runs ---------------------------------------------------------------------------
    def start_grid(self, config: GridConfig, *, classifier, generator, name: str | None = None) -> str:
        """Register a grid run as ``running``; returns its id."""
        run_id = self._new_id("grid")
        (self.root / run_id).mkdir(parents=True)
        with closing(self._connect()) as con, con:
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
        if GridConfig.from_dict(json.loads(row["config"])) != config:
            raise ParameterError(f"run {run_id!r} was started with another grid configuration")
        for label, bundle in (("classifier", classifier), ("generator", generator)):
            if json.loads(row[label])["identity"] != bundle.identity:
                raise ParameterError(f"run {run_id!r} was started with another {label} "
                                     f"({json.loads(row[label])['identity'][:12]})")
        if row["status"] != "running":
            self.mark(run_id, "running")

    def save_grid_group(self, run_id: str, key: tuple[str, float, float], cells: dict[int, AMResult]) -> None:
        """Persist one finished (direction, lr, lam) group: its results at every iteration count."""
        from safetensors.torch import save

        d, lr, lam = key
        tensors, meta = {}, {}
        for n_iter, r in cells.items():
            tensors.update(_result_tensors(r, prefix=f"{n_iter}."))
            meta[str(n_iter)] = _result_meta(r)
        path = self.root / run_id / f"part-{d}-{lr:g}-{lam:g}.safetensors"
        atomic_write_bytes(path, save(tensors, metadata={"vocal_xai": json.dumps(meta)}))
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM examples WHERE run_id=? AND direction=? AND lr=? AND lam=?", (run_id, d, lr, lam))
            con.execute("INSERT OR REPLACE INTO parts VALUES (?,?,?,?,?)", (run_id, d, lr, lam, path.name))
            for r in cells.values():
                con.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                _example_rows(run_id, r, grid=True))

    def load_grid_groups(self, run_id: str) -> dict[tuple[str, float, float], dict[int, AMResult]]:
        """Every stored group of a grid run: ``(direction, lr, lam) -> {n_iter: AMResult}``."""
        from safetensors.torch import load_file

        with closing(self._connect()) as con:
            parts = con.execute("SELECT * FROM parts WHERE run_id = ?", (run_id,)).fetchall()
        out = {}
        for p in parts:
            path = self.root / run_id / p["path"]
            tensors = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = json.loads(f.metadata()["vocal_xai"])
            out[(p["direction"], float(p["lr"]), float(p["lam"]))] = {
                int(k): _result_from(tensors, m, prefix=f"{k}.") for k, m in meta.items()}
        return out

    def finish_grid(self, run_id: str, result: GridResult) -> None:
        """Write FID tables and the selection; mark the run complete (one transaction)."""
        summary = {"selected": result.selected,
                   "reference": {d: v.tolist() for d, v in result.reference.items()},
                   "reference_response": {d: v.tolist() for d, v in result.reference_response.items()}}
        rows = [(run_id, r["direction"], r["feature"], r["n_iter"], r["lr"], r["lam"], r["fid"], int(r["selected"]))
                for r in result.table()]
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM fid WHERE run_id = ?", (run_id,))
            con.executemany("INSERT INTO fid VALUES (?,?,?,?,?,?,?,?)", rows)
            con.execute("UPDATE runs SET status='complete', summary=?, device=?, seconds=?, message=NULL "
                        "WHERE id=?", (json.dumps(summary), result.device, result.seconds, run_id))

    def mark(self, run_id: str, status: str, *, message: str | None = None) -> None:
        """Set a run's status (``running``, ``failed``, ``cancelled``); never marks complete."""
        if status == "complete":
            raise ParameterError("a run is marked complete only by save_am / finish_grid")
        with closing(self._connect()) as con, con:
            con.execute("UPDATE runs SET status=?, message=? WHERE id=?", (status, message, run_id))

    # ---- queries -----------------------------------------------------------------------------
    def list_runs(self, kind: str | None = None) -> list[dict]:
        """Runs, newest first: id, kind, created, status, name, summary (dict), device, seconds."""
        q = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY created DESC, id DESC"
        with closing(self._connect()) as con:
            rows = con.execute(q, (kind,) if kind else ()).fetchall()
        return [{"id": r["id"], "kind": r["kind"], "created": r["created"], "status": r["status"], "name": r["name"],
                 "summary": json.loads(r["summary"]) if r["summary"] else {}, "device": r["device"],
                 "seconds": r["seconds"], "message": r["message"]} for r in rows]

    def info(self, run_id: str) -> dict:
        """Metadata of one run: the list_runs fields plus config and model identities."""
        r = self._row(run_id)
        return {"id": r["id"], "kind": r["kind"], "created": r["created"], "status": r["status"], "name": r["name"],
                "config": json.loads(r["config"]), "summary": json.loads(r["summary"]) if r["summary"] else {},
                "classifier": json.loads(r["classifier"]), "generator": json.loads(r["generator"]),
                "device": r["device"], "seconds": r["seconds"], "message": r["message"]}

    # ---- ClaDec evaluations --------------------------------------------------------------------
    def save_cladec_eval(self, evaluation, *, classifier, decoders: str | Path, name: str | None = None) -> str:
        """Persist a :class:`~xai_core.explain.cladec.CladecEvaluation` of the decoders in folder ``decoders``."""
        run_id = self._new_id("cladec")
        folder = self.root / run_id
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / "eval.json", json.dumps(evaluation.to_dict(), indent=1).encode())
        config = {**evaluation.config.to_dict(), "decoders": str(Path(decoders).resolve()),
                  "layers": list(dict.fromkeys(r["layer"] for r in evaluation.rows))}
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "cladec", time.strftime("%Y-%m-%d %H:%M:%S"), "complete", name,
                         json.dumps(config), json.dumps(evaluation.summary()), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, evaluation.seconds, None))
        return run_id

    # ---- neuron consistency ---------------------------------------------------------------------
    def save_consistency(self, result, *, classifier, excerpts: str = "", name: str | None = None,
                         seconds: float | None = None) -> str:
        """Persist a :class:`~xai_core.explain.consistency.ConsistencyResult` (``excerpts``: where the
        excerpt set came from, for the table)."""
        from xai_core.explain.consistency.serial import save_result

        run_id = self._new_id("consistency")
        folder = self.root / run_id
        folder.mkdir(parents=True)
        save_result(folder / "consistency.safetensors", result)
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
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "consistency", time.strftime("%Y-%m-%d %H:%M:%S"), "complete", name,
                         json.dumps(config), json.dumps(summary), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, seconds, None))
        return run_id

    # ---- depth maps ------------------------------------------------------------------------------
    def save_depthmaps(self, result, *, classifier, input_label: str = "", name: str | None = None) -> str:
        """Persist a :class:`~xai_core.explain.depthmaps.DepthMapResult` with its checks (``input_label``: where
        the excerpt came from)."""
        from xai_core.explain.depthmaps.serial import save_result

        run_id = self._new_id("depthmaps")
        folder = self.root / run_id
        folder.mkdir(parents=True)
        save_result(folder / "depthmaps.safetensors", result)
        config = {"unit": result.unit.label, "input": input_label, "layers": list(result.layers),
                  "explainers": list(result.gan), "k": len(result.kept)}
        summary = {k: round(v, 4) for k, v in result.summary().items()}
        if "sanity" in result.checks:
            summary["sanity_fails"] = [k for k, ok in result.checks["sanity"]["passes"].items() if not ok]
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, "depthmaps", time.strftime("%Y-%m-%d %H:%M:%S"), "complete", name,
                         json.dumps(config), json.dumps(summary), json.dumps(_model_info(classifier)),
                         json.dumps(None), None, None, None))
        return run_id

    def load(self, run_id: str):
        """An AM run as :class:`AMResult`; a grid as :class:`GridResult` (``status`` says if complete);
        a ClaDec evaluation as :class:`~xai_core.explain.cladec.CladecEvaluation`; a consistency run as
        :class:`~xai_core.explain.consistency.ConsistencyResult`."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        row = self._row(run_id)
        if row["kind"] == "depthmaps":
            from xai_core.explain.depthmaps.serial import load_result as load_depthmaps

            return load_depthmaps(self.root / run_id / "depthmaps.safetensors")
        if row["kind"] == "consistency":
            from xai_core.explain.consistency.serial import load_result

            return load_result(self.root / run_id / "consistency.safetensors")
        if row["kind"] == "cladec":
            from xai_core.explain.cladec import CladecEvaluation

            path = self.root / run_id / "eval.json"
            try:
                return CladecEvaluation.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ParameterError(f"run {run_id}: its evaluation file {path} is unreadable ({exc})") from exc
        if row["kind"] == "am":
            path = self.root / run_id / "am.safetensors"
            with safe_open(str(path), "pt") as f:
                meta = json.loads(f.metadata()["vocal_xai"])
            return _result_from(load_file(str(path)), meta)
        config = GridConfig.from_dict(json.loads(row["config"]))
        examples = {}
        for key, cells in self.load_grid_groups(run_id).items():
            for n_iter, r in cells.items():
                examples[(*key, n_iter)] = r
        fid: dict = {}
        with closing(self._connect()) as con:
            for f in con.execute("SELECT * FROM fid WHERE run_id = ?", (run_id,)).fetchall():
                arr = fid.setdefault((f["direction"], f["feature"]),
                                     np.full((len(config.iters), len(config.lrs), len(config.lams)), np.nan))
                arr[config.iters.index(f["n_iter"]), config.lrs.index(f["lr"]), config.lams.index(f["lam"])] = f["fid"]
        summary = json.loads(row["summary"]) if row["summary"] else {}
        return GridResult(config=config, fid=fid, selected=summary.get("selected", {}), examples=examples,
                          reference={d: torch.tensor(v) for d, v in summary.get("reference", {}).items()},
                          seconds=float(row["seconds"] or 0.0), device=row["device"] or "",
                          reference_response={d: torch.tensor(v)
                                              for d, v in summary.get("reference_response", {}).items()},
                          status=row["status"])

    def delete(self, run_id: str) -> None:
        """Remove a run's rows and files."""
        self._row(run_id)
        with closing(self._connect()) as con, con:
            for table, col in (("runs", "id"), ("parts", "run_id"), ("examples", "run_id"), ("fid", "run_id")):
                con.execute(f"DELETE FROM {table} WHERE {col} = ?", (run_id,))
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def export(self, run_id: str, out_dir: str | Path, *, wav: bool = True, png: bool = True,
               csv: bool = True, griffin_lim_iter: int = 100) -> list[Path]:
        """Write CSV tables, PNG spectrogram grids and WAVs (Griffin-Lim) of a run; returns the files.

        For a grid, the CSVs cover every cell; PNG/WAV cover the selected configuration per direction.
        WAVs of one set share one gain, so relative loudness is kept.
        """
        from xai_core.store.export import export_result

        return export_result(self.load(run_id), Path(out_dir), run_id=run_id, wav=wav, png=png, csv=csv,
                             griffin_lim_iter=griffin_lim_iter)
