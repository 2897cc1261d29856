"""The `samplax` command line: models, sample, summary, demo."""

import re
import subprocess
import sys

import numpy as np
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
    for f in ("eight_schools_nuts.nc", "eight_schools_mclmc.nc", "report.txt", "report.html",
              "eight_schools_nuts_rank.png", "eight_schools_mclmc_trace.png"):
        assert (tmp_path / f).exists(), f
    assert text.startswith("== verdict ==\nnuts: ")
    w2 = [line for line in text.splitlines() if re.match(r"(nuts|mclmc): [\w-]+: pooled ", line)]
    assert len(w2) == 2 and all("verdict: " in line for line in w2), w2
    assert '<h2 id="s0">Verdict</h2>' in (tmp_path / "report.html").read_text()


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "samplax.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "sample" in out.stdout


# ---------------------------------------------------------------- users' own models (FILE.py:FUNCTION + data)
MODEL_FILE = '''
import numpyro, numpyro.distributions as dist

def model(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        eta = numpyro.sample("eta", dist.Normal(0, 1))
        numpyro.sample("obs", dist.Normal(mu + tau * eta, sigma), obs=y)

def helper():
    pass
'''


@pytest.fixture
def user_model(tmp_path):
    import json

    (tmp_path / "my_model.py").write_text(MODEL_FILE)
    data = {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12], "sigma": [15, 10, 16, 11, 9, 11, 10, 18]}
    (tmp_path / "data.json").write_text(json.dumps(data))
    return tmp_path


