#!/usr/bin/env bash
# Rebuild the bundled demo (assets/demo) from scratch with the project's own commands:
#   1. demo corpus (seed 0), RENDERINGS-1 more renderings of its training songs (seeds 2, 3, ...), a corpus over
#      instrumental game soundtracks (GAME_MINUTES of mixes, seed 10: many more, and more varied,
#      backing songs) and the held-out corpus (seed 1); one song split (split seed 0) -> the
#      Frets on Fire test songs are never trained on; the training renderings also write each
#      clip's voice and accompaniment stems (--stems; the mixes are the same with or without)
#   2. lite classifier, paper recipe plus stem remixing (CLF_REMIX: half the examples hear their
#      voice over another excerpt's accompaniment; 0 = the paper's recipe exactly), on the train
#      splits of all training renderings (CLF_MIX>0 adds backing-mix augmentation), with a weight
#      average (CLF_EMA > 0) saved instead of the last SGD iterate
#      -> evaluated on the test splits of corpus and held-out corpus
#   3. lite spectrogram GAN (hinge + SN, EMA; the raw or averaged snapshot with the best FID against
#      the corpus's validation split is kept)   -> quality report against held-out real excerpts
#   4. reference excerpts with classifier responses
#   5. float16 copies into assets/demo, CREDITS.md; the report judges the generator through the
#      shipped classifier and writes samples.png / samples_*.wav and report.json
# Deterministic (fixed seeds, deterministic kernels, fixed thread count); 75-85 min (measured) on an
# idle 2-core CPU. Environment knobs: WORK (work folder), OUT (asset folder), RESUME=1 (keep the
# work folder and continue interrupted stages from their checkpoints), THREADS, CLF_EPOCHS,
# CLF_BATCHES, CLF_MIX, CLF_REMIX, CLF_EMA, RENDERINGS, GAME_MINUTES (0 = no game-music rendering), GAN_STEPS, CACHE (feature cache), UNTIL=STAGE (stop after that stage, e.g.
# UNTIL=eval_heldout to check the classifier before the long GAN stage; continue with RESUME=1),
# ALLOW_MISSING=1 (build without some of the Debian packages listed below: another corpus),
# ONLY=cladec (just the ClaDec stages, against the classifier already in OUT; builds the seed-0
# corpus first if the work folder lacks it; implies RESUME=1), CLADEC_STEPS, CLADEC_EVAL_STEPS.
#   6. ClaDec: ClaDec (alpha 0.001), RefAE and random-feature decoders of conv2, conv4, fc1 and fc2 of
#      the shipped classifier, trained on the corpus's train split, and the retraining evaluation
#      (fresh classifiers on reconstructions of the train split, tested on the test split)
#      -> OUT/cladec/*.safetensors (float16) and OUT/cladec/eval.json
#   7. neuron consistency: a concept-tagged set of 256 random excerpts of the corpus's test split (silence
#      excluded), the shipped classifier fine-tuned with plain adversarial training (mu 0) and with the
#      consistent loss (mu 1 on fc2), PGD at 1 dB, ROBUST_STEPS steps each, and the comparison of the three
#      (clean / robust error, consistency real vs adversarial, success rate against epsilon)
#      -> OUT/concepts.safetensors, OUT/robust/{adversarial,consistent}.safetensors (float16), OUT/robust/eval.json
#      ONLY=robust runs just this stage (like ONLY=cladec); ROBUST_STEPS (default 1000, about 11 min per model).
#   8. depth maps: the conditional-GAN explainer of the shipped classifier's vocal logit, global and local SFT
#      variants, EXPLAINER_STEPS steps each on the corpus's train split (held-out evaluation on its test split),
#      then the deletion/insertion table of every map and the model-randomisation check on 64 test excerpts
#      -> OUT/explainers/{global,local}.safetensors (float16), OUT/explainers/eval.json
#      ONLY=explainers runs just this stage; EXPLAINER_STEPS (default 1500, about 0.7 s each on 2 cores).
#   The reference stage (4) scores excerpts with the shipped (float16) classifier, leaves out candidates with padding
#   or digital silence and takes at most 4 extremes per clip; ONLY=reference rebuilds just it (about 1 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-work_cache/demo_build}
OUT=${OUT:-assets/demo}
THREADS=${THREADS:-2}
CLF_EPOCHS=${CLF_EPOCHS:-20}
CLF_BATCHES=${CLF_BATCHES:-1500}
CLF_MIX=${CLF_MIX:-0}  # backing-mix augmentation probability (0 = the paper's recipe exactly)
CLF_REMIX=${CLF_REMIX:-0.5}  # stem-remix probability: a training excerpt's voice over another excerpt's accompaniment
CLF_EMA=${CLF_EMA:-0}  # classifier weight averaging per batch, e.g. 0.9995 (0 = off: ship the last SGD iterate)
GAME_MINUTES=${GAME_MINUTES:-72}
RENDERINGS=${RENDERINGS:-3}  # renderings of the Frets on Fire training songs (seeds 0, 2, 3, ..., at most 9)
GAN_STEPS=${GAN_STEPS:-9000}
CLADEC_STEPS=${CLADEC_STEPS:-1000}  # steps per decoder (12 decoders; about 2 min each on 2 cores)
CLADEC_EVAL_STEPS=${CLADEC_EVAL_STEPS:-600}  # steps per retrained evaluation classifier (13 of them; 800 made the stage 45.4 min)
ROBUST_STEPS=${ROBUST_STEPS:-1000}  # fine-tuning steps per robust classifier (about 0.65 s each on 2 cores)
EXPLAINER_STEPS=${EXPLAINER_STEPS:-1500}  # steps per conditional-GAN explainer (about 0.7 s each on 2 cores)
ONLY=${ONLY:-}
if [[ -n "$ONLY" && "$ONLY" != cladec && "$ONLY" != robust && "$ONLY" != explainers && "$ONLY" != reference ]]; then
  echo "ONLY=$ONLY: only ONLY=cladec, ONLY=robust, ONLY=explainers and ONLY=reference exist" >&2; exit 1
