"""``python -m xai_core info BUNDLE`` and ``python -m xai_core classify AUDIO...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xai_core.cliargs import SECONDS, add_device, add_force, float_range, int_range
from xai_core.text import one_line, printable


def _info(args) -> int:
    from xai_core.checkpoints import describe_bundle, load_bundle

    for path in args.bundles:
        print(printable(describe_bundle(load_bundle(path))))  # metadata may carry terminal escapes
    return 0


def _threshold(text: str) -> float | None:
    if text == "bundle":
        return None
    try:
        return float_range(0.0, 1.0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a probability in [0, 1] nor 'bundle'") from None


def _classify(args) -> int:
    """Per file: duration, share called singing, mean p(vocal), vocal segments; bad files are
    reported and skipped (exit status 1 if any), the others still classified."""
    from xai_core.assets import DemoPaths
    from xai_core.audio.io import load_audio
    from xai_core.checkpoints import load_bundle
    from xai_core.detect import detect_singing
    from xai_core.device import resolve_device
    from xai_core.errors import XaiError
    from xai_core.fileio import atomic_write_text, check_output_file

    check_output_file(args.json, force=args.force, what="--json")
    dev = resolve_device(args.device)
    clf = load_bundle(args.classifier or DemoPaths.at(args.demo_dir).classifier, device=dev,
                      expected_kind="classifier")
    rows, failed = [], 0
    print(f"{'file':40s} {'seconds':>8s} {'vocal':>7s} {'mean p':>7s} {'segments':>9s}")
    for path in args.audio:
        try:
            wave = load_audio(path, sample_rate=clf.mel.sample_rate, offset=args.offset, duration=args.duration)
            det = detect_singing(clf, wave, threshold=args.threshold, median_frames=args.median_frames, device=dev)
        except XaiError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            failed += 1
            continue
        segs = det.segments(min_seconds=args.min_segment)
        rows.append({"file": str(path), "seconds": round(det.duration, 3), "vocal_fraction": det.vocal_fraction,
                     "mean_p": float(det.prob.mean()), "threshold": det.threshold,
                     "median_frames": det.median_frames, "segments": segs})
        name = printable(path, keep="")
        name = name if len(name) <= 40 else "..." + name[-37:]
        print(f"{name:40s} {det.duration:8.1f} {det.vocal_fraction:7.1%} {det.prob.mean():7.3f} {len(segs):9d}")
        if args.segments:
            for a, b in segs:
                print(f"    {a:8.2f} - {b:8.2f} s")
    if rows:
        print(f"threshold {rows[0]['threshold']:.3f} on p(vocal) median-filtered over {rows[0]['median_frames']} frames")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1) + "\n", overwrite=args.force)
        print(f"wrote {args.json}")
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("info", help="describe model bundles (architecture, layers, metrics)")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE", help="a .safetensors bundle file")
    p.set_defaults(func=_info)

    c = sub.add_parser("classify", help="detect singing in audio files (share of frames, segments)")
    c.add_argument("audio", nargs="+", metavar="AUDIO", help="wav, flac, ogg or mp3 files")
    c.add_argument("--classifier", type=Path, default=None,
                   help="classifier bundle (default: the demo folder's, see --demo-dir)")
    c.add_argument("--demo-dir", default=None, help="folder with classifier.safetensors (default: $XAI_DEMO_DIR "
                   "or the bundled assets/demo)")
    c.add_argument("--threshold", type=_threshold, default=None, metavar="P|bundle",
                   help="threshold on the median-filtered p(vocal) (default: the one tuned on validation, "
                        "stored in the bundle; 0.5 if none)")
    c.add_argument("--median-frames", type=int_range(1, 100_000), default=None,
                   help="median-filter length in frames (default: the bundle's, 56 in the paper)")
    c.add_argument("--offset", type=SECONDS, default=0.0, help="start reading at this many seconds")
    c.add_argument("--duration", type=float_range(0.0, 1e6, lo_open=True), default=None,
                   help="read only this many seconds")
    c.add_argument("--segments", action="store_true", help="print each vocal segment")
    c.add_argument("--min-segment", type=SECONDS, default=0.0, help="shortest segment listed (seconds)")
    c.add_argument("--json", type=Path, default=None, help="write the results (with segments) as JSON")
    add_force(c, "an existing --json file")
    add_device(c)
    c.set_defaults(func=_classify)
