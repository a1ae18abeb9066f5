"""The bundled demo (``assets/demo``) and the reference-excerpt file format.

``assets/demo`` holds ``classifier.safetensors`` and ``generator.safetensors`` (model bundles,
see :mod:`xai_core.checkpoints`), ``reference.safetensors`` (a :class:`ReferenceSet` of real
excerpts) and ``CREDITS.md``. ``$XAI_DEMO_DIR`` points the app and CLI at another folder of the
same layout (the tests use tiny models that way).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from xai_core.audio.config import MelConfig
from xai_core.errors import CheckpointError, ParameterError

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DEMO_DIR = REPO_ROOT / "assets" / "demo"
CLASSIFIER_FILE = "classifier.safetensors"
GENERATOR_FILE = "generator.safetensors"
REFERENCE_FILE = "reference.safetensors"
CLADEC_DIR = "cladec"  # ClaDec / RefAE / random-feature decoders of the demo classifier, and eval.json
CONCEPTS_FILE = "concepts.safetensors"  # a concept-tagged excerpt set (neuron consistency)
ROBUST_DIR = "robust"  # adversarially trained classifiers (plain, consistent loss) and their eval.json
EXPLAINERS_DIR = "explainers"  # conditional-GAN explainers (global, local) and their eval.json


def demo_dir() -> Path:
    """The demo folder in use: ``$XAI_DEMO_DIR`` if set, else the bundled ``assets/demo``."""
    return Path(os.environ.get("XAI_DEMO_DIR") or BUNDLED_DEMO_DIR)


@dataclass(frozen=True)
class DemoPaths:
    classifier: Path
    generator: Path
    reference: Path
    cladec: Path | None = None  # folder of decoder bundles
    concepts: Path | None = None  # concept-tagged excerpt set
    robust: Path | None = None  # folder of robust classifier bundles
    explainers: Path | None = None  # folder of conditional-GAN explainer bundles

    @classmethod
    def at(cls, root: str | Path | None = None) -> DemoPaths:
        root = Path(root) if root is not None else demo_dir()
        return cls(root / CLASSIFIER_FILE, root / GENERATOR_FILE, root / REFERENCE_FILE, root / CLADEC_DIR,
                   root / CONCEPTS_FILE, root / ROBUST_DIR, root / EXPLAINERS_DIR)

    def missing(self) -> list[Path]:
        return [p for p in (self.classifier, self.generator, self.reference) if not p.is_file()]


@dataclass
class ReferenceSet:
    """Real excerpts for comparison and FID reference sets.

    Attributes
    ----------
    logmel : torch.Tensor, shape ``(N, T, M)``, un-normalised natural-log mel
    labels : torch.Tensor, shape ``(N,)``, 1 = singing at the centre frame, 0 = not
    sources : list of N strings, ``"file.flac@12.34"`` (file and start time in seconds)
    mel : the MelConfig the excerpts were computed with
    info : free-form provenance (corpus, seed, selection rule)
    tags : concept tags, name -> N strings (e.g. ``"singer_family"`` -> ``["choir", "none", ...]``),
        what each excerpt is known to contain; :meth:`concepts` adds ``"vocal"`` from the labels.
        Consistency, galleries and filters of every method read the same tags.
    """

    logmel: torch.Tensor
    labels: torch.Tensor
    sources: list[str]
    mel: MelConfig = field(default_factory=MelConfig)
    info: dict = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.logmel.shape[0]
        if self.logmel.ndim != 3 or self.labels.shape != (n,) or len(self.sources) != n:
            raise ParameterError(
                f"ReferenceSet needs logmel (N, T, M), labels (N,), N sources; got "
                f"{tuple(self.logmel.shape)}, {tuple(self.labels.shape)}, {len(self.sources)}")
        if not isinstance(self.tags, dict):
            raise ParameterError(f"ReferenceSet tags must be a mapping name -> list, got {type(self.tags).__name__}")
        for name, values in self.tags.items():
            if not isinstance(name, str) or name == "vocal" or not isinstance(values, list) or len(values) != n \
                    or not all(isinstance(v, str) for v in values):
                raise ParameterError(f"ReferenceSet tag {name!r} must be a list of {n} strings (one per excerpt; "
                                     "'vocal' is reserved: it comes from the labels)")

    def concepts(self) -> dict[str, list[str]]:
        """Every concept tag per excerpt: ``"vocal"`` ("vocal" / "non-vocal", from the labels) and :attr:`tags`."""
        return {"vocal": ["vocal" if float(v) > 0.5 else "non-vocal" for v in self.labels], **self.tags}

    def __len__(self) -> int:
        return int(self.logmel.shape[0])

    def subset(self, idx) -> ReferenceSet:
        """The excerpts ``idx`` (indices or a bool mask), with their tags and every per-excerpt list of
        ``info`` (``logits``, ``selection``, ...) cut the same way."""
        idx = torch.as_tensor(idx)
        idx = torch.nonzero(idx).flatten() if idx.dtype == torch.bool else idx.long()
        keep = idx.tolist()
        n = len(self)
        info = {k: ([v[i] for i in keep] if isinstance(v, list) and len(v) == n else v) for k, v in self.info.items()}
        return ReferenceSet(self.logmel[idx], self.labels[idx], [self.sources[i] for i in keep], self.mel, info,
                            {k: [v[i] for i in keep] for k, v in self.tags.items()})

    def clean(self) -> ReferenceSet:
        """Without the excerpts that hold padding or digital silence (:mod:`xai_core.data.quality`); the
        number left out is recorded in ``info["left_out_unclean"]``. Raises if nothing is left."""
        from xai_core.data.quality import RULE, clean_mask

        mask = clean_mask(self.logmel)
        dropped = int((~mask).sum())
        if dropped == 0:
            return self
        if dropped == len(self):
            raise ParameterError(f"every one of the {len(self)} reference excerpts holds padding or digital silence "
                                 f"({RULE}); build a reference set with `train reference`")
        out = self.subset(mask)
        out.info["left_out_unclean"] = dropped + int(self.info.get("left_out_unclean", 0))
        return out

    @property
    def n_clips(self) -> int:
        """How many source clips the excerpts come from."""
        from xai_core.data.quality import n_clips

        return n_clips(self.sources)

    def save(self, path: str | Path, *, dtype: torch.dtype = torch.float16) -> Path:
        from safetensors.torch import save_file

        from xai_core.fileio import atomic_write_with

        meta = {"kind": "reference", "sources": self.sources, "mel": self.mel.to_dict(), "info": self.info,
                "tags": self.tags}
        tensors = {"logmel": self.logmel.to(dtype).contiguous(), "labels": self.labels.float().contiguous()}
        # written in a private temporary folder, then moved into place: no planted link is written through
        return atomic_write_with(Path(path), lambda tmp: save_file(tensors, str(tmp),
                                                                    metadata={"vocal_xai": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str | Path, *, clean: bool = True) -> ReferenceSet:
        """Read a reference set; everything is checked (metadata schema, tensor names, dtypes, shapes against
        the metadata, finite values in the log-mel range) and nothing is unpickled. With ``clean`` (the
        default) excerpts holding padding or digital silence are left out (:meth:`clean`; older sets hold
        them), their number in ``info["left_out_unclean"]``."""
        from xai_core.checkpoints import read_bounded

        return cls.from_bytes(read_bounded(path, what="reference file"), name=str(path), clean=clean)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "upload", clean: bool = True) -> ReferenceSet:
        """Like :meth:`load` for in-memory data (an upload)."""
        from xai_core.checkpoints import _metadata, _tensors
        from xai_core.schema import check_tensor, validate

        header, meta = _metadata(data, name, missing="not a reference-excerpt file (no Vocal XAI metadata)")
        validate(meta, "reference", name=name)
        mel = MelConfig.from_dict(meta["mel"])
        n = len(meta["sources"])
        if n == 0:
            raise CheckpointError(f"{name}: the reference set holds no excerpts")
        shapes = {k: v.get("shape") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
        want = {"logmel": [n, mel.excerpt_frames, mel.n_mels], "labels": [n]}
        if shapes != want:
            raise CheckpointError(f"{name}: a reference set of {n} excerpts holds tensors {want}, the file has "
                                  f"{shapes}")
        tensors = _tensors(data, name)
        # log-mel values lie in [log(log_floor), ~20] (a full-scale sine gives about 7): 100 is far outside
        check_tensor(name, "logmel", tensors["logmel"], max_abs=100.0)
        check_tensor(name, "labels", tensors["labels"], max_abs=1.0)
        logmel, labels = tensors["logmel"].float(), tensors["labels"].float()
        if float(logmel.min()) < mel.log_min - 0.05:  # float16 storage rounds by up to 0.008 there
            raise CheckpointError(f"{name}: log-mel values below the floor log({mel.log_floor:g}) = {mel.log_min:.2f}")
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise CheckpointError(f"{name}: labels must be 0 or 1")
        try:
            out = cls(logmel, labels, list(meta["sources"]), mel, meta.get("info") or {}, meta.get("tags") or {})
            return out.clean() if clean else out
        except ParameterError as exc:
            raise CheckpointError(f"{name}: {exc}") from exc


def make_tiny_demo(root: str | Path, *, seed: int = 0, n_reference: int = 24) -> DemoPaths:
    """Write an untrained tiny classifier, generator and reference set (for tests only).

    The reference excerpts are random log-mel noise, labelled by a coin flip: this makes a folder
    of the demo's layout in milliseconds, it is not data and never shipped.
    """
    from xai_core.audio.features import Normaliser
    from xai_core.checkpoints import default_provenance, save_bundle
    from xai_core.models import SpecGenerator, SVDNet

    torch.manual_seed(seed)
    paths = DemoPaths.at(root)
    mel = MelConfig()
    g = torch.Generator().manual_seed(seed)
    logmel = -6.0 + 2.0 * torch.randn(n_reference, mel.excerpt_frames, mel.n_mels, generator=g)
    norm = Normaliser.fit(logmel)
    prov = default_provenance(note="tiny untrained test model")
    save_bundle(paths.classifier, model=SVDNet("tiny"), kind="classifier", mel=mel, normaliser=norm,
                preset="tiny", provenance=prov)
    save_bundle(paths.generator, model=SpecGenerator("tiny"), kind="generator", mel=mel, normaliser=norm,
                preset="tiny", provenance=prov)
    labels = (torch.rand(n_reference, generator=g) > 0.5).float()
    ref = ReferenceSet(logmel, labels, [f"noise{i}.wav@0.00" for i in range(n_reference)], mel,
                       {"note": "random test excerpts"})
    ref.save(paths.reference)
    _tiny_decoders(paths, ref)
    _tiny_consistency(paths, ref)
    _tiny_explainers(paths, ref)
    return paths


def _tiny_explainers(paths: DemoPaths, ref: ReferenceSet) -> None:
    """Global and local explainers of the tiny classifier's logit (2 steps each) and their checks."""
    import json

    from xai_core.checkpoints import load_bundle
    from xai_core.explain.depthmaps import ExplainerConfig, FaithConfig, save_explainer, train_explainer
    from xai_core.explain.depthmaps.faithfulness import evaluation_report

    clf = load_bundle(paths.classifier, expected_kind="classifier")
    paths.explainers.mkdir(parents=True, exist_ok=True)
    exps = {}
    for variant in ("global", "local"):
        cfg = ExplainerConfig(variant=variant, k=2, steps=2, batch_size=2, width=4)
        e = train_explainer(clf, (ref.logmel, ref.labels), cfg, device="cpu")
        save_explainer(paths.explainers / f"{variant}.safetensors", e, classifier=clf)
        exps[variant] = e
    report = evaluation_report(clf, ref.logmel[:4], explainers=exps, config=FaithConfig(steps=4, n_random=1),
                               sanity_n=2, data="4 random test excerpts (tiny test fixture)", device="cpu")
    (paths.explainers / "eval.json").write_text(json.dumps(report, indent=1))


