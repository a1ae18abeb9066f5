"""Does an attack survive the trip through audio? Re-analyse a waveform and classify it again.

An adversarial log-mel is a spectrogram, not a sound. Played back, it goes through an inversion
(Griffin-Lim, with made-up phases) and a listener, or the detector, hears the re-analysed result. If
the detector's decision on the re-analysed adversarial audio is back to the original one, the attack
lives only in the spectrogram: it changes nothing one could play to the detector. The page and the
``attack`` command report p(vocal) of both re-analysed clips beside the spectrogram numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from xai_core.audio.features import log_mel
from xai_core.checkpoints import Bundle
from xai_core.device import resolve_device
from xai_core.errors import ParameterError
from xai_core.explain.consistency.attack import check_classifier, logits_of
from xai_core.models.hooks import frozen


def reanalysed_logits(classifier: Bundle, waves: np.ndarray | torch.Tensor, *,
                      device: str | torch.device | None = "auto") -> torch.Tensor:
    """Logits ``(B,)`` of waveforms ``(B, L)`` (e.g. Griffin-Lim of excerpts, ``L`` the natural length of
    one excerpt), through the classifier's own front end; the first ``n_frames`` frames are read."""
    check_classifier(classifier)
    w = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    if w.ndim != 2:
        raise ParameterError(f"waves must be (B, samples), got shape {tuple(w.shape)}")
    feats = log_mel(w, classifier.mel)  # (B, T', M)
    frames = classifier.model.config.n_frames
    if feats.shape[1] < frames:
        raise ParameterError(f"the waveforms are {feats.shape[1]} frames long, the classifier reads {frames}")
    dev = resolve_device(device)
    with frozen(classifier.model, dev) as model:
        return logits_of(model, feats[:, :frames], classifier.normaliser.mean.to(dev),
                         classifier.normaliser.std.to(dev))