fi
if [[ -n "$ONLY" ]]; then RESUME=1; fi
CACHE=${CACHE:-$WORK/feature_cache}
SEED=0
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE PYTHONHASHSEED=0

# What a seed renders depends on the singers, soundfonts and songs installed: check them up front
# (a missing one would silently change the corpus, or fail an hour in). ALLOW_MISSING=1 goes on anyway.
DEB_PACKAGES=(fretsonfire-songs-muldjord fretsonfire-songs-sectoid fluidsynth fluid-soundfont-gm festival
              festvox-kallpc16k)
if [[ "$GAME_MINUTES" != 0 ]]; then DEB_PACKAGES+=(warzone2100-music hyperrogue-music singularity-music); fi
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} )) && [[ "${ALLOW_MISSING:-0}" != 1 ]]; then
  echo "the demo build needs these Debian packages: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

if ! [[ "$RENDERINGS" =~ ^[1-9]$ ]]; then echo "RENDERINGS=$RENDERINGS: give 1 to 9" >&2; exit 1; fi
if [[ "${RESUME:-0}" != 1 ]]; then rm -rf "$WORK"; fi
mkdir -p "$WORK" "$OUT"
TIMES="$WORK/timings.json"
[[ -f "$TIMES" ]] || echo '{}' > "$TIMES"
stage() {  # stage NAME DONE_FILE COMMAND...: run unless DONE_FILE exists, record seconds
  local name=$1 done_file=$2; shift 2
  if [[ -e "$done_file" ]]; then
    echo "== $name: done already ($done_file)"
    if [[ "${UNTIL:-}" == "$name" ]]; then exit 0; fi
    return
  fi
  echo "== $name: $*"
  local t0; t0=$(date +%s)
  "$@"
  "$PY" - "$TIMES" "$name" "$(( $(date +%s) - t0 ))" <<'PYEOF'
import json, sys
p, k, v = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open(p)); d[k] = v; json.dump(d, open(p, "w"), indent=1)
PYEOF
  if [[ "${UNTIL:-}" == "$name" ]]; then echo "== stopped after $name (UNTIL=$UNTIL)"; exit 0; fi
}
X="$PY -m xai_core"
COMMON=(--threads "$THREADS" --cache-dir "$CACHE")

stage corpus "$WORK/corpus/corpus.json" \
  $X data build-demo --out "$WORK/corpus" --seed 0 --split-seed 0 --stems --force