def _tiny_consistency(paths: DemoPaths, ref: ReferenceSet) -> None:
    """A tagged concept set, two robust classifiers (2 steps each) and their comparison (test fixtures)."""
    import json

    from xai_core.checkpoints import load_bundle, save_bundle
    from xai_core.explain.consistency import AttackConfig, ConsistencyConfig, RobustConfig
    from xai_core.explain.consistency.data import compare_classifiers
    from xai_core.explain.consistency.robust import train_robust

    n = len(ref)
    vocal = [float(v) > 0.5 for v in ref.labels]
    tags = {"singer_family": ["formant" if v else "none" for v in vocal],
            "instrument": ["pad" if i % 2 else "none" for i in range(n)],
            "backing_song": [f"song{i % 3}" for i in range(n)]}
    concepts = ReferenceSet(ref.logmel, ref.labels, list(ref.sources), ref.mel,
                            {"note": "random test excerpts with made-up tags"}, tags)
    concepts.save(paths.concepts)
    clf = load_bundle(paths.classifier, expected_kind="classifier")
    paths.robust.mkdir(parents=True, exist_ok=True)
    models = {"original": clf}
    for name, mu in (("adversarial", 0.0), ("consistent", 1.0)):
        b = train_robust(clf, (ref.logmel, ref.labels), RobustConfig(mu=mu, steps=2, batch_size=4), device="cpu",
                         provenance={"note": "tiny test fixture: 2 steps"})
        save_bundle(paths.robust / f"{name}.safetensors", model=b.model, kind="classifier", mel=b.mel,
                    normaliser=b.normaliser, preset=b.preset, provenance=b.provenance, metrics=b.metrics)
        models[name] = load_bundle(paths.robust / f"{name}.safetensors", expected_kind="classifier")
    ev = compare_classifiers(models, test=(ref.logmel, ref.labels), concept_set_=concepts, eps_db=(1.0, 2.0),
                             curve_eps_db=(0.5, 1.0), consistency=ConsistencyConfig(k=3),
                             attack_config=AttackConfig(steps=2), device="cpu")
    (paths.robust / "eval.json").write_text(json.dumps(ev, indent=1))


