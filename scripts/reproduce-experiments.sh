#!/usr/bin/env bash
# The original Neuron Shapley impairment study, reproduced on nshap's default model with held-out prompts:
#   1. a "toxic internet comments" cluster (Davidson classes 0+1), impaired at the neurons' output
#      (blocks.*.mlp.hook_post), judged on toxic, harmless (Davidson class 2) and DBpedia Athlete prompts;
#   2. an Athlete cluster (DBpedia-14), judged on Athlete, Artist and Company prompts;
#   3. as 1, with the noise added to the cluster neurons' input instead (blocks.*.mlp.hook_pre, the hidden
#      state just before the MLP's nonlinearity).
# Prompts come from `nshap datasets build` on ../shared/corpora, split by source text: clusters are chosen on
# the "select" split and every curve and matrix is computed on the "heldout" split.
#
#   bash scripts/reproduce-experiments.sh            # everything, into results/experiments/
#   QUICK=1 bash scripts/reproduce-experiments.sh    # a smoke run of every step with tiny sizes
#   STOP_AFTER=datasets bash scripts/...             # only build the prompt sets and record the split
#
# Sizes can be set from the environment (defaults below). Built prompt sets are derived from the corpora and
# are not committed (results/experiments/datasets/ is git-ignored); the script rebuilds them, seeded.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${MODEL:-models/default}
OUT=${OUT:-results/experiments}
CORPORA=${CORPORA:-../shared/corpora}
SEED=${SEED:-1}
PLAYERS=${PLAYERS:-all}            # Shapley players: every MLP neuron of every layer
BUDGET=${BUDGET:-24000}            # Shapley game evaluations per topic
SUBSAMPLE=${SUBSAMPLE:-16}         # select-split prompts per permutation
FRACTION=${FRACTION:-0.02}         # cluster: this fraction of each layer's neurons (experiment 2 uses ATHLETE_FRACTION)
ATHLETE_FRACTION=${ATHLETE_FRACTION:-0.025}
BASELINE=${BASELINE:-10}           # random clusters with the same per-layer counts
SEEDS=${SEEDS:-2}                  # noise draws per prompt and level
N_TOXIC=${N_TOXIC:-150}            # held-out prompts per set in experiments 1 and 3
N_DBPEDIA=${N_DBPEDIA:-800}        # held-out prompts per set in experiment 2 (at most; DBpedia has fewer)
NOISE_LEVELS=${NOISE_LEVELS:-0:2:0.25}
SCALE_LEVELS=${SCALE_LEVELS:-0:1:0.125}
MATRIX_LEVEL=${MATRIX_LEVEL:-2}    # noise level of the specificity matrices
if [ -n "${QUICK:-}" ]; then
  PLAYERS=blocks.3.mlp.hook_post; BUDGET=1100; SUBSAMPLE=4; BASELINE=2; SEEDS=1; N_TOXIC=12; N_DBPEDIA=12; NOISE_LEVELS=0,1,2; SCALE_LEVELS=0,0.5,1
fi

if [ ! -d "$CORPORA" ]; then echo "reproduce-experiments: no corpora at $CORPORA (see its README)" >&2; exit 2; fi
if [ ! -f "$MODEL/config.json" ]; then echo "reproduce-experiments: no model at $MODEL" >&2; exit 2; fi
NSHAP=${NSHAP:-./nshap}
start=$(date +%s)
D="$OUT/datasets"
mkdir -p "$D" "$OUT"
log() { echo "[experiments $(( $(date +%s) - start ))s] $*" >&2; }

# --- prompt sets: built from the corpora, split by source text --------------------------------------------
mkdir -p "$D/select" "$D/heldout" "$D/eval1" "$D/eval2"
build() { # name, max prompts, corpus options...
  local name=$1 max=$2; shift 2
  $NSHAP datasets build "$@" --name "$name" --max-prompts "$max" --seed "$SEED" --holdout 0.5 \
      --holdout-out "$D/heldout/$name.jsonl" --out "$D/select/$name.jsonl" > "$D/$name.build.txt"
}
DAV="--corpus $CORPORA/davidson-hate-offensive/labeled_data.csv --text-column tweet --label-column class"
DBP="--corpus $CORPORA/dbpedia14/test.csv --corpus $CORPORA/dbpedia14/val.csv --text-column 2 --label-column 1"
log "building prompt sets"
build toxic 400 $DAV --topic 0,1 --against 2
build harmless 400 $DAV --topic 2 --against 0,1
# DBpedia-14 has about 700 texts per class over its two files; two prompts per text at most.
for t in athlete:13 artist:1 company:2; do
  build "${t%%:*}" 1600 $DBP --topic "${t##*:}" --keywords 100 --per-keyword 40
done
# The evaluation sets: the first N held-out prompts of each (the build order is seeded, so this is stable).
for n in toxic harmless athlete; do head -n "$N_TOXIC" "$D/heldout/$n.jsonl" > "$D/eval1/$n.jsonl"; done
for n in athlete artist company; do head -n "$N_DBPEDIA" "$D/heldout/$n.jsonl" > "$D/eval2/$n.jsonl"; done
# The split, recorded with the results: prompt ids and source lines only (no corpus text is committed).
python3 - "$D" "$OUT/split.json" "$SEED" <<'PY'
import json, sys, os
d, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
split = {"rule": "datasets build --holdout 0.5: prompts split by a stable hash of (seed, source text); clusters are chosen on 'select', every curve and matrix uses 'eval1'/'eval2' (the first prompts of 'heldout')", "seed": seed, "sets": {}}
for part in ("select", "heldout", "eval1", "eval2"):
    for f in sorted(os.listdir(os.path.join(d, part))):
        rows = [json.loads(l) for l in open(os.path.join(d, part, f))]
        split["sets"].setdefault(f[:-6], {})[part] = {"prompts": len(rows), "ids": [r["id"] for r in rows], "sources": sorted({r["source"] for r in rows})}
