#!/usr/bin/env bash
# AtP-guided Shapley on the neuron game, against plain TMAB: for each layer, the AtP surrogate (one forward and one
# backward), exact leave-one-out, a long TMAB reference run, then plain TMAB, TMAB screened by AtP and the
# regression estimator with the AtP surrogate, each asked for a certified top-k. Prints a markdown table (evaluations
# spent, precision@k against the reference, recall@k of atp against loo and against the reference).
#
#   scripts/atp-guided-neuron.sh                      # the default model, layers 0-3, 24 athlete prompts
#
# Environment: MODEL (default models/default), LAYERS ("0 1 2 3"), PROMPTS (24: the first N prompts of DATASET),
# DATASET (datasets/athlete.jsonl), GROUP (8 neurons a player), K (10), REF_PERMS (reference permutations, 60),
# BUDGET_X (cap of each certified run, in multiples of the player count, 60), SCREEN_TOP (2K), SCREEN_SAMPLE (K),
# SINGLE (1: single-neuron atp / ig / loo come first, recall@10/30/100 against loo; 0 skips them, for a wide layer),
# OUT (a fresh folder under results/; rerunning it reuses finished steps), NSHAP (./nshap), RUNS (which certified
# runs: "tmab tmab-screen regression").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
NSHAP="${NSHAP:-$root/nshap}"
MODEL="${MODEL:-models/default}" LAYERS="${LAYERS:-0 1 2 3}" PROMPTS="${PROMPTS:-24}" DATASET="${DATASET:-datasets/athlete.jsonl}"
GROUP="${GROUP:-8}" K="${K:-10}" REF_PERMS="${REF_PERMS:-60}" BUDGET_X="${BUDGET_X:-60}"
SCREEN_TOP="${SCREEN_TOP:-$((2 * K))}" SCREEN_SAMPLE="${SCREEN_SAMPLE:-$K}"
OUT="${OUT:-results/atp-guided}"
SWEEP="${SWEEP:-2 5 10}"      # smaller budgets, in multiples of the player count
RUNS="${RUNS:-tmab tmab-screen regression}" SINGLE="${SINGLE:-1}"
wants() { case " $RUNS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
mkdir -p "$OUT"
start=$(date +%s)
data="$OUT/prompts.jsonl"
[ -s "$data" ] || head -n "$PROMPTS" "$DATASET" > "$data"
common=(--model "$MODEL" --dataset "$data" --metric loss --ablation zero --group-size "$GROUP")
run() {  # run NAME ARGS...: skipped when NAME.json exists
  local name="$1"; shift
  [ -s "$OUT/$name.json" ] && return 0
  echo "[atp-guided] $name" >&2
  "$@" --out "$OUT/$name" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || { echo "[atp-guided] $name failed: $(tail -1 "$OUT/$name.stderr")" >&2; exit 1; }
}
# neurons a layer: n_inner, or 4 n_embd when the config leaves it out (GPT-2's convention)
width=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c.get("n_inner") or 4*c["n_embd"])' "$MODEL/config.json")
for L in $LAYERS; do
  players="blocks.$L.mlp.hook_post"
  n=$(( width / GROUP ))
  # single neurons: recall@k of the first-order screens against exact leave-one-out
  single=(--model "$MODEL" --dataset "$data" --metric loss --ablation zero --players "$players")
  if [ "$SINGLE" = 1 ]; then
    run "l$L-n-atp" "$NSHAP" attribute --method atp "${single[@]}"
    run "l$L-n-ig" "$NSHAP" attribute --method ig --steps 16 "${single[@]}"
    run "l$L-n-loo" "$NSHAP" attribute --method loo "${single[@]}"
  fi
  # groups of GROUP neurons: the estimators
  run "l$L-atp" "$NSHAP" attribute --method atp --players "$players" "${common[@]}"
  run "l$L-loo" "$NSHAP" attribute --method loo --players "$players" "${common[@]}"
  run "l$L-reference" "$NSHAP" shapley --estimator antithetic --permutations "$REF_PERMS" --players "$players" "${common[@]}" --seed 101
  cap=$(( BUDGET_X * n ))
  # the certified runs at the cap, then at smaller budgets: precision@k as the budget grows
  for b in "" $SWEEP; do
    budget=$(( ${b:-$BUDGET_X} * n )) suffix=${b:+-b$b} force=${b:+--force}
    wants tmab && run "l$L-tmab$suffix" "$NSHAP" shapley --estimator tmab --top-k "$K" --budget "$budget" \
        --players "$players" "${common[@]}" --seed 7 $force
    wants tmab-screen && run "l$L-tmab-screen$suffix" "$NSHAP" shapley --estimator tmab --top-k "$K" --budget "$budget" \
        --screen "$OUT/l$L-atp.json" --screen-top "$SCREEN_TOP" --screen-sample "$SCREEN_SAMPLE" --players "$players" \
        "${common[@]}" --seed 7 $force
    wants regression && run "l$L-regression$suffix" "$NSHAP" shapley --estimator regression --surrogate "$OUT/l$L-atp.json" \
        --top-k "$K" --budget "$budget" --players "$players" "${common[@]}" --seed 7 $force
  done
