"""Background jobs: long computations (an FID grid, ...) in daemon threads that outlive a page.

A process-wide :class:`JobManager` (``get_manager()``) owns the threads, so a job keeps running
while the user navigates, reloads or closes the browser tab; any page (any session) can read its
progress and cancel it. The job's target takes the usual ``progress(done, total, info)`` callback;
the manager's callback records progress, measures the rate for an ETA and raises
:class:`~xai_core.errors.CancelledError` once a cancel was requested. A failure is captured as the
job's status with its message, never raised in the caller. Persisting results is the target's
business (e.g. ``run_grid(..., store=RunStore())``). No streamlit import here.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from xai_core.errors import CancelledError, ParameterError, XaiError

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"
STATES = (RUNNING, DONE, FAILED, CANCELLED)

ProgressFn = Callable[[int, int, dict], bool]


@dataclass(frozen=True)
class JobStatus:
    """A consistent snapshot of one job (safe to read from any thread)."""

    id: str
    kind: str  # e.g. "grid"; at most one running job per kind
    label: str  # human-readable description
    state: str  # running | done | failed | cancelled
    done: int = 0  # work units finished (as reported by the target)
    total: int = 0  # work units in all (0 until the first report)
    info: dict = field(default_factory=dict)  # the target's latest progress info
    message: str = ""  # failure or cancellation message
    started: float = 0.0  # time.time() at submission
    finished: float | None = None  # time.time() at the end, None while running
    eta_s: float | None = None  # seconds left, from the measured rate; None before two reports
    cancel_requested: bool = False
    result: Any = None  # the target's return value once done
    meta: dict = field(default_factory=dict)  # free data given at submission (run id, config, ...)

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]."""
        if self.state == DONE:
            return 1.0
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def running(self) -> bool:
        return self.state == RUNNING


class _Job:
    def __init__(self, job_id: str, kind: str, label: str, meta: dict) -> None:
        self.lock = threading.Lock()
        self.cancel_event = threading.Event()
        self.status = JobStatus(id=job_id, kind=kind, label=label, state=RUNNING, started=time.time(),
                                meta=dict(meta))
        self.first_report: tuple[float, int] | None = None  # (time, done) of the first progress report
        self.thread: threading.Thread | None = None

    def update(self, **changes: Any) -> None:
        with self.lock:
            self.status = replace(self.status, **changes)

    def snapshot(self) -> JobStatus:
        with self.lock:
            return replace(self.status, cancel_requested=self.cancel_event.is_set())

    def progress(self, done: int, total: int, info: dict | None = None) -> bool:
        """The callback handed to the target. Raises CancelledError once cancelled."""
        if self.cancel_event.is_set():
            raise CancelledError(f"job {self.status.id} ({self.status.label}) was cancelled")
        now = time.time()
        done, total = int(done), int(total)
        if self.first_report is None or done < self.first_report[1]:
            self.first_report = (now, done)
        eta = None
        t0, d0 = self.first_report
        if done > d0 and total >= done:
            # Rate measured from the first report on, so that set-up time does not skew it.
            eta = (now - t0) / (done - d0) * (total - done)
        self.update(done=done, total=total, info=dict(info or {}), eta_s=eta)
        return True


class JobManager:
    """Runs callables in daemon threads and keeps their status.

    Parameters
    ----------
    keep : how many finished jobs to remember (the oldest are forgotten first).
    """

    def __init__(self, *, keep: int = 20) -> None:
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._keep = keep

    def submit(self, kind: str, target: Callable[[ProgressFn], Any], *, label: str = "",
               meta: dict | None = None, on_done: Callable[[JobStatus], None] | None = None) -> str:
        """Start ``target(progress)`` in a daemon thread; return the job id.

        Raises
        ------
        ParameterError if a job of the same ``kind`` is still running.
        """
        with self._lock:
            for job in self._jobs.values():
                if job.status.kind == kind and job.status.state == RUNNING:
                    raise ParameterError(f"a {kind} job is already running ({job.status.label}); "
                                         "wait for it or cancel it first")
            job_id = f"{kind}-{next(self._ids)}-{int(time.time())}"
            job = _Job(job_id, kind, label or kind, meta or {})
            self._jobs[job_id] = job
            self._forget_old()
        job.thread = threading.Thread(target=self._run, args=(job, target, on_done),
                                      name=f"xai-job-{job_id}", daemon=True)
        job.thread.start()
        return job_id

    def _run(self, job: _Job, target: Callable, on_done: Callable | None) -> None:
        try:
            result = target(job.progress)
        except CancelledError as exc:
            job.update(state=CANCELLED, message=str(exc) or "cancelled", finished=time.time(), eta_s=None)
        except XaiError as exc:
            job.update(state=FAILED, message=str(exc), finished=time.time(), eta_s=None)
        except Exception as exc:  # noqa: BLE001 - a failed job is a status, never a crash
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            job.update(state=FAILED, message=f"unexpected error: {tb}", finished=time.time(), eta_s=None)
        else:
            if job.cancel_event.is_set():
                job.update(state=CANCELLED, message="cancelled", finished=time.time(), eta_s=None)
            else:
                job.update(state=DONE, result=result, done=max(job.status.done, job.status.total),
                           finished=time.time(), eta_s=0.0)
        if on_done is not None:
            try:
                on_done(job.snapshot())
            except Exception as exc:  # noqa: BLE001
                job.update(message=(job.status.message + f"; on_done failed: {exc}").lstrip("; "))

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status.state != RUNNING]
        finished.sort(key=lambda j: j.status.started)
        for j in finished[:max(0, len(finished) - self._keep)]:
            del self._jobs[j.status.id]

    def get(self, job_id: str) -> JobStatus:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ParameterError(f"unknown job {job_id!r}")
        return job.snapshot()

    def jobs(self, kind: str | None = None) -> list[JobStatus]:
        """All remembered jobs (newest first), optionally of one kind."""
        with self._lock:
            jobs = list(self._jobs.values())
        snaps = [j.snapshot() for j in jobs if kind is None or j.status.kind == kind]
        return sorted(snaps, key=lambda s: s.started, reverse=True)

    def active(self, kind: str | None = None) -> list[JobStatus]:
        return [s for s in self.jobs(kind) if s.state == RUNNING]

    def latest(self, kind: str) -> JobStatus | None:
        jobs = self.jobs(kind)
        return jobs[0] if jobs else None

    def cancel(self, job_id: str) -> bool:
        """Request cancellation; True if the job was running. Takes effect at its next progress call."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.status.state != RUNNING:
            return False
        job.cancel_event.set()
        return True

    def wait(self, job_id: str, *, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (or ``timeout`` seconds pass); return its status."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ParameterError(f"unknown job {job_id!r}")
        if job.thread is not None:
            job.thread.join(timeout)
        return job.snapshot()


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager (created on first use)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager()
        return _MANAGER


def format_eta(seconds: float | None) -> str:
    """``'about 3 min 20 s'``-style text for an ETA; ``'estimating…'`` when unknown."""
    if seconds is None:
        return "estimating…"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"about {seconds:.0f} s"
    if seconds < 3600:
        return f"about {int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"about {int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
