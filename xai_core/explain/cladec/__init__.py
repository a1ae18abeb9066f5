"""ClaDec: explaining a classifier by decoding its layer activations (Schneider & Vlachos, IDA 2021).

METHODS section 6. Layers, pure to impure: :mod:`.decoder` (architectures), :mod:`.config`,
:mod:`.train` (ClaDec, RefAE and random-feature decoders), :mod:`.explain` (:func:`decode`),
:mod:`.evaluate` (the retraining evaluation), :mod:`.bundle` (files), :mod:`.cli`.
"""

from xai_core.explain.cladec.bundle import (
    DecoderBundle,
    DecoderSet,
    decoder_file_name,
    load_decoder,
    load_decoder_set,
    save_decoder,
)
from xai_core.explain.cladec.config import VARIANT_TITLES, VARIANTS, CladecConfig, EvalConfig
from xai_core.explain.cladec.decoder import DecoderConfig, LayerDecoder, layer_shapes
from xai_core.explain.cladec.evaluate import (
    CladecEvaluation,
    draw_excerpts,
    evaluate_decoders,
    retrain_and_test,
)
from xai_core.explain.cladec.explain import NAMES, DecodeResult, decode, reconstruct, rows_figure
from xai_core.explain.cladec.train import train_decoder, train_decoders

__all__ = [
    "NAMES", "VARIANTS", "VARIANT_TITLES", "CladecConfig", "CladecEvaluation", "DecodeResult", "DecoderBundle",
    "DecoderConfig", "DecoderSet", "EvalConfig", "LayerDecoder", "decode", "decoder_file_name", "draw_excerpts",
    "evaluate_decoders", "layer_shapes", "load_decoder", "load_decoder_set", "reconstruct", "retrain_and_test",
    "rows_figure", "save_decoder", "train_decoder", "train_decoders",
]
