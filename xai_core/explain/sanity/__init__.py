"""Model-parameter randomisation (Adebayo et al., *Sanity checks for saliency maps*, NeurIPS 2018), shared by the
methods: :mod:`.randomise` (cascading re-initialisation, rank correlation) and :mod:`.am` (the check of
GAN-based activation maximisation); the depth maps' check is :mod:`xai_core.explain.depthmaps.sanity`."""

from xai_core.explain.sanity.am import AMSanityResult, am_randomisation_check
from xai_core.explain.sanity.randomise import FAIL_ABOVE, randomise, spearman_rows, weighted_layers

__all__ = ["FAIL_ABOVE", "AMSanityResult", "am_randomisation_check", "randomise", "spearman_rows", "weighted_layers"]
