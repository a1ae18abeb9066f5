"""Concept tags of excerpts from what a corpus knows about each clip (the demo corpus' ``corpus.json``).

The demo corpus renders every clip from known parts, so each excerpt of it can carry concepts
beyond vocal / non-vocal (:meth:`xai_core.assets.ReferenceSet.concepts`):

* ``singer_family``: ``formant``, ``choir`` or ``festival`` where the excerpt is sung (its centre
  frame is labelled vocal), ``none`` where it is not (the clip's singer is not heard there);
* ``backing_song``: the Frets on Fire (or game-music) song under the clip;
* ``instrument``: the family of the clip's instrument negative (``pad``, ``lead``, ``additive``
  numpy synthesiser, or ``none``), a clip-level tag: the instrument plays in part of the clip;
* ``voice_level``: the clip's voice-to-backing ratio, ``under backing`` (< 0 dB), ``0-4 dB above``
  or ``> 4 dB above`` (the classifier's errors concentrate under the backing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from xai_core.errors import DataError

TAG_NAMES = ("singer_family", "backing_song", "instrument", "voice_level")


def _level(db: float) -> str:
    return "under backing" if db < 0 else ("0-4 dB above" if db <= 4 else "> 4 dB above")


def demo_corpus_tags(root: str | Path, sources: Sequence[str], labels: Sequence[float]) -> dict[str, list[str]]:
    """Tags of excerpts ``sources`` (``"clip@seconds"``) of the demo corpus at ``root``.

    Raises :class:`DataError` when ``root`` has no ``corpus.json`` or a source's clip is not in it.
    """
    cj = Path(root) / "corpus.json"
    if not cj.is_file():
        raise DataError(f"{root}: no corpus.json (concept tags come from a demo corpus' description)")
    try:
        files = {Path(f["file"]).stem: f for f in json.loads(cj.read_text())["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{cj}: unreadable corpus description ({exc})") from exc
    out: dict[str, list[str]] = {k: [] for k in TAG_NAMES}
    for src, label in zip(sources, labels, strict=True):
        clip = Path(str(src).split("@", 1)[0]).stem
        f = files.get(clip)
        if f is None:
            raise DataError(f"excerpt source {src!r}: clip {clip!r} is not in {cj}")
        singers = f.get("singers") or []
        family = singers[0].split("-", 1)[0] if singers else "none"
        out["singer_family"].append(family if float(label) > 0.5 else "none")
        out["backing_song"].append(str(f.get("song", "unknown")))
        inst = f.get("instrument")
        out["instrument"].append("none" if not inst else str(inst).split("-", 1)[0])
        db = f.get("vocal_to_backing_db")
        out["voice_level"].append(_level(float(db)) if isinstance(db, (int, float)) else "unknown")
    return out
