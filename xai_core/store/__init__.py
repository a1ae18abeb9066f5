"""Run store: AM and grid runs persisted in SQLite (metadata, results) with arrays as files."""

from xai_core.store.runs import RunStore, default_runs_dir

__all__ = ["RunStore", "default_runs_dir"]
