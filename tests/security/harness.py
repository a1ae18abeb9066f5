"""Runs one corpus case in a forked child of the test process, bounded in time and memory, and judges it.

The child inherits everything the parent has imported and loaded (no interpreter start per case), caps its
address space (a case that asks for many GB fails its allocation instead of taking the machine's memory),
captures stdout and stderr at the file-descriptor level, runs the case and reports back through a pipe. The
parent kills it at the hard time limit, so a hang fails its case instead of hanging the suite, and reads its
peak resident memory above its own start.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.security.corpus import Case, Env

ACCEPT, REFUSE, CLEAN = "accept", "refuse", "clean"
AS_HEADROOM = 2 << 30  # bytes of address space a case may add to what the child starts with
KILL_GRACE = 2.0  # seconds past a case's time bound before the child is killed
MARKER = "PWNED"  # what a pickle payload would create in its case folder, were it ever executed
# argparse's own usage errors ("python -m xai_core am: error: argument --iters: ...") are clean refusals too
ARGPARSE_ERROR = re.compile(r"^\S.*: error: ")


@dataclass
class Outcome:
    """What a case did in its child process."""

    status: str  # accepted | refused | crashed | exited (CLI) | killed | died
    seconds: float = 0.0
    peak_mb: float = 0.0  # peak resident memory above the child's start
    error_type: str = ""
    message: str = ""
    where: str = ""  # file:line in function of the deepest xai_core frame of a crash
    rc: int | None = None  # CLI exit status
    stdout: str = ""
    stderr: str = ""


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _where(tb) -> str:
    """The deepest frame inside xai_core (else the deepest frame) as ``path:line in function``."""
    frames = traceback.extract_tb(tb)
    inside = [f for f in frames if "/xai_core/" in f.filename]
    f = (inside or frames or [None])[-1]
    if f is None:
        return "?"
    name = f.filename
    name = name[name.index("xai_core/"):] if "xai_core/" in name else os.path.basename(name)
    return f"{name}:{f.lineno} in {f.name}"


def _run_cli(argv: list[str]) -> dict:
    """``xai_core.cli.main(argv)``, seeing through its last-resort handler: main() prints any exception as
    ``error: ...`` (an unexpected one as ``error: internal error (...)``), so the exceptions it describes are
    recorded here, and one that is neither an XaiError nor an OSError (a file the user named) is a crash
    behind a clean-looking message."""
    import xai_core.cli as cli
    from xai_core.errors import XaiError

    seen: list[BaseException] = []
    describe = getattr(cli, "describe_error", None)
    if describe is not None:  # this child is a fork: the patch dies with it
        def spy(exc: BaseException):
            seen.append(exc)
            return describe(exc)

        cli.describe_error = spy
    rc = cli.main(argv)
    hidden = [e for e in seen if not isinstance(e, (XaiError, OSError))]
    if hidden:
        e = hidden[-1]
        return {"status": "crashed", "error_type": type(e).__name__, "message": f"{e} (behind the CLI: exit {rc})",
                "where": _where(e.__traceback__), "rc": rc}
    return {"status": "exited", "rc": rc}


def _child(case: Case, env: Env, inp, folder: Path, wfd: int) -> None:
    """Body of the forked child: never returns (``os._exit``)."""
    report: dict = {"status": "crashed", "error_type": "HarnessError", "message": "child did not report"}
    try:
        import torch

        torch.set_num_threads(1)
        os.chdir(folder)
        os.environ["XAI_RUNS_DIR"] = str(folder / "default-runs")
        os.environ["XAI_DEMO_DIR"] = str(env.demo)
        out = open(folder / ".stdout", "w", buffering=1)  # lives until os._exit
        err = open(folder / ".stderr", "w", buffering=1)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout, sys.stderr = out, err
        try:
            with open("/proc/self/clear_refs", "w") as f:  # peak RSS from here on
                f.write("5")
        except OSError:
            pass
        start_kb = _status_kb("VmRSS")
        os.write(wfd, (json.dumps({"start_kb": start_kb}) + "\n").encode())
        limit = _status_kb("VmSize") * 1024 + AS_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from xai_core.errors import XaiError

        t0 = time.perf_counter()
        try:
            if case.argv is not None:
                report = _run_cli(case.argv(env, inp))
            else:
                case.call(env, inp)
                report = {"status": "accepted"}
        except SystemExit as exc:  # argparse refusing an argument
            report = {"status": "exited", "rc": exc.code if isinstance(exc.code, int) else 1}
        except XaiError as exc:
            report = {"status": "refused", "error_type": type(exc).__name__, "message": str(exc),
                      "where": _where(exc.__traceback__)}
        except BaseException as exc:  # noqa: BLE001 - everything else is what the corpus looks for
            report = {"status": "crashed", "error_type": type(exc).__name__, "message": str(exc),
                      "where": _where(exc.__traceback__)}
        report["seconds"] = time.perf_counter() - t0
        out.flush()
        err.flush()
        report["peak_mb"] = max(0, _status_kb("VmHWM") - start_kb) / 1024
    except BaseException as exc:  # noqa: BLE001
        report = {"status": "crashed", "error_type": type(exc).__name__, "message": f"harness: {exc}"}
    finally:
        try:
            os.write(wfd, (json.dumps(report, default=str) + "\n").encode())
        finally:
            os._exit(0)


def run_case(case: Case, env: Env, folder: Path) -> Outcome:
    """Make the case's input in ``folder`` (here), run it in a forked child, return what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    inp = case.make(env, folder)
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        _child(case, env, inp, folder, w)
    os.close(w)
    buf, killed = b"", False
    deadline = t0 + case.seconds + KILL_GRACE
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 1 << 16)
                if not chunk:
                    break
                buf += chunk
    finally:
        _, status, usage = os.wait4(pid, 0)
        os.close(r)
    lines = [json.loads(x) for x in buf.decode().splitlines() if x.strip()]
    start_kb = lines[0].get("start_kb", 0) if lines else 0
    peak_mb = max(0, usage.ru_maxrss - start_kb) / 1024 if start_kb else 0.0
    if killed:
        out = Outcome("killed", seconds=time.monotonic() - t0, peak_mb=peak_mb,
                      message=f"no answer after {case.seconds + KILL_GRACE:.0f} s: killed")
    elif len(lines) < 2:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        out = Outcome("died", seconds=time.monotonic() - t0, peak_mb=peak_mb,
                      message=f"child died without a report (signal {sig}, status {status})")
    else:
        rep = lines[-1]
        out = Outcome(rep["status"], seconds=rep.get("seconds", 0.0), peak_mb=rep.get("peak_mb", peak_mb),
                      error_type=rep.get("error_type", ""), message=rep.get("message", ""),
                      where=rep.get("where", ""), rc=rep.get("rc"))
    for name in ("stdout", "stderr"):
        p = folder / f".{name}"
        if p.is_file():
            setattr(out, name, p.read_text(errors="replace")[-20000:])
    return out


