"""GAN-based activation maximisation (Mishra et al. 2019) and its FID-selected grid.

``config`` holds the frozen configurations, ``objective`` the response of a unit to a latent code,
``engine`` the batched optimiser (:func:`run_am`, :func:`run_grid`), ``flags`` the out-of-range flags of
kept examples against what real excerpts produce, ``sequential`` the authors' one-run-at-a-time loop (the
reference implementation and the benchmark baseline).
"""

from xai_core.actmax.config import DIRECTIONS, PRIOR_HELP, PRIORS, AMConfig, GridConfig, penalty_coefficient
from xai_core.actmax.engine import (
    AMResult,
    GridResult,
    reference_features,
    reference_responses,
    run_am,
    run_grid,
    top_reference,
)
from xai_core.actmax.flags import ExampleFlags, RealRange, cell_shares, flag_examples
from xai_core.actmax.objective import initial_codes, resolve_device

__all__ = [
    "DIRECTIONS", "PRIORS", "PRIOR_HELP", "AMConfig", "AMResult", "ExampleFlags", "GridConfig", "GridResult",
    "RealRange", "cell_shares", "flag_examples",
    "initial_codes", "penalty_coefficient", "reference_features", "reference_responses", "resolve_device",
    "run_am", "run_grid", "top_reference",
]
