"""Widgets that return the core's configuration objects (the CLI builds the same ones)."""

from __future__ import annotations

import math

import streamlit as st

from xai_core.actmax.config import PRIOR_HELP, AMConfig, GridConfig
from xai_core.errors import ParameterError

LR_CHOICES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
LAM_CHOICES = (0.0, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _prior_label(p: str) -> str:
    """The convention's help text, with markdown characters escaped."""
    return PRIOR_HELP[p].replace("*", "·")


def _shape(s: tuple[int, ...]) -> str:
    return "scalar" if not s else " x ".join(map(str, s))


def _fmt(v: float) -> str:
    return "0" if v == 0 else f"{v:g}"


def target_widgets(layer_shapes: dict[str, tuple[int, ...]], *, key: str) -> tuple[str, int]:
    """Layer and unit selectors; the default is the vocal logit (layer ``logit``, unit 0)."""
    names = list(layer_shapes)
    layer = st.selectbox("Layer", names, index=names.index("logit") if "logit" in names else 0,
                         format_func=lambda n: f"{n} ({_shape(layer_shapes[n])})", key=f"{key}_layer",
                         help="Which layer's unit to explain; the default is the vocal logit.")
    n_units = math.prod(layer_shapes[layer]) if layer_shapes[layer] else 1
    unit = int(st.number_input(f"Unit (0 … {n_units - 1}, flattened index)", min_value=0,
                               max_value=n_units - 1, value=0, step=1, key=f"{key}_unit"))
    return layer, unit


def am_widgets(layer_shapes: dict[str, tuple[int, ...]], *, key: str = "am",
               defaults: AMConfig | None = None) -> tuple[list[AMConfig], int]:
    """All AM settings; returns one AMConfig per chosen direction and the chosen preview size."""
    d = defaults or AMConfig()
    layer, unit = target_widgets(layer_shapes, key=key)
    directions = st.multiselect("Direction(s)", ["max", "min"], default=[d.direction], key=f"{key}_dirs",
                                help="max: what drives the unit up (singing, for the logit); min: down.")
    c1, c2 = st.columns(2)
    lr = c1.select_slider("Learning rate (log scale)", LR_CHOICES, value=_nearest(LR_CHOICES, d.lr),
                          format_func=_fmt, key=f"{key}_lr")
    lam = c2.select_slider("Lambda, prior weight (log scale)", LAM_CHOICES, value=_nearest(LAM_CHOICES, d.lam),
                           format_func=_fmt, key=f"{key}_lam")
    prior = st.radio("Prior convention", ["paper", "code"], index=["paper", "code"].index(d.prior),
                     horizontal=True, format_func=_prior_label, key=f"{key}_prior")
    c3, c4, c5 = st.columns(3)
    n_iter = int(c3.number_input("Iterations", 1, 5000, d.n_iter, step=10, key=f"{key}_iter"))
    n_examples = int(c4.number_input("Examples", 1, 200, d.n_examples, step=1, key=f"{key}_n"))
    seed = int(c5.number_input("Seed", 0, 10**6, d.seed, step=1, key=f"{key}_seed"))
    if not directions:
        raise ParameterError("choose at least one direction (max or min)")
    cfgs = [AMConfig(layer=layer, unit=unit, direction=dr, lr=lr, lam=lam, prior=prior, n_iter=n_iter,
                     n_examples=n_examples, seed=seed) for dr in directions]
    return cfgs, n_examples


def _nearest(choices, value):
    return min(choices, key=lambda c: abs(math.log10(c + 1e-12) - math.log10(value + 1e-12)))


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ParameterError(f"{name}: {text!r} is not a comma-separated list of numbers") from None


def _ints(text: str, name: str) -> tuple[int, ...]:
    vals = _floats(text, name)
    if any(v != int(v) for v in vals):
        raise ParameterError(f"{name}: {text!r} must hold whole numbers")
    return tuple(int(v) for v in vals)


def grid_widgets(layer_shapes: dict[str, tuple[int, ...]], *, key: str = "grid") -> GridConfig:
    """The grid's settings (the paper's grid by default, editable) -> GridConfig."""
    d = GridConfig()
    c1, c2, c3 = st.columns(3)
    lrs = c1.text_input("Learning rates", ", ".join(f"{v:g}" for v in d.lrs), key=f"{key}_lrs")
    lams = c2.text_input("Lambdas", ", ".join(f"{v:g}" for v in d.lams), key=f"{key}_lams")
    iters = c3.text_input("Iteration counts", ", ".join(str(v) for v in d.iters), key=f"{key}_iters")
    c4, c5, c6 = st.columns(3)
    directions = c4.multiselect("Directions", ["max", "min"], default=list(d.directions), key=f"{key}_dirs")
    n_examples = int(c5.number_input("Examples per configuration", 2, 500, d.n_examples, key=f"{key}_n"))
    n_reference = int(c6.number_input("Reference excerpts (top/bottom N)", 2, 5000, d.n_reference,
                                      key=f"{key}_nref"))
    per_clip = int(c6.number_input("At most per clip (0 = no cap)", 0, 5000, d.per_clip or 0, key=f"{key}_perclip",
                                   help="The top/bottom N real excerpts take at most this many windows of one "
                                        "source clip, so that N = 50 is not 50 windows of one song."))
    c7, c8, c9 = st.columns(3)
    prior = c7.radio("Prior convention", ["code", "paper"], format_func=_prior_label,
                     key=f"{key}_prior")
    layers = [n for n in layer_shapes if n != "logit"]
    feat = c8.multiselect("Hidden feature layer(s) for FID", layers,
                          default=[x for x in d.feature_layers if x in layers], key=f"{key}_feat")
    seed = int(c9.number_input("Seed", 0, 10**6, d.seed, key=f"{key}_seed"))
    layer, unit = target_widgets(layer_shapes, key=key)
    if not directions:
        raise ParameterError("choose at least one direction (max or min)")
    return GridConfig(lrs=_floats(lrs, "learning rates"), lams=_floats(lams, "lambdas"),
                      iters=_ints(iters, "iteration counts"), directions=tuple(directions), layer=layer,
                      unit=unit, prior=prior, n_examples=n_examples, seed=seed, n_reference=n_reference,
                      per_clip=per_clip or None, feature_layers=("response", *feat))
