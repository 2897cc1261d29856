"""Import orders a user's script may have: samplax must build models whichever of samplax, arviz and numpyro
is imported first (arviz_base loads numpyro lazily, which used to break numpyro.factor in our models)."""

import subprocess
import sys

import pytest

ORDERS = {
    "samplax then arviz_stats": "import samplax\nfrom arviz_stats import ess",
    "arviz_stats then samplax": "from arviz_stats import ess\nimport samplax",
    "arviz_base then samplax": "import arviz_base\nimport samplax",
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_models_with_improper_priors_build_in_any_import_order(order):
    code = ORDERS[order] + "\nt = samplax.models.get('kidscore_momiq')\nprint('OK', t.dim)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SAMPLAX_COMPILATION_CACHE": "0", "JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.returncode == 0 and "OK 3" in out.stdout, out.stderr[-2000:]


def test_documented_submodules_resolve_after_import_samplax():
    """docs/samplers/secd.md calls samplax.optimizers.minimize after `import samplax`, README names
    samplax.experiments.quantum and samplax.diagnostics.evidence_check: each raised AttributeError until the
    submodule was imported by hand. Run in a fresh process, where nothing else has imported them."""
    code = ("import samplax\n"
            "for path in ('optimizers.minimize', 'optimizers.anneal', 'experiments.quantum', 'meanfield.sample_meanfield',"
            " 'tempering.tempering_parts', 'diagnostics.hitting_theory.travel_time', 'diagnostics.evidence_check'):\n"
            "    obj = samplax\n"
            "    for part in path.split('.'):\n"
            "        obj = getattr(obj, part)\n"
            "try:\n    samplax.no_such_module\nexcept AttributeError as e:\n    print('OK', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SAMPLAX_COMPILATION_CACHE": "0", "JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.returncode == 0 and "OK module 'samplax' has no attribute 'no_such_module'" in out.stdout, \
        out.stderr[-2000:]
