"""The HTML report: self-contained, every panel renders, and a headless browser shows it without errors."""

import base64
import io
import re
import shutil
import subprocess

import jax
import numpy as np
import pytest

import samplax
from samplax.reporting import PANELS, report
from samplax.reporting.panels import runs_panel

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def runs():
    g = samplax.models.get("gaussian", dim=3)
    out = {s: samplax.sample(g, s, num_chains=2, num_warmup=150, num_samples=150, seed=3, progress=False)
           for s in ("nuts", "mala")}
    return g, out


@pytest.fixture(scope="module")
def page(runs, tmp_path_factory):
    g, r = runs
    d = tmp_path_factory.mktemp("report")
    path = report(r, g, d / "report.html", hitting_set=lambda x: x[0] > 1.5, hitting_oracle=20.0,
                  figures_dir=d / "figs")
    return path, report.last_errors, d


def test_report_is_one_offline_file_with_every_section(page):
    path, errors, d = page
    text = path.read_text()
    assert errors == []
    for title in ("Runs", "Summary", "Against the truth", "Hitting time", "Trace and rank plots", "Energy and E-BFMI",
                  "Divergences", "Autocorrelation"):
        assert f">{title}</h2>" in text, title
    assert "http://" not in text and "https://" not in text  # nothing fetched from the network
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) >= 10
    from PIL import Image

    for b64 in imgs:  # every embedded image decodes and is not blank
        im = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"), float)
        assert im.std() > 1.0
    # compile / warmup / sampling seconds and gradients are in the runs table
    for col in ("compile", "warmup", "sampling", "gradients"):
        assert col in text
    exported = sorted(p.name for p in (d / "figs").iterdir())
    assert "truth_curves.png" in exported and "truth_curves.svg" in exported and "nuts_trace.svg" in exported


def test_problem_cells_are_flagged_and_advice_given(runs, tmp_path):
    g, r = runs
    bad = r["mala"].copy()
    # two chains stuck in different places: R-hat must be flagged and the advice printed
    post = bad["posterior"].to_dataset()
    post["x"] = post["x"] + xr_offset(post["x"])
    bad["posterior"] = bad["posterior"].assign(x=post["x"])
    path = report({"bad": bad}, None, tmp_path / "r.html")
    text = path.read_text()
    assert '<td class="bad">' in text
    assert "chains disagree" in text


def xr_offset(x):
    off = np.zeros(x.shape)
    off[0] += 5.0
    return off


def test_a_failing_panel_shows_its_error_instead_of_losing_the_report(runs, tmp_path):
    g, r = runs

    def broken_panel(runs, ctx):
        raise RuntimeError("boom")

    path = report(r, g, tmp_path / "r.html", panels=[PANELS[PANELS.index(runs_panel)], broken_panel])
    text = path.read_text()
    assert "this panel failed" in text and "boom" in text and ">Runs</h2>" in text
    assert report.last_errors == ["broken_panel: RuntimeError: boom"]


def test_bad_arguments_are_named(runs, tmp_path):
    g, r = runs
    with pytest.raises(ValueError, match="out must end in .html"):
        report(r, g, tmp_path / "r.txt")
    with pytest.raises(ValueError, match="runs is empty"):
        report({}, g, tmp_path / "r.html")
    with pytest.raises(TypeError, match="runs must be a DataTree"):
        report([1, 2], g, tmp_path / "r.html")


