"""The regression corpus of bad inputs (issue 17): checkpoints, audio, parameters and run-store faults.

Every input is made at test time (nothing binary is committed) by mutating the valid tiny demo
(:func:`xai_core.assets.make_tiny_demo`): model bundles of both kinds, ClaDec decoders, depth-map explainers,
reference sets, training checkpoints, imported ``.pt`` state dicts, WAV files, configuration values, CLI
arguments and run stores. Each :class:`Case` names the input (``make``), what is done with it (a library
``call`` or CLI ``argv``) and what must happen (``expect``):

* ``REFUSE``: the library raises an :class:`~xai_core.errors.XaiError` with a non-empty one-line message,
  or the CLI exits 1 or 2 without a traceback, its last stderr line ``error: ...`` (or argparse's usage
  error), for an XaiError (or an OSError naming a file), not an internal error it only words cleanly;
* ``ACCEPT``: a valid input that looks odd (the control group) is accepted;
* ``CLEAN``: either of the two (the input may be valid), but never a crash;

always within the case's time and memory bounds and without executing anything (pickle payloads would
create a marker file). :mod:`tests.security.harness` runs and judges the cases.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import shutil
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.security.harness import ACCEPT, CLEAN, MARKER, REFUSE

# --------------------------------------------------------------------------- cases and their world

Make = Callable[["Env", Path], Any]  # builds the input in a fresh case folder, returns it
Call = Callable[["Env", Any], Any]  # a library call on the input (runs in the child)
Argv = Callable[["Env", Any], list[str]]  # CLI arguments for the input (xai_core.cli.main, in the child)
Check = Callable[["Env", Path], "str | None"]  # a post-condition on the case folder: None or what broke


@dataclass(frozen=True)
class Case:
    """One bad (or, for the control group, odd but valid) input and what must happen to it."""

    id: str  # kind/input/target, the pytest id
    kind: str  # checkpoint | audio | parameter | runstore
    make: Make
    call: Call | None = None  # exactly one of call / argv
    argv: Argv | None = None
    expect: str = REFUSE
    seconds: float = 5.0  # time bound of the call
    max_mb: float = 400.0  # bound on the peak resident memory the call adds
    check: Check | None = None
    skip: Callable[[], str | None] | None = None  # a reason to skip on this machine, or None

    def __post_init__(self) -> None:
        assert (self.call is None) != (self.argv is None), self.id
        assert self.expect in (ACCEPT, REFUSE, CLEAN), self.id


@dataclass
class Env:
    """The valid world the cases mutate: the tiny demo, loaded bundles, a valid recording, a run store."""

    root: Path
    demo: Path
    classifier: Any  # Bundle
    generator: Any  # Bundle
    wave: np.ndarray  # 3 s of noise at 22050 Hz
    wav: Path  # the same as a 16-bit WAV
    store: Path  # a run store holding one AM run (cases copy it before breaking it)
    run_id: str
    tracks: list  # two labelled tracks for training resumes

    BASES = {"classifier": "classifier.safetensors", "generator": "generator.safetensors",
             "decoder": "cladec/fc2_cladec.safetensors", "refae": "cladec/conv2_refae.safetensors",
             "explainer": "explainers/global.safetensors", "reference": "reference.safetensors"}

    def base(self, name: str) -> Path:
        return self.demo / self.BASES[name]

    @classmethod
    def build(cls, root: Path, demo: Path) -> Env:
        """Load the tiny demo, write the valid recording and run store, and import everything the cases
        use, so that no forked case pays for an import."""
        import soundfile as sf

        from xai_core.actmax import AMConfig
        from xai_core.actmax.engine import run_am
        from xai_core.checkpoints import load_bundle
        from xai_core.cli import build_parser
        from xai_core.detect import detect_singing
        from xai_core.store import RunStore
        from xai_core.train.data import Track

        root.mkdir(parents=True, exist_ok=True)
        clf = load_bundle(demo / cls.BASES["classifier"], expected_kind="classifier")
        gen = load_bundle(demo / cls.BASES["generator"], expected_kind="generator")
        wave = (0.1 * np.random.default_rng(0).standard_normal(3 * 22050)).astype(np.float32)
        wav = root / "ok.wav"
        sf.write(wav, wave, 22050, subtype="PCM_16")
        detect_singing(clf, wave)  # librosa's filterbank, scipy's median filter
        store = RunStore(root / "store")
        res = run_am(clf, gen, AMConfig(n_iter=2, n_examples=2), device="cpu")
        run_id = store.save_am(res, classifier=clf, generator=gen)
        g = torch.Generator().manual_seed(0)
        tracks = [Track(f"t{i}", -6 + 2 * torch.randn(400, 80, generator=g), (torch.arange(400) // 50) % 2)
                  for i in range(2)]
        build_parser()
        import xai_core.explain.depthmaps.explain  # noqa: F401
        import xai_core.store.export  # noqa: F401
        import xai_core.train.classifier  # noqa: F401
        return cls(root, demo, clf, gen, wave, wav, root / "store", run_id, tracks)


# --------------------------------------------------------------------------- bundle files

DELETE = object()  # as a value in a metadata mutation: remove the key


def read_parts(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A valid bundle's metadata and tensors, read with safetensors itself (not the code under test)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["vocal_xai"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # safe_open has no __iter__
    return meta, tensors


def write_parts(path: Path, meta: str, tensors: dict[str, torch.Tensor], key: str = "vocal_xai") -> Path:
    from safetensors.torch import save

    path.write_bytes(save({k: v.contiguous() for k, v in tensors.items()}, metadata={key: meta}))
    return path


def set_key(d: dict, dotted: str, value: Any) -> None:
    """``set_key(meta, "metrics.eval.threshold", 5)``; ``DELETE`` removes the key."""
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    if value is DELETE:
        d.pop(last, None)
    else:
        d[last] = value


def bundle(base: str = "classifier", *, meta: dict[str, Any] | None = None,
           text: Callable[[dict], str] | str | None = None,
           tensors: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
           key: str = "vocal_xai") -> Make:
    """A copy of a valid bundle with its metadata keys changed (``meta``), its metadata text replaced
    (``text``: a string, or a function of the metadata) and/or its tensors transformed (``tensors``)."""

    def make(env: Env, folder: Path) -> Path:
        m, t = read_parts(env.base(base))
        for k, v in (meta or {}).items():
            set_key(m, k, v if v is DELETE else copy.deepcopy(v))
        if tensors is not None:
            t = tensors(t)
        s = text(m) if callable(text) else text if text is not None else json.dumps(m)
        return write_parts(folder / f"{base}.safetensors", s, t, key)

    return make


def blob(fn: Callable[[bytes], bytes], base: str = "classifier", name: str = "bad.safetensors") -> Make:
    """A file made of ``fn`` of a valid file's bytes."""

    def make(env: Env, folder: Path) -> Path:
        p = folder / name
        p.write_bytes(fn(env.base(base).read_bytes()))
        return p

    return make


def directory(name: str) -> Make:
    def make(env: Env, folder: Path) -> Path:
        (folder / name).mkdir()
        return folder / name

    return make


def missing(name: str) -> Make:
    return lambda env, folder: folder / name


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join_safetensors(header: dict | bytes, data: bytes) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(h).to_bytes(8, "little") + h + data


