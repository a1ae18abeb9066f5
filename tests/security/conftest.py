"""The corpus's world: the tiny demo (shared with the rest of the suite) and what the cases start from."""

from __future__ import annotations

import pytest

from tests.security.corpus import Env


@pytest.fixture(scope="session")
def corpus_env(tiny_demo_dir, tmp_path_factory) -> Env:
    return Env.build(tmp_path_factory.mktemp("corpus"), tiny_demo_dir)
