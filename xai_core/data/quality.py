"""Which excerpts may stand for "real music": no padding, no digital silence, not all from one clip.

FID selection compares generated examples with the real excerpts of highest (max) or lowest (min)
response, and the Listen page plays those excerpts. Cut at a clip's edge, an excerpt is padded with
constant frames (:class:`~xai_core.train.data.ExcerptPool` pads with the track's minimum, for per-frame
prediction), and a clip's silent intro is digital silence: in the demo, 59 of the 64 "least vocal"
excerpts held such frames, so minimisation was selected for looking like silence. And the 64 "most
vocal" came 45 from one song.

**The rule.** A frame is *dead* when it is flat across the mel bands (max - min below
:data:`FLAT_NATS`: padding and digital silence are constant; no recorded sound is flat to 0.01 nats
over 80 bands) or when every band is below :data:`DEAD_LEVEL` (1e-4 in linear mel magnitude, about
70 dB under a full-scale sine's peak band, whose log-mel is about 7: inaudible). An excerpt is *clean*
when none of its frames is dead. The result did not depend on the thresholds on the demo: flatness
0.01 or 0.05 nats, level -9.2, -8 or -6 nats all flagged the same 59 / 0 / 11 excerpts of the
bottom / top / random parts.

**The per-clip cap.** Top-N selection takes at most ``per_clip`` excerpts of one source clip (the part
of ``sources`` before ``@``); :data:`DEFAULT_PER_CLIP` = 4 makes the 50 FID references span at least 13
clips, while 4 excerpts (6.6 s) of a clip still let one long vocal passage count as several excerpts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from xai_core.errors import ParameterError

FLAT_NATS = 0.01  # a frame flatter than this across the bands is padding or digital silence
DEAD_LEVEL = math.log(1e-4)  # -9.21 nats: every band below this is inaudible
DEFAULT_PER_CLIP = 4  # excerpts per source clip in a top-N selection

RULE = (f"no frame flat across the bands (max - min < {FLAT_NATS} nats: padding, digital silence) and no frame "
        f"with every band below {DEAD_LEVEL:.2f} nats (1e-4, inaudible)")


def dead_frames(logmel: torch.Tensor) -> torch.Tensor:
    """Dead frames of log-mel excerpts ``(..., T, M)`` -> bool ``(..., T)``."""
    x = torch.as_tensor(logmel).float()
    hi, lo = x.amax(-1), x.amin(-1)  # (..., T)
    return ((hi - lo) < FLAT_NATS) | (hi < DEAD_LEVEL)


def clean_mask(logmel: torch.Tensor, *, batch: int = 1024) -> torch.Tensor:
    """``(N,)`` bool: the excerpts ``(N, T, M)`` without a dead frame (batched: a set may be large)."""
    if logmel.ndim != 3:
        raise ParameterError(f"expected log-mel excerpts (N, T, M), got shape {tuple(logmel.shape)}")
    return torch.cat([~dead_frames(logmel[s:s + batch]).any(-1) for s in range(0, logmel.shape[0], batch)]) \
        if logmel.shape[0] else torch.zeros(0, dtype=torch.bool)


def clip_of(source: str) -> str:
    """The clip of a source ``"file.flac@12.34"`` (everything before the last ``@``)."""
    return source.rsplit("@", 1)[0]


def capped(order: Sequence[int] | torch.Tensor, sources: Sequence[str], n: int, per_clip: int | None) -> list[int]:
    """The first ``n`` indices of ``order`` taking at most ``per_clip`` of one clip (``None``: no cap).

    Raises :class:`ParameterError` when the cap leaves fewer than ``n``, naming how many clips there are.
    """
    if per_clip is not None and (isinstance(per_clip, bool) or not isinstance(per_clip, int) or per_clip < 1):
        raise ParameterError(f"per_clip must be an integer >= 1 or None, got {per_clip!r}")
    out: list[int] = []
    counts: dict[str, int] = {}
    for i in (order.tolist() if isinstance(order, torch.Tensor) else order):
        c = clip_of(sources[i])
        if per_clip is not None and counts.get(c, 0) >= per_clip:
            continue
        counts[c] = counts.get(c, 0) + 1
        out.append(int(i))
        if len(out) == n:
            return out
    clips = len({clip_of(sources[i]) for i in (order.tolist() if isinstance(order, torch.Tensor) else order)})
    raise ParameterError(f"only {len(out)} excerpts can be taken with at most {per_clip} per clip from {clips} "
                         f"clips; {n} were asked for: lower the number or raise the per-clip cap")


def n_clips(sources: Sequence[str]) -> int:
    """How many clips ``sources`` span."""
    return len({clip_of(s) for s in sources})
