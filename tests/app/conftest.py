"""AppTest fixtures: the app on tiny untrained models, a fresh run store per test."""

from __future__ import annotations

from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 180  # seconds per script run (cold imports and Griffin-Lim on 2 shared cores)


@pytest.fixture
def app_env(tiny_demo_dir, tmp_path, monkeypatch):
    """XAI_DEMO_DIR -> tiny demo, XAI_RUNS_DIR -> empty folder; returns the runs folder."""
    monkeypatch.setenv("XAI_DEMO_DIR", str(tiny_demo_dir))
    runs = tmp_path / "runs"
    monkeypatch.setenv("XAI_RUNS_DIR", str(runs))
    return runs


@pytest.fixture
def open_page(app_env):
    """``open_page("actmax")`` -> an AppTest that has rendered that page."""
    from streamlit.testing.v1 import AppTest

    def _open(page: str | None = None):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        if page is not None:
            at.switch_page(f"pages/{page}.py")
            at.run()
        return at

    return _open


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]
