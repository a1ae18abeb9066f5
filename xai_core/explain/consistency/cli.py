"""``python -m xai_core attack``, ``consistency score|concept-set|report`` and ``train robust``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from xai_core.cliargs import (
    BATCH,
    GL_ITERS,
    LR,
    MAX_COUNT,
    SECONDS,
    SEED,
    STEPS,
    THREADS,
    add_device,
    add_force,
    float_list,
    float_range,
    int_range,
)
from xai_core.cliargs import names as _names
from xai_core.errors import ParameterError
from xai_core.fileio import atomic_write_bytes, check_new_files, check_output_file, prepare_output_dir
from xai_core.text import printable

MAX_EPS_DB = 60.0  # = explain.consistency.config.MAX_EPS_DB (spelt out: --help imports no torch)
EPS = float_range(0.0, MAX_EPS_DB, lo_open=True)
ATTACK_STEPS = int_range(1, 10_000)  # = explain.consistency.config.MAX_ATTACK_STEPS
EPS_LIST = float_list(0.0, MAX_EPS_DB, lo_open=True)

HELP = ("Neuron consistency under adversarial examples (Dong, Bao, Su & Zhu): a unit is interpretable when its "
        "top-k inputs share a concept, consis = p^T A p; the claim is that consistency drops on adversarial "
        "inputs, and that adversarial training with a consistent loss restores it.")
EPS_HELP = ("L-inf bound in dB of mel magnitude per time-frequency bin (default 1 dB: about the just-noticeable "
            "level difference; PGD changes every decision of the demo classifier on unseen songs there, 78 %% at "
            "0.25 dB, and half of those of its adversarially trained versions)")


def _bar(desc: str):
    from xai_core.progress import tqdm_progress

    return tqdm_progress(desc, ("stage", "eps_db", "loss", "ce_adv", "feature", "model"))


def _setup(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _classifier(path):
    from xai_core.assets import DemoPaths
    from xai_core.checkpoints import load_bundle

    return load_bundle(path or DemoPaths.at().classifier, expected_kind="classifier")


def _concepts(path):
    from xai_core.assets import DemoPaths, ReferenceSet

    # as built (its own silence rule; the README's numbers use every excerpt), not re-filtered
    return ReferenceSet.load(path or DemoPaths.at().concepts, clean=False)


def _attack_config(args, **over):
    from xai_core.explain.consistency import AttackConfig

    kw = {"method": args.method, "eps_db": args.eps_db, "steps": args.steps, "step_db": args.step_db,
          "random_start": not args.no_random_start, "goal": args.goal, "seed": args.seed,
          "batch_size": args.batch_size}
    kw.update(over)
    return AttackConfig(**kw)


def _write(path: Path | None, text: str, *, force: bool) -> None:
    if path is None:
        return
    if Path(path).is_dir():
        raise ParameterError(f"{str(path)!r} is a folder, not a file name")
    atomic_write_bytes(Path(path), text.encode(), overwrite=force)


def _index(text: str, n: int) -> list[int]:
    if text == "all":
        return list(range(n))
    idx = []
    for t in text.split(","):
        try:
            i = int(t)
        except ValueError:
            raise ParameterError(f"--excerpts {text!r}: give 'all' or comma-separated indices") from None
        if not 0 <= i < n:
            raise ParameterError(f"--excerpts: index {i} is outside [0, {n - 1}] for {n} excerpts")
        idx.append(i)
    return idx


def _attack(args) -> int:
    import torch

    from xai_core.assets import ReferenceSet
    from xai_core.audio import mel_to_audio
    from xai_core.audio.export import wav_bytes
    from xai_core.audio.features import excerpt_of_file
    from xai_core.explain.consistency import attack, success_curve
    from xai_core.explain.consistency.listen import reanalysed_logits

    _setup(args)
    out = prepare_output_dir(args.out)
    clf = _classifier(args.classifier)
    cfg = _attack_config(args)
    frames = clf.model.config.n_frames
    if args.audio is not None:
        x = excerpt_of_file(args.audio, offset=args.offset, mel=clf.mel, frames=frames)[None]  # (1, T, M)
        labels, sources, tags = None, [f"{Path(args.audio).name}@{args.offset:.2f}"], {}
    else:
        ref = _concepts(args.excerpts_file)
        idx = _index(args.excerpts, len(ref))
        x, labels = ref.logmel[idx].float(), ref.labels[idx].float()
        sources, tags = [ref.sources[i] for i in idx], {k: [v[i] for i in idx] for k, v in ref.tags.items()}
    n_wav = min(args.wavs, len(sources))
    wav_names = [f"{i:03d}_{kind}.wav" for i in range(n_wav) for kind in ("original", "adversarial")]
    check_new_files(out, ["adversarial.safetensors", "attack.json", *(["success.csv"] if args.eps_curve else []),
                          *wav_names], force=args.force)
    bar = _bar("attack")
    try:
        res = attack(clf, x, labels=labels, config=cfg, device=args.device, progress=bar)
        curve = success_curve(clf, x, labels=labels, eps_db=args.eps_curve, config=cfg, device=args.device,
                              progress=bar) if args.eps_curve else []
    finally:
        bar.close()
    s = res.summary()
    adv = ReferenceSet(res.adversarial, res.labels, sources, clf.mel,
                       {"attack": cfg.to_dict(), "summary": s, "classifier_identity": clf.identity,
                        "logits_before": [round(float(v), 4) for v in res.logit],
                        "logits_after": [round(float(v), 4) for v in res.logit_adv]}, tags)
    from xai_core.fileio import atomic_write_with

    atomic_write_with(out / "adversarial.safetensors", lambda p: adv.save(p, dtype=torch.float32), root=out)
    resynth: dict[int, tuple[float, float]] = {}
    if n_wav:
        panels = torch.cat([res.logmel[:n_wav], res.adversarial[:n_wav]])  # (2n, T, M)
        with torch.no_grad():
            waves = mel_to_audio(panels, cfg=clf.mel, n_iter=args.gl_iters).numpy()
        peak = max(float(abs(w).max()) for w in waves) or 1.0
        for i in range(n_wav):
            for name, w in ((f"{i:03d}_original.wav", waves[i]), (f"{i:03d}_adversarial.wav", waves[n_wav + i])):
                atomic_write_bytes(out / name, wav_bytes(w, sample_rate=clf.mel.sample_rate, peak=peak), root=out)
        q = torch.sigmoid(reanalysed_logits(clf, waves, device=args.device))  # (2n,) p(vocal) of the WAVs
        resynth = {i: (float(q[i]), float(q[n_wav + i])) for i in range(n_wav)}
    rows = []
    for i, src in enumerate(sources):
        row = {"source": src, "label": float(res.labels[i]), "p_before": float(res.prob[i]),
               "p_after": float(res.prob_adv[i]), "success": bool(res.success[i])}
        if i in resynth:  # the WAVs analysed again: does the attack survive the trip through audio?
            row["p_before_resynthesised"], row["p_after_resynthesised"] = resynth[i]
            row["survives_resynthesis"] = bool(res.success[i]) and \
                (resynth[i][1] > res.threshold) == bool(res.targets[i] > 0.5)
        rows.append(row)
    if resynth:
        ok = [r["survives_resynthesis"] for r in rows if "survives_resynthesis" in r and r["success"]]
        s["survive_resynthesis"] = f"{sum(ok)}/{len(ok)}"
    table = {"attack": s, "curve": curve, "excerpts": rows}
    atomic_write_bytes(out / "attack.json", json.dumps(table, indent=1).encode(), root=out)
    if curve:
        lines = ["eps_db,success_rate,error_before,error_after,mean_abs_change_db"]
        lines += [f"{r['eps_db']:g},{r['success_rate']:.4f},{r['error_before']:.4f},{r['error_after']:.4f},"
                  f"{r['mean_abs_change_db']:.4f}" for r in curve]
        atomic_write_bytes(out / "success.csv", ("\n".join(lines) + "\n").encode(), root=out)
    print(f"{cfg.describe()} on {s['n']} excerpts of {printable(clf.name, keep='')}: {s['succeeded']}/{s['eligible']} decisions changed "
          f"(success rate {s['success_rate']:.1%}); error {s['error_before']:.1%} -> {s['error_after']:.1%}; "
          f"mean |change| {s['mean_abs_change_db']:.2f} dB")
    for r in curve:
        print(f"  eps {r['eps_db']:>6g} dB: success {r['success_rate']:.1%}, error after {r['error_after']:.1%}")
    print(f"wrote {out}/adversarial.safetensors, attack.json{', success.csv' if curve else ''} and {2 * n_wav} WAVs "
          "(Griffin-Lim, one common gain)")
    if resynth:
        print(f"  played back and analysed again, {s['survive_resynthesis']} of the successful attacks among the "
              f"first {n_wav} excerpts still change the decision")
    return 0


def _score(args) -> int:
    from xai_core.explain.consistency import ConsistencyConfig, neuron_consistency

    check_output_file(args.csv, force=args.force, what="--csv")
    check_output_file(args.json, force=args.force, what="--json")
    _setup(args)
    store = None
    if not args.no_store:  # an unusable run store fails before the computation, not after
        from xai_core.store import RunStore

        store = RunStore(args.runs_dir)
    clf = _classifier(args.classifier)
    ref = _concepts(args.concepts)
    cfg = ConsistencyConfig(k=args.k, concept=args.concept, reduce=args.reduce,
                            layers=args.layers or tuple(clf.model.layer_names), clusters=args.clusters,
                            seed=args.seed, batch_size=args.batch_size)
    bar = _bar("consistency")
    t0 = time.perf_counter()
    try:
        res = neuron_consistency(clf, ref, config=cfg, attack_config=None if args.no_attack else _attack_config(args),
                                 device=args.device, progress=bar)
    finally:
        bar.close()
    s = res.summary()
    _write(args.csv, res.csv(), force=args.force)
    _write(args.json, json.dumps({"summary": s, "units": res.rows()}, indent=1), force=args.force)
    rid = None
    if store is not None:
        rid = store.save_consistency(res, classifier=clf, excerpts=str(args.concepts or "demo"),
                                     seconds=round(time.perf_counter() - t0, 1))
        print(f"recorded as run {rid} (reopen it on the Neuron consistency page via Runs)")
    print(f"consistency ({s['concept']}, k={s['k']}, {s['reduce']} over conv maps) of {printable(clf.name, keep='')} "
          f"on {s['n']} excerpts; "
          f"chance (k random excerpts) {s['chance']:.3f}")
    if "attack" in s:
        a = s["attack"]
        print(f"adversarial inputs: {a['attack']}: {a['success_rate']:.1%} of decisions changed")
    print(f"{'layer':<7}{'units':>6}{'real':>8}{'adv':>8}{'drop':>8}{'units lower':>12}{'agreement':>11}")
    for layer, r in s["layers"].items():
        adv = (f"{r['adv_mean']:>8.3f}{r['drop']:>8.3f}{r['share_units_less_consistent']:>12.0%}"
               f"{r['agreement_mean']:>11.3f}") if "adv_mean" in r else ""
        print(f"{layer:<7}{r['units']:>6}{r['real_mean']:>8.3f}{adv}")
    if "attack" in s:
        print("agreement: p_real^T A p_adv, whether a unit's adversarial top inputs carry the concept of its real ones")
    if rid is not None:
        store.ensure_complete(rid)  # NaN / inf scores: stored as failed, exit status 1
    return 0


def _concept_set(args) -> int:
    from xai_core.audio.config import MelConfig
    from xai_core.explain.consistency.data import concept_set
    from xai_core.fileio import atomic_write_with
    from xai_core.train.data import load_split

    check_output_file(args.out, force=args.force, what="--out")
    _setup(args)
    mel = MelConfig()
    if args.classifier is not None:
        mel = _classifier(args.classifier).mel
    tracks = load_split(args.data, args.split, mel=mel, cache_dir=args.cache_dir)
    ref = concept_set(tracks, n=args.n, seed=args.seed, mel=mel, corpus=args.data)
    ref.info.update({"data": str(args.data), "split": args.split})
    atomic_write_with(args.out, ref.save, overwrite=args.force)
    print(f"wrote {args.out}: {len(ref)} excerpts of the {args.split} split, {int(ref.labels.sum())} labelled vocal, "
          f"tags {sorted(ref.concepts())}; {ref.info['rule']}")
    return 0


def _report(args) -> int:
    from xai_core.explain.cladec.evaluate import draw_excerpts
    from xai_core.explain.consistency import AttackConfig, ConsistencyConfig
    from xai_core.explain.consistency.data import compare_classifiers
    from xai_core.train.data import load_split

    check_output_file(args.json, force=args.force, what="--json")
    _setup(args)
    models = {}
    for item in args.classifiers:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ParameterError(f"--classifiers {item!r}: give NAME=PATH")
        models[name] = _classifier(path)
    ref = _concepts(args.concepts)
    frames = next(iter(models.values())).model.config.n_frames
    test = draw_excerpts(load_split(args.data, "test", cache_dir=args.cache_dir), args.n_test, seed=args.seed + 1,
                         frames=frames)
    bar = _bar("report")
    try:
        rep = compare_classifiers(models, test=test, concept_set_=ref, eps_db=args.eps, curve_eps_db=args.curve,
                                  consistency=ConsistencyConfig(k=args.k, concept=args.concept),
                                  attack_config=AttackConfig(eps_db=args.eps[0], steps=args.steps, seed=args.seed),
                                  device=args.device, progress=bar)
    finally:
        bar.close()
    rep["data"] = {"corpus": str(args.data), "test_split": "test", "seed": args.seed + 1}
    _write(args.json, json.dumps(rep, indent=1), force=args.force)
    for name, m in rep["models"].items():
        rob = ", ".join(f"{e} dB {v:.1%}" for e, v in m["robust_error"].items())
        c = m["consistency"]
        print(f"{name}: clean excerpt error {m['clean_error']:.1%}, robust error {rob}; consistency real/adv "
              + " ".join(f"{k} {c['real'][k]:.2f}/{c['adv'][k]:.2f}" for k in c["real"]))
    return 0


def _train_robust(args) -> int:
    import torch

    from xai_core.checkpoints import save_bundle
    from xai_core.device import resolve_device
    from xai_core.explain.cladec.evaluate import draw_excerpts
    from xai_core.explain.consistency import AttackConfig, RobustConfig
    from xai_core.explain.consistency.robust import robust_metrics, train_robust
    from xai_core.train.data import load_split
    from xai_core.train.evaluate import evaluate_classifier

    _setup(args)
    # a folder / exists without --force (or --resume: the resumed run replaces it) / a link
    check_output_file(args.out, force=args.force or args.resume, what="--out")
    clf = _classifier(args.classifier)
    cfg = RobustConfig(mu=args.mu, layer=args.layer, eps_db=args.eps_db, attack_steps=args.attack_steps,
                       init=args.init, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                       checkpoint_every=args.checkpoint_every)
    train = load_split(args.data, "train", mel=clf.mel, cache_dir=args.cache_dir)
    bar = _bar(cfg.name)
    try:
        rob = train_robust(clf, train, cfg, device=args.device, checkpoint=args.checkpoint, resume=args.resume,
                           progress=bar, provenance={"data": str(args.data), "split": "train",
                                                     "command": "python -m xai_core train robust"})
    finally:
        bar.close()
    if not args.no_eval:
        valid = load_split(args.data, "valid", mel=clf.mel, cache_dir=args.cache_dir)
        test_tracks = load_split(args.data, "test", mel=clf.mel, cache_dir=args.cache_dir)
        report = evaluate_classifier(rob.model, rob.normaliser, valid=valid, test=test_tracks,
                                     device=resolve_device(args.device))
        rob.metrics["eval"] = {"data": str(args.data), "split": "test", **report.to_dict()}
        test = draw_excerpts(test_tracks, args.n_test, seed=args.seed + 1, frames=clf.model.config.n_frames)
        eps = (cfg.eps_db, 2 * cfg.eps_db)
        concepts = None if args.no_consistency else _concepts(args.concepts)
        bar = _bar("robust metrics")
        try:
            rob.metrics["robust"] = robust_metrics(rob, test=test, eps_db=eps, concept_set=concepts,
                                                   attack_config=AttackConfig(eps_db=cfg.eps_db, seed=args.seed),
                                                   device=args.device, progress=bar)
        finally:
            bar.close()
    save_bundle(args.out, model=rob.model, kind="classifier", mel=rob.mel, normaliser=rob.normaliser,
                preset=rob.preset, provenance=rob.provenance, metrics=rob.metrics,
                dtype=torch.float16 if args.float16 else None)
    if args.checkpoint is not None:
        Path(args.checkpoint).unlink(missing_ok=True)
    print(f"wrote {args.out} ({cfg.name}, mu {cfg.mu:g} on {cfg.layer}, eps {cfg.eps_db:g} dB, {cfg.steps} steps)")
    m = rob.metrics
    if "eval" in m:
        print(f"  frame error on the test split (median-filtered, threshold tuned on valid): "
              f"{m['eval']['test']['error']:.2%}")
    if "robust" in m:
        r = m["robust"]
        print(f"  excerpt error clean {r['clean_error']:.1%}; under attack "
              + ", ".join(f"{e} dB {v:.1%}" for e, v in r["robust_error"].items()))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classifier", type=Path, help="classifier bundle (default: the demo's)")
    add_device(p)
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="pgd", choices=("fgsm", "pgd"), help="FGSM (one step) or PGD (iterated)")
    p.add_argument("--eps-db", type=EPS, default=1.0, help=EPS_HELP)
    p.add_argument("--steps", type=ATTACK_STEPS, default=10, help="PGD steps (Madry et al.: step 2.5 eps / steps)")
    p.add_argument("--step-db", type=EPS, default=None, help="PGD step size in dB (default 2.5 eps / steps)")
    p.add_argument("--no-random-start", action="store_true", help="PGD from the excerpt itself")
    p.add_argument("--goal", default="untargeted", choices=("untargeted", "to-non-vocal", "to-vocal"),
                   help="untargeted: away from the label; or push every excerpt to one class")
    p.add_argument("--seed", type=SEED, default=0, help="random start")
    p.add_argument("--batch-size", type=int_range(0, 4096), default=0, help="excerpts per pass (0: 16 on the CPU, where small "
                   "chunks are fastest, 512 on CUDA)")


def register(sub) -> None:
    a = sub.add_parser("attack", help="adversarial excerpts (FGSM / PGD in dB): files, WAVs, success rate",
                       description=HELP)
    _common(a)
    _attack_args(a)
    a.add_argument("--audio", type=Path, help="attack 1.6 s of this audio file (from --offset) ...")
    a.add_argument("--offset", type=SECONDS, default=0.0, help="start of the excerpt in the audio file (s)")
    a.add_argument("--excerpts-file", type=Path, help="... or excerpts of this set (default: the demo's concept set)")
    a.add_argument("--excerpts", default="all", help="indices into the set, comma-separated, or 'all'")
    a.add_argument("--eps-curve", type=EPS_LIST, default=(), help="also the success rate at these epsilons (dB)")
    a.add_argument("--wavs", type=int_range(0, 1000), default=4,
                   help="write original/adversarial WAV pairs of the first N")
    a.add_argument("--gl-iters", type=GL_ITERS, default=100, help="Griffin-Lim iterations of the WAVs")
    a.add_argument("--out", type=Path, required=True, help="output folder")
    add_force(a, "files of an earlier attack in --out")
    a.set_defaults(func=_attack)

    c = sub.add_parser("consistency", help="neuron consistency: per-unit tables, concept sets, model comparison",
                       description=HELP)
    cs = c.add_subparsers(dest="consistency_command", metavar="WHAT", required=True)
    s = cs.add_parser("score", help="consistency of every unit of every layer, real vs adversarial (CSV / JSON)",
                      description=HELP)
    _common(s)
    _attack_args(s)
    s.add_argument("--concepts", type=Path, help="a tagged excerpt set (default: the demo's concept set)")
    s.add_argument("--k", type=int_range(1, MAX_COUNT), default=20, help="top-activating inputs per unit")
    s.add_argument("--concept", default="graded",
                   help="'graded' (same singer family 1 > both vocal / both non-vocal 0.5 > unrelated 0) or a tag "
                        "name for purity: vocal, singer_family, backing_song, instrument, voice_level, cluster")
    s.add_argument("--reduce", default="mean", choices=("mean", "max"), help="a conv channel's response")
    s.add_argument("--layers", type=_names, default=None, help="comma-separated layers (default: all)")
    s.add_argument("--clusters", type=int_range(0, 100_000), default=0,
                   help="add a 'cluster' tag: k-means of the log-mel into N")
    s.add_argument("--no-attack", action="store_true", help="real inputs only")
    s.add_argument("--csv", type=Path, help="per-unit table as CSV")
    s.add_argument("--json", type=Path, help="summary and per-unit table as JSON")
    add_force(s, "existing --csv / --json files")
    s.add_argument("--runs-dir", type=Path, default=None, help="run store (default $XAI_RUNS_DIR or ./runs)")
    s.add_argument("--no-store", action="store_true", help="do not record the result in the run store")
    s.set_defaults(func=_score)

    b = cs.add_parser("concept-set", help="a tagged set of random excerpts (silence excluded) from a corpus split")
    b.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout)")
    b.add_argument("--split", default="test", choices=("train", "valid", "test"))
    b.add_argument("--n", type=int_range(2, MAX_COUNT), default=256, help="excerpts (half vocal, half not)")
    b.add_argument("--seed", type=SEED, default=0)
    b.add_argument("--classifier", type=Path, help="take the MelConfig from this classifier")
    b.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    b.add_argument("--threads", type=THREADS, default=0)
    b.add_argument("--out", type=Path, required=True, help="output .safetensors")
    add_force(b, "an existing --out file")
    b.set_defaults(func=_concept_set)

    r = cs.add_parser("report", help="compare classifiers: clean / robust error, consistency, success vs epsilon")
    r.add_argument("--classifiers", nargs="+", required=True, help="NAME=PATH of each classifier bundle")
    r.add_argument("--data", type=Path, required=True, help="corpus folder: excerpts of its test split")
    r.add_argument("--concepts", type=Path, help="tagged excerpt set (default: the demo's concept set)")
    r.add_argument("--n-test", type=int_range(1, MAX_COUNT), default=512, help="test excerpts attacked")
    r.add_argument("--eps", type=EPS_LIST, default=(1.0, 2.0), help="robust-error epsilons (dB); the first one is "
                   "also the consistency's")
    r.add_argument("--curve", type=EPS_LIST, default=(0.25, 0.5, 1.0, 2.0, 4.0), help="success-rate epsilons (dB)")
    r.add_argument("--steps", type=ATTACK_STEPS, default=10, help="PGD steps")
    r.add_argument("--k", type=int_range(1, MAX_COUNT), default=20)
    r.add_argument("--concept", default="graded")
    r.add_argument("--seed", type=SEED, default=0)
    add_device(r)
    r.add_argument("--threads", type=THREADS, default=0)
    r.add_argument("--cache-dir", type=Path, default=None)
    r.add_argument("--json", type=Path, help="write the comparison here")
    add_force(r, "an existing --json file")
    r.set_defaults(func=_report)


def register_train(tsub) -> None:
    """``train robust``: registered under ``train`` by :mod:`xai_core.train.cli`."""
    t = tsub.add_parser("robust", help="adversarial training with the consistent loss (mu = 0: plain adversarial "
                                       "training); writes a classifier bundle", description=HELP)
    _common(t)
    t.add_argument("--data", type=Path, required=True, help="corpus folder (Jamendo layout): its train split; valid "
                   "tunes the threshold and test measures the errors")
    t.add_argument("--mu", type=float_range(0.0, 1e6), default=1.0, help="weight of mean((phi(x) - phi(x_adv))^2); 0 = plain "
                   "adversarial training (at 1 the term is of the order of the cross-entropies on the demo)")
    t.add_argument("--layer", default="fc2", help="phi: the layer whose features are pulled together")
    t.add_argument("--eps-db", type=EPS, default=1.0, help=EPS_HELP)
    t.add_argument("--attack-steps", type=ATTACK_STEPS, default=3, help="PGD steps of the on-the-fly attack")
    t.add_argument("--init", default="finetune", choices=("finetune", "scratch"),
                   help="start from the classifier (fine-tune) or from fresh weights of its architecture")
    t.add_argument("--steps", type=STEPS, default=2000,
                   help="optimisation steps (about 0.6 s each for lite on 2 cores)")
    t.add_argument("--batch-size", type=BATCH, default=32)
    t.add_argument("--lr", type=LR, default=1e-4, help="Adam learning rate")
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--checkpoint", type=Path, help="resumable checkpoint file")
    t.add_argument("--checkpoint-every", type=int_range(0, 10_000_000), default=200)
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint (an existing --out is then "
                   "replaced)")
    t.add_argument("--cache-dir", type=Path, default=None, help="feature cache folder")
    t.add_argument("--n-test", type=int_range(1, MAX_COUNT), default=512, help="test excerpts of the robust error")
    t.add_argument("--concepts", type=Path, help="tagged excerpt set of the consistency numbers (default: the demo's)")
    t.add_argument("--no-consistency", action="store_true", help="skip the consistency numbers")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation (frame error, robust error)")
    t.add_argument("--float16", action="store_true", help="store the weights as float16")
    t.add_argument("--force", action="store_true", help="overwrite --out")
    t.add_argument("--out", type=Path, required=True, help="output classifier bundle (.safetensors)")
    t.set_defaults(func=_train_robust)