def test_report_opens_in_headless_chromium(page, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed: `apt-get install chromium` (make test installs it when run as root)")
    path, _, _ = page
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run(common + ["--hide-scrollbars", "--window-size=1200,3000", f"--screenshot={shot}",
                                    path.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    from PIL import Image

    im = np.asarray(Image.open(shot).convert("L"), float)
    assert im.std() > 10.0, "screenshot is blank"
    dom = subprocess.run(common + ["--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<body data-images="(\d+)/(\d+)" data-errors="(\d+)"', dom)
    assert m is not None, "the page's load check did not run"
    loaded, total, errors = map(int, m.groups())
    assert total >= 10 and loaded == total, f"{loaded}/{total} images loaded"
    assert errors == 0


def test_long_runs_are_thinned_for_plots_only(runs, tmp_path, monkeypatch):
    import samplax.reporting.panels as panels

    monkeypatch.setattr(panels, "MAX_PLOT_DRAWS", 40)
    g, r = runs
    path = report({"nuts": r["nuts"]}, g, tmp_path / "r.html")
    text = path.read_text()
    assert "plots show every 4th draw" in text
    assert report.last_errors == []


def test_html_opens_with_the_verdict_and_a_ranking_with_uncertainty(page):
    path, _, _ = page
    text = path.read_text()
    sections = re.findall(r'<h2 id="s\d+">([^<]+)</h2>', text)
    assert sections[0] == "Verdict", sections
    verdict = text.split('<h2 id="s0">Verdict</h2>')[1].split("<h2")[0]
    for label in ("nuts", "mala"):  # one line per run, trusted or not
        assert re.search(rf"<b>{label}</b>: (trusted|NOT trusted: .+)</li>", verdict), verdict
    ranked = re.findall(r"<li>(\d+)=?\. (\w+): ([\d.]+) ± ([\d.]+) ESS per 1000 gradients", verdict)
    assert sorted(r[1] for r in ranked) == ["mala", "nuts"], verdict
    assert all(float(r[3]) > 0 for r in ranked)  # an uncertainty for each figure


@pytest.mark.parametrize("section", ["Trace and rank plots", "Autocorrelation", "Divergences", "Energy and E-BFMI"])
def test_every_plot_block_is_headed_by_its_run(page, section):
    path, _, _ = page
    block = path.read_text().split(f">{section}</h2>")[1].split("<h2")[0]
    for label in ("nuts", "mala"):
        if f"of {label}" not in block:
            continue
        head = block.index(f"<h3>{label}</h3>")
        first_img = block.index(f'alt="', block.index(f"<h3>{label}</h3>"))
        assert f"of {label}" in block[first_img:first_img + 60]
        assert head < block.index(f"of {label}")


@pytest.fixture(scope="module")
def smc_run(runs):
    g, _ = runs
    return samplax.sample(g, "smc", num_particles=64, num_chains=2, seed=1, progress=False)


def test_text_report_verdict_ranking_ties_and_log_z(runs, smc_run):
    from samplax.diagnostics.report import ranking

    g, r = runs
    both = {"nuts": r["nuts"], "nuts_again": r["nuts"], "mala": r["mala"], "smc": smc_run}
    text = samplax.text_report(both, g)
    lines = text.splitlines()
    assert lines[0] == "== verdict ==" and lines[1].startswith("nuts: ") and lines[4].startswith("smc: ")
    rows = {x["label"]: x for x in ranking(both)}
    assert set(rows) == {"nuts", "nuts_again", "mala"}  # a population run has no ESS along particles to rank
    assert rows["nuts"]["rank"] == rows["nuts_again"]["rank"] and "nuts_again" in rows["nuts"]["tied_with"]
    assert f"{rows['nuts']['rank']}=. nuts: " in text and re.search(r"tie with [a-z_, ]*nuts_again", text)
    assert "smc: not ranked (population run: see log Z)" in text
    lz, se = smc_run.attrs["log_z"], smc_run.attrs["log_z_se"]
    assert f"smc: log Z = {lz:.6g} +- {se:.3g} (pooled over 2 populations" in text
    assert re.search(r"nuts: exact: pooled .*; verdict: (within the noise floor|ABOVE the noise floor)", text)


def test_ranking_uncertainty_comes_from_the_chains(runs):
    from samplax.diagnostics.report import ess_per_1k_grad

    g, r = runs
    fig, se = ess_per_1k_grad(r["nuts"])
    assert np.isfinite(fig) and 0 < se < fig
    one = r["nuts"].isel(chain=slice(0, 1))
    assert np.isnan(ess_per_1k_grad(one)[1])  # one chain: no spread to bootstrap, said as n/a, not invented


def test_population_run_html_has_verdict_and_log_z_per_population_and_no_chain_plots(smc_run, tmp_path):
    path = report({"smc": smc_run}, None, tmp_path / "smc.html")
    text = path.read_text()
    assert report.last_errors == []
    verdict = text.split(">Verdict</h2>")[1].split("<h2")[0]
    assert "<b>smc</b>" in verdict and "log Z" in verdict
    stages = text.split(">Particle methods: log Z and per-stage statistics</h2>")[1].split("<h2")[0]
    per = np.asarray(smc_run.attrs["log_z_per_population"], float)
    assert "<th>population 0</th>" in stages and "<th>population 1</th>" in stages and "<th>pooled</th>" in stages
    assert f"<td>{per[1]:.4g}</td>" in stages and f"<td>{float(smc_run.attrs['log_z']):.4g}</td>" in stages
    assert ">Trace and rank plots</h2>" not in text and ">Autocorrelation</h2>" not in text
