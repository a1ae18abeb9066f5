"""Audio front end: configuration, log-mel features, normaliser, I/O, inversion, export."""

from xai_core.audio.config import MelConfig
from xai_core.audio.features import Normaliser, log_mel, mel_filterbank, slice_excerpts, stft_magnitude

__all__ = ["MelConfig", "Normaliser", "log_mel", "mel_filterbank", "slice_excerpts", "stft_magnitude"]
