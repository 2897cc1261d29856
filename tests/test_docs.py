"""The documentation site builds: `mkdocs build --strict` (as `make docs` runs it) into a temporary folder.

--strict turns every warning into a failure: a broken link or nav entry, a `::: samplax.X` that no longer
resolves, a missing snippet (the benchmarks page includes benchmarks/README.md and, through docs/hooks.py, the
README's validation matrix), a notebook that cannot be read.
The notebooks are rendered without running them (`execute: false` in mkdocs.yml), so this takes seconds.
`make test` installs the `docs` extra; without it the test is skipped, saying how to install it.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MISSING = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers", "mkdocs_jupyter")
           if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"documentation tools not installed ({', '.join(MISSING)}): "
                    "pip install -e '.[docs]' (make test and make docs install them)")
def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                           "--config-file", str(ROOT / "mkdocs.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    for page in ("index.html", "quickstart/index.html", "api/index.html", "benchmarks/index.html",
                 "notebooks/quickstart/index.html", "DESIGN/index.html"):
        assert (site / page).is_file(), f"{page} missing from the built site"
    api = (site / "api/index.html").read_text()
    assert "samplax.sample" in api and "num_chains" in api, "the API page lost sample()'s rendered docstring"
    bench = (site / "benchmarks/index.html").read_text()
    assert "Cold and warm start" in bench, "the benchmarks page no longer includes benchmarks/README.md"
    assert "the-validation-matrix" in bench, "the benchmarks page lost the README's validation matrix (docs/hooks.py)"


def test_every_notebook_is_on_the_site():
    """Each examples/*.py notebook has its symlink in docs/notebooks/ and a nav entry in mkdocs.yml (a new
    notebook would otherwise be left off the site without any warning)."""
    nav = (ROOT / "mkdocs.yml").read_text()
    for nb in sorted((ROOT / "examples").glob("*.py")):
        link = ROOT / "docs" / "notebooks" / nb.name
        assert link.is_symlink() and link.resolve() == nb.resolve(), \
            f"docs/notebooks/{nb.name} should be a symlink to ../../examples/{nb.name} (ln -s ../../examples/{nb.name} docs/notebooks/)"
        assert f"notebooks/{nb.name}" in nav, f"mkdocs.yml's nav has no entry for notebooks/{nb.name}"
