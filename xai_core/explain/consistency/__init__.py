"""Neuron consistency under adversarial examples, and consistent-loss adversarial training.

Dong, Bao, Su & Zhu, "Towards Interpretable Deep Neural Networks by Leveraging Adversarial Examples"
(arXiv 1901.09035); METHODS section 7. Layers, pure to impure: :mod:`.config`, :mod:`.concepts`
(concept spaces, the similarity matrix, closed-form chance level), :mod:`.attack` (FGSM / PGD in dB),
:mod:`.consistency` (every unit of every layer, real vs adversarial, and the agreement of the two),
:mod:`.robust` (the consistent-loss training, a classifier bundle like any other), :mod:`.listen` (does
an attack survive resynthesis?), :mod:`.data` (concept sets, comparing classifiers), :mod:`.serial`
(results as files: the run store's ``consistency`` runs), :mod:`.viz`, :mod:`.cli`.
"""

from xai_core.explain.consistency.attack import (
    AttackResult,
    attack,
    decision_threshold,
    input_bounds,
    perturb,
    success_curve,
)
from xai_core.explain.consistency.concepts import (
    ConceptSpace,
    agreement_of,
    available_schemes,
    concept_space,
    consistency_of,
    kmeans_concepts,
)
from xai_core.explain.consistency.config import (
    GOAL_TITLES,
    GOALS,
    METHODS,
    AttackConfig,
    ConsistencyConfig,
    RobustConfig,
    db_to_log,
    log_to_db,
)
from xai_core.explain.consistency.consistency import (
    ConsistencyResult,
    layer_means,
    neuron_consistency,
    top_k,
    unit_responses,
)

__all__ = [
    "GOALS", "GOAL_TITLES", "METHODS", "AttackConfig", "AttackResult", "ConceptSpace", "ConsistencyConfig",
    "ConsistencyResult", "RobustConfig", "agreement_of", "attack", "available_schemes", "concept_space", "consistency_of",
    "db_to_log", "decision_threshold", "input_bounds", "kmeans_concepts", "layer_means", "log_to_db",
    "neuron_consistency", "perturb", "success_curve", "top_k", "unit_responses",
]
