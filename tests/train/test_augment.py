import math

import pytest
import torch

from xai_core.audio.config import MelConfig
from xai_core.errors import ParameterError
from xai_core.train.augment import DB_TO_LOG_MAGNITUDE, AugmentConfig, augment_batch, band_centres


def _batch(b=3, t=151, m=80, seed=0):
    return torch.randn(b, t, m, generator=torch.Generator().manual_seed(seed)) - 5.0


def test_zero_strength_is_exact_centre_crop():
    x = _batch()
    out = augment_batch(x, AugmentConfig.none(), out_frames=115)
    assert out.shape == (3, 115, 80)
    assert torch.equal(out, x[:, 18:133])


def test_shapes_kept_with_every_augmentation():
    cfg = AugmentConfig()
    x = _batch(t=cfg.input_frames(115))
    out = augment_batch(x, cfg, out_frames=115, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 115, 80)
    assert torch.isfinite(out).all()
    assert not torch.equal(out, x[:, (x.shape[1] - 115) // 2:][:, :115])


def test_input_frames_covers_the_strongest_stretch():
    cfg = AugmentConfig(time_stretch=0.3)
    need = cfg.input_frames(115)
    assert need >= 114 * 1.3 + 1 and (need - 115) % 2 == 0


def test_filter_only_adds_a_bounded_smooth_curve():
    x = _batch(t=115)
    cfg = AugmentConfig(pitch_shift=0.0, time_stretch=0.0, filter_db=10.0)
    out = augment_batch(x, cfg, out_frames=115, generator=torch.Generator().manual_seed(2))
    diff = out - x  # (B, T, M): the same curve on every frame
    assert torch.allclose(diff, diff[:, :1].expand_as(diff), atol=1e-5)
    assert diff.abs().max() <= 10.0 * DB_TO_LOG_MAGNITUDE + 1e-5


def test_pitch_shift_moves_a_tone_by_the_factor_on_the_mel_scale():
    mel = MelConfig()
    f = band_centres(mel)
    k = 40
    x = torch.full((1, 115, 80), -10.0)
    x[:, :, k] = 0.0  # a steady tone at band k
    cfg = AugmentConfig(pitch_shift=0.3, time_stretch=0.0, filter_db=0.0)
    g = torch.Generator().manual_seed(3)
    u = torch.rand(1, 2, generator=torch.Generator().manual_seed(3))
    shift = 1.0 + (2.0 * u[0, 1] - 1.0) * 0.3
    out = augment_batch(x, cfg, out_frames=115, generator=g)
    peak = int(out[0, 57].argmax())
    expected = int(torch.argmin((f - f[k] * shift).abs()))
    assert abs(peak - expected) <= 1


def test_time_stretch_keeps_the_centre_frame():
    x = torch.full((2, 151, 80), -10.0)
    x[:, 75, :] = 0.0  # a click at the centre
    cfg = AugmentConfig(pitch_shift=0.0, time_stretch=0.3, filter_db=0.0)
    out = augment_batch(x, cfg, out_frames=115, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(out[:, 57], torch.zeros(2, 80), atol=1e-5)


def test_invalid_settings_name_the_value():
    with pytest.raises(ParameterError, match="pitch_shift"):
        AugmentConfig(pitch_shift=1.5)
    with pytest.raises(ParameterError, match="time_stretch"):
        augment_batch(_batch(t=115), AugmentConfig(), out_frames=115)
    assert math.isclose(DB_TO_LOG_MAGNITUDE * 20, math.log(10))
