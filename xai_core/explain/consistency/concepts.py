"""Concepts of excerpts and the similarity matrix ``A`` of consis(n) = p^T A p (pure numerics + tags).

Every excerpt carries concept tags (:meth:`xai_core.assets.ReferenceSet.concepts`): ``vocal`` always,
and for the demo corpus ``singer_family``, ``backing_song``, ``instrument``, ``voice_level``. For data
without tags, :func:`kmeans_concepts` clusters the log-mel into ``k`` concepts.

A *concept scheme* turns the tags into one concept per excerpt and a similarity matrix over concepts:

* a tag name (``vocal``, ``singer_family``, ``cluster``, ...): that tag's values, ``A = I``
  (purity: consis = sum_c p_c^2);
* ``graded``: vocal excerpts by singer family, non-vocal ones by the instrument negative of their clip;
  ``A = 1`` for the same concept, ``GRADED_SAME_CLASS`` (0.5) for two different concepts of the same class
  (two singer families, both vocal; two instruments, both non-vocal), 0 across classes. So a unit whose
  top inputs are all sung by one family scores 1, all sung but by several families about 0.5, half sung
  and half not at most 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xai_core.errors import ParameterError

SCHEMES = ("graded",)  # besides every tag name of the excerpt set
GRADED_SAME_CLASS = 0.5


@dataclass(frozen=True)
class ConceptSpace:
    """One concept per excerpt and the similarity between concepts."""

    name: str  # the scheme
    names: tuple[str, ...]  # the C concepts
    codes: torch.Tensor  # (N,) long: each excerpt's concept index
    similarity: torch.Tensor  # (C, C) float64, symmetric, A[c, c] = 1

    def __post_init__(self) -> None:
        c = len(self.names)
        if self.similarity.shape != (c, c):
            raise ParameterError(f"similarity must be {c} x {c}, got {tuple(self.similarity.shape)}")
        if self.codes.ndim != 1 or (self.codes.numel() and not (0 <= int(self.codes.min()) and int(self.codes.max()) < c)):
            raise ParameterError("concept codes must be indices into the concept names")

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def labels(self) -> list[str]:
        return [self.names[i] for i in self.codes.tolist()]

    def chance(self, k: int) -> float:
        """Expected consistency of ``k`` excerpts drawn at random without replacement from the set.

        With n_c excerpts of concept c (N in all), the mean of A over ordered pairs of the k draws is
        (1/k) mean_i A[c_i, c_i] + (1 - 1/k) mean over pairs i != j of A[c_i, c_j]."""
        n = torch.bincount(self.codes, minlength=len(self.names)).double()  # (C,)
        total = float(n.sum())
        if total < 2 or k < 1:
            return float("nan")
        k = min(k, int(total))
        a = self.similarity.double()
        diag = float((n * torch.diagonal(a)).sum()) / total
        pairs = float(n @ a @ n) - float((n * torch.diagonal(a)).sum())
        off = pairs / (total * (total - 1))
        return diag / k + (1.0 - 1.0 / k) * off


def consistency_of(topk: torch.Tensor, space: ConceptSpace) -> torch.Tensor:
    """consis = p^T A p for each row of top-k excerpt indices.

    Parameters
    ----------
    topk : torch.Tensor, shape ``(U, k)``, long: indices of each unit's top-k inputs into the set

    Returns
    -------
    torch.Tensor, shape ``(U,)`` float64
    """
    p = concept_distribution(topk, space)  # (U, C) concept distribution among the top k
    return torch.einsum("uc,cd,ud->u", p, space.similarity.double(), p)  # (U,)


def concept_distribution(topk: torch.Tensor, space: ConceptSpace) -> torch.Tensor:
    """``(U, C)`` float64: the share of each concept among each row's top-k excerpts ``topk (U, k)``."""
    if topk.ndim != 2 or topk.shape[1] == 0:
        raise ParameterError(f"top-k indices must be (units, k >= 1), got {tuple(topk.shape)}")
    codes = space.codes[topk]  # (U, k)
    p = torch.zeros(topk.shape[0], len(space.names), dtype=torch.float64)
    p.scatter_add_(1, codes, torch.ones_like(codes, dtype=torch.float64))
    return p / topk.shape[1]


