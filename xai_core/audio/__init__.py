"""Audio front end: configuration, log-mel features, normaliser, I/O, inversion, export.

The submodules' main functions are re-exported here; librosa (resampling, decoding odd formats)
stays imported lazily inside them, so ``import xai_core.audio`` costs little beyond torch.
"""

from xai_core.audio.config import MelConfig
from xai_core.audio.export import common_gain, read_wav, wav_bytes, wav_bytes_set, write_wav, zip_bytes
from xai_core.audio.features import Normaliser, log_mel, mel_filterbank, slice_excerpts, stft_magnitude
from xai_core.audio.inversion import griffin_lim, mel_to_audio, mel_to_magnitude
from xai_core.audio.io import load_audio, load_audio_bytes, resample

__all__ = [
    "MelConfig",
    "Normaliser",
    "common_gain",
    "griffin_lim",
    "load_audio",
    "load_audio_bytes",
    "log_mel",
    "mel_filterbank",
    "mel_to_audio",
    "mel_to_magnitude",
    "read_wav",
    "resample",
    "slice_excerpts",
    "stft_magnitude",
    "wav_bytes",
    "wav_bytes_set",
    "write_wav",
    "zip_bytes",
]
