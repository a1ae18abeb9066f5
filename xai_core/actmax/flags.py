"""Out-of-range flags of kept activation-maximisation examples (issue 19).

An AM example whose response, latent norm or loudness lies far outside what real excerpts (and the
GAN's prior) produce is an adversarial-looking input, not an explanation: the authors' worst grid
configuration kept examples with logits about 60 where the real top excerpts reach about 10
(METHODS section 5). Every kept example gets three flags:

``response``
    The explained unit's response against the range of the real reference excerpts' responses,
    direction-aware: for ``"max"`` a response *above* ``max + m * (max - min)`` fires, for ``"min"``
    one *below* ``min - m * (max - min)``, with ``m = RESPONSE_MARGIN`` (0.1). Why the widened
    [min, max] and not a quantile: a reference set is usually not a random sample (the demo's holds
    the 64 highest- and 64 lowest-logit excerpts of 6000 drawn over the corpus, plus 256 random
    ones), so its quantiles are not population quantiles, while its extremes are what real data
    reaches at most. A response beyond them is a claim no real excerpt makes; the margin, a tenth of
    the real span, absorbs the sampling error of a finite set's maximum, and being relative to the
    span it needs no unit (a logit, a ReLU unit of ``fc2`` and a convolution map differ in scale; a
    ratio to the maximum would fail for a maximum near or below zero). On the demo's logit (real
    range -5.2 to 10.8) it is 1.6 logits, so maximisation fires above 12.4: the paper's kept
    examples (6.5 to 9 against real tops of about 10) would pass, its worst configuration (about 60)
    fires.
``z``
    ``||z||`` of the kept code against its distribution under the prior, chi with ``z_dim`` degrees
    of freedom: the two-sided tail probability ``2 min(F(r), 1 - F(r))`` below ``Z_ALPHA`` (0.001)
    fires; for ``z_dim = 128`` that is ``||z||`` outside [9.04, 13.68]. A code far from the typical
    shell (too long: the prior lost against the response; too short: the prior won) is one the GAN
    was never trained on. With 50 examples per configuration an honest draw z ~ N(0, I) fires 0.05
    times per configuration, 2.7 times over the paper's whole grid (27 x 2 x 50 examples).
``level``
    The mean log-mel level (loudness: the mean of the un-normalised natural-log mel magnitude over
    frames and bands) against the real excerpts' [min, max] widened by ``LEVEL_MARGIN`` (0.1) of its
    span, on both sides (louder or quieter than any real excerpt); on the demo the span is 2.3
    log units (20 dB), so the margin is 2.0 dB. A level measures the whole excerpt, so it is
    compared with what real excerpts reach, not with a prior: the GAN's own samples z ~ N(0, I)
    fire 0.4 % of the time on the demo (``||z||`` 0.2 %, the response never).

Without a real range (an AM run with no reference set) the ``z`` flag still works and the other two
are *unknown* (``None``): an example is "in range" when none of the *checked* flags fired, and the
summary names what was not checked. Pure numerics (numpy, scipy): only
:meth:`RealRange.from_reference` runs the classifier.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from xai_core.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from xai_core.actmax.engine import AMResult

RESPONSE_MARGIN = 0.1  # widen the real [min, max] response by this fraction of its span
LEVEL_MARGIN = 0.1  # widen the real [min, max] mean log-mel level by this fraction of its span
Z_ALPHA = 1e-3  # two-sided tail probability of ||z|| under chi(z_dim) below which the ||z|| flag fires
QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)  # quantiles of the real responses / levels kept for display
FLAGS = ("response", "z", "level")
FLAG_LABELS = {"response": "response", "z": "||z||", "level": "loudness"}
DB_PER_LOG = 20.0 / math.log(10.0)  # natural-log mel magnitude -> dB


def mean_level(logmel) -> np.ndarray:
    """Mean log-mel level ``(N,)`` float64 of un-normalised log-mel ``(N, T, M)`` (natural log of magnitude)."""
    x = logmel.detach().float().cpu().numpy() if hasattr(logmel, "detach") else np.asarray(logmel)
    if x.ndim != 3:
        raise ParameterError(f"log-mel must be (N, T, M), got shape {x.shape}")
    return x.astype(np.float64).mean(axis=(1, 2))


def chi_tail(norms, z_dim: int) -> np.ndarray:
    """Two-sided tail probability ``2 min(F(r), 1 - F(r))`` of each norm under chi(``z_dim``), in [0, 1]."""
    from scipy.stats import chi

    _check_dim(z_dim)
    r = np.asarray(norms, dtype=np.float64)
    # sf is exact in the upper tail where 1 - cdf would round to 0
    return np.minimum(1.0, 2.0 * np.minimum(chi.cdf(r, z_dim), chi.sf(r, z_dim)))


def z_bounds(z_dim: int, alpha: float = Z_ALPHA) -> tuple[float, float]:
    """``||z||`` interval of probability ``1 - alpha`` (equal tails) under chi(``z_dim``)."""
    from scipy.stats import chi

    _check_dim(z_dim)
    _check_fraction("alpha", alpha)
    return float(chi.ppf(alpha / 2, z_dim)), float(chi.isf(alpha / 2, z_dim))


def _check_dim(z_dim) -> None:
    if isinstance(z_dim, bool) or not isinstance(z_dim, (int, np.integer)) or z_dim < 1:
        raise ParameterError(f"z_dim must be an integer >= 1, got {z_dim!r}")


def _check_fraction(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ParameterError(f"{name} must be a number in (0, 1), got {value!r}")


def _check_margin(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ParameterError(f"{name} must be a number in [0, 100] (a fraction of the real span), got {value!r}")


def _finite_values(values, name: str) -> np.ndarray:
    v = np.asarray(values.detach().float().cpu().numpy() if hasattr(values, "detach") else values,
                   dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ParameterError(f"{name}: a real range needs at least one excerpt")
    if not np.isfinite(v).all():
        raise ParameterError(f"{name}: {int((~np.isfinite(v)).sum())} real values are NaN or infinite")
    return v


@dataclass(frozen=True)
class RealRange:
    """What the real reference excerpts produce: the explained unit's response and the mean log-mel level."""

    layer: str  # explained layer
    unit: int  # explained unit (flattened index)
    n: int  # real excerpts it was measured on
    response_min: float
    response_max: float
    level_min: float  # mean log-mel level (natural log of magnitude)
    level_max: float
    response_quantiles: tuple[float, ...] = ()  # at ``quantiles``
    level_quantiles: tuple[float, ...] = ()
    quantiles: tuple[float, ...] = QUANTILES
    source: str = ""  # where the excerpts came from (free text, shown with the range)

    def __post_init__(self) -> None:
        for lo, hi in (("response_min", "response_max"), ("level_min", "level_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isfinite(a)
                    and math.isfinite(b) and a <= b):
                raise ParameterError(f"RealRange needs finite {lo} <= {hi}, got {a!r}, {b!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ParameterError(f"RealRange n must be an integer >= 1, got {self.n!r}")
        for name in ("response_quantiles", "level_quantiles", "quantiles"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("response_quantiles", "level_quantiles"):
            if getattr(self, name) and len(getattr(self, name)) != len(self.quantiles):
                raise ParameterError(f"RealRange {name} has {len(getattr(self, name))} values for "
                                     f"{len(self.quantiles)} quantiles")

    @classmethod
    def from_values(cls, responses, levels, *, layer: str = "logit", unit: int = 0, source: str = "",
                    quantiles: tuple[float, ...] = QUANTILES) -> RealRange:
        """The range of real ``responses (N,)`` and mean log-mel ``levels (N,)`` (same excerpts)."""
        r = _finite_values(responses, "responses")
        lv = _finite_values(levels, "levels")
        if r.size != lv.size:
            raise ParameterError(f"{r.size} responses but {lv.size} levels: they must be of the same excerpts")
        q = tuple(float(v) for v in quantiles)
        return cls(layer=str(layer), unit=int(unit), n=int(r.size), response_min=float(r.min()),
                   response_max=float(r.max()), level_min=float(lv.min()), level_max=float(lv.max()),
                   response_quantiles=tuple(np.quantile(r, q).tolist()),
                   level_quantiles=tuple(np.quantile(lv, q).tolist()), quantiles=q, source=source)

    @classmethod
    def from_reference(cls, classifier, reference, *, layer: str = "logit", unit: int = 0, device=None,
                       responses=None) -> RealRange:
        """The range of every excerpt of a :class:`~xai_core.assets.ReferenceSet` through ``classifier``
        (``responses``: the excerpts' responses if already computed)."""
        if responses is None:
            from xai_core.actmax.engine import reference_responses

            responses = reference_responses(classifier, reference, layer=layer, unit=unit, device=device)
        return cls.from_values(responses, mean_level(reference.logmel), layer=layer, unit=unit,
                               source=f"{len(reference)} excerpts of the reference set")

    def response_bounds(self, margin: float = RESPONSE_MARGIN) -> tuple[float, float]:
        """``[min, max]`` of the real responses widened by ``margin`` x their span on each side."""
        _check_margin("margin", margin)
        w = margin * (self.response_max - self.response_min)
        return self.response_min - w, self.response_max + w

    def level_bounds(self, margin: float = LEVEL_MARGIN) -> tuple[float, float]:
        """``[min, max]`` of the real mean log-mel levels widened by ``margin`` x their span on each side."""
        _check_margin("level_margin", margin)
        w = margin * (self.level_max - self.level_min)
        return self.level_min - w, self.level_max + w

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("response_quantiles", "level_quantiles", "quantiles"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RealRange:
        if not isinstance(d, dict):
            raise ParameterError(f"a RealRange must be a mapping of its fields, got {type(d).__name__}")
        names = {"layer", "unit", "n", "response_min", "response_max", "level_min", "level_max",
                 "response_quantiles", "level_quantiles", "quantiles", "source"}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("response_quantiles", "level_quantiles", "quantiles"):
            if k in kw:
                if not isinstance(kw[k], (list, tuple)):
                    raise ParameterError(f"RealRange {k} must be a list, got {type(kw[k]).__name__}")
                kw[k] = tuple(kw[k])
        return cls(**kw)


@dataclass(frozen=True, eq=False)
class ExampleFlags:
    """Per-example flags of one set of kept examples (S of them) and the rule that produced them.

    ``response_out`` / ``level_out`` are ``None`` when unknown (no real range); ``z_out`` is always known.
    """

    direction: str  # "max" or "min": the response flag's side
    z_dim: int
    response: np.ndarray  # (S,) float64 the explained unit's response of the kept examples
    z_norm: np.ndarray  # (S,) float64 ||z|| of the kept codes
    z_p: np.ndarray  # (S,) float64 two-sided tail probability of ||z|| under chi(z_dim)
    level: np.ndarray  # (S,) float64 mean log-mel level
    z_out: np.ndarray  # (S,) bool: z_p < alpha
    response_out: np.ndarray | None = None  # (S,) bool, beyond the widened real range in the direction
    level_out: np.ndarray | None = None  # (S,) bool, outside the widened real level range
    real_range: RealRange | None = None
    margin: float = RESPONSE_MARGIN
    level_margin: float = LEVEL_MARGIN
    alpha: float = Z_ALPHA
    recomputed: bool = False  # computed on load / on the fly against a range, not stored with the run

    def __len__(self) -> int:
        return int(self.z_out.shape[0])

    @property
    def checked(self) -> tuple[str, ...]:
        """The flags that could be checked (``"z"`` always; the others need a real range)."""
        return tuple(f for f in FLAGS if self.fired_mask(f) is not None)

    @property
    def unknown(self) -> tuple[str, ...]:
        return tuple(f for f in FLAGS if f not in self.checked)

    def fired_mask(self, name: str) -> np.ndarray | None:
        """``(S,)`` bool of one flag (``"response"``, ``"z"``, ``"level"``), ``None`` when unknown."""
        if name not in FLAGS:
            raise ParameterError(f"unknown flag {name!r}; flags are {FLAGS}")
        return {"response": self.response_out, "z": self.z_out, "level": self.level_out}[name]

    @property
    def in_range(self) -> np.ndarray:
        """``(S,)`` bool: no checked flag fired."""
        out = np.ones(len(self), dtype=bool)
        for f in self.checked:
            out &= ~self.fired_mask(f)
        return out

    @property
    def share_in_range(self) -> float:
        return float(self.in_range.mean()) if len(self) else math.nan

    def fired(self, i: int) -> list[str]:
        """The flags that fired for example ``i``."""
        return [f for f in self.checked if bool(self.fired_mask(f)[i])]

    def counts(self) -> dict[str, int]:
        """How many examples each checked flag fired for."""
        return {f: int(self.fired_mask(f).sum()) for f in self.checked}

    def summary(self) -> dict:
        """Plain numbers: examples, share in range, per-flag counts, what was checked, the thresholds."""
        lo, hi = z_bounds(self.z_dim, self.alpha)
        out = {"n": len(self), "share_in_range": self.share_in_range, "in_range": int(self.in_range.sum()),
               "fired": self.counts(), "checked": list(self.checked), "unknown": list(self.unknown),
               "z_bounds": [lo, hi], "alpha": self.alpha, "margin": self.margin, "level_margin": self.level_margin}
        if self.real_range is not None:
            out["response_bounds"] = list(self.real_range.response_bounds(self.margin))
            out["level_bounds"] = list(self.real_range.level_bounds(self.level_margin))
        return out

    def summary_fields(self) -> dict:
        """The few plain values a run's summary row keeps: share in range, what fired, what is unknown."""
        out = {"in_range_share": self.share_in_range,
               "flags_fired": ", ".join(f"{FLAG_LABELS[k]} {v}" for k, v in self.counts().items())}
        if self.unknown:
            out["flags_unknown"] = ", ".join(FLAG_LABELS[f] for f in self.unknown)
        return out

    def describe(self) -> str:
        """One line: ``in range: 42/50 (84 %); fired: response 8, ||z|| 3, loudness 0`` (+ what is unknown)."""
        n, k = len(self), int(self.in_range.sum())
        text = f"in range: {k}/{n} ({100.0 * k / max(n, 1):.0f} %); fired: " + ", ".join(
            f"{FLAG_LABELS[f]} {c}" for f, c in self.counts().items())
        if self.unknown:
            text += "; unknown (no real range): " + ", ".join(FLAG_LABELS[f] for f in self.unknown)
        return text

    def badge(self, i: int) -> str:
        """Short text for example ``i``: ``"in range"`` or what fired, e.g. ``"response 5.9x the real maximum"``."""
        parts = []
        rr = self.real_range
        for f in self.fired(i):
            if f == "response":
                parts.append(_response_text(float(self.response[i]), rr, self.direction))
            elif f == "z":
                p = float(self.z_p[i])
                parts.append(f"||z|| improbable ({self.z_norm[i]:.1f}; p {f'{p:.0e}' if p > 0 else '< 1e-300'})")
            else:
                lv = float(self.level[i])
                if lv > rr.level_max:
                    parts.append(f"louder than any real excerpt (+{(lv - rr.level_max) * DB_PER_LOG:.1f} dB)")
                else:
                    parts.append(f"quieter than any real excerpt (−{(rr.level_min - lv) * DB_PER_LOG:.1f} dB)")
        if parts:
            return " · ".join(parts)
        return "in range" if not self.unknown else "in range (||z|| only: no reference set)"

    def badges(self) -> list[str]:
        return [self.badge(i) for i in range(len(self))]

    # ---- serialisation (the run store) --------------------------------------------------------
    def meta(self) -> dict:
        """JSON-able rule and range (the arrays go to :meth:`arrays`)."""
        return {"direction": self.direction, "z_dim": int(self.z_dim), "margin": self.margin,
                "level_margin": self.level_margin, "alpha": self.alpha,
                "real_range": self.real_range.to_dict() if self.real_range is not None else None}

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-example arrays that are not in the result itself (level, z_p, the flags as uint8)."""
        out = {"level": self.level.astype(np.float64), "z_p": self.z_p.astype(np.float64),
               "z_out": self.z_out.astype(np.uint8)}
        if self.response_out is not None:
            out["response_out"] = self.response_out.astype(np.uint8)
        if self.level_out is not None:
            out["level_out"] = self.level_out.astype(np.uint8)
        return out

    @classmethod
    def from_stored(cls, meta: dict, arrays: dict, *, response, z_norm) -> ExampleFlags:
        """Rebuild from :meth:`meta`, :meth:`arrays` and the result's own ``response`` and ``z_norm``."""
        if not isinstance(meta, dict):
            raise ParameterError(f"stored flags must be a mapping, got {type(meta).__name__}")
        rr = meta.get("real_range")

        def arr(name, dtype):
            return None if name not in arrays else np.asarray(arrays[name]).astype(dtype).reshape(-1)

        flags = cls(direction=str(meta["direction"]), z_dim=int(meta["z_dim"]),
                    response=np.asarray(response, dtype=np.float64).reshape(-1),
                    z_norm=np.asarray(z_norm, dtype=np.float64).reshape(-1), z_p=arr("z_p", np.float64),
                    level=arr("level", np.float64), z_out=arr("z_out", bool),
                    response_out=arr("response_out", bool), level_out=arr("level_out", bool),
                    real_range=RealRange.from_dict(rr) if rr is not None else None,
                    margin=float(meta["margin"]), level_margin=float(meta["level_margin"]),
                    alpha=float(meta["alpha"]))
        n = len(flags.z_norm)
        for name in ("response", "z_p", "level", "z_out", "response_out", "level_out"):
            v = getattr(flags, name)
            if v is None and name in ("z_p", "level", "z_out"):
                raise ParameterError(f"stored flags lack {name!r}")
            if v is not None and v.shape != (n,):
                raise ParameterError(f"stored flags {name!r} have shape {v.shape}, expected ({n},)")
        if (flags.response_out is None) != (flags.real_range is None) or \
                (flags.level_out is None) != (flags.real_range is None):
            raise ParameterError("stored flags: response and loudness flags need their real range, and back")
        return flags


def _response_text(r: float, rr: RealRange, direction: str) -> str:
    ref = rr.response_max if direction == "max" else rr.response_min
    word = "maximum" if direction == "max" else "minimum"
    if ref != 0 and r / ref > 1:  # same sign and further out: a ratio reads well
        return f"response {r / ref:.1f}x the real {word}"
    return f"response {r:.3g} {'above' if direction == 'max' else 'below'} the real {word} {ref:.3g}"


def flag_examples(result: AMResult, real_range: RealRange | None = None, z_dim: int | None = None, *,
                  margin: float = RESPONSE_MARGIN, level_margin: float = LEVEL_MARGIN,
                  alpha: float = Z_ALPHA) -> ExampleFlags:
    """Flags of every kept example of ``result`` against ``real_range`` (``None``: only ``||z||`` is checked).

    Parameters
    ----------
    result : AMResult
        Its ``response_best (S,)``, ``z_norm_best (S,)``, ``logmel_best (S, T, M)`` and direction are used.
    real_range : RealRange, optional
        Of the same layer and unit as ``result.config``.
    z_dim : int, optional
        Degrees of freedom of the chi distribution of ``||z||`` (default: ``result.z_best.shape[1]``).
    margin, level_margin : float
        Fractions of the real span by which the response / level ranges are widened.
    alpha : float
        Two-sided tail probability below which ``||z||`` is improbable.
    """
    c = result.config
    z_dim = int(result.z_best.shape[1]) if z_dim is None else z_dim
    _check_fraction("alpha", alpha)
    _check_margin("margin", margin)
    _check_margin("level_margin", level_margin)
    if real_range is not None and (real_range.layer, real_range.unit) != (c.layer, c.unit):
        raise ParameterError(f"the real range is of {real_range.layer}[{real_range.unit}], the examples explain "
                             f"{c.layer}[{c.unit}]")
    response = result.response_best.detach().double().cpu().numpy().reshape(-1)  # (S,)
    z_norm = result.z_norm_best.detach().double().cpu().numpy().reshape(-1)  # (S,)
    level = mean_level(result.logmel_best)  # (S,)
    z_p = chi_tail(z_norm, z_dim)
    z_out = ~(z_p >= alpha)  # NaN norms fire
    response_out = level_out = None
    if real_range is not None:
        lo, hi = real_range.response_bounds(margin)
        response_out = ~(response <= hi) if c.direction == "max" else ~(response >= lo)
        llo, lhi = real_range.level_bounds(level_margin)
        level_out = ~((level >= llo) & (level <= lhi))
    return ExampleFlags(direction=c.direction, z_dim=z_dim, response=response, z_norm=z_norm, z_p=z_p, level=level,
                        z_out=z_out, response_out=response_out, level_out=level_out, real_range=real_range,
                        margin=float(margin), level_margin=float(level_margin), alpha=float(alpha))


def cell_shares(grid, flags: dict | None = None) -> dict[str, np.ndarray]:
    """Share of in-range examples per grid cell: ``direction -> (len(iters), len(lrs), len(lams))`` float64
    (NaN where a cell is missing or has no flags), laid out like :attr:`GridResult.fid`'s tables.

    ``flags``: ``(direction, lr, lam, n_iter) -> ExampleFlags`` to use instead of the cells' own (e.g.
    recomputed against a reference set for a grid stored before flags existed)."""
    c = grid.config
    out = {}
    for d in c.directions:
        arr = np.full((len(c.iters), len(c.lrs), len(c.lams)), np.nan)
        for i, n_iter in enumerate(c.iters):
            for j, lr in enumerate(c.lrs):
                for k, lam in enumerate(c.lams):
                    key = (d, lr, lam, n_iter)
                    r = grid.examples.get(key)
                    f = flags.get(key) if flags is not None else getattr(r, "flags", None)
                    if f is not None:
                        arr[i, j, k] = f.share_in_range
        out[d] = arr
    return out


def reflag(result: AMResult, real_range: RealRange | None) -> ExampleFlags:
    """Flags of ``result`` against ``real_range`` with the rule (margins, alpha) its own flags used, marked
    as recomputed (for runs stored before flags existed, or without a real range)."""
    old = getattr(result, "flags", None)
    kw = {} if old is None else {"margin": old.margin, "level_margin": old.level_margin, "alpha": old.alpha}
    return replace(flag_examples(result, real_range, **kw), recomputed=True)


__all__ = ["DB_PER_LOG", "FLAGS", "FLAG_LABELS", "LEVEL_MARGIN", "QUANTILES", "RESPONSE_MARGIN", "Z_ALPHA",
           "ExampleFlags", "RealRange", "cell_shares", "chi_tail", "flag_examples", "mean_level", "reflag",
           "z_bounds"]
