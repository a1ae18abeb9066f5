"""Shared fixtures: tiny untrained models in the demo layout, a deterministic CPU setting."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory):
    """A folder with tiny classifier/generator bundles and a reference set (demo layout)."""
    from xai_core.assets import make_tiny_demo

    root = tmp_path_factory.mktemp("tiny_demo")
    make_tiny_demo(root)
    return root


@pytest.fixture(scope="session")
def tiny_bundles(tiny_demo_dir):
    """(classifier Bundle, generator Bundle, ReferenceSet) loaded from ``tiny_demo_dir``."""
    from xai_core.assets import DemoPaths, ReferenceSet
    from xai_core.checkpoints import load_bundle

    p = DemoPaths.at(tiny_demo_dir)
    return (load_bundle(p.classifier, expected_kind="classifier"),
            load_bundle(p.generator, expected_kind="generator"),
            ReferenceSet.load(p.reference))