def _last_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1] if lines else ""


def headline(out: Outcome) -> str:
    """One line saying what the case did (the first line of a failure, used to group failures)."""
    if out.status in ("crashed", "refused"):
        msg = out.message.strip().splitlines()[0][:160] if out.message.strip() else ""
        return f"{out.status} {out.error_type} at {out.where}: {msg}"
    if out.status == "exited":
        tb = " with a traceback" if "Traceback" in out.stderr else ""
        return f"exit {out.rc}{tb}; last stderr line {_last_line(out.stderr)[:160]!r}"
    return f"{out.status}: {out.message}"


def judge(case: Case, out: Outcome, env: Env, folder: Path) -> list[str]:
    """Every way the case's outcome breaks the corpus's rules (empty: the case passes)."""
    problems: list[str] = []
    if out.status in ("killed", "died", "crashed"):
        problems.append(out.status)
    elif out.status == "exited":
        tb = "Traceback" in out.stderr
        last = _last_line(out.stderr)
        clean_error = out.rc in (1, 2) and not tb and (last.startswith("error:") or bool(ARGPARSE_ERROR.match(last)))
        ok = out.rc == 0 and not tb
        if case.expect == REFUSE and not clean_error:
            problems.append("not a clean CLI refusal (exit 1/2, no traceback, last stderr line 'error: ...')")
        elif case.expect == ACCEPT and not ok:
            problems.append("a valid input was not accepted")
        elif case.expect == CLEAN and not (ok or clean_error):
            problems.append("neither a clean success nor a clean CLI refusal")
    else:
        refused_well = out.status == "refused" and bool(out.message.strip()) and "\n" not in out.message.strip()
        if out.status == "refused" and not refused_well:
            problems.append("XaiError message is empty or not one line")
        if case.expect == REFUSE and out.status == "accepted":
            problems.append("accepted a bad input")
        elif case.expect == ACCEPT and out.status != "accepted":
            problems.append("a valid input was not accepted")
    if out.seconds > case.seconds:
        problems.append(f"took {out.seconds:.2f} s, more than {case.seconds:g} s")
    if out.peak_mb > case.max_mb:
        problems.append(f"peak memory {out.peak_mb:.0f} MB above start, more than {case.max_mb:g} MB")
    for p in folder.rglob(MARKER):
        problems.append(f"a payload was executed: {p} exists")
    if case.check is not None:
        why = case.check(env, folder)
        if why:
            problems.append(why)
    return problems