def edit_header(fn: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A byte mutation editing the safetensors header (tensor offsets, dtypes, shapes) in place."""

    def mutate(data: bytes) -> bytes:
        header, rest = split_safetensors(data)
        fn(header)
        return join_safetensors(header, rest)

    return mutate


def _share_offsets(h: dict) -> None:  # two tensors of 16 bytes point at the same bytes
    h["model.conv2.0.bias"]["data_offsets"] = list(h["model.conv1.0.bias"]["data_offsets"])


def _overlap_offsets(h: dict) -> None:  # one tensor's bytes run into the next one's
    a, b = h["model.conv1.0.bias"]["data_offsets"]
    h["model.conv1.0.bias"]["data_offsets"] = [a, b + 8]


def _offsets_past_end(h: dict) -> None:
    a, b = h["normaliser.std"]["data_offsets"]
    h["normaliser.std"]["data_offsets"] = [a, b + 10**9]


def _dtype_lie(h: dict) -> None:  # F64 claimed for float32 bytes: sizes no longer match
    h["model.fc1.2.weight"]["dtype"] = "F64"


def _shape_lie(h: dict) -> None:
    h["model.fc1.2.weight"]["shape"] = [10**6, 10**6]


def _deep_header(data: bytes) -> bytes:
    header, rest = split_safetensors(data)
    text = json.dumps(header)[:-1] + ', "__deep__": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return join_safetensors(text.encode(), rest)


def _not_utf8_header(data: bytes) -> bytes:
    header, rest = split_safetensors(data)
    text = json.dumps(header).encode().replace(b"tiny untrained test model", b"tiny \xff\xfe\xfa test model  ")
    return join_safetensors(text, rest)


def _random(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------- tensor mutations

MODEL = "model."


def as_dtype(dtype: torch.dtype, only: str | None = None):
    """Every model tensor (or only ``only``) stored as ``dtype``."""

    def fn(t):
        out = dict(t)
        for k, v in t.items():
            if k.startswith(MODEL) and (only is None or k == only):
                out[k] = (v > 0) if dtype == torch.bool else v.to(dtype)
        return out

    return fn


def poke(key: str, value: float, dtype: torch.dtype | None = None):
    """One value of tensor ``key`` set to ``value`` (optionally stored as ``dtype`` first)."""

    def fn(t):
        v = t[key].clone() if dtype is None else t[key].to(dtype)
        v.view(-1)[0] = value
        return {**t, key: v}

    return fn


def fill_model(value: float, dtype: torch.dtype = torch.float32):
    return lambda t: {k: (torch.full_like(v, value, dtype=dtype) if k.startswith(MODEL) else v)
                      for k, v in t.items()}


def replace(key: str, value: torch.Tensor | None):
    """Tensor ``key`` replaced by ``value`` (``None``: removed; a new key: added)."""

    def fn(t):
        out = dict(t)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
        return out

    return fn


def only_prefix(prefix: str):
    return lambda t: {k: v for k, v in t.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- pickle payloads


class ExecPayload:
    """Unpickling this runs ``exec`` of code that writes the case's marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('executed')",)


class SystemPayload(ExecPayload):
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def payload_bytes(fmt: str, marker: Path) -> bytes:
    if fmt == "pickle":
        return pickle.dumps(ExecPayload(marker), protocol=2)
    if fmt == "pickle-system":
        return pickle.dumps(SystemPayload(marker), protocol=5)
    buf = io.BytesIO()
    if fmt == "torch-zip":
        torch.save(ExecPayload(marker), buf)
    elif fmt == "torch-legacy":
        torch.save(ExecPayload(marker), buf, _use_new_zipfile_serialization=False)
    elif fmt == "torch-zip-nested":  # looks like a checkpoint / wrapped state dict around the payload
        torch.save({"step": 1, "config": {}, "state_dict": SystemPayload(marker), "model": {}}, buf)
    else:
        raise ValueError(fmt)
    return buf.getvalue()


PAYLOADS = ("pickle", "pickle-system", "torch-zip", "torch-legacy", "torch-zip-nested")


def payload(fmt: str, name: str) -> Make:
    def make(env: Env, folder: Path) -> Path:
        p = folder / name
        p.write_bytes(payload_bytes(fmt, folder / MARKER))
        return p

    return make


def torch_file(obj: Callable[[Env], Any], name: str = "weights.pt") -> Make:
    """A weights-only-loadable ``torch.save`` file of ``obj(env)`` (tensors and plain containers)."""

    def make(env: Env, folder: Path) -> Path:
        p = folder / name
        torch.save(obj(env), p)
        return p

    return make


def tiny_state(env: Env) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in env.classifier.model.state_dict().items()}


def with_state(fn: Callable[[dict[str, torch.Tensor]], Any]) -> Callable[[Env], Any]:
    return lambda env: fn(tiny_state(env))


# --------------------------------------------------------------------------- WAV files


