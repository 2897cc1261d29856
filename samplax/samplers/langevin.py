"""Langevin samplers, one module per family; this module re-exports them for `samplax.samplers.langevin.X`.

overdamped (`ula`, `mala`), underdamped (BAOAB / OBABO, adjusted = GHMC), `sgld` (+ `minibatch_target`);
preconditioner algebra in `precondition`, the shared step-size / mass-matrix rule in `langevin_base`.
"""

from samplax.samplers.langevin_base import UNADJUSTED_TARGET_ACCEPT  # noqa: F401
from samplax.samplers.overdamped import ULAInfo, mala, overdamped_move, pmala_kernel, ula, ula_kernel  # noqa: F401
from samplax.samplers.precondition import MASS_MATRICES, Precond, precond  # noqa: F401
from samplax.samplers.sgld import Minibatch, SGLDInfo, SGLDState, minibatch_target, sgld  # noqa: F401
from samplax.samplers.underdamped import (SPLITTINGS, UnderdampedInfo, UnderdampedState,  # noqa: F401
                                          adjusted_obabo_kernel, underdamped, underdamped_kernel)
