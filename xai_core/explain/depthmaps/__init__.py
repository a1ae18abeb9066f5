"""Where does the classifier listen? Grad-CAM depth maps and a conditional-GAN explainer (Guna, Sikha &
Benitez, KBS 2024), METHODS section 8, checked by deletion/insertion curves and model randomisation.

Layers, pure to impure: :mod:`.config`, :mod:`.gradcam` (one-pass Grad-CAM at every layer, cumulative maps),
:mod:`.nets` (SFT generator, discriminator), :mod:`.train`, :mod:`.bundle` (files), :mod:`.explain`
(:func:`explain`, per-depth relevance, held-out evaluation), :mod:`.faithfulness` (deletion/insertion),
:mod:`.sanity` (randomisation), :mod:`.listen` (relevant part / the rest), :mod:`.viz`, :mod:`.cli`.
"""

from xai_core.explain.depthmaps.bundle import ExplainerBundle, load_explainer, load_explainers, save_explainer
from xai_core.explain.depthmaps.config import VARIANTS, ExplainerConfig, FaithConfig, UnitSpec
from xai_core.explain.depthmaps.explain import (
    DepthMapResult,
    condition_relevance,
    evaluate_explainer,
    explain,
)
from xai_core.explain.depthmaps.faithfulness import FaithCurves, depth_map_faithfulness, faithfulness
from xai_core.explain.depthmaps.gradcam import cumulative_maps, layer_gradcam, spatial_layers
from xai_core.explain.depthmaps.sanity import SanityResult, randomisation_check
from xai_core.explain.depthmaps.train import train_explainer

__all__ = [
    "VARIANTS", "DepthMapResult", "ExplainerBundle", "ExplainerConfig", "FaithConfig", "FaithCurves", "SanityResult",
    "UnitSpec", "condition_relevance", "cumulative_maps", "depth_map_faithfulness", "evaluate_explainer", "explain",
    "faithfulness", "layer_gradcam", "load_explainer", "load_explainers", "randomisation_check", "save_explainer",
    "spatial_layers", "train_explainer",
]
