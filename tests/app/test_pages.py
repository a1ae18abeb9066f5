"""AppTest for every page on tiny untrained models: widgets present, runs produce results, errors shown."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from tests.app.conftest import texts

pytestmark = pytest.mark.slow


def _no_exception(at):
    assert not at.exception, [e.message for e in at.exception]


def _wav(seconds=3.0, sr=22050):
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), sr, format="WAV")
    return buf.getvalue()


def test_models_page_lists_layers_samples_and_classifies_audio(open_page):
    at = open_page()
    _no_exception(at)
    assert at.title[0].value == "Models"
    assert any("Schlüter" in i for i in texts(at.info))  # help text cites the papers
    sidebar = " ".join(texts(at.sidebar.markdown))
    assert "classifier.safetensors" in sidebar and "Device" in sidebar and "24 excerpts" in sidebar
    layers = at.dataframe[0].value
    assert list(layers["layer"]) == ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "fc1", "fc2", "logit"]
    assert len(at.get("audio")) >= 9  # demo excerpt + 8 generator samples
    at.file_uploader(key="audio_up").upload("tone.wav", _wav(), "audio/wav").run()
    _no_exception(at)
    assert not at.error
    assert any("Mean p(vocal)" in c and "called singing" in c and "threshold 0.50" in c for c in texts(at.caption))
    assert at.get("download_button")  # the vocal segments as CSV
    assert any("above 0.9" in c and "real excerpts" in c for c in texts(at.caption))  # the generator's range
    assert at.get("plotly_chart")


def test_models_page_shows_user_errors(open_page, tmp_path):
    at = open_page()
    at.file_uploader(key="audio_up").upload("bad.wav", b"not audio at all", "audio/wav").run()
    _no_exception(at)
    assert any("bad.wav" in e for e in texts(at.error))
    at.radio(key="origin_classifier").set_value("upload").run()
    at.file_uploader(key="upload_classifier").upload("x.safetensors", b"\x80\x04garbage", "application/x").run()
    _no_exception(at)
    assert any("Could not load the classifier" in e for e in texts(at.error))
    at.radio(key="origin_generator").set_value("path").run()
    at.text_input(key="path_generator").set_value(str(tmp_path / "missing.safetensors")).run()
    at.button(key="load_path_generator").click().run()
    _no_exception(at)
    assert any("no such file" in e for e in texts(at.error))


def _hostile_bundles(tiny_demo_dir) -> dict[str, bytes]:
    """A DoS bundle (tiny weights, metadata declaring a classifier of 10**8+ parameters) and one with NaN weights."""
    import json

    from safetensors.torch import load, save

    data = (tiny_demo_dir / "classifier.safetensors").read_bytes()
    meta = json.loads(json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]["vocal_xai"])
    tensors = load(data)
    huge = {**meta, "arch": {**meta["arch"], "conv_channels": [512] * 4, "dense_units": [4096, 4096]}}
    nan = {k: (v.clone().fill_(float("nan")) if k.endswith("fc1.2.weight") else v) for k, v in tensors.items()}
    return {"dos.safetensors": save(tensors, metadata={"vocal_xai": json.dumps(huge)}),
            "nan.safetensors": save(nan, metadata={"vocal_xai": json.dumps(meta)})}


def test_a_hostile_upload_shows_the_error_box_and_keeps_the_loaded_model(open_page, tiny_demo_dir):
    import time

    at = open_page()
    before = at.session_state["sources"]["classifier"]
    at.radio(key="origin_classifier").set_value("upload").run()
    why = {"dos.safetensors": "parameters, over the limit", "nan.safetensors": "non-finite"}
    for name, data in _hostile_bundles(tiny_demo_dir).items():
        t0 = time.perf_counter()
        at.file_uploader(key="upload_classifier").upload(name, data, "application/octet-stream").run()
        assert time.perf_counter() - t0 < 30  # a rerun of the page: the refusal itself takes milliseconds
        _no_exception(at)
        errors = texts(at.error)
        assert any(e.startswith("Could not load the classifier") and name in e and why[name] in e
                   for e in errors), errors
        assert at.session_state["sources"]["classifier"] == before  # the demo classifier stays in use
    at.switch_page("pages/actmax.py").run()
    _no_exception(at)
    assert not at.error


def test_incompatible_models_are_reported_not_raised(open_page, tiny_demo_dir, tmp_path):
    from xai_core.audio.config import MelConfig
    from xai_core.checkpoints import load_bundle, save_bundle

    g = load_bundle(tiny_demo_dir / "generator.safetensors")
    other = save_bundle(tmp_path / "gen_other.safetensors", model=g.model, kind="generator",
                        mel=MelConfig(fmax=7000.0), normaliser=g.normaliser, preset="tiny")
    at = open_page()
    at.radio(key="origin_generator").set_value("path").run()
    at.text_input(key="path_generator").set_value(str(other)).run()
    at.button(key="load_path_generator").click().run()
    at.switch_page("pages/actmax.py").run()
    _no_exception(at)
    assert any("incompatible classifier and generator" in e for e in texts(at.error))


def test_actmax_page_preview_and_full_run(open_page, app_env):
    at = open_page("actmax")
    _no_exception(at)
    assert at.selectbox(key="am_layer").value == "logit"
    for key in ("am_lr", "am_lam"):
        assert at.select_slider(key=key) is not None
    assert any("Live preview" in s for s in texts(at.subheader))
    assert len(at.get("audio")) == 8  # 4 generated + 4 real
    at.select_slider(key="am_lr").set_value(0.1).run()  # a changed slider re-runs the preview
    _no_exception(at)
    at.number_input(key="am_iter").set_value(5).run()
    at.number_input(key="am_n").set_value(3).run()
    at.multiselect(key="am_dirs").set_value(["max", "min"]).run()
    at.button[0].click().run()
    _no_exception(at)
    assert any(s.startswith("Full run") for s in texts(at.subheader))
    results = at.session_state["am_results"]
    assert [r.config.direction for r in results] == ["max", "min"]
    assert results[0].logmel_best.shape[0] == 3 and results[0].config.n_iter == 5
    from xai_core.store import RunStore

    assert len(RunStore(app_env).list_runs("am")) == 2
    at.multiselect(key="am_dirs").set_value([]).run()  # impossible setting: shown, not raised
    _no_exception(at)
    assert any("at least one direction" in e for e in texts(at.error))


def _small_grid(at):
    at.text_input(key="grid_lrs").set_value("0.1, 0.01").run()
    at.text_input(key="grid_lams").set_value("0.01").run()
    at.text_input(key="grid_iters").set_value("2, 3").run()
    at.number_input(key="grid_n").set_value(3).run()
    at.number_input(key="grid_nref").set_value(4).run()


def _wait_job(timeout=120, kind="grid"):
    from xai_core.store.jobs import get_manager

    deadline = time.time() + timeout
    while get_manager().active(kind) and time.time() < deadline:
        time.sleep(0.2)
    return get_manager().latest(kind)


def test_fid_grid_page_background_job_heatmaps_listen_and_runs(open_page, app_env):
    at = open_page("fid_grid")
    _no_exception(at)
    at.text_input(key="grid_lrs").set_value("0.1, abc").run()
    assert any("not a comma-separated list" in e for e in texts(at.error))
    _small_grid(at)
    assert not at.error
    assert any("estimated" in m for m in texts(at.markdown))
    at.button[0].click().run()
    _no_exception(at)
    job = _wait_job()
    assert job.state == "done", job.message
    at.run()
    _no_exception(at)
    charts = at.get("plotly_chart")
    assert len(charts) >= 2 * 2 * 2  # directions x feature spaces x iteration counts
    assert any(d.label.startswith("Download the FID table") for d in at.get("download_button"))
    assert any(s.startswith("Examples of max") for s in texts(at.subheader))
    assert len(at.get("audio")) > 0

    at.switch_page("pages/listen.py").run()
    _no_exception(at)
    labels = " ".join(texts(at.markdown))
    for name in ("maximised", "minimised", "real, most vocal", "real, least vocal"):
        assert name in labels
    assert len(at.get("audio")) == 3 + 3 + 4 + 4  # 3 examples per configuration, 4 real per set

    at.switch_page("pages/runs.py").run()
    _no_exception(at)
    ids = at.multiselect(key="runs_chosen").options
    assert len(ids) == 1 and ids[0].startswith("grid")
    at.multiselect(key="runs_chosen").set_value([ids[0]]).run()
    at.button(key=None)  # buttons exist
    labels = [b.label for b in at.button]
    assert {"Reopen", "Delete"} <= set(labels)
    at.button[labels.index("Delete")].click().run()
    at.button[[b.label for b in at.button].index("Yes, delete")].click().run()
    _no_exception(at)
    from xai_core.store import RunStore

    assert RunStore(app_env).list_runs() == []


def test_failed_job_is_shown_on_the_page(open_page):
    from xai_core.errors import ParameterError
    from xai_core.store.jobs import get_manager

    def bad(progress):
        raise ParameterError("grid exploded on purpose")

    get_manager().wait(get_manager().submit("grid", bad, label="broken grid"), timeout=10)
    at = open_page("fid_grid")
    _no_exception(at)
    assert any("grid exploded on purpose" in e for e in texts(at.error))
    assert any("grid exploded on purpose" in e for e in texts(at.sidebar.error))


def test_runs_page_empty_and_reopen_am(open_page, app_env, tiny_bundles):
    from xai_core.actmax import AMConfig, run_am
    from xai_core.store import RunStore

    at = open_page("runs")
    _no_exception(at)
    assert any("No runs yet" in m for m in texts(at.markdown))
    clf, gen, _ = tiny_bundles
    rid = RunStore(app_env).save_am(run_am(clf, gen, AMConfig(n_iter=3, n_examples=2, lr=0.1)),
                                    classifier=clf, generator=gen)
    at.run()
    at.multiselect(key="runs_chosen").set_value([rid]).run()
    at.button[[b.label for b in at.button].index("Reopen")].click().run()
    _no_exception(at)
    assert at.title[0].value == "Activation maximisation"
    assert at.session_state["am_results"][0].config.lr == 0.1
    assert at.select_slider(key="am_lr").value == 0.1


def test_listen_page_without_results_says_so(open_page):
    at = open_page("listen")
    _no_exception(at)
    assert any("Nothing to listen to yet" in w for w in texts(at.warning))


def test_missing_demo_is_explained(open_page, monkeypatch, tmp_path):
    monkeypatch.setenv("XAI_DEMO_DIR", str(tmp_path / "nothing"))
    at = open_page()
    _no_exception(at)
    assert any("make demo-assets" in w for w in texts(at.warning))
    at.switch_page("pages/actmax.py").run()
    _no_exception(at)
    assert any("Models" in w for w in texts(at.warning))


def test_hooks_and_memory_stay_flat_over_20_reruns(open_page, tiny_demo_dir):
    import gc
    import tracemalloc

    from ui import state
    from xai_core.models import count_hooks

    at = open_page("actmax")
    _no_exception(at)
    clf = state._load_path(str(tiny_demo_dir / "classifier.safetensors"),
                           (tiny_demo_dir / "classifier.safetensors").stat().st_mtime, "classifier", state.DEVICE)
    gen = state._load_path(str(tiny_demo_dir / "generator.safetensors"),
                           (tiny_demo_dir / "generator.safetensors").stat().st_mtime, "generator", state.DEVICE)
    at.run()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(20):
        at.run()
        assert count_hooks(clf.model) == 0 and count_hooks(gen.model) == 0
    _no_exception(at)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 20 * 2**20, f"memory grew by {grown / 2**20:.1f} MiB over 20 reruns"