def wav_bytes(data: bytes, *, rate: int = 22050, channels: int = 1, bits: int = 16, fmt: int = 1,
              data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file with a hand-written header: any header field may lie."""
    block = max(1, channels * bits // 8)
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate & 0xFFFFFFFF, (rate * block) & 0xFFFFFFFF, block & 0xFFFF,
                            bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", (4 + len(body)) & 0xFFFFFFFF) + body


def pcm16(n: int, seed: int = 0, amp: float = 0.1) -> bytes:
    x = amp * np.random.default_rng(seed).standard_normal(n)
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def wav(name: str, data: Callable[[], bytes]) -> Make:
    def make(env: Env, folder: Path) -> Path:
        p = folder / name
        p.write_bytes(data())
        return p

    return make


def float_wav(name: str, bad: float) -> Make:
    """A float32 WAV of 3 s of noise with some samples set to ``bad`` (NaN, inf)."""

    def make(env: Env, folder: Path) -> Path:
        x = env.wave.copy()
        x[1000:1010] = bad
        return wav(name, lambda: wav_bytes(x.astype("<f4").tobytes(), bits=32, fmt=3))(env, folder)

    return make


# --------------------------------------------------------------------------- targets


def _load_bundle(env, p):
    from xai_core.checkpoints import load_bundle

    return load_bundle(p)


def _load_bundle_bytes(env, p):
    from xai_core.checkpoints import load_bundle_bytes

    return load_bundle_bytes(Path(p).read_bytes(), name=Path(p).name)


def _detect(env, p):
    """Load a classifier bundle and classify a valid recording with it (its threshold, its filter)."""
    from xai_core.checkpoints import load_bundle
    from xai_core.detect import detect_singing

    return detect_singing(load_bundle(p), env.wave)


def _load_decoder(env, p):
    from xai_core.explain.cladec.bundle import load_decoder

    return load_decoder(p, classifier=env.classifier)


def _load_decoder_alone(env, p):
    from xai_core.explain.cladec.bundle import load_decoder

    return load_decoder(p, classifier=None)


def _load_explainer(env, p):
    from xai_core.explain.depthmaps.bundle import load_explainer

    return load_explainer(p, classifier=env.classifier)


def _load_explainer_alone(env, p):
    from xai_core.explain.depthmaps.bundle import load_explainer

    return load_explainer(p, classifier=None)


def _load_explainer_bytes(env, p):
    from xai_core.explain.depthmaps.bundle import load_explainer_bytes

    return load_explainer_bytes(Path(p).read_bytes(), name=Path(p).name, classifier=env.classifier)


def _load_reference(env, p):
    from xai_core.assets import ReferenceSet

    return ReferenceSet.load(p)


def _import_state_dict(env, p):
    from xai_core.checkpoints import import_state_dict

    return import_state_dict(p, kind="classifier", preset="tiny")


def _load_checkpoint(env, p):
    from xai_core.train.loop import load_checkpoint

    return load_checkpoint(p)


def _load_training_checkpoint(env, p):
    from xai_core.train.classifier import _load_checkpoint

    return _load_checkpoint(Path(p))


RESUME_CONFIG = {"steps": 10, "lr": 0.001}
RESUME_ID = "ab" * 32


def _resume_state(env, p):
    from xai_core.train.loop import resume_state

    return resume_state(p, config=RESUME_CONFIG, identity=RESUME_ID, steps=10)


def train_config():
    from xai_core.train.augment import AugmentConfig
    from xai_core.train.classifier import ClassifierTrainConfig

    return ClassifierTrainConfig(preset="tiny", epochs=1, batches_per_epoch=1, batch_size=4,
                                 augment=AugmentConfig.none(), validate=False)


def _train_resume(env, p):
    from xai_core.train.classifier import train_classifier

    return train_classifier(env.tracks, [], train_config(), device="cpu", checkpoint=p, resume=True)


def _info(env, p):
    return ["info", str(p)]


def _classify_with(env, p):
    return ["classify", str(env.wav), "--classifier", str(p), "--device", "cpu"]


def _decode_with(env, p):
    return ["cladec", "decode", str(p), "excerpt", "--classifier", str(env.base("classifier")),
            "--reference", str(env.base("reference")), "--out", str(Path(p).parent / "decoded"),
            "--gl-iters", "1", "--device", "cpu"]


def _gradcam_with(env, p):
    return ["gradcam", "--classifier", str(env.base("classifier")), "--reference", str(env.base("reference")),
            "--excerpts", "0", "--explainer", str(p), "--out", str(Path(p).parent / "maps"), "--device", "cpu"]


def _load_audio(env, p):
    from xai_core.audio.io import load_audio

    return load_audio(p)


def _load_audio_bytes(env, p):
    from xai_core.audio.io import load_audio_bytes

    return load_audio_bytes(Path(p).read_bytes(), name=Path(p).name)


def _excerpt_of_file(env, p):
    from xai_core.audio import MelConfig
    from xai_core.audio.features import excerpt_of_file

    return excerpt_of_file(p, offset=0.0, mel=MelConfig(), frames=115)


def _classify(env, p):
    return ["classify", str(p), "--classifier", str(env.base("classifier")), "--device", "cpu"]


# name -> (function, is it a CLI target)
TARGETS: dict[str, tuple[Callable, bool]] = {
    "load_bundle": (_load_bundle, False), "load_bundle_bytes": (_load_bundle_bytes, False),
    "detect": (_detect, False), "info": (_info, True), "classify_with": (_classify_with, True),
    "load_decoder": (_load_decoder, False), "load_decoder_alone": (_load_decoder_alone, False),
    "cladec_decode": (_decode_with, True),
    "load_explainer": (_load_explainer, False), "load_explainer_alone": (_load_explainer_alone, False),
    "load_explainer_bytes": (_load_explainer_bytes, False), "gradcam": (_gradcam_with, True),
    "ReferenceSet.load": (_load_reference, False), "import_state_dict": (_import_state_dict, False),
    "loop.load_checkpoint": (_load_checkpoint, False),
    "classifier._load_checkpoint": (_load_training_checkpoint, False),
    "resume_state": (_resume_state, False), "train_classifier_resume": (_train_resume, False),
    "load_audio": (_load_audio, False), "load_audio_bytes": (_load_audio_bytes, False),
    "excerpt_of_file": (_excerpt_of_file, False), "classify": (_classify, True),
}


def cases(kind: str, name: str, make: Make, targets: tuple[str, ...] | list[str],
          expect: str | dict[str, str] = REFUSE, **kw) -> list[Case]:
    """One case per target of the same input (``expect`` per target when a dict)."""
    out = []
    for t in targets:
        fn, cli = TARGETS[t]
        e = expect[t] if isinstance(expect, dict) else expect
        out.append(Case(id=f"{kind}/{name}/{t}", kind=kind, make=make, call=None if cli else fn,
                        argv=fn if cli else None, expect=e, **kw))
    return out


# --------------------------------------------------------------------------- checkpoints

LOAD = ("load_bundle",)
LOAD_INFO = ("load_bundle", "info")
BYTES = ("load_bundle", "load_bundle_bytes", "info")
DOS = {"seconds": 1.0, "max_mb": 300.0}  # a declared size must be refused before anything is allocated

_DEEP = '"__deep__"'


def deep_text(where: str, depth: int = 100_000) -> Callable[[dict], str]:
    """Metadata with ``where`` nested ``depth`` lists deep (``"*"``: the whole document)."""

    def text(m: dict) -> str:
        if where == "*":
            return "[" * depth + "]" * depth
        set_key(m, where, "__deep__")
        return json.dumps(m).replace(_DEEP, "[" * depth + "]" * depth)

    return text


def _big_provenance(m: dict) -> str:
    m["provenance"]["notes"] = "x" * (6 << 20)
    return json.dumps(m)


def _reference_meta(fn: Callable[[dict], None]) -> Callable[[dict], str]:
    def text(m: dict) -> str:
        fn(m)
        return json.dumps(m)

    return text


def classifier_metadata_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    # the metadata document itself
    for name, text in (("meta-not-json", '{"format": "vocal-xai-bundle", '), ("meta-json-list", "[1, 2, 3]"),
                       ("meta-json-number", "42"), ("meta-json-string", '"classifier"'), ("meta-json-null", "null"),
                       ("meta-json-nan", "NaN"), ("meta-empty-object", "{}")):
        add(cases(K, name, bundle(text=text), LOAD_INFO))
    add(cases(K, "meta-under-other-key", bundle(key="something_else"), LOAD))
    add(cases(K, "meta-nested-100000-deep", bundle(text=deep_text("*")), LOAD_INFO))
    add(cases(K, "metrics-nested-100000-deep", bundle(text=deep_text("metrics.history")), LOAD))
    add(cases(K, "metadata-6MB", bundle(text=_big_provenance), LOAD_INFO, expect=CLEAN))
    # format, version, kind
    for name, meta in (("format-other", {"format": "other"}), ("format-missing", {"format": DELETE}),
                       ("format-version-str-2", {"format_version": "2"}), ("format-version-99", {"format_version": 99}),
                       ("format-version-list", {"format_version": [1]}), ("kind-unknown", {"kind": "discriminator"}),
                       ("kind-list", {"kind": ["classifier"]}), ("kind-null", {"kind": None}),
                       ("kind-missing", {"kind": DELETE}), ("arch-missing", {"arch": DELETE}),
                       ("mel-missing", {"mel": DELETE})):
        add(cases(K, name, bundle(meta=meta), LOAD))
    add(cases(K, "format-version-null", bundle(meta={"format_version": None}), LOAD, expect=CLEAN))
    # architecture: wrong types
    for name, arch in (("arch-list", [4, 4, 4, 4]), ("arch-string", "tiny"), ("arch-null", None),
                       ("arch-number", 7)):
        add(cases(K, name, bundle(meta={"arch": arch}), LOAD_INFO))
    for name, key, value in (
            ("conv-nested-lists", "conv_channels", [[4], [4], [4], [4]]),
            ("conv-dict", "conv_channels", {"a": 4}), ("conv-string", "conv_channels", "4444"),
            ("dense-string", "dense_units", "84"), ("conv-three", "conv_channels", [4, 4, 4]),
            ("conv-empty", "conv_channels", []), ("arch-unknown-key", "evil", 1),
            ("conv-bool", "conv_channels", [True, True, True, True]), ("conv-float-4.5", "conv_channels", [4.5, 4, 4, 4]),
            ("n-frames-float", "n_frames", 115.0), ("n-frames-bool", "n_frames", True),
            ("n-mels-float", "n_mels", 80.5), ("dense-float", "dense_units", [8.9, 4]),
            ("conv-negative", "conv_channels", [-4, 4, 4, 4]), ("dense-negative", "dense_units", [-1, 4]),
            ("n-frames-negative", "n_frames", -115), ("n-mels-zero", "n_mels", 0),
            ("dropout-nan", "dropout", float("nan")), ("dropout-nan-string", "dropout", "nan"),
            ("dropout-bool", "dropout", True), ("leak-inf-string", "leak", "inf"), ("leak-nan", "leak", float("nan")),
            ("leak-inf", "leak", float("inf")), ("leak-string", "leak", "abc")):
        add(cases(K, name, bundle(meta={f"arch.{key}": value}), LOAD))
    add(cases(K, "conv-float-4.0", bundle(meta={"arch.conv_channels": [4.0, 4.0, 4.0, 4.0]}), LOAD, expect=CLEAN))
    # architecture: sizes that would allocate gigabytes (refused before anything is built)
    for name, key, value in (("conv-100000", "conv_channels", [100000] * 4),
                             ("conv2-100000", "conv_channels", [4, 100000, 4, 4]),
                             ("dense-1e9", "dense_units", [10**9, 4]), ("dense-65536", "dense_units", [65536, 65536]),
                             ("n-frames-1e7", "n_frames", 10**7), ("n-mels-1e5", "n_mels", 10**5)):
        add(cases(K, name, bundle(meta={f"arch.{key}": value}), LOAD, **DOS))
    add(cases(K, "conv-100000", bundle(meta={"arch.conv_channels": [100000] * 4}), ("info",), **DOS))
    # MelConfig
    for name, key, value in (("mel-sample-rate-abc", "sample_rate", "abc"), ("mel-sample-rate-negative", "sample_rate", -1),
                             ("mel-sample-rate-1e12", "sample_rate", 10**12), ("mel-sample-rate-float", "sample_rate", 22050.5),
                             ("mel-n-fft-2e40", "n_fft", 2**40), ("mel-n-fft-float", "n_fft", 1024.0),
                             ("mel-hop-0", "hop_length", 0), ("mel-excerpt-frames-1e9", "excerpt_frames", 10**9),
                             ("mel-n-mels-40", "n_mels", 40), ("mel-fmin-nan-string", "fmin", "nan"),
                             ("mel-fmax-inf-string", "fmax", "inf"), ("mel-fmax-nan", "fmax", float("nan")),
                             ("mel-log-floor-0", "log_floor", 0), ("mel-unknown-field", "evil", 1)):
        add(cases(K, name, bundle(meta={f"mel.{key}": value}), LOAD))
    for name, mel in (("mel-list", [22050]), ("mel-null", None), ("mel-string", "default")):
        add(cases(K, name, bundle(meta={"mel": mel}), LOAD))
    add(cases(K, "mel-n-fft-2e40", bundle(meta={"mel.n_fft": 2**40}), ("classify_with",)))
    add(cases(K, "mel-sample-rate-1e12", bundle(meta={"mel.sample_rate": 10**12}), ("classify_with",)))
    add(cases(K, "mel-n-fft-float", bundle(meta={"mel.n_fft": 1024.0}), ("classify_with",)))
    # metrics and provenance
    for name, meta in (("metrics-list", {"metrics": [1, 2]}), ("provenance-list", {"provenance": ["a"]}),
                       ("metrics-string", {"metrics": "good"}), ("provenance-number", {"provenance": 3})):
        add(cases(K, name, bundle(meta=meta), LOAD_INFO))
    # the decision threshold and median filter recorded in the metrics
    for name, meta in (("threshold-5", {"metrics.eval.threshold": 5}), ("threshold-minus-1", {"metrics.eval.threshold": -1}),
                       ("threshold-abc", {"metrics.eval.threshold": "abc"}),
                       ("threshold-nan-string", {"metrics.eval.threshold": "nan"}),
                       ("threshold-list", {"metrics.eval.threshold": [0.5]}), ("metrics-eval-list", {"metrics.eval": [1]}),
                       ("median-frames-abc", {"metrics.eval.median_frames": "abc"}),
                       ("median-frames-negative", {"metrics.eval.median_frames": -5})):
        add(cases(K, name, bundle(meta=meta), ("detect", "classify_with")))
    add(cases(K, "median-frames-1e12", bundle(meta={"metrics.eval.median_frames": 10**12}),
              ("detect", "classify_with"), **DOS))
    add(cases(K, "threshold-0.3", bundle(meta={"metrics.eval.threshold": 0.3}), ("detect", "classify_with"),
              expect=ACCEPT))
    return out


def classifier_tensor_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    w = "model.fc1.2.weight"
    for name, dtype in (("weights-float8", torch.float8_e4m3fn), ("weights-int32", torch.int32),
                        ("weights-int64", torch.int64), ("weights-bool", torch.bool), ("weights-uint8", torch.uint8),
                        ("weights-complex64", torch.complex64)):
        add(cases(K, name, bundle(tensors=as_dtype(dtype)), LOAD))
    add(cases(K, "one-weight-float8", bundle(tensors=as_dtype(torch.float8_e5m2, only=w)), LOAD_INFO))
    for name, dtype in (("weights-float16", torch.float16), ("weights-bfloat16", torch.bfloat16),
                        ("weights-float64", torch.float64)):
        add(cases(K, name, bundle(tensors=as_dtype(dtype)), LOAD, expect=ACCEPT))
    for name, value in (("weight-nan", float("nan")), ("weight-inf", float("inf")), ("weight-minus-inf", float("-inf"))):
        add(cases(K, name, bundle(tensors=poke(w, value)), LOAD))
    add(cases(K, "weight-float64-1e39", bundle(tensors=poke(w, 1e39, torch.float64)), LOAD))
    add(cases(K, "weight-float16-inf", bundle(tensors=poke(w, float("inf"), torch.float16)), LOAD))
    for name, value in (("weights-all-1e30", 1e30), ("weights-all-3e38", 3e38)):
        add(cases(K, name, bundle(tensors=fill_model(value)), LOAD, expect=CLEAN))
        add(cases(K, name, bundle(tensors=fill_model(value)), ("detect", "classify_with")))
    add(cases(K, "bias-1e30", bundle(tensors=poke("model.logit.1.bias", 1e30)), ("detect",), expect=CLEAN))
    # the normaliser
    std, mean = "normaliser.std", "normaliser.mean"
    for name, fn in (("std-1e-45", replace(std, torch.full((80,), 1e-45))), ("std-zero", poke(std, 0.0)),
                     ("std-negative", poke(std, -1.0)), ("std-nan", poke(std, float("nan"))),
                     ("mean-inf", poke(mean, float("inf"))),
                     ("normaliser-40-bands", lambda t: {**t, mean: t[mean][:40].clone(), std: t[std][:40].clone()}),
                     ("normaliser-mean-only", replace(std, None)), ("normaliser-std-only", replace(mean, None)),
                     ("normaliser-2d", lambda t: {**t, mean: t[mean][None].clone(), std: t[std][None].clone()}),
                     ("normaliser-empty", lambda t: {**t, mean: torch.zeros(0), std: torch.zeros(0)}),
                     ("normaliser-complex", lambda t: {**t, std: t[std].to(torch.complex64)})):
        add(cases(K, name, bundle(tensors=fn), LOAD))
    add(cases(K, "std-1e-45", bundle(tensors=replace(std, torch.full((80,), 1e-45))), ("classify_with",)))
    add(cases(K, "normaliser-int", bundle(tensors=lambda t: {**t, mean: t[mean].round().to(torch.int32)}), LOAD,
              expect=CLEAN))
    add(cases(K, "normaliser-absent", bundle(tensors=lambda t: {k: v for k, v in t.items() if k.startswith(MODEL)}),
              ("classify_with",)))
    # missing, extra, mis-shaped tensors
    for name, fn in (("tensor-missing", replace(w, None)), ("model-tensors-missing", only_prefix("normaliser.")),
                     ("no-tensors", lambda t: {}), ("tensor-extra", replace("model.evil.weight", torch.zeros(3))),
                     ("tensor-transposed", lambda t: {**t, w: t[w].T.contiguous()}),
                     ("tensor-zero-length", replace("model.conv1.0.bias", torch.zeros(0))),
                     ("tensor-scalar", replace("model.logit.1.bias", torch.tensor(0.0))),
                     ("tensor-extra-dims", lambda t: {**t, w: t[w][None]})):
        add(cases(K, name, bundle(tensors=fn), LOAD))
    add(cases(K, "tensor-missing", bundle(tensors=replace(w, None)), ("info",)))
    add(cases(K, "tensor-unrelated-extra", bundle(tensors=replace("notes", torch.zeros(3))), LOAD, expect=CLEAN))
    return out


def classifier_file_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    for name, fn in (("truncated-half", lambda d: d[: len(d) // 2]), ("truncated-7-bytes", lambda d: d[:7]),
                     ("truncated-in-header", lambda d: d[:8 + 100]), ("empty-file", lambda d: b""),
                     ("random-bytes", lambda d: _random(4096)), ("random-8-bytes", lambda d: _random(8, 1)),
                     ("header-length-2e40", lambda d: (2**40).to_bytes(8, "little") + d[8:]),
                     ("header-length-max", lambda d: b"\xff" * 8 + d[8:]),
                     ("header-length-0", lambda d: bytes(8) + d[8:]),
                     ("header-not-utf8", _not_utf8_header), ("header-nested-100000-deep", _deep_header),
                     ("offsets-duplicated", edit_header(_share_offsets)),
                     ("offsets-overlapping", edit_header(_overlap_offsets)),
                     ("offsets-past-end", edit_header(_offsets_past_end)), ("dtype-lie", edit_header(_dtype_lie)),
                     ("shape-lie-1e12", edit_header(_shape_lie)),
                     ("metadata-not-string", edit_header(lambda h: h["__metadata__"].update(vocal_xai=5)))):
        add(cases(K, name, blob(fn), BYTES))
    add(cases(K, "trailing-garbage", blob(lambda d: d + _random(1000)), LOAD, expect=CLEAN))
    add(cases(K, "directory", directory("x.safetensors"), LOAD_INFO))
    add(cases(K, "no-such-file", missing("absent.safetensors"), LOAD_INFO))
    return out


def generator_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    for name, key, value in (("gen-z-dim-1e8", "z_dim", 10**8), ("gen-base-channels-1e7", "base_channels", 10**7),
                             ("gen-up-channels-1e5", "up_channels", [100000] * 4)):
        add(cases(K, name, bundle("generator", meta={f"arch.{key}": value}), LOAD, **DOS))
    add(cases(K, "gen-z-dim-1e8", bundle("generator", meta={"arch.z_dim": 10**8}), ("info",), **DOS))
    for name, key, value in (("gen-z-dim-string", "z_dim", "16"), ("gen-z-dim-float", "z_dim", 16.5),
                             ("gen-z-dim-bool", "z_dim", True), ("gen-z-dim-negative", "z_dim", -16),
                             ("gen-n-frames-200", "n_frames", 200), ("gen-n-mels-40", "n_mels", 40),
                             ("gen-log-floor-0", "log_floor", 0), ("gen-log-floor-string", "log_floor", "abc"),
                             ("gen-leak-nan", "leak", float("nan")), ("gen-up-channels-three", "up_channels", [4, 4, 4]),
                             ("gen-unknown-key", "conv_channels", [4, 4, 4, 4])):
        add(cases(K, name, bundle("generator", meta={f"arch.{key}": value}), LOAD))
    add(cases(K, "gen-weights-nan", bundle("generator", tensors=poke("model.fc.weight", float("nan"))), LOAD))
    add(cases(K, "gen-weights-float8", bundle("generator", tensors=as_dtype(torch.float8_e4m3fn)), LOAD))
    add(cases(K, "gen-weights-int", bundle("generator", tensors=as_dtype(torch.int32)), LOAD))
    add(cases(K, "gen-metadata-list", bundle("generator", text="[]"), LOAD))
    return out


def trained_bundle_cases() -> list[Case]:
    """ClaDec decoders and depth-map explainers (and the CLI commands that load them)."""
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    dec = ("load_decoder", "load_decoder_alone")
    bounds_arch = {"arch.conv_channels": [1024] * 4, "arch.dense_units": [8192, 8192], "arch.n_frames": 4096,
                   "arch.n_mels": 512}
    for name, kw in (("decoder-meta-list", {"text": "[]"}), ("decoder-meta-number", {"text": "1"}),
                     ("decoder-variant-unknown", {"meta": {"variant": "evil"}}),
                     ("decoder-layer-unknown", {"meta": {"layer": "conv9"}}),
                     ("decoder-alpha-string", {"meta": {"alpha": "abc"}}),
                     ("decoder-alpha-nan", {"meta": {"alpha": float("nan")}}),
                     ("decoder-identity-short", {"meta": {"classifier.identity": "abc"}}),
                     ("decoder-arch-conv-1e6", {"meta": {"arch.conv_channels": [10**6] * 4}}),
                     ("decoder-arch-dense-1e9", {"meta": {"arch.dense_units": [10**9, 4]}}),
                     ("decoder-arch-list", {"meta": {"arch": [4, 4]}}),
                     ("decoder-width-1e9", {"meta": {"decoder.width": 1e9}}),
                     ("decoder-width-string", {"meta": {"decoder.width": "abc"}}),
                     ("decoder-config-list", {"meta": {"decoder": [1]}}),
                     ("decoder-train-steps-1e12", {"meta": {"train_config.steps": 10**12}}),
                     ("decoder-train-config-list", {"meta": {"train_config": []}}),
                     ("decoder-metrics-list", {"meta": {"metrics": [1]}}),
                     ("decoder-weights-int", {"tensors": lambda t: {k: v.to(torch.int32) for k, v in t.items()}}),
                     ("decoder-weights-float8", {"tensors": lambda t: {k: v.to(torch.float8_e4m3fn) for k, v in t.items()}}),
                     ("decoder-weights-nan", {"tensors": poke("decoder.project.0.weight", float("nan"))}),
                     ("decoder-tensor-missing", {"tensors": replace("decoder.project.0.weight", None)}),
                     ("decoder-encoder-on-cladec", {"tensors": replace("encoder.conv1.0.bias", torch.zeros(4))})):
        add(cases(K, name, bundle("decoder", **kw), dec))
    add(cases(K, "decoder-arch-at-size-bounds", bundle("decoder", meta=bounds_arch), dec, **DOS))
    add(cases(K, "decoder-refae-encoder-missing", bundle("refae", tensors=only_prefix("decoder.")), ("load_decoder",)))
    add(cases(K, "decoder-meta-list", bundle("decoder", text="[]"), ("cladec_decode",)))
    add(cases(K, "decoder-width-1e9", bundle("decoder", meta={"decoder.width": 1e9}), ("cladec_decode",)))
    add(cases(K, "decoder-valid-copy", bundle("decoder"), dec, expect=ACCEPT))
    exp = ("load_explainer", "load_explainer_alone")
    for name, kw in (("explainer-meta-list", {"text": "[]"}),
                     ("explainer-k-1e6", {"meta": {"generator.k": 10**6}}),
                     ("explainer-width-1e6", {"meta": {"generator.width": 10**6}}),
                     ("explainer-generator-list", {"meta": {"generator": [1]}}),
                     ("explainer-layers-string", {"meta": {"layers": "conv1"}}),
                     ("explainer-layers-nested", {"meta": {"layers": [["conv1"]]}}),
                     ("explainer-kept-wrong", {"meta": {"kept": [0, 99]}}),
                     ("explainer-target-unknown", {"meta": {"target": "evil"}}),
                     ("explainer-unit-layer-unknown", {"meta": {"unit.layer": "conv9"}}),
                     ("explainer-unit-index-1e12", {"meta": {"unit.index": 10**12}}),
                     ("explainer-size-mismatch", {"meta": {"generator.n_frames": 200}}),
                     ("explainer-provenance-list", {"meta": {"provenance": []}}),
                     ("explainer-weights-int", {"tensors": lambda t: {k: v.to(torch.int32) for k, v in t.items()}}),
                     ("explainer-weights-nan", {"tensors": lambda t: {k: torch.full_like(v, float("nan"))
                                                                       for k, v in t.items()}}),
                     ("explainer-tensor-extra", {"tensors": replace("evil.weight", torch.zeros(2))})):
        add(cases(K, name, bundle("explainer", **kw), exp))
    add(cases(K, "explainer-meta-list", bundle("explainer", text="[]"), ("load_explainer_bytes", "gradcam")))
    add(cases(K, "explainer-k-1e6", bundle("explainer", meta={"generator.k": 10**6}), ("gradcam",)))
    add(cases(K, "explainer-valid-copy", bundle("explainer"), exp, expect=ACCEPT))
    return out


def reference_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    lm, lab = "logmel", "labels"
    ref = ("ReferenceSet.load",)

    def meta(fn):
        return bundle("reference", text=_reference_meta(fn))

    for name, make in (("reference-meta-list", bundle("reference", text="[]")),
                       ("reference-meta-not-json", bundle("reference", text="{oops")),
                       ("reference-no-metadata", bundle("reference", key="other")),
                       ("reference-sources-number", meta(lambda m: m.update(sources=5))),
                       ("reference-sources-short", meta(lambda m: m.update(sources=m["sources"][:3]))),
                       ("reference-mel-missing", meta(lambda m: m.pop("mel"))),
                       ("reference-mel-sample-rate-abc", meta(lambda m: m["mel"].update(sample_rate="abc"))),
                       ("reference-mel-n-fft-2e40", meta(lambda m: m["mel"].update(n_fft=2**40))),
                       ("reference-tags-list", meta(lambda m: m.update(tags=["a"]))),
                       ("reference-tags-short", meta(lambda m: m.update(tags={"x": ["a"]}))),
                       ("reference-info-list", meta(lambda m: m.update(info=[1]))),
                       ("reference-logmel-2d", bundle("reference", tensors=lambda t: {**t, lm: t[lm][0]})),
                       ("reference-logmel-nan", bundle("reference", tensors=poke(lm, float("nan")))),
                       ("reference-logmel-inf", bundle("reference", tensors=poke(lm, float("inf")))),
                       ("reference-labels-missing", bundle("reference", tensors=replace(lab, None))),
                       ("reference-labels-2d", bundle("reference", tensors=lambda t: {**t, lab: t[lab][:, None]})),
                       ("reference-labels-nan", bundle("reference", tensors=poke(lab, float("nan")))),
                       ("reference-random-bytes", blob(lambda d: _random(5000), "reference")),
                       ("reference-empty-file", blob(lambda d: b"", "reference")),
                       ("reference-truncated", blob(lambda d: d[: len(d) // 3], "reference")),
                       ("reference-directory", directory("ref.safetensors"))):
        add(cases(K, name, make, ref))
    add(cases(K, "reference-logmel-short", bundle("reference", tensors=lambda t: {**t, lm: t[lm][:, :50].clone()}),
              ref, expect=CLEAN))
    add(cases(K, "reference-valid-copy", bundle("reference"), ref, expect=ACCEPT))
    return out


def pickle_cases() -> list[Case]:
    """Pickle payloads under every loader; a marker file would prove that one ran."""
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    for fmt in PAYLOADS:
        add(cases(K, f"payload-{fmt}", payload(fmt, "payload.pt"),
                  ("import_state_dict", "loop.load_checkpoint", "classifier._load_checkpoint")))
    add(cases(K, "payload-torch-zip", payload("torch-zip", "payload.pt"), ("resume_state", "train_classifier_resume")))
    for fmt in ("pickle", "torch-zip"):
        add(cases(K, f"payload-{fmt}-as-bundle", payload(fmt, "payload.safetensors"),
                  ("load_bundle", "load_bundle_bytes", "load_decoder", "load_explainer", "ReferenceSet.load")))
    add(cases(K, "payload-pickle-as-bundle", payload("pickle", "payload.safetensors"), ("info", "classify_with")))
    return out


def training_checkpoint_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend

    def ckpt(**over):
        return torch_file(lambda env: {"step": 1, "config": dict(RESUME_CONFIG), "classifier": RESUME_ID, **over})

    for name, make, targets in (
            ("ckpt-list", torch_file(lambda env: [1, 2]), ("loop.load_checkpoint",)),
            ("ckpt-empty-file", blob(lambda d: b""), ("loop.load_checkpoint", "classifier._load_checkpoint")),
            ("ckpt-random-bytes", blob(lambda d: _random(3000)), ("loop.load_checkpoint", "classifier._load_checkpoint")),
            ("ckpt-truncated-zip", lambda env, folder: _truncated_torch(folder),
             ("loop.load_checkpoint", "classifier._load_checkpoint")),
            ("ckpt-step-string", ckpt(step="abc"), ("resume_state",)),
            ("ckpt-step-list", ckpt(step=[1]), ("resume_state",)),
            ("ckpt-step-1e30", ckpt(step=10**30), ("resume_state",)),
            ("ckpt-config-list", ckpt(config=[1, 2]), ("resume_state",)),
            ("ckpt-config-string", ckpt(config="steps"), ("resume_state",)),
            ("ckpt-no-step", torch_file(lambda env: {"config": {}}), ("resume_state",)),
            ("ckpt-directory", directory("c.pt"), ("loop.load_checkpoint", "classifier._load_checkpoint"))):
        add(cases(K, name, make, targets))

    def train_ckpt(fn):
        return torch_file(lambda env: fn(env, train_config().to_dict()))

    for name, fn in (("train-ckpt-config-list", lambda env, c: {"config": [1]}),
                     ("train-ckpt-no-model", lambda env, c: {"config": c}),
                     ("train-ckpt-model-wrong-shapes", lambda env, c: {"config": c, "model": {"conv1.0.weight": torch.zeros(1)},
                                                                      "optimizer": {}, "epoch": 0}),
                     ("train-ckpt-epoch-string", lambda env, c: {"config": c, "model": tiny_state(env), "optimizer": {},
                                                                 "epoch": "one"}),
                     ("train-ckpt-list", lambda env, c: [c])):
        add(cases(K, name, train_ckpt(fn), ("train_classifier_resume",)))
    return out


def _truncated_torch(folder: Path) -> Path:
    buf = io.BytesIO()
    torch.save({"step": 1, "w": torch.zeros(1000)}, buf)
    p = folder / "c.pt"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return p


def import_cases() -> list[Case]:
    K = "checkpoint"
    out: list[Case] = []
    add = out.extend
    imp = ("import_state_dict",)
    for name, obj in (("import-plain", with_state(lambda s: s)),
                      ("import-wrapped-state-dict", with_state(lambda s: {"state_dict": s})),
                      ("import-wrapped-model", with_state(lambda s: {"model": s})),
                      ("import-module-prefix", with_state(lambda s: {f"module.{k}": v for k, v in s.items()}))):
        add(cases(K, name, torch_file(obj), imp, expect=ACCEPT))
    for name, obj in (("import-nan", with_state(lambda s: {**s, "fc1.2.weight": torch.full_like(s["fc1.2.weight"], float("nan"))})),
                      ("import-int-keys", with_state(lambda s: {i: v for i, v in enumerate(s.values())})),
                      ("import-non-tensor-values", with_state(lambda s: {k: 1.0 for k in s})),
                      ("import-key-missing", with_state(lambda s: {k: v for k, v in s.items() if k != "fc1.2.weight"})),
                      ("import-int-dtype", with_state(lambda s: {k: v.to(torch.int32) for k, v in s.items()})),
                      ("import-complex", with_state(lambda s: {k: v.to(torch.complex64) for k, v in s.items()})),
                      ("import-float8", with_state(lambda s: {k: v.to(torch.float8_e4m3fn) for k, v in s.items()})),
                      ("import-empty-dict", lambda env: {}), ("import-list", with_state(lambda s: list(s.values()))),
                      ("import-tensor", lambda env: torch.zeros(3)),
                      ("import-doubly-wrapped", with_state(lambda s: {"state_dict": {"state_dict": s}}))):
        add(cases(K, name, torch_file(obj), imp))
    add(cases(K, "import-random-bytes", blob(lambda d: _random(2000), name="w.pt"), imp))
    add(cases(K, "import-empty-file", blob(lambda d: b"", name="w.pt"), imp))
    add(cases(K, "import-safetensors-bundle", lambda env, folder: env.base("classifier"), imp))
    add(cases(K, "import-directory", directory("w.pt"), imp))
    return out


def checkpoint_cases() -> list[Case]:
    return (classifier_metadata_cases() + classifier_tensor_cases() + classifier_file_cases() + generator_cases()
            + trained_bundle_cases() + reference_cases() + pickle_cases() + training_checkpoint_cases()
            + import_cases())


# --------------------------------------------------------------------------- audio

AUDIO_TARGETS = ("load_audio", "load_audio_bytes", "excerpt_of_file", "classify")


def _audio_expect(load: str, excerpt: str, classify: str) -> dict[str, str]:
    return {"load_audio": load, "load_audio_bytes": load, "excerpt_of_file": excerpt, "classify": classify}


def audio_cases() -> list[Case]:
    K = "audio"
    R, A, C = REFUSE, ACCEPT, CLEAN
    out: list[Case] = []
    add = out.extend
    sr = 22050
    for name, make, expect in (
            ("empty-file", wav("x.wav", lambda: b""), R),
            ("random-bytes", wav("x.wav", lambda: _random(20000)), R),
            ("header-only", wav("x.wav", lambda: wav_bytes(b"")), R),
            ("one-sample", wav("x.wav", lambda: wav_bytes(pcm16(1))), _audio_expect(C, R, R)),
            ("100-samples", wav("x.wav", lambda: wav_bytes(pcm16(100))), _audio_expect(C, R, R)),
            ("7-bits-per-sample", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), bits=7)), C),
            ("silent", wav("x.wav", lambda: wav_bytes(bytes(2 * 3 * sr))), R),
            ("below-silence", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr, amp=1e-8))), R),
            ("nan-samples", float_wav("x.wav", float("nan")), R),
            ("inf-samples", float_wav("x.wav", float("inf")), R),
            ("rate-0", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), rate=0)), R),
            ("rate-4e9", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), rate=4_000_000_000)), _audio_expect(C, R, R)),
            ("rate-1", wav("x.wav", lambda: wav_bytes(pcm16(100), rate=1)), _audio_expect(C, C, C)),
            ("channels-0", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), channels=0)), R),
            ("channels-65535", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), channels=65535)), C),
            ("data-size-4GB", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr), data_size=0xFFFFFFF0)), C),
            ("shorter-than-excerpt", wav("x.wav", lambda: wav_bytes(pcm16(sr))), _audio_expect(A, R, C)),
            ("valid-3s", wav("x.wav", lambda: wav_bytes(pcm16(3 * sr))), A),
            ("valid-flac-named-wav", _flac_as_wav, A)):
        add(cases(K, name, make, AUDIO_TARGETS, expect=expect))
    add(cases(K, "directory-named-wav", directory("x.wav"), ("load_audio", "excerpt_of_file", "classify")))
    add(cases(K, "no-such-file", missing("absent.wav"), ("load_audio", "excerpt_of_file", "classify")))
    add(cases(K, "payload-pickle-as-wav", payload("pickle", "x.wav"), AUDIO_TARGETS))
    return out


def _flac_as_wav(env: Env, folder: Path) -> Path:
    import soundfile as sf

    p = folder / "x.wav"
    sf.write(p, env.wave, 22050, format="FLAC")
    return p


# --------------------------------------------------------------------------- parameters


def _config(cls_name: str, **kw) -> Call:
    def call(env, _):
        from xai_core.actmax.config import AMConfig, GridConfig
        from xai_core.audio.config import MelConfig
        from xai_core.explain.cladec.config import CladecConfig, EvalConfig
        from xai_core.explain.consistency.config import AttackConfig
        from xai_core.explain.depthmaps.config import ExplainerConfig
        from xai_core.train.classifier import ClassifierTrainConfig

        classes = {c.__name__: c for c in (AMConfig, GridConfig, MelConfig, CladecConfig, EvalConfig, AttackConfig,
                                           ExplainerConfig, ClassifierTrainConfig)}
        if cls_name.endswith(".from_dict"):
            return classes[cls_name.split(".")[0]].from_dict(kw["d"])
        return classes[cls_name](**kw)

    return call


def _none(env: Env, folder: Path) -> None:
    return None


def _param(name: str, call: Call, expect: str = REFUSE, **kw) -> Case:
    return Case(id=f"parameter/{name}", kind="parameter", make=_none, call=call, expect=expect, **kw)


def _cli(kind: str, name: str, argv: Callable[[Env, Path], list[str]], expect: str = REFUSE, **kw) -> Case:
    """A CLI case whose arguments are built from the case folder (``make`` returns the folder)."""
    return Case(id=f"{kind}/{name}", kind=kind, make=lambda env, folder: folder, argv=argv, expect=expect, **kw)


def _am_argv(*extra: str) -> Callable[[Env, Path], list[str]]:
    return lambda env, d: ["am", "--demo-dir", str(env.demo), "--runs-dir", str(d / "runs"), "--iters", "2",
                           "--examples", "2", "--device", "cpu", "--no-progress", *extra]


def _grid_argv(*extra: str) -> Callable[[Env, Path], list[str]]:
    return lambda env, d: ["grid", "--demo-dir", str(env.demo), "--runs-dir", str(d / "runs"), "--iters", "2",
                           "--lrs", "0.1", "--lams", "0.1", "--examples", "2", "--n-reference", "2",
                           "--device", "cpu", "--no-progress", *extra]


def _classify_argv(*extra: str) -> Callable[[Env, Path], list[str]]:
    return lambda env, d: ["classify", str(env.wav), "--classifier", str(env.base("classifier")),
                           "--device", "cpu", *extra]


def _decode_argv(*extra: str, source: str = "AUDIO") -> Callable[[Env, Path], list[str]]:
    """``cladec decode`` of the demo's decoders on the valid recording (or ``source="excerpt"``)."""
    return lambda env, d: ["cladec", "decode", str(env.demo / "cladec"), source, "--classifier",
                           str(env.base("classifier")), "--reference", str(env.base("reference")), "--out",
                           str(d / "out"), "--gl-iters", "1", "--device", "cpu", *extra]


def _gradcam_argv(*extra: str) -> Callable[[Env, Path], list[str]]:
    return lambda env, d: ["gradcam", "--classifier", str(env.base("classifier")), "--reference",
                           str(env.base("reference")), "--out", str(d / "out"), "--device", "cpu", *extra]


def _load_audio_call(**kw) -> Call:
    def call(env, _):
        from xai_core.audio.io import load_audio

        return load_audio(env.wav, **kw)

    return call


def _excerpt_call(offset) -> Call:
    def call(env, _):
        from xai_core.audio import MelConfig
        from xai_core.audio.features import excerpt_of_file

        return excerpt_of_file(env.wav, offset=offset, mel=MelConfig(), frames=115)

    return call


def _detect_call(**kw) -> Call:
    def call(env, _):
        from xai_core.detect import detect_singing

        return detect_singing(env.classifier, env.wave, **kw)

    return call


def _run_am(**kw) -> Call:
    """Activation maximisation of the tiny demo with one setting changed (1 iteration, 1 example)."""

    def call(env, _):
        from xai_core.actmax import AMConfig
        from xai_core.actmax.engine import run_am

        return run_am(env.classifier, env.generator, AMConfig(**{"n_iter": 1, "n_examples": 1, **kw}), device="cpu")

    return call


def parameter_cases() -> list[Case]:
    out: list[Case] = []
    nan, inf = float("nan"), float("inf")
    for field, values in (("lr", (0, -1, nan, inf, 1e308, "abc")), ("lam", (nan, inf, -1)),
                          ("n_iter", (0, -5, 10**9, 2.5, True)), ("n_examples", (0, 10**9)),
                          ("direction", ("sideways",)), ("layer", ("conv9",)), ("unit", (-1,)),
                          ("seed", (-1,)), ("prior", ("bayes",))):
        for v in values:
            out.append(_param(f"AMConfig-{field}={v!r}", _config("AMConfig", **{field: v})))
    # settings a config may hold, but a run must then refuse (or survive) cleanly
    for field, v in (("lam", 1e308), ("seed", 2**63)):
        out.append(_param(f"AMConfig-{field}={v!r}", _config("AMConfig", **{field: v}), CLEAN))
    out.append(_param("run_am-seed=2**63", _run_am(seed=2**63)))
    out.append(_param("run_am-lam=1e308", _run_am(lam=1e308), CLEAN))
    out.append(_param("run_am-unit=1e6", _run_am(unit=10**6)))
    out.append(_param("AMConfig-from-dict-lr-string", _config("AMConfig.from_dict", d={"lr": "0.1"})))
    out.append(_param("AMConfig-from-dict-list", _config("AMConfig.from_dict", d=[1, 2])))
    out.append(_param("AMConfig-small", _config("AMConfig", lr=1e-6, n_iter=1, n_examples=1), ACCEPT))
    for field, values in (("lrs", ((0.0,), (nan,), (1e308,), (), "0.1")), ("lams", ((nan,), (-1.0,))),
                          ("iters", ((0,), (10**9,), (-5,))), ("directions", (("up",),)),
                          ("n_examples", (1, 10**9)), ("feature_layers", (("nope",),)),
                          ("max_chunk", (0,)), ("layer", ("conv9",))):
        for v in values:
            out.append(_param(f"GridConfig-{field}={v!r}", _config("GridConfig", **{field: v})))
    # more reference excerpts than any set holds: only a run can tell (see cli-grid-n-reference=1e9)
    out.append(_param("GridConfig-n_reference=1000000000", _config("GridConfig", n_reference=10**9), CLEAN))
    out.append(_param("GridConfig-from-dict-iters-number", _config("GridConfig.from_dict", d={"iters": 5})))
    for field, v in (("sample_rate", "abc"), ("sample_rate", -1), ("sample_rate", 10**12), ("n_fft", 2**40),
                     ("hop_length", 0), ("fmin", nan), ("fmax", "inf"), ("n_mels", 0), ("excerpt_frames", 10**9),
                     ("log_floor", nan), ("n_fft", 1024.5)):
        out.append(_param(f"MelConfig-{field}={v!r}", _config("MelConfig", **{field: v})))
    out.append(_param("MelConfig-from-dict-unknown", _config("MelConfig.from_dict", d={"evil": 1})))
    out.append(_param("MelConfig-from-dict-null", _config("MelConfig.from_dict", d=None)))
    for cls, field, v in (("CladecConfig", "steps", 10**12), ("CladecConfig", "lr", nan), ("EvalConfig", "n_train", 0),
                          ("ExplainerConfig", "lr", inf), ("ExplainerConfig", "k", 10**6), ("AttackConfig", "eps_db", nan),
                          ("AttackConfig", "steps", 10**9), ("ClassifierTrainConfig", "lr", nan),
                          ("ClassifierTrainConfig", "batch_size", 10**9),
                          ("ClassifierTrainConfig", "preset", "huge")):
        out.append(_param(f"{cls}-{field}={v!r}", _config(cls, **{field: v})))
    # library calls with bad arguments
    for name, call in (("load_audio-offset=inf", _load_audio_call(offset=inf)),
                       ("load_audio-offset=nan", _load_audio_call(offset=nan)),
                       ("load_audio-offset=-1", _load_audio_call(offset=-1.0)),
                       ("load_audio-duration=nan", _load_audio_call(duration=nan)),
                       ("load_audio-duration=-1", _load_audio_call(duration=-1.0)),
                       ("load_audio-sample_rate=1e12", _load_audio_call(sample_rate=10**12)),
                       ("load_audio-max_seconds=nan", _load_audio_call(max_seconds=nan)),
                       ("excerpt_of_file-offset=inf", _excerpt_call(inf)),
                       ("excerpt_of_file-offset=1e300", _excerpt_call(1e300)),
                       ("excerpt_of_file-offset=string", _excerpt_call("3")),
                       ("detect-threshold=nan", _detect_call(threshold=nan)),
                       ("detect-median_frames=1e12", _detect_call(median_frames=10**12)),
                       ("detect-median_frames=2.5", _detect_call(median_frames=2.5))):
        out.append(_param(name, call))
    # CLI arguments
    for name, argv in (("am-seed=2**63", _am_argv("--seed", str(2**63))), ("am-lam=1e308", _am_argv("--lam", "1e308")),
                       ("am-lr=1e308", _am_argv("--lr", "1e308")), ("am-lr=nan", _am_argv("--lr", "nan")),
                       ("am-lr=0", _am_argv("--lr", "0")), ("am-device=meta", _am_argv("--device", "meta")),
                       ("am-device=cuda:99", _am_argv("--device", "cuda:99")),
                       ("am-device=cuda:abc", _am_argv("--device", "cuda:abc")),
                       ("am-device=tpu", _am_argv("--device", "tpu")),
                       ("am-examples=1e9", _am_argv("--examples", str(10**9))),
                       ("am-examples=0", _am_argv("--examples", "0")), ("am-iters=-1", _am_argv("--iters", "-1")),
                       ("am-iters=1e9", _am_argv("--iters", str(10**9))), ("am-unit=-1", _am_argv("--unit", "-1")),
                       ("am-unit=1e6", _am_argv("--unit", str(10**6))), ("am-layer=conv9", _am_argv("--layer", "conv9")),
                       ("grid-lrs=nan", _grid_argv("--lrs", "nan")), ("grid-iters=0", _grid_argv("--iters", "0")),
                       ("grid-iters=1e9", _grid_argv("--iters", str(10**9))),
                       ("grid-examples=1e9", _grid_argv("--examples", str(10**9))),
                       ("grid-examples=1", _grid_argv("--examples", "1")),
                       ("grid-max-chunk=0", _grid_argv("--max-chunk", "0")),
                       ("grid-n-reference=1e9", _grid_argv("--n-reference", str(10**9))),
                       ("grid-features=nope", _grid_argv("--features", "nope")),
                       ("grid-resume=unknown", _grid_argv("--resume", "grid-unknown")),
                       ("classify-offset=inf", _classify_argv("--offset", "inf")),
                       ("classify-offset=nan", _classify_argv("--offset", "nan")),
                       ("classify-offset=-1", _classify_argv("--offset", "-1")),
                       ("classify-duration=-1", _classify_argv("--duration", "-1")),
                       ("classify-duration=nan", _classify_argv("--duration", "nan")),
                       ("classify-median-frames=0", _classify_argv("--median-frames", "0")),
                       ("classify-median-frames=1e12", _classify_argv("--median-frames", str(10**12))),
                       ("classify-threshold=5", _classify_argv("--threshold", "5")),
                       ("classify-threshold=nan", _classify_argv("--threshold", "nan")),
                       ("classify-min-segment=nan", _classify_argv("--min-segment", "nan")),
                       ("classify-device=meta", _classify_argv("--device", "meta")),
                       ("classify-device=cuda:99", _classify_argv("--device", "cuda:99")),
                       ("cladec-decode-offset=inf", _decode_argv("--offset", "inf")),
                       ("cladec-decode-excerpt=1e9", _decode_argv("--excerpt", str(10**9), source="excerpt")),
                       ("gradcam-start=inf", _gradcam_argv("--audio", "AUDIO", "--start", "inf")),
                       ("gradcam-excerpts=999", _gradcam_argv("--excerpts", "999")),
                       ("gradcam-k=1e6", _gradcam_argv("--k", str(10**6))),
                       ("gradcam-unit-layer=conv9", _gradcam_argv("--unit-layer", "conv9")),
                       ("gradcam-unit=1e9", _gradcam_argv("--unit", str(10**9)))):
        out.append(_cli("parameter", f"cli-{name}", _with_audio(argv)))
    out.append(_cli("parameter", "cli-am-valid", _am_argv(), ACCEPT))
    out.append(_cli("parameter", "cli-classify-valid", _classify_argv(), ACCEPT))
    return out


def _with_audio(argv: Callable[[Env, Path], list[str]]) -> Callable[[Env, Path], list[str]]:
    """``AUDIO`` in the arguments stands for the valid recording."""
    return lambda env, d: [str(env.wav) if a == "AUDIO" else a for a in argv(env, d)]


# --------------------------------------------------------------------------- run store


def store_copy(env: Env, folder: Path) -> Path:
    return Path(shutil.copytree(env.store, folder / "runs"))


def broken_store(fn: Callable[[Env, Path], None]) -> Make:
    """A copy of the valid run store, broken by ``fn(env, root)``; returns its root."""

    def make(env: Env, folder: Path) -> Path:
        root = store_copy(env, folder)
        fn(env, root)
        return root

    return make


def _sql(statement: str, *params) -> Callable[[Env, Path], None]:
    def fn(env: Env, root: Path) -> None:
        with sqlite3.connect(root / "runs.sqlite") as con:
            con.execute(statement.replace("RUN", env.run_id), params)
        con.close()

    return fn


def _db_random(env: Env, root: Path) -> None:
    (root / "runs.sqlite").write_bytes(_random(8192, 7))


def _db_truncated(env: Env, root: Path) -> None:
    p = root / "runs.sqlite"
    p.write_bytes(p.read_bytes()[:1500])


def _db_directory(env: Env, root: Path) -> None:
    (root / "runs.sqlite").unlink()
    (root / "runs.sqlite").mkdir()


def _array_deleted(env: Env, root: Path) -> None:
    (root / env.run_id / "am.safetensors").unlink()


def _array_random(env: Env, root: Path) -> None:
    (root / env.run_id / "am.safetensors").write_bytes(_random(3000, 3))


def _array_no_metadata(env: Env, root: Path) -> None:
    p = root / env.run_id / "am.safetensors"
    _, t = read_parts(p)
    from safetensors.torch import save

    p.write_bytes(save(t))


def _traversal_row(env: Env, root: Path) -> None:
    victim = root.parent / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    with sqlite3.connect(root / "runs.sqlite") as con:
        con.execute("INSERT INTO runs SELECT '../victim', kind, created, status, name, config, summary, classifier, "
                    "generator, device, seconds, message FROM runs WHERE id = ?", (env.run_id,))
    con.close()


def _victim_intact(env: Env, folder: Path) -> str | None:
    p = folder / "victim" / "keep.txt"
    return None if p.is_file() and p.read_text() == "keep" else f"{p} outside the run store was deleted or changed"


def _lib_store(method: str, *args) -> Call:
    def call(env, root):
        from xai_core.store import RunStore

        store = RunStore(root)
        a = [env.run_id if x == "RUN" else x for x in args]
        return getattr(store, method)(*a)

    return call


def _runs(*args: str) -> Argv:
    """``runs ACTION ... --runs-dir ROOT``; ``RUN`` stands for the stored run's id, ``OUT`` for ROOT/../out."""

    def argv(env, root):
        sub = [env.run_id if a == "RUN" else str(Path(root).parent / "out") if a == "OUT" else a for a in args]
        return ["runs", *sub, "--runs-dir", str(root)]

    return argv


def _export_victim(env: Env, folder: Path) -> Path:
    """A run store and an --out folder whose examples.csv is a symlink to a file outside it."""
    root = store_copy(env, folder)
    out = folder / "out"
    out.mkdir()
    (folder / "victim.txt").write_text("precious")
    (out / "examples.csv").symlink_to(folder / "victim.txt")
    return root


def _victim_file_intact(env: Env, folder: Path) -> str | None:
    p = folder / "victim.txt"
    return None if p.read_text() == "precious" else f"{p}, the target of a symlink, was overwritten"


def _existing_out(env: Env, folder: Path) -> Path:
    root = store_copy(env, folder)
    (folder / "out").mkdir()
    (folder / "out" / "examples.csv").write_text("earlier export")
    return root


def _existing_out_intact(env: Env, folder: Path) -> str | None:
    p = folder / "out" / "examples.csv"
    return None if p.read_text() == "earlier export" else f"{p} was overwritten without --force"


def _existing_json(env: Env, folder: Path) -> Path:
    (folder / "result.json").write_text("earlier result")
    return folder


def _existing_json_intact(env: Env, folder: Path) -> str | None:
    p = folder / "result.json"
    return None if p.read_text() == "earlier result" else f"{p} was overwritten without --force"


def _json_symlink(env: Env, folder: Path) -> Path:
    (folder / "victim.txt").write_text("precious")
    (folder / "result.json").symlink_to(folder / "victim.txt")
    return folder


def _file_at(name: str) -> Make:
    def make(env: Env, folder: Path) -> Path:
        (folder / name).write_text("not a folder")
        return folder / name

    return make


def _out_is_a_file(env: Env, folder: Path) -> Path:
    _file_at("out")(env, folder)
    return store_copy(env, folder)


def _empty_db(env: Env, folder: Path) -> Path:
    (folder / "runs").mkdir()
    (folder / "runs" / "runs.sqlite").touch()
    return folder / "runs"


def _unwritable(env: Env, folder: Path) -> Path:
    d = folder / "locked"
    d.mkdir()
    d.chmod(0o500)
    return d / "runs"


def _root_skip() -> str | None:
    return "root ignores file permissions" if os.geteuid() == 0 else None


def runstore_cases() -> list[Case]:
    K = "runstore"
    out: list[Case] = []

    def both(name: str, make: Make, lib: Call, argv: Argv, expect: str = REFUSE, **kw) -> None:
        out.append(Case(id=f"{K}/{name}/lib", kind=K, make=make, call=lib, expect=expect, **kw))
        out.append(Case(id=f"{K}/{name}/cli", kind=K, make=make, argv=argv, expect=expect, **kw))

    both("sqlite-random-bytes", broken_store(_db_random), _lib_store("list_runs"), _runs("list"))
    both("sqlite-truncated", broken_store(_db_truncated), _lib_store("list_runs"), _runs("list"))
    both("sqlite-is-a-directory", broken_store(_db_directory), _lib_store("list_runs"), _runs("list"))
    both("runs-dir-is-a-file", _file_at("runs"), _lib_store("list_runs"), _runs("list"))
    both("runs-dir-unwritable", _unwritable, _lib_store("list_runs"), _runs("list"), skip=_root_skip)
    both("array-file-deleted", broken_store(_array_deleted), _lib_store("load", "RUN"),
         _runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"))
    both("array-file-random-bytes", broken_store(_array_random), _lib_store("load", "RUN"),
         _runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"))
    both("array-file-without-metadata", broken_store(_array_no_metadata), _lib_store("load", "RUN"),
         _runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"))
    # listing may show a damaged row (so that it does not hide the others) or refuse; showing it must refuse
    both("summary-not-json", broken_store(_sql("UPDATE runs SET summary = '{oops' WHERE id = 'RUN'")),
         _lib_store("list_runs"), _runs("list"), expect=CLEAN)
    both("summary-not-json-show", broken_store(_sql("UPDATE runs SET summary = '{oops' WHERE id = 'RUN'")),
         _lib_store("info", "RUN"), _runs("show", "RUN"))
    both("config-not-json", broken_store(_sql("UPDATE runs SET config = 'nope' WHERE id = 'RUN'")),
         _lib_store("info", "RUN"), _runs("show", "RUN"))
    both("summary-json-list", broken_store(_sql("UPDATE runs SET summary = '[1, 2]' WHERE id = 'RUN'")),
         _lib_store("list_runs"), _runs("list"), expect=CLEAN)
    both("summary-json-list-show", broken_store(_sql("UPDATE runs SET summary = '[1, 2]' WHERE id = 'RUN'")),
         _lib_store("info", "RUN"), _runs("show", "RUN"))
    both("classifier-not-json", broken_store(_sql("UPDATE runs SET classifier = 'x' WHERE id = 'RUN'")),
         _lib_store("info", "RUN"), _runs("show", "RUN"))
    both("kind-unknown", broken_store(_sql("UPDATE runs SET kind = 'evil' WHERE id = 'RUN'")),
         _lib_store("load", "RUN"), _runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"))
    both("grid-config-list", broken_store(_sql("UPDATE runs SET kind = 'grid', config = '[1]' WHERE id = 'RUN'")),
         _lib_store("load", "RUN"), _runs("show", "RUN"))
    both("unknown-run-id", store_copy, _lib_store("load", "am-19700101-000000-000000"),
         _runs("show", "am-19700101-000000-000000"))
    both("unknown-run-id-export", store_copy, _lib_store("export", "nope", "/nonexistent/out"),
         _runs("export", "nope", "--out", "OUT"))
    both("unknown-run-id-delete", store_copy, _lib_store("delete", "nope"), _runs("delete", "nope"))
    both("row-id-escapes-store", broken_store(_traversal_row), _lib_store("delete", "../victim"),
         _runs("delete", "../victim"), check=_victim_intact)
    out.append(Case(id=f"{K}/export-through-symlink/cli", kind=K, make=_export_victim,
                    argv=_runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"), expect=CLEAN,
                    check=_victim_file_intact))
    out.append(Case(id=f"{K}/export-through-symlink-force/cli", kind=K, make=_export_victim,
                    argv=_runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png", "--force"), expect=CLEAN,
                    check=_victim_file_intact))
    out.append(Case(id=f"{K}/export-out-exists-without-force/cli", kind=K, make=_existing_out,
                    argv=_runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"), check=_existing_out_intact))
    out.append(Case(id=f"{K}/export-out-is-a-file/cli", kind=K, make=_out_is_a_file,
                    argv=_runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png")))
    out.append(Case(id=f"{K}/classify-json-exists-without-force/cli", kind=K, make=_existing_json,
                    argv=lambda env, d: _classify_argv("--json", str(d / "result.json"))(env, d),
                    check=_existing_json_intact))
    out.append(Case(id=f"{K}/classify-json-through-symlink/cli", kind=K, make=_json_symlink,
                    argv=lambda env, d: _classify_argv("--json", str(d / "result.json"), "--force")(env, d),
                    expect=CLEAN, check=_victim_file_intact))
    both("empty-sqlite-file", _empty_db, _lib_store("list_runs"), _runs("list"), expect=ACCEPT)
    both("valid-store", store_copy, _lib_store("load", "RUN"), _runs("show", "RUN"), expect=ACCEPT)
    out.append(Case(id=f"{K}/valid-export/cli", kind=K, make=store_copy,
                    argv=_runs("export", "RUN", "--out", "OUT", "--no-wav", "--no-png"), expect=ACCEPT))
    return out


# --------------------------------------------------------------------------- the corpus

CASES: list[Case] = checkpoint_cases() + audio_cases() + parameter_cases() + runstore_cases()
KINDS = ("checkpoint", "audio", "parameter", "runstore")


def dos_bundle(env: Env, folder: Path) -> Path:
    """The DoS bundle: about 200 KB, valid tiny weights, metadata declaring an architecture whose weights alone
    would take several GB (conv 1024 x 4, dense 8192 x 2: fc1 is 8192 x 78848 floats, 2.6 GB, before its
    orthogonal initialisation)."""
    m, t = read_parts(env.base("classifier"))
    m["arch"].update(conv_channels=[1024] * 4, dense_units=[8192, 8192])
    m["provenance"]["notes"] = "x" * (190 << 10)
    return write_parts(folder / "dos.safetensors", json.dumps(m), t)