for name, parts in split["sets"].items():
    if "select" in parts and "heldout" in parts:
        assert not set(parts["select"]["sources"]) & set(parts["heldout"]["sources"]), name + ": a text in both splits"
with open(out + ".tmp", "w") as f: json.dump(split, f, indent=1)
os.replace(out + ".tmp", out)
PY
wc -l "$D"/*/*.jsonl | sed 's/^/  /' >&2
if [ "${STOP_AFTER:-}" = datasets ]; then log "prompt sets built (STOP_AFTER=datasets)"; exit 0; fi

# --- clusters: Neuron Shapley on the select split -----------------------------------------------------------
# toxic and athlete are the study's clusters; the others give the specificity matrices their other rows.
for t in ${SHAPLEY_TOPICS:-toxic harmless athlete artist company}; do
  if [ -f "$OUT/shapley/$t.json" ] && [ -z "${RERUN:-}" ]; then log "shapley $t: kept"; continue; fi
  log "shapley $t"
  $NSHAP shapley --model "$MODEL" --dataset "$D/select/$t.jsonl" --players "$PLAYERS" --metric loss --ablation mean \
      --estimator tmc --budget "$BUDGET" --subsample "$SUBSAMPLE" --seed "$SEED" --out "$OUT/shapley/$t" > /dev/null
done
mkdir -p "$OUT/clusters"
for t in toxic harmless artist company; do
  [ -f "$OUT/shapley/$t.json" ] || continue
  $NSHAP clusters export --from "$OUT/shapley/$t.json" --per-layer-fraction "$FRACTION" --model "$MODEL" \
      --out "$OUT/clusters/$t.json" > /dev/null
done
$NSHAP clusters export --from "$OUT/shapley/athlete.json" --per-layer-fraction "$ATHLETE_FRACTION" --model "$MODEL" \
    --out "$OUT/clusters/athlete.json" > /dev/null

# --- impairment sweeps on the held-out split ----------------------------------------------------------------
sweep() { # out dir, cluster, site, mode, levels, datasets
  log "impair $1"
  $NSHAP impair --model "$MODEL" --cluster "$2" --site "$3" --mode "$4" --levels "$5" --datasets "$6" \
      --metric accuracy,loss --seeds "$SEEDS" --seed "$SEED" --baseline "$BASELINE" --out "$OUT/$1" > /dev/null
}
E1="$D/eval1/toxic.jsonl,$D/eval1/harmless.jsonl,$D/eval1/athlete.jsonl"
E2="$D/eval2/athlete.jsonl,$D/eval2/artist.jsonl,$D/eval2/company.jsonl"
for m in noise negative-noise scale; do
  lv=$NOISE_LEVELS; [ $m = scale ] && lv=$SCALE_LEVELS
  sweep "exp1-toxic-post/$m" "$OUT/clusters/toxic.json" 'blocks.*.mlp.hook_post' $m "$lv" "$E1"
  sweep "exp2-athlete-post/$m" "$OUT/clusters/athlete.json" 'blocks.*.mlp.hook_post' $m "$lv" "$E2"
done
for m in noise negative-noise; do
  sweep "exp3-toxic-pre/$m" "$OUT/clusters/toxic.json" 'blocks.*.mlp.hook_pre' $m "$NOISE_LEVELS" "$E1"
done

# --- specificity matrices at the strongest level ------------------------------------------------------------
spec() { # out dir, clusters, datasets, site, mode, level
  log "specificity $1"
  $NSHAP specificity --model "$MODEL" --clusters "$2" --datasets "$3" --site "$4" --mode "$5" --level "$6" \
      --metric loss --seeds "$SEEDS" --seed "$SEED" --baseline "$BASELINE" --out "$OUT/$1" > /dev/null
}
present() { local l=""; for t in "$@"; do [ -f "$OUT/clusters/$t.json" ] && l="$l${l:+,}$OUT/clusters/$t.json"; done; echo "$l"; }
C1=$(present toxic harmless athlete)
C2=$(present athlete artist company)
spec exp1-toxic-post/specificity "$C1" "$E1" 'blocks.*.mlp.hook_post' noise "$MATRIX_LEVEL"
spec exp2-athlete-post/specificity "$C2" "$E2" 'blocks.*.mlp.hook_post' noise "$MATRIX_LEVEL"
spec exp3-toxic-pre/specificity "$C1" "$E1" 'blocks.*.mlp.hook_pre' noise "$MATRIX_LEVEL"

# --- the answers ----------------------------------------------------------------------------------------------
elapsed=$(( $(date +%s) - start ))
python3 scripts/experiments_summary.py "$OUT" "$elapsed" > "$OUT/SUMMARY.md.tmp"
mv "$OUT/SUMMARY.md.tmp" "$OUT/SUMMARY.md"
log "done in ${elapsed}s: $OUT/SUMMARY.md"
