"""Command-line interface: ``python -m xai_core ...`` (also installed as ``xai``).

Each sub-package contributes its commands through a ``register(subparsers)`` function in its
own ``cli`` module, listed in ``COMMAND_MODULES``; this file only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from xai_core import __version__
from xai_core.errors import XaiError

# Modules exposing ``register(subparsers: argparse._SubParsersAction) -> None``.
COMMAND_MODULES: tuple[str, ...] = (
    "xai_core.models.cli",
    "xai_core.data.cli",
    "xai_core.actmax.cli",
    "xai_core.store.cli",
    "xai_core.train.cli",
    "xai_core.explain.cladec.cli",
    "xai_core.explain.consistency.cli",
    "xai_core.explain.depthmaps.cli",
    "xai_core.explain.sanity.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m xai_core",
        description="Vocal XAI Studio: explain what a singing-voice detector has learned.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except XaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
