"""``python -m xai_core runs list|show|export|delete``."""

from __future__ import annotations

import argparse
import json


def _store(args):
    from xai_core.store import RunStore

    return RunStore(args.runs_dir)


def _list(args) -> int:
    runs = _store(args).list_runs(args.kind)
    if not runs:
        print("no runs")
    for r in runs:
        s = r["summary"]
        extra = ""
        if r["kind"] == "grid" and s.get("selected"):
            extra = "  " + "; ".join(f"{d}: lr={v['lr']:g} lam={v['lam']:g} it={v['n_iter']} FID={v['fid']:.3g}"
                                     for d, v in s["selected"].items())
        elif r["kind"] == "am" and s:
            extra = f"  response mean {s['response_best_mean']:.3f}  p mean {s['prob_best_mean']:.3f}"
        print(f"{r['id']:<30} {r['kind']:<5} {r['status']:<9} {r['created']}  {r['name'] or ''}{extra}")
    return 0


def _show(args) -> int:
    store = _store(args)
    info = store.info(args.run_id)
    print(json.dumps({k: v for k, v in info.items() if k != "summary"}, indent=2, default=str))
    if info["kind"] == "grid":
        from xai_core.actmax.cli import format_grid

        print(format_grid(store.load(args.run_id)))
    else:
        print(json.dumps(info["summary"], indent=2))
    return 0


def _export(args) -> int:
    files = _store(args).export(args.run_id, args.out, wav=not args.no_wav, png=not args.no_png,
                                csv=not args.no_csv, griffin_lim_iter=args.griffin_lim_iter)
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
    q = s.add_parser("list", parents=[store], help="list runs")
    q.add_argument("--kind", choices=("am", "grid"))
    q.set_defaults(func=_list)
    q = s.add_parser("show", parents=[store], help="configuration, models, summary / FID tables of a run")
    q.add_argument("run_id")
    q.set_defaults(func=_show)
    q = s.add_parser("export", parents=[store], help="write CSV, PNG spectrograms and WAVs of a run")
    q.add_argument("run_id")
    q.add_argument("--out", required=True)
    q.add_argument("--no-wav", action="store_true")
    q.add_argument("--no-png", action="store_true")
    q.add_argument("--no-csv", action="store_true")
    q.add_argument("--griffin-lim-iter", type=int, default=100)
    q.set_defaults(func=_export)
    q = s.add_parser("delete", parents=[store], help="delete a run")
    q.add_argument("run_id")
    q.set_defaults(func=_delete)
