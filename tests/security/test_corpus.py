"""Issue 17: every bad input of the corpus is refused cleanly, in bounded time and memory, executing nothing.

One test per case (``tests/security/corpus.py``), each run in a forked child (``tests/security/harness.py``);
two cases run in a fresh interpreter instead: the DoS bundle, whose time and peak memory are measured from
the baseline of an interpreter with torch imported, and one CLI run, which proves that the real
``python -m xai_core`` prints no traceback.
Set ``XAI_CORPUS_REPORT=path.jsonl`` to also get one JSON line per case (outcome, problems).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.security.corpus import CASES, KINDS, bundle, dos_bundle
from tests.security.harness import headline, judge, run_case

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # about 700 cases: a minute on two cores (plus the tiny demo, shared with the suite)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case(case, corpus_env, tmp_path):
    why = case.skip() if case.skip is not None else None
    if why:
        pytest.skip(why)
    folder = tmp_path / "case"
    out = run_case(case, corpus_env, folder)
    problems = judge(case, out, corpus_env, folder)
    report = os.environ.get("XAI_CORPUS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"id": case.id, "kind": case.kind, "expect": case.expect, "status": out.status,
                                "headline": headline(out), "problems": problems, "seconds": round(out.seconds, 3),
                                "peak_mb": round(out.peak_mb, 1)}) + "\n")
    assert not problems, (f"{headline(out)}\n  expected: {case.expect}; problems: {'; '.join(problems)}"
                          f"\n  stderr tail: {out.stderr[-600:]!r}")


def test_corpus_covers_the_issue():
    ids = [c.id for c in CASES]
    assert len(ids) >= 200
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    kinds = Counter(c.kind for c in CASES)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 20, kinds
    assert sum(c.expect == "accept" for c in CASES) >= 10  # the control group
    text = " ".join(ids)
    for needle in ("meta-json-list", "format-version-99", "mel-sample-rate-abc", "metadata-6MB", "conv-100000",
                   "gen-z-dim-1e8", "mel-n-fft-2e40", "threshold-5", "weights-float8", "std-1e-45",
                   "normaliser-40-bands", "offsets-duplicated", "header-not-utf8", "payload-torch-zip",
                   "audio/nan-samples", "audio/7-bits-per-sample", "audio/directory-named-wav",
                   "AMConfig-lr=nan", "cli-am-seed=2**63", "cli-am-device=meta", "sqlite-random-bytes",
                   "row-id-escapes-store", "export-through-symlink", "decoder-", "explainer-", "reference-",
                   "train-ckpt-", "import-"):
        assert needle in text, needle


# --------------------------------------------------------------------------- fresh interpreters

DOS_SCRIPT = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from xai_core.checkpoints import load_bundle
from xai_core.errors import XaiError

def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

baseline = kb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # VmHWM from here on: the load's own peak
    f.write("5")
limit = kb("VmSize") * 1024 + (3 << 30)  # never more than 3 GB more, whatever the loader does
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
t0 = time.perf_counter()
try:
    load_bundle(sys.argv[1])
    status, message = "accepted", ""
except XaiError as exc:
    status, message = "refused", str(exc)
except BaseException as exc:
    status, message = "crashed", f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - t0
print(json.dumps({"status": status, "message": message[:300], "seconds": seconds, "baseline_kb": baseline,
                  "peak_kb": kb("VmHWM")}), flush=True)
"""


def _run(args: list[str], folder: Path, timeout: float) -> tuple[int | None, str, str]:
    """Run ``args`` in ``folder``, output to files; returns (exit status, or None if killed at ``timeout``,
    stdout, stderr)."""
    out, err = folder / "stdout", folder / "stderr"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.Popen(args, stdout=o, stderr=e, cwd=folder, env=env)
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
        rc = None
    return rc, out.read_text(), err.read_text()


@pytest.mark.slow
def test_dos_bundle_refused_fast_with_flat_memory(corpus_env, tmp_path):
    """A ~200 KB bundle declaring an architecture of several GB is refused in < 1 s, memory flat (< 300 MB)."""
    path = dos_bundle(corpus_env, tmp_path)
    assert 150_000 < path.stat().st_size < 300_000
    rc, stdout, stderr = _run([sys.executable, "-c", DOS_SCRIPT, str(path)], tmp_path, 30)
    assert rc is not None, "still loading after 30 s (killed)"
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    assert lines, f"exit {rc}, stderr {stderr[-1500:]}"
    result = lines[-1]
    extra_mb = (result["peak_kb"] - result["baseline_kb"]) / 1024
    assert result["status"] == "refused", result
    assert result["seconds"] < 1.0, result
    assert extra_mb < 300, f"peak {extra_mb:.0f} MB above the baseline with torch imported"


@pytest.mark.slow
def test_cli_refusal_prints_no_traceback(corpus_env, tmp_path):
    """The real ``python -m xai_core`` on a bundle whose metadata is a JSON list: one error line, exit 1 or 2."""
    path = bundle(text="[1, 2, 3]")(corpus_env, tmp_path)
    rc, _, stderr = _run([sys.executable, "-m", "xai_core", "info", str(path)], tmp_path, 60)
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert rc in (1, 2), (rc, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    assert lines and lines[-1].startswith("error:"), stderr[-2000:]
