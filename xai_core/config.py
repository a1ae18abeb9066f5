"""The configuration objects shared by the UI and the CLI, in one place.

Every one is a frozen dataclass validated in ``__post_init__`` (a bad value raises
:class:`xai_core.errors.ParameterError` naming it); the Streamlit widgets and the argparse
commands build these same objects.
"""

from xai_core.actmax.config import AMConfig, GridConfig
from xai_core.audio.config import MelConfig
from xai_core.data.demo import DemoConfig
from xai_core.models.generator import DiscriminatorConfig, GeneratorConfig
from xai_core.models.svdnet import SVDNetConfig
from xai_core.train.augment import AugmentConfig
from xai_core.train.classifier import ClassifierTrainConfig
from xai_core.train.gan import GanTrainConfig

__all__ = [
    "AMConfig", "AugmentConfig", "ClassifierTrainConfig", "DemoConfig", "DiscriminatorConfig",
    "GanTrainConfig", "GeneratorConfig", "GridConfig", "MelConfig", "SVDNetConfig",
]