def _tiny_decoders(paths: DemoPaths, ref: ReferenceSet) -> None:
    """Decoders of two layers of the tiny classifier (2 training steps each) and their evaluation."""
    import json

    from xai_core.checkpoints import load_bundle
    from xai_core.explain.cladec import (
        VARIANTS,
        CladecConfig,
        EvalConfig,
        decoder_file_name,
        evaluate_decoders,
        save_decoder,
        train_decoder,
    )

    clf = load_bundle(paths.classifier, expected_kind="classifier")
    data = (ref.logmel, ref.labels)
    decoders = []
    for layer in ("conv2", "fc2"):
        for v in VARIANTS:
            b = train_decoder(clf, data, CladecConfig(layer=layer, variant=v, steps=2, batch_size=4), device="cpu")
            save_decoder(paths.cladec / decoder_file_name(layer, v), b, classifier=clf)
            decoders.append(b)
    half = len(ref) // 2
    ev = evaluate_decoders(clf, decoders, train=(ref.logmel[:half], ref.labels[:half]),
                           test=(ref.logmel[half:], ref.labels[half:]), device="cpu",
                           config=EvalConfig(n_train=half, n_test=len(ref) - half, steps=2, batch_size=4),
                           data_info={"note": "tiny test fixture: random excerpts, 2 training steps"})
    (paths.cladec / "eval.json").write_text(json.dumps(ev.to_dict(), indent=1))