done
python3 - "$OUT" "$K" "$LAYERS" "$SWEEP" "$BUDGET_X" "$RUNS" "$GROUP" "$SINGLE" <<'EOF'
import json, sys
out, k, layers, sweep, cap = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split(), sys.argv[5]
runs, group, single = sys.argv[6].split(), int(sys.argv[7]), sys.argv[8] == "1"
labels = {"tmab": "tmab", "tmab-screen": "tmab + atp screen", "regression": "regression + atp surrogate"}
def load(name):
    return json.load(open(f"{out}/{name}.json"))
def top(r, k):  # players a screen left out have no value (null): they rank last
    return [x["player"] for x in sorted(r["results"], key=lambda x: -x["mean"] if x["mean"] is not None else float("inf"))[:k]]
if single:
    print("Single neurons: recall@k of atp and ig (16 steps) against exact leave-one-out\n")
    print("| layer | atp @10 | @30 | @100 | ig @10 | @30 | @100 | top loo value | its atp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for L in layers:
        a, g, l = load(f"l{L}-n-atp"), load(f"l{L}-n-ig"), load(f"l{L}-n-loo")
        r = lambda x, kk: len(set(top(x, kk)) & set(top(l, kk))) / kk
        best = top(l, 1)[0]
        av = {x["player"]: x["mean"] for x in a["results"]}
        lv = {x["player"]: x["mean"] for x in l["results"]}
        print(f"| {L} | {r(a,10):.2f} | {r(a,30):.2f} | {r(a,100):.2f} | {r(g,10):.2f} | {r(g,30):.2f} | {r(g,100):.2f} | "
              f"{lv[best]:.4g} | {av[best]:.4g} |")
print(f"\n{'Groups of ' + str(group) if group > 1 else 'Single neurons'}: certified top-{k} runs against a long antithetic reference\n")
print(f"| layer | players | atp recall@{k} vs loo | atp recall@{k} vs reference | loo recall@{k} vs reference | "
      f"reference evals | " + " | ".join(f"{labels[x]}: evals / precision@{k}" for x in runs) + " |")
print("|---|---|---|---|---|---|" + "---|" * len(runs))
for L in layers:
    atp, loo, ref = load(f"l{L}-atp"), load(f"l{L}-loo"), load(f"l{L}-reference")
    t = set(top(ref, k))
    rec = lambda r, truth: len(set(top(r, k)) & truth) / k
    cells = []
    for name in runs:
        r = load(f"l{L}-{name}")
        cells.append(f"{r['evaluations']:,} / {rec(r, t):.2f} ({r.get('stop_reason', '?')})")
    print(f"| {L} | {len(ref['results'])} | {rec(atp, set(top(loo, k))):.2f} | {rec(atp, t):.2f} | {rec(loo, t):.2f} | "
          f"{ref['evaluations']:,} | " + " | ".join(cells) + " |")
if sweep:
    print(f"\nprecision@{k} against the reference as the budget grows (evaluations actually used in brackets)\n")
    print("| layer | estimator | " + " | ".join(f"{b}n" for b in sweep + [cap]) + " |")
    print("|---|---|" + "---|" * (len(sweep) + 1))
    for L in layers:
        t = set(top(load(f"l{L}-reference"), k))
        for name, label in ((x, labels[x]) for x in runs):
            cells = []
            for b in sweep + [None]:
                r = load(f"l{L}-{name}" + (f"-b{b}" if b else ""))
                cells.append(f"{len(set(top(r, k)) & t) / k:.2f} ({r['evaluations']:,})")
            print(f"| {L} | {label} | " + " | ".join(cells) + " |")
EOF
echo "[atp-guided] done in $(( $(date +%s) - start )) s" >&2
