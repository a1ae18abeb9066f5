import pytest

from xai_core.cli import main


@pytest.mark.slow
def test_cli_am_grid_runs(tiny_demo_dir, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    common = ["--demo-dir", str(tiny_demo_dir), "--runs-dir", runs, "--no-progress", "--device", "cpu"]
    assert main(["am", *common, "--iters", "3", "--examples", "2", "--prior", "code", "--direction", "min"]) == 0
    out = capsys.readouterr().out
    assert "penalty lam*||z||^2" in out and "stored in" in out
    assert main(["grid", *common, "--iters", "2,3", "--lrs", "0.1", "--lams", "0.1,0.01", "--examples", "3",
                 "--n-reference", "4", "--features", "response"]) == 0
    out = capsys.readouterr().out
    assert "selected max" in out and "selected min" in out
    grid_id = out.strip().splitlines()[-1].split()[1]
    assert main(["runs", "list", "--runs-dir", runs]) == 0
    listed = capsys.readouterr().out
    assert grid_id in listed and listed.count("complete") == 2
    assert main(["runs", "show", grid_id, "--runs-dir", runs]) == 0
    assert "FID max" in capsys.readouterr().out
    exp = tmp_path / "exp"
    assert main(["runs", "export", grid_id, "--out", str(exp), "--runs-dir", runs, "--griffin-lim-iter", "2"]) == 0
    assert (exp / "fid.csv").is_file() and list(exp.glob("*.png")) and list(exp.glob("wav_*/*.wav"))
    assert main(["runs", "delete", grid_id, "--runs-dir", runs]) == 0
    assert main(["runs", "show", grid_id, "--runs-dir", runs]) == 1  # an unknown run: a store error


def test_help_names_prior_conventions(capsys):
    with pytest.raises(SystemExit):
        main(["grid", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(lam/2)*||z||^2" in text and "lam*||z||^2" in text
