"""End to end in a real browser: `streamlit run app.py` on a free port, Playwright driving Chromium.

Opens every page, runs a small activation maximisation (an audio element appears), runs a tiny FID
grid in the background (a plotly heatmap appears), decodes the kept AM example at every layer of the
demo's decoders and plays a reconstruction, makes a reference excerpt more and less vocal (Counterfactuals) and
plays it, and saves screenshots to ``test-artifacts/``.
On CI (CI=true) a missing Chromium fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url}")


@pytest.fixture
def server(tiny_demo_dir, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package")
        pytest.skip("Chromium is not installed")
    port = _free_port()
    env = {**os.environ, "XAI_DEMO_DIR": str(tiny_demo_dir), "XAI_RUNS_DIR": str(tmp_path / "runs"),
           "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        yield f"http://127.0.0.1:{port}", tmp_path / "streamlit.log"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "streamlit.log", ARTIFACTS / "streamlit.log")


PROBLEMS = '[data-testid="stException"], [data-testid="stAlertContentError"], [data-testid="stAlertContentWarning"]'


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _wait_for(page, locator, log: Path, what: str, timeout: float = 240_000) -> None:
    """Wait for ``locator``; fail at once, with the page's message and the server log, if an error,
    exception or warning shows up instead (a timeout alone says nothing about why)."""
    problems = page.locator(PROBLEMS)
    try:
        locator.or_(problems).first.wait_for(timeout=timeout)
    except Exception as exc:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)  # pytest.fail is not an Exception
        pytest.fail(f"{what}: not shown within {timeout / 1000:.0f} s ({type(exc).__name__})\n"
                    f"server log:\n{_log_tail(log)}")
    if locator.count() == 0 and problems.count():
        pytest.fail(f"{what}: the page shows instead: {problems.first.inner_text()!r}\n"
                    f"server log:\n{_log_tail(log)}")


def _settle(page, timeout=180_000):
    """Wait until the script run has finished: no running indicator and no stale (greyed) element."""
    page.wait_for_timeout(1000)
    page.wait_for_function("""() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"], '
                           + '[data-testid="stStatusWidgetRunningManIcon"], [data-stale="true"]')""",
                           timeout=timeout)
    page.wait_for_timeout(1000)


def test_pages_in_a_real_browser(server):
    from playwright.sync_api import sync_playwright

    server, log = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(180_000)
            page.goto(server + "/")
            page.get_by_role("heading", name="Models").first.wait_for()
            _settle(page)
            nav = page.locator('[data-testid="stSidebarNav"] a')
            assert nav.count() == 9, [nav.nth(i).inner_text() for i in range(nav.count())]
            page.locator("audio").first.wait_for()
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "1_models.png"), full_page=True)

            page.goto(server + "/actmax")
            page.get_by_role("heading", name="Activation maximisation").first.wait_for()
            _settle(page)
            page.locator("audio").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "2_actmax_preview.png"), full_page=True)
            page.get_by_role("spinbutton", name="Iterations", exact=True).fill("5")
            page.get_by_role("spinbutton", name="Iterations", exact=True).press("Enter")
            _settle(page)
            page.get_by_role("button", name="Run", exact=True).click()
            _wait_for(page, page.get_by_text("Full run · saved as"), log, "Full activation-maximisation run")
            _settle(page)
            assert page.locator("audio").count() >= 1
            assert page.get_by_text("DeltaGenerator").count() == 0
            page.screenshot(path=str(ARTIFACTS / "3_actmax_full.png"), full_page=True)

            page.goto(server + "/fid-grid")
            page.get_by_role("heading", name="FID grid").first.wait_for()
            _settle(page)
            for label, value in (("Learning rates", "0.1, 0.01"), ("Lambdas", "0.01, 0.001"),
                                 ("Iteration counts", "2, 4")):
                page.get_by_role("textbox", name=label, exact=True).fill(value)
                page.get_by_role("textbox", name=label, exact=True).press("Enter")
                _settle(page)
            for label, value in (("Examples per configuration", "3"), ("Reference excerpts (top/bottom N)", "4")):
                page.get_by_role("spinbutton", name=label, exact=True).fill(value)
                page.get_by_role("spinbutton", name=label, exact=True).press("Enter")
                _settle(page)
            page.get_by_role("button", name="Start the grid in the background").click()
            _wait_for(page, page.locator(".js-plotly-plot"), log, "FID grid heatmaps", timeout=300_000)
            page.get_by_text("Examples of max").first.wait_for()
            _settle(page)
            assert page.locator(".js-plotly-plot").count() >= 4
            page.screenshot(path=str(ARTIFACTS / "4_fid_grid.png"), full_page=True)

            page.goto(server + "/listen")
            page.get_by_role("heading", name="Listen & compare").first.wait_for()
            _settle(page)
            # the caption under the band profile is drawn last
            _wait_for(page, page.get_by_text("All players share one gain; Griffin-Lim"), log, "Listen page")
            _settle(page)
            assert page.locator("audio").count() >= 4
            assert page.locator('[data-testid="stImage"] img').count() >= 5  # 4 spectrogram columns + band profile
            page.screenshot(path=str(ARTIFACTS / "5_listen.png"), full_page=True)

            page.goto(server + "/runs")
            page.get_by_role("heading", name="Runs").first.wait_for()
            _settle(page)
            page.screenshot(path=str(ARTIFACTS / "6_runs.png"), full_page=True)

            page.goto(server + "/decode-layer")
            page.get_by_role("heading", name="Decode a layer").first.wait_for()
            _wait_for(page, page.get_by_text("all players share one gain, so a quieter"), log, "Decode a layer page")
            _settle(page)
            # decode what the classifier keeps of its own maximised example (the AM run stored above)
            page.get_by_text("Kept example of a stored run").click()
            _settle(page)
            _wait_for(page, page.get_by_text("Audio of kept example"), log, "Decoding a kept AM example")
            _settle(page)
            assert page.locator("audio").count() >= 5  # input + 2 layers x (ClaDec, RefAE)
            assert page.locator(".js-plotly-plot").count() >= 2  # accuracy and MSE against depth
            played = page.locator("audio").nth(1).evaluate(
                "a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 700)))")
            assert played > 0, "the ClaDec reconstruction did not play"
            page.screenshot(path=str(ARTIFACTS / "7_decode_layer.png"), full_page=True)
            for bad in ("Traceback", "DeltaGenerator"):
                assert page.get_by_text(bad).count() == 0

            page.goto(server + "/consistency")
            page.get_by_role("heading", name="Neuron consistency").first.wait_for()
            _wait_for(page, page.get_by_text("Can you hear the attack?"), log, "Neuron consistency: the attack")
            _settle(page)
            assert page.locator("audio").count() == 2  # the excerpt and its adversarial version
            played = page.locator("audio").nth(1).evaluate(
                "a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 700)))")
            assert played > 0, "the adversarial excerpt did not play"
            page.get_by_role("tab", name="Consistency across depth").click()
            page.get_by_text("Score every unit").click()
            _wait_for(page, page.get_by_text("chance level"), log, "Consistency across depth")
            _settle(page)
            assert page.locator(".js-plotly-plot").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "8_consistency.png"), full_page=True)
            for bad in ("Traceback", "DeltaGenerator"):
                assert page.get_by_text(bad).count() == 0

            page.goto(server + "/depth-maps")
            page.get_by_role("heading", name="Where does it listen?").first.wait_for()
            _wait_for(page, page.get_by_text("first and the last layers"), log, "Where does it listen?: the maps")
            _settle(page)
            assert page.locator(".js-plotly-plot").count() >= 1  # per-depth relevance of the explainers
            page.get_by_role("tab", name="Listen").click()
            _wait_for(page, page.get_by_text("One common gain for the three clips"), log, "Where does it listen?: listen")
            _settle(page)
            assert page.locator("audio").count() == 3  # original, its relevant part, the rest
            played = page.locator("audio").nth(1).evaluate(
                "a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 700)))")
            assert played > 0, "the relevant part did not play"
            page.screenshot(path=str(ARTIFACTS / "9_depth_maps.png"), full_page=True)
            for bad in ("Traceback", "DeltaGenerator"):
                assert page.get_by_text(bad).count() == 0

            page.goto(server + "/counterfactual")
            page.get_by_role("heading", name="Counterfactuals").first.wait_for()
            _settle(page)
            page.get_by_text("Inversion and optimisation settings").click()  # small budgets on the tiny models
            for label, value in (("Inversion steps", "20"), ("AM steps per direction", "10")):
                page.get_by_role("spinbutton", name=label, exact=True).fill(value)
                page.get_by_role("spinbutton", name=label, exact=True).press("Enter")
                _settle(page)
            page.get_by_role("button", name="Make it more / less vocal").click()
            # the honesty verdict may be a warning (the GAN cannot reconstruct the excerpt): wait for the players'
            # caption rather than for the first alert
            try:
                page.get_by_text("All players share one gain").first.wait_for(timeout=240_000)
            except Exception:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
                pytest.fail(f"Counterfactuals: no result within 240 s; the page shows "
                            f"{page.locator(PROBLEMS).all_inner_texts()!r}\nserver log:\n{_log_tail(log)}")
            _settle(page)
            assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count() == 0
            assert page.locator("audio").count() == 7  # 4 versions, then the chosen step's 3
            played = page.locator("audio").nth(2).evaluate(
                "a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 700)))")
            assert played > 0, "the more-vocal version did not play"
            assert page.locator(".js-plotly-plot").count() >= 2  # the spread and the trajectory
            page.screenshot(path=str(ARTIFACTS / "10_counterfactual.png"), full_page=True)
            for bad in ("Traceback", "DeltaGenerator"):
                assert page.get_by_text(bad).count() == 0
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
