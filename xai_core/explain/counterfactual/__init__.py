"""Counterfactuals: make this real excerpt more, or less, vocal (issue 19, part 4; a method of this project).

Invert a real excerpt into the GAN's latent space, then run activation maximisation from the inverted code with
a proximity term, toward more and less vocal; judge the reconstruction against the real-vs-real spread.

Layers, pure to impure: :mod:`.config`, :mod:`.spread` (the real-vs-real spread), :mod:`.invert` (batched
restarts), :mod:`.engine` (:func:`counterfactual`, the result), :mod:`.serial` (one safetensors file, the run
store's ``counterfactual`` runs), :mod:`.viz`, :mod:`.cli`.
"""

from xai_core.explain.counterfactual.config import DIRECTION_TITLES, CounterfactualConfig
from xai_core.explain.counterfactual.engine import (
    CounterfactualResult,
    ascend_from,
    check_excerpt,
    counterfactual,
)
from xai_core.explain.counterfactual.invert import Inversion, invert
from xai_core.explain.counterfactual.spread import RealSpread, nearest_real_mse, real_spread

__all__ = [
    "DIRECTION_TITLES", "CounterfactualConfig", "CounterfactualResult", "Inversion", "RealSpread", "ascend_from",
    "check_excerpt", "counterfactual", "invert", "nearest_real_mse", "real_spread",
]