def agreement_of(topk_a: torch.Tensor, topk_b: torch.Tensor, space: ConceptSpace) -> torch.Tensor:
    """p_a^T A p_b per unit ``(U,)``: how much two top-k sets of each unit share concepts.

    Consistency (``p^T A p``) only asks whether a unit's top inputs agree *with each other*; it is blind to
    which concept they share. With ``a`` the real and ``b`` the adversarial top inputs this says whether
    the adversarial ones still carry the concept the unit has on real inputs: a unit whose real top inputs
    are all sung and whose adversarial top inputs all come from non-vocal excerpts is perfectly consistent
    on both (1 and 1) and agrees 0 (under purity of ``vocal``)."""
    if topk_a.shape[0] != topk_b.shape[0]:
        raise ParameterError(f"top-k sets of {topk_a.shape[0]} and {topk_b.shape[0]} units")
    pa, pb = concept_distribution(topk_a, space), concept_distribution(topk_b, space)
    return torch.einsum("uc,cd,ud->u", pa, space.similarity.double(), pb)  # (U,)


def tag_space(name: str, values: Sequence[str]) -> ConceptSpace:
    """Purity over one tag's values (``A = I``)."""
    names = tuple(sorted(set(values)))
    index = {v: i for i, v in enumerate(names)}
    codes = torch.tensor([index[v] for v in values], dtype=torch.long)
    return ConceptSpace(name, names, codes, torch.eye(len(names), dtype=torch.float64))


def graded_space(concepts: Mapping[str, Sequence[str]]) -> ConceptSpace:
    """The ``graded`` scheme (module docstring): singer family for vocal, instrument for non-vocal."""
    missing = [t for t in ("vocal", "singer_family", "instrument") if t not in concepts]
    if missing:
        raise ParameterError(f"the 'graded' concept scheme needs the tags {missing}, which this excerpt set lacks; "
                             f"use one of its tags {sorted(concepts)} (purity) or k-means clusters")
    values = []
    for v, fam, inst in zip(concepts["vocal"], concepts["singer_family"], concepts["instrument"], strict=True):
        values.append(f"vocal: {fam}" if v == "vocal" else f"non-vocal: {inst if inst != 'none' else 'no instrument'}")
    names = tuple(sorted(set(values)))
    index = {v: i for i, v in enumerate(names)}
    cls = [n.split(":", 1)[0] for n in names]
    a = torch.tensor([[1.0 if i == j else (GRADED_SAME_CLASS if cls[i] == cls[j] else 0.0)
                       for j in range(len(names))] for i in range(len(names))], dtype=torch.float64)
    return ConceptSpace("graded", names, torch.tensor([index[v] for v in values], dtype=torch.long), a)


def concept_space(scheme: str, concepts: Mapping[str, Sequence[str]]) -> ConceptSpace:
    """The concept space of ``scheme`` ("graded" or a tag name) over an excerpt set's concept tags."""
    if scheme == "graded":
        return graded_space(concepts)
    if scheme not in concepts:
        raise ParameterError(f"unknown concept {scheme!r}; this excerpt set has the tags {sorted(concepts)} "
                             f"and the schemes {list(SCHEMES)}")
    return tag_space(scheme, list(concepts[scheme]))


def available_schemes(concepts: Mapping[str, Sequence[str]]) -> list[str]:
    out = [s for s in SCHEMES if s != "graded" or all(t in concepts for t in ("singer_family", "instrument"))]
    return out + list(concepts)


def kmeans_concepts(logmel: torch.Tensor, *, k: int, seed: int = 0) -> list[str]:
    """``k`` clusters of excerpts by their spectral profile, as concept tags ``"cluster 0"`` ...

    Each excerpt is described by the mean and the standard deviation over time of each log-mel band
    (``2 M`` numbers, z-scored across the set): the timbre and how much it moves. scipy's k-means++
    (``kmeans2``) with a fixed seed.

    Parameters
    ----------
    logmel : torch.Tensor, shape ``(N, T, M)``
    """
    from scipy.cluster.vq import kmeans2

    n = int(logmel.shape[0])
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n:
        raise ParameterError(f"k-means needs 2 <= k <= {n} (the number of excerpts), got k={k!r}")
    x = logmel.double()
    feats = torch.cat([x.mean(1), x.std(1)], dim=1).numpy()  # (N, 2M)
    feats = (feats - feats.mean(0)) / np.maximum(feats.std(0), 1e-9)
    _, lab = kmeans2(feats, k, seed=np.random.default_rng(seed), minit="++")
    return [f"cluster {int(v)}" for v in lab]
