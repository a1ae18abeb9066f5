import pytest

from xai_core.actmax import AMConfig, GridConfig, penalty_coefficient
from xai_core.errors import ParameterError


def test_prior_conventions():
    assert penalty_coefficient("paper", 0.1) == pytest.approx(0.05)
    assert penalty_coefficient("code", 0.1) == pytest.approx(0.1)
    assert AMConfig(prior="paper", lam=0.2).penalty == pytest.approx(AMConfig(prior="code", lam=0.1).penalty)


@pytest.mark.parametrize("kw, word", [({"layer": "conv9"}, "conv9"), ({"direction": "up"}, "up"),
                                      ({"lr": 0.0}, "lr"), ({"lam": -1.0}, "lam"), ({"prior": "x"}, "'x'"),
                                      ({"n_iter": 0}, "n_iter"), ({"unit": -1}, "unit")])
def test_am_config_rejects(kw, word):
    with pytest.raises(ParameterError, match=word):
        AMConfig(**kw)


def test_grid_config_defaults_and_rejects():
    g = GridConfig()
    assert g.n_configs == 27 and g.n_iter == 1000 and len(g.groups()) == 18
    assert GridConfig(iters=(30, 10)).iters == (10, 30)
    assert GridConfig.from_dict(g.to_dict()) == g
    with pytest.raises(ParameterError, match="bogus"):
        GridConfig(feature_layers=("response", "bogus"))
    with pytest.raises(ParameterError, match="repeated"):
        GridConfig(lrs=(0.1, 0.1))
    with pytest.raises(ParameterError, match="empty"):
        GridConfig(lams=())
