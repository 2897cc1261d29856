"""Importing this module registers every population-sampler family (one line per family)."""

import importlib

FAMILIES = ("samplax.samplers.smc", "samplax.samplers.fkc", "samplax.samplers.diffusion", "samplax.samplers.meanfield",
            "samplax.diffusion.sfs")

for _name in FAMILIES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as err:  # a family still being written; any other import error is raised
        if err.name != _name:
            raise
