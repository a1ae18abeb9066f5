"""Command-line interface: ``python -m xai_core ...`` (also installed as ``xai``).

Each sub-package contributes its commands through a ``register(subparsers)`` function in its
own ``cli`` module, listed in ``COMMAND_MODULES``; this file only assembles them and turns errors
into one line on stderr and an exit status:

* 0: success;
* 2: a usage error: argparse's (with the usage), or a :class:`~xai_core.errors.ParameterError`
  (a bad value, an existing output without ``--force``, a file where a folder is needed);
* 1: a failure: a bad or damaged file (:class:`~xai_core.errors.CheckpointError`,
  :class:`~xai_core.errors.DataError`), a run-store fault (:class:`~xai_core.errors.StoreError`), a
  refused or unwritable output (:class:`~xai_core.errors.OutputError`, ``OSError``), running out
  of memory, or any unexpected exception (``internal error (...)``);
* 130: interrupted (Ctrl-C).

No traceback is printed unless the global ``--debug`` is given (``python -m xai_core --debug
COMMAND ...``), which re-raises every error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xai_core import __version__
from xai_core.errors import ParameterError, XaiError
from xai_core.text import one_line

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
    "xai_core.explain.counterfactual.cli",
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from xai_core.cliargs import document_ranges

    parser = argparse.ArgumentParser(
        prog="python -m xai_core",
        description="Vocal XAI Studio: explain what a singing-voice detector has learned.",
        epilog="exit status: 0 success, 2 bad arguments, 1 failure (bad file, run store, output, memory, "
               "internal error), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="re-raise errors with their Python traceback (before the command: "
                             "python -m xai_core --debug COMMAND ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    document_ranges(parser)
    return parser


def _os_error_text(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    if names:
        return f"{what}: " + " -> ".join(repr(str(n)) for n in names)
    return str(exc) or what


def describe_error(exc: BaseException) -> tuple[int, str]:
    """``(exit status, one-line message)`` of an exception escaping a command."""
    torch = sys.modules.get("torch")  # out-of-memory errors exist only once torch is loaded
    if isinstance(exc, ParameterError):
        return EXIT_USAGE, one_line(exc)
    if isinstance(exc, XaiError):
        return EXIT_FAILURE, one_line(exc)
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        first = str(exc).strip().split(". ")[0]
        return EXIT_FAILURE, one_line(f"out of device memory ({first}); use fewer examples / a smaller batch or "
                                      "chunk, or --device cpu")
    if isinstance(exc, MemoryError):
        return EXIT_FAILURE, "out of memory; use fewer examples / a smaller batch, or free memory"
    if isinstance(exc, OSError):
        return EXIT_FAILURE, one_line(_os_error_text(exc))
    return EXIT_FAILURE, one_line(f"internal error ({type(exc).__name__}: {exc}); re-run with --debug for the "
                                  "traceback")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `... | head`: the reader left; nothing more to say
        if args.debug:
            raise
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (no 'Exception ignored' at exit)
        except OSError:
            pass
        return EXIT_FAILURE
    except Exception as exc:
        if args.debug:
            raise
        code, message = describe_error(exc)
        print(f"error: {message}", file=sys.stderr)
        return code
    return int(rc or 0)