def test_sample_users_model_file_with_json_data(user_model, capsys):
    import samplax

    out = user_model / "run"
    code = main(["sample", f"{user_model / 'my_model.py'}:model", "--data", str(user_model / "data.json"),
                 "--sampler", "nuts", "mala", "--set", "nuts.target_accept=0.95", "mala.target_accept=0.6",
                 "--chains", "2", "--warmup", "150", "--samples", "100", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    nuts, mala = samplax.load(out / "nuts.nc"), samplax.load(out / "mala.nc")
    assert set(nuts.posterior.data_vars) >= {"mu", "tau", "eta"} and nuts.posterior["eta"].shape[-1] == 8
    assert "'target_accept': 0.95" in nuts.attrs["settings"]  # the per-sampler --set reached only nuts
    assert "0.6" in mala.attrs["settings"] and "0.95" not in mala.attrs["settings"]
    # summary accepts the run folder
    assert main(["summary", str(out)]) == 0
    assert "nuts" in capsys.readouterr().out


def test_model_arg_reaches_a_users_model_file(user_model, capsys):
    """--model-arg was ignored for FILE.py:FUNCTION models (the run sampled the data file's model, exit 0)."""
    import json

    import samplax
    from samplax.user_model import target_from_file

    data = json.loads((user_model / "data.json").read_text())
    y = data.pop("y")
    (user_model / "noy.json").write_text(json.dumps(data))
    spec = f"{user_model / 'my_model.py'}:model"
    with_y = target_from_file(spec, user_model / "noy.json", extra={"y": y})
    full = target_from_file(spec, user_model / "data.json")
    x = np.linspace(-0.5, 0.5, full.dim)
    assert float(with_y.logdensity(x)) == float(full.logdensity(x))  # the --model-arg value is in the model
    out = user_model / "margs"
    code = main(["sample", spec, "--data", str(user_model / "noy.json"), "--model-arg", f"y={y}", "--sampler", "mala",
                 "--chains", "2", "--warmup", "20", "--samples", "10", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "obs" in samplax.load(out / "mala.nc").observed_data  # conditioned on y: the site is observed
    code = main(["sample", spec, "--data", str(user_model / "data.json"), "--model-arg", "J=8", "--sampler", "mala",
                 "--out", str(out), "--no-progress"])
    assert code == 2 and "given both in the --data file and as --model-arg" in capsys.readouterr().err


def test_summary_keeps_runs_of_the_same_file_name(tmp_path, capsys):
    for d in ("a", "b"):
        assert main(["sample", "gaussian", "--model-arg", "dim=2", "--sampler", "mala", "--chains", "2", "--warmup",
                     "20", "--samples", "20", "--seed", str(len(d)), "--out", str(tmp_path / d), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "a/mala" in text and "b/mala" in text  # both runs (one was dropped: the same stem)


@pytest.mark.parametrize("spec, data, message", [
    ("missing.py:model", None, "model file 'MISSING' does not exist"),
    ("my_model.py:nomodel", None, "has no function 'nomodel'; functions defined there: helper, model"),
    ("my_model.txt:model", None, "must be a Python file ending in .py"),
    ("my_model.py:model", "nodata.json", "data file 'NODATA' does not exist"),
    ("my_model.py:model", "bad.json", "is not valid JSON"),
    ("my_model.py:model", "list.json", "must hold a JSON object"),
    ("my_model.py:model", "partial.json", "argument(s) ['sigma'] have no default and are not in the data"),
    ("my_model.py:model", "extra.json", "data has ['K'] but the function's arguments are ['J', 'sigma', 'y']"),
    ("my_model.py:model", "shape.json", "data argument shapes: J=8, y=(7,), sigma=(8,)"),
    ("my_model.py:model", "ragged.json", "entry 'y' is not a rectangular array"),
])
def test_users_model_errors_name_the_file_and_argument(user_model, spec, data, message, capsys):
    import json

    (user_model / "bad.json").write_text("{'J': 8")
    (user_model / "list.json").write_text("[1, 2]")
    (user_model / "partial.json").write_text(json.dumps({"J": 8, "y": [1] * 8}))
    (user_model / "extra.json").write_text(json.dumps({"J": 8, "y": [1] * 8, "sigma": [1] * 8, "K": 2}))
    (user_model / "shape.json").write_text(json.dumps({"J": 8, "y": [1] * 7, "sigma": [1] * 8}))
    (user_model / "ragged.json").write_text(json.dumps({"J": 2, "y": [[1], [1, 2]], "sigma": [1, 1]}))
    path = spec.split(":")[0]
    argv = ["sample", f"{user_model / path}:{spec.split(':')[1]}", "--warmup", "5", "--samples", "5",
            "--out", str(user_model / "out"), "--no-progress"]
    if data:
        argv += ["--data", str(user_model / data)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    message = message.replace("MISSING", str(user_model / "missing.py")).replace("NODATA", str(user_model / "nodata.json"))
    assert message in err
    assert not (user_model / "out").exists()  # an error before sampling leaves no empty output folder


def test_failure_after_first_sampler_still_writes_report(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["sample", "gaussian", "--model-arg", "dim=2", "--sampler", "nuts", "mclmc", "--set",
                 "mclmc.no_such_setting=1", "--chains", "2", "--warmup", "50", "--samples", "50", "--out", str(out),
                 "--no-progress"])
    assert code == 2
    assert (out / "nuts.nc").exists() and not (out / "mclmc.nc").exists()
    text = (out / "report.txt").read_text()
    assert "== failed ==" in text and "mclmc" in text and "no_such_setting" in text
    page = (out / "report.html").read_text()  # the HTML report too (it read as a complete one-sampler report)
    assert "<b>mclmc</b>: FAILED, no draws" in page and "no_such_setting" in page
    # a failed sampler's file from an earlier run in the same folder is named as such, not read as this run's
    (out / "mclmc.nc").write_bytes(b"an earlier run")
    assert main(["sample", "gaussian", "--model-arg", "dim=2", "--sampler", "mclmc", "--set", "no_such_setting=1",
                 "--out", str(out), "--no-progress"]) == 2
    assert "mclmc.nc is from an earlier run; this one failed" in capsys.readouterr().err


def test_repeated_options_add_up_and_a_key_given_twice_is_refused():
    """argparse's default "store" kept only the last --set / --model-arg / --samplers: `--model-arg dim=5
    --model-arg condition_number=100` sampled the default dim=10, `--samplers nuts --samplers mala` only mala."""
    from samplax.cli import _kv, _sampler_names, _settings_per_sampler, build_parser

    parse = build_parser().parse_args
    args = parse(["sample", "gaussian", "--model-arg", "dim=5", "--model-arg", "condition_number=100",
                  "--set", "nuts.target_accept=0.95", "--set", "nuts.max_num_doublings=5",
                  "--samplers", "nuts", "--samplers", "mala"])
    assert _kv(args.model_arg, "--model-arg") == {"dim": 5, "condition_number": 100}
    names = _sampler_names(args.samplers, args.default_samplers)
    assert names == ["nuts", "mala"]
    assert _settings_per_sampler(args.set, names)["nuts"] == {"target_accept": 0.95, "max_num_doublings": 5}
    for command, default in (("sample", ["nuts"]), ("compare", ["nuts", "mclmc"])):  # none given: the default
        args = parse([command, "gaussian"])
        assert _sampler_names(args.samplers, args.default_samplers) == default
    args = parse(["sample", "gaussian", "--set", "target_accept=0.9", "--set", "target_accept=0.95"])
    with pytest.raises(SystemExit, match="'target_accept' twice"):
        _settings_per_sampler(args.set, ["nuts"])


def test_html_verdict_lists_the_samplers_that_failed():
    from samplax.reporting.panels import Context, verdict_panel

    body = verdict_panel({}, Context(failed={"mala": "ValueError: step_size must be > 0"})).body
    assert "<b>mala</b>: FAILED, no draws: ValueError: step_size must be &gt; 0" in body


def test_set_for_an_unlisted_sampler_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="'mala' is not one of the samplers"):
        main(["sample", "gaussian", "--sampler", "nuts", "--set", "mala.step_size=0.1", "--out", str(tmp_path)])


def test_summary_of_a_corrupt_or_foreign_file(tmp_path, capsys):
    import xarray as xr

    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file at all")
    assert main(["summary", str(bad)]) == 2
    assert "bad.nc' is not a readable results file" in capsys.readouterr().err
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", [1.0, 2.0])}).to_netcdf(foreign, engine="h5netcdf")
    assert main(["summary", str(foreign)]) == 2
    assert "has no posterior group" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["summary", str(empty)]) == 2
    assert "holds no .nc or .zarr runs" in capsys.readouterr().err


def test_samplers_command_and_sample_help_list_names_and_defaults(capsys):
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    assert "nuts" in out and "target_accept=0.8" in out
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    help_text = capsys.readouterr().out
    assert "chain samplers: " in help_text and "nuts" in help_text and "(default: 1000)" in help_text


def test_report_command_writes_html(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["sample", "gaussian", "--model-arg", "dim=2", "--sampler", "nuts", "--chains", "2", "--warmup", "60",
                 "--samples", "60", "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.html").exists()
    assert main(["report", str(out), "--model", "gaussian", "--out", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert ">Against the truth</h2>" in text and "data:image/png;base64," in text


def test_samplers_name_describes_one_sampler_and_lists_no_catch_all(capsys):
    assert main(["samplers", "NUTS"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nuts: chain sampler") and "target_accept" in out and "0.8" in out and "a number" in out
    assert main(["samplers", "adaptive_sde"]) == 0
    assert "tol" in capsys.readouterr().out
    assert main(["samplers"]) == 0
    listing = capsys.readouterr().out
    assert "adaptive_sde" in listing and "unexpected" not in listing  # its **unexpected only refuses bad names
    assert main(["samplers", "nutz"]) == 2
    assert "did you mean nuts" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sample", "compare"])
@pytest.mark.parametrize("spelling", [["--samplers", "nuts,MALA"], ["--sampler", "nuts", "mala"],
                                      ["--samplers", "nuts", "mala"], ["--sampler", "nuts,mala"]])
def test_one_samplers_syntax_in_every_command(command, spelling):
    from samplax.cli import _sampler_names, build_parser

    args = build_parser().parse_args([command, "gaussian", *spelling])
    assert _sampler_names(args.samplers) == ["nuts", "mala"]


def test_population_run_log_z_in_report_txt_and_summary(tmp_path, capsys):
    import samplax

    out = tmp_path / "p"
    assert main(["sample", "gaussian", "--model-arg", "dim=2", "--samplers", "SMC", "--particles", "64",
                 "--chains", "2", "--out", str(out), "--no-progress"]) == 0
    dt = samplax.load(out / "smc.nc")
    line = f"smc: log Z = {float(dt.attrs['log_z']):.6g} +- {float(dt.attrs['log_z_se']):.3g}"
    assert line in (out / "report.txt").read_text()
    capsys.readouterr()
    assert main(["summary", str(out)]) == 0
    assert line in capsys.readouterr().out


def test_chain_flags_given_to_a_population_sampler_are_named(tmp_path, capsys):
    code = main(["sample", "gaussian", "--model-arg", "dim=2", "--samplers", "smc", "--particles", "100", "--chains",
                 "2", "--warmup", "10", "--thinning", "2", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert "--warmup, --thinning set chain samplers' runs; population sampler smc ignores them" in capsys.readouterr().err
