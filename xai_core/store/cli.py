"""``python -m xai_core runs list|show|export|delete``."""

from __future__ import annotations

import argparse
import json
import math

from xai_core.cliargs import GL_ITERS, add_force
from xai_core.text import printable


def _store(args):
    from xai_core.store import RunStore

    return RunStore(args.runs_dir)


def _num(v, fmt: str) -> str:
    """A number from the database, formatted; anything else (a damaged row) as '?'."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "?"
    return format(v, fmt) if math.isfinite(v) else str(v)


def _list(args) -> int:
    runs = _store(args).list_runs(args.kind)
    if not runs:
        print("no runs")
    for r in runs:
        s = r["summary"]
        extra = ""
        if r["kind"] == "grid" and isinstance(s.get("selected"), dict):
            extra = "  " + "; ".join(
                f"{d}: lr={_num(v.get('lr'), 'g')} lam={_num(v.get('lam'), 'g')} it={v.get('n_iter')} "
                f"FID={_num(v.get('fid'), '.3g')}" for d, v in s["selected"].items() if isinstance(v, dict))
            if isinstance(s.get("in_range_selected"), dict):  # grids stored before the out-of-range flags: none
                extra += "  in range " + ", ".join(f"{d} {_num(v, '.0%')}" for d, v in s["in_range_selected"].items())
        elif r["kind"] == "am" and s:
            extra = (f"  response mean {_num(s.get('response_best_mean'), '.3f')}  "
                     f"p mean {_num(s.get('prob_best_mean'), '.3f')}")
            if "in_range_share" in s:  # runs stored before the out-of-range flags have none
                extra += f"  in range {_num(s.get('in_range_share'), '.0%')}"
        if r["status"] != "complete" and r["message"]:
            extra += f"  [{str(r['message'])[:120]}]"
        line = (f"{str(r['id']):<30} {str(r['kind']):<5} {str(r['status']):<9} {r['created']}  "
                f"{r['name'] or ''}{extra}")
        print(printable(line, keep=""))
    return 0


def _show(args) -> int:
    store = _store(args)
    info = store.info(args.run_id)
    print(printable(json.dumps({k: v for k, v in info.items() if k != "summary"}, indent=2, default=str)))
    if info["kind"] == "grid":
        from xai_core.actmax.cli import format_grid
        from xai_core.errors import StoreError

        grid = store.load(args.run_id)
        try:
            text = format_grid(grid)
        except (KeyError, IndexError, TypeError, ValueError) as exc:  # a selection row that lies
            raise StoreError(f"run {args.run_id}: its stored selection is damaged ({type(exc).__name__}: {exc})") \
                from None
        print(printable(text))
    else:
        print(printable(json.dumps(info["summary"], indent=2, default=str)))
    return 0


def _export(args) -> int:
    files = _store(args).export(args.run_id, args.out, wav=not args.no_wav, png=not args.no_png,
                                csv=not args.no_csv, griffin_lim_iter=args.griffin_lim_iter, force=args.force)
    print(f"{len(files)} files written to {args.out}")
    return 0


def _delete(args) -> int:
    _store(args).delete(args.run_id)
    print(f"deleted {args.run_id}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("runs", help="list, show, export or delete stored AM / grid runs")
    s = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    store = argparse.ArgumentParser(add_help=False)  # the option every action shares
    store.add_argument("--runs-dir", help="run store folder (default: $XAI_RUNS_DIR or ./runs)")
    q = s.add_parser("list", parents=[store], help="list runs (a failed run with its message)")
    q.add_argument("--kind", choices=("am", "grid", "cladec", "consistency", "depthmaps"))
    q.set_defaults(func=_list)
    q = s.add_parser("show", parents=[store], help="configuration, models, summary / FID tables of a run")
    q.add_argument("run_id")
    q.set_defaults(func=_show)
    q = s.add_parser("export", parents=[store], help="write CSV, PNG spectrograms and WAVs of a run")
    q.add_argument("run_id")
    q.add_argument("--out", required=True, help="output folder (created; not a symbolic link)")
    q.add_argument("--no-wav", action="store_true")
    q.add_argument("--no-png", action="store_true")
    q.add_argument("--no-csv", action="store_true")
    q.add_argument("--griffin-lim-iter", type=GL_ITERS, default=100, help="Griffin-Lim iterations of the WAVs")
    add_force(q, "files of an earlier export in --out")
    q.set_defaults(func=_export)
    q = s.add_parser("delete", parents=[store], help="delete a run")
    q.add_argument("run_id")
    q.set_defaults(func=_delete)
