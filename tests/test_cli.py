"""The `samplax` command line: models, sample, summary, demo."""

import subprocess
import sys

import pytest

from samplax.cli import main


def test_models_lists_the_library(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("eight_schools_noncentered", "ill_conditioned_gaussian", "gumbel", "funnel", "banana"):
        assert name in out


def test_sample_then_summary(tmp_path, capsys):
    out = tmp_path / "g"
    code = main(["sample", "gaussian", "--model-arg", "dim=3", "--sampler", "nuts", "mala", "--chains", "2",
                 "--warmup", "100", "--samples", "100", "--out", str(out), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "== runs ==" in text and "Wasserstein" in text
    assert (out / "nuts.nc").exists() and (out / "mala.nc").exists() and (out / "report.txt").exists()
    assert main(["summary", str(out / "nuts.nc"), str(out / "mala.nc")]) == 0
    assert "ess_per_1k_grad" in capsys.readouterr().out


def test_sample_with_checkpoints_and_settings(tmp_path, capsys):
    out = tmp_path / "c"
    code = main(["sample", "gumbel", "--sampler", "nuts", "--chains", "2", "--warmup", "50", "--samples", "40",
                 "--checkpoint-every", "20", "--set", "target_accept=0.9", "--out", str(out), "--no-progress"])
    assert code == 0
    assert (out / "nuts.ckpt").exists()


@pytest.mark.parametrize("argv, message", [
    (["sample", "no_such_model"], "unknown model 'no_such_model'"),
    (["sample", "gumbel", "--sampler", "nutz", "--warmup", "5", "--samples", "5"], "unknown sampler 'nutz'"),
    (["sample", "gumbel", "--chains", "0"], "num_chains must be"),
    (["summary", "missing.nc"], "no results at"),
])
def test_errors_are_clear(argv, message, tmp_path, capsys):
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "sample" else [])) == 2
    assert message in capsys.readouterr().err


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "posteriordb reference" in text and "mclmc" in text and "nuts" in text
    for f in ("eight_schools_nuts.nc", "eight_schools_mclmc.nc", "report.txt", "eight_schools_nuts_rank.png",
              "eight_schools_mclmc_trace.png"):
        assert (tmp_path / f).exists(), f


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "samplax.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "sample" in out.stdout