cladec_stages() {  # the ClaDec decoders of the classifier in OUT, and their evaluation
  stage cladec_train "$WORK/cladec/.trained" bash -c "$X cladec train --classifier '$OUT/classifier.safetensors' \
      --data '$WORK/corpus' --layers conv2,conv4,fc1,fc2 --variants cladec,refae,random --alpha 0.001 \
      --steps $CLADEC_STEPS --batch-size 32 --seed $SEED --out '$WORK/cladec' --resume --float16 \
      ${COMMON[*]} && touch '$WORK/cladec/.trained'"
  stage cladec_eval "$WORK/cladec/eval.json" \
    $X cladec eval --classifier "$OUT/classifier.safetensors" --decoders "$WORK/cladec" --data "$WORK/corpus" \
      --n-train 4096 --n-test 2048 --steps "$CLADEC_EVAL_STEPS" --batch-size 32 --seed $SEED \
      --csv "$WORK/cladec_eval.csv" --no-store "${COMMON[@]}"
  mkdir -p "$OUT/cladec"
  rm -f "$OUT"/cladec/*.safetensors
  cp "$WORK"/cladec/*.safetensors "$WORK/cladec/eval.json" "$OUT/cladec/"
}
robust_stages() {  # the concept set, two robust fine-tunings of the classifier in OUT, their comparison
  stage concepts "$WORK/concepts.safetensors" \
    $X consistency concept-set --data "$WORK/corpus" --split test --n 256 --seed $SEED \
      --classifier "$OUT/classifier.safetensors" --out "$WORK/concepts.safetensors" --threads "$THREADS" \
      --cache-dir "$CACHE"
  mkdir -p "$WORK/robust"
  local name mu
  for name in adversarial consistent; do
    mu=0; [[ $name == consistent ]] && mu=1
    stage "robust_$name" "$WORK/robust/$name.safetensors" \
      $X train robust --classifier "$OUT/classifier.safetensors" --data "$WORK/corpus" --mu $mu --layer fc2 \
        --eps-db 1 --attack-steps 3 --steps "$ROBUST_STEPS" --batch-size 32 --lr 1e-4 --seed $SEED \
        --checkpoint "$WORK/robust/$name.ckpt.pt" --resume --n-test 256 --concepts "$WORK/concepts.safetensors" \
        --float16 --out "$WORK/robust/$name.safetensors" --threads "$THREADS" --cache-dir "$CACHE"
  done
  stage robust_report "$WORK/robust/eval.json" \
    $X consistency report --classifiers "original=$OUT/classifier.safetensors" \
      "adversarial=$WORK/robust/adversarial.safetensors" "consistent=$WORK/robust/consistent.safetensors" \
      --data "$WORK/corpus" --concepts "$WORK/concepts.safetensors" --n-test 256 --eps 1,2 \
      --curve 0.25,0.5,1,2,4 --seed $SEED --json "$WORK/robust/eval.json" --threads "$THREADS" --cache-dir "$CACHE"
  mkdir -p "$OUT/robust"
  rm -f "$OUT"/robust/*.safetensors
  cp "$WORK/robust/adversarial.safetensors" "$WORK/robust/consistent.safetensors" "$WORK/robust/eval.json" \
    "$OUT/robust/"
  cp "$WORK/concepts.safetensors" "$OUT/concepts.safetensors"
}
explainer_stages() {  # the conditional-GAN explainers of the classifier in OUT, the faithfulness and sanity report
  mkdir -p "$WORK/explainers"
  local variant
  for variant in global local; do
    stage "explainer_$variant" "$WORK/explainers/$variant.safetensors" \
      $X train explainer --classifier "$OUT/classifier.safetensors" --data "$WORK/corpus" --variant $variant \
        --steps "$EXPLAINER_STEPS" --batch-size 16 --seed $SEED --checkpoint "$WORK/explainers/$variant.ckpt.pt" \
        --resume --n-test 256 --float16 --out "$WORK/explainers/$variant.safetensors" --threads "$THREADS" \
        --cache-dir "$CACHE"
  done
  stage explainer_eval "$WORK/explainers/eval.json" \
    $X faithfulness --classifier "$OUT/classifier.safetensors" --data "$WORK/corpus" --split test --n 64 \
      --seed $SEED --explainer "$WORK/explainers/global.safetensors" "$WORK/explainers/local.safetensors" \
      --json "$WORK/explainers/eval.json" --threads "$THREADS" --cache-dir "$CACHE"
  mkdir -p "$OUT/explainers"
  rm -f "$OUT"/explainers/*.safetensors
  cp "$WORK/explainers/global.safetensors" "$WORK/explainers/local.safetensors" "$WORK/explainers/eval.json" \
    "$OUT/explainers/"
}
reference_stages() {  # the reference excerpts, scored by the shipped classifier: clean, at most 4 extremes per clip
  stage reference "$WORK/reference.safetensors" \
    $X train reference --data "$WORK/corpus" --classifier "$OUT/classifier.safetensors" \
      --out "$WORK/reference.safetensors" --n 384 --extremes 64 --per-clip 4 --seed $SEED "${COMMON[@]}"
  cp "$WORK/reference.safetensors" "$OUT/reference.safetensors"
}
if [[ -n "$ONLY" ]]; then
  if [[ ! -f "$OUT/classifier.safetensors" ]]; then echo "ONLY=$ONLY needs $OUT/classifier.safetensors" >&2; exit 1; fi
  case "$ONLY" in
    cladec) cladec_stages ;; robust) robust_stages ;; explainers) explainer_stages ;; reference) reference_stages ;;
  esac
  du -sh "$OUT"
  exit 0
fi
EXTRA=()
for ((r = 2; r <= RENDERINGS; r++)); do  # more renderings of the training songs: seeds 2, 3, ...
  stage "corpus_r$r" "$WORK/corpus_r$r/corpus.json" \
    $X data build-demo --out "$WORK/corpus_r$r" --seed "$r" --split-seed 0 --stems --force
  EXTRA+=(--extra-data "$WORK/corpus_r$r")
done
if [[ "$GAME_MINUTES" != 0 ]]; then
  stage corpus_games "$WORK/corpus_games/corpus.json" \
    $X data build-demo --out "$WORK/corpus_games" --backing game-music --minutes "$GAME_MINUTES" --seed 10 \
      --split-seed 0 --stems --force
  EXTRA+=(--extra-data "$WORK/corpus_games")
fi
stage corpus_heldout "$WORK/heldout/corpus.json" \
  $X data build-demo --out "$WORK/heldout" --seed 1 --split-seed 0 --force

stage classifier "$WORK/classifier.safetensors" \
  $X train classifier --data "$WORK/corpus" "${EXTRA[@]}" \
    --out "$WORK/classifier.safetensors" \
    --checkpoint "$WORK/classifier.ckpt.pt" --resume --preset lite --epochs "$CLF_EPOCHS" \
    --batches-per-epoch "$CLF_BATCHES" --batch-size 32 --mix-prob "$CLF_MIX" --remix-prob "$CLF_REMIX" --ema "$CLF_EMA" --seed $SEED "${COMMON[@]}"
stage eval_heldout "$WORK/eval_heldout.json" \
  $X eval classifier "$WORK/classifier.safetensors" --data "$WORK/heldout" --split test \
    --threshold bundle --key heldout_test --json "$WORK/eval_heldout.json" "${COMMON[@]}"

stage gan "$WORK/generator.safetensors" \
  $X train gan --data "$WORK/corpus" --classifier "$WORK/classifier.safetensors" \
    --out "$WORK/generator.safetensors" --checkpoint "$WORK/generator.ckpt.pt" --resume --preset lite \
    --steps "$GAN_STEPS" --batch-size 32 --ema 0.998 --select-every 500 --select-n 1000 --seed $SEED \
    --sample-dir "$WORK/gan_samples" \
    --sample-every 500 --report-data "$WORK/heldout" --artefacts "$WORK/artefacts" "${COMMON[@]}"

echo "== assets -> $OUT"
$X train export "$WORK/classifier.safetensors" --out "$OUT/classifier.safetensors" --float16 --force
$X train export "$WORK/generator.safetensors" --out "$OUT/generator.safetensors" --float16 --force
reference_stages
cp "$WORK/corpus/CREDITS.md" "$OUT/CREDITS.md"
if [[ -f "$WORK/corpus_games/CREDITS.md" ]]; then  # credit the classifier's extra training music too
  { printf '\n## Also in the classifier'"'"'s training data: instrumental game soundtracks\n\n'
    printf 'The classifier was also trained on mixes of synthetic singing over excerpts of these songs\n'
    printf '(the mixes are not shipped; the reference excerpts come from the corpus above).\n\n'
    sed -n '/^## Backing music/,/^## Synthetic singers/p' "$WORK/corpus_games/CREDITS.md" | sed '1,2d;$d'
  } >> "$OUT/CREDITS.md"
fi
rm -f "$OUT"/samples_*.wav  # the report writes samples.png and samples_*.wav of the shipped pair
$X eval classifier "$OUT/classifier.safetensors" --data "$WORK/heldout" --split test --threshold bundle \
  --key heldout_test "${COMMON[@]}" > "$WORK/eval_heldout_fp16.txt"
cladec_stages
robust_stages
explainer_stages
$X train report --classifier "$WORK/classifier.safetensors" --generator "$WORK/generator.safetensors" \
  --assets "$OUT" --heldout "$WORK/heldout" --timings "$TIMES" "${COMMON[@]}"
du -sh "$OUT"
