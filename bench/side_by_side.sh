#!/usr/bin/env bash
# nshap next to a reference implementation on this machine, back to back, same workload and config.
#
#   bench/side_by_side.sh                      # CPU: nshap vs the NumPy reference (GPT-2 small)
#   bench/side_by_side.sh --backend cuda       # GPU: nshap (bf16) vs PyTorch/transformers (bf16, SDPA)
#
# Options: --config NAME  --shapes "BxT ..." (forward shapes; default "8x64 64x32" on the CPU, --batch B --seq T for one)
#          --coalitions C --prompts P --tokens T --layers L|all (coalitions; CPU default: layer 5 of 16 x 8 x 32)
#          --reps N  --warmup N  --rounds R (each side runs R times, alternating; the best median is kept)
#          --threads N (BLAS threads of the NumPy reference; default all cores, as nshap uses)  --skip-check
#          --ref-trim (CPU forward: the reference also runs its last layer after the attention at the last position
#          only, as nshap does: like for like, where the default compares with a plain NumPy forward)
# Writes every run's JSON and the joined table to results/bench/; prints the table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NSHAP="${NSHAP:-$root/nshap}"
PY="${PYTHON:-python3}"
backend=cpu config=small batch=8 seq=64 shapes="" coalitions=16 prompts="" tokens=32 layers="" reps="" warmup="" rounds=2
threads="$(nproc)" check=1 reftrim=""
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2 ;; --config) config="$2"; shift 2 ;;
    --batch) batch="$2"; shapes="${shapes:-x}"; shift 2 ;; --seq) seq="$2"; shapes="${shapes:-x}"; shift 2 ;;
    --shapes) shapes="$2"; shift 2 ;; --layers) layers="$2"; shift 2 ;;
    --coalitions) coalitions="$2"; shift 2 ;; --prompts) prompts="$2"; shift 2 ;; --tokens) tokens="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;; --warmup) warmup="$2"; shift 2 ;; --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;; --skip-check) check=0; shift ;; --ref-trim) reftrim=--trim; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "side_by_side.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$backend" in
  # three warm-up forwards: the JIT compiles the Vector-API kernels over the first few, and a Shapley run does
  # thousands (with one, a timed forward could still run partly interpreted code)
  cpu) prompts="${prompts:-8}" reps="${reps:-3}" warmup="${warmup:-3}" precision=fp32 ref=numpy layers="${layers:-5}"
       [ -z "$shapes" ] && shapes="8x64 64x32" ;;
  cuda) prompts="${prompts:-64}" reps="${reps:-20}" warmup="${warmup:-3}" precision=bf16 ref=torch layers="${layers:-all}" ;;
  *) echo "side_by_side.sh: --backend must be cpu or cuda" >&2; exit 2 ;;
esac
case "$config" in
  tiny) embd=64 ;; small) embd=768 ;; medium) embd=1024 ;; large) embd=1280 ;; xl) embd=1600 ;;
  *) echo "side_by_side.sh: --config must be tiny|small|medium|large|xl" >&2; exit 2 ;;
esac
[ -z "$shapes" ] || [ "$shapes" = x ] && shapes="${batch}x${seq}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
cd "$root"
# Relative to the repository root, so that the committed JSON names no path of the machine it ran on.
dir="results/bench/side-by-side-$backend-$config-$stamp"
mkdir -p "$dir"

if [ "$backend" = cpu ] && [ "$check" = 1 ]; then
  echo "== checking the NumPy reference against nshap's logits (tiny model, clean and masked)" >&2
  rm -rf "$dir/check"
  "$NSHAP" bench reference-data --config tiny --out "$dir/check" >&2
  "$PY" bench/reference_numpy.py check "$dir/check" > "$dir/check.json" || { cat "$dir/check.json"; echo "reference check FAILED" >&2; exit 1; }
  rm -f "$dir/check/model.safetensors" "$dir/check/"logits*.npy
fi

# NumPy's OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when it loads; a value left in the environment for
# another machine would pin it to the wrong kernel, so the reference runs without them (threadpoolctl reports the
# kernel it picked, in its JSON).
NUMPY_ENV=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)

nshap_run() { # kind round
  local kind="$1" r="$2" out="$dir/nshap-$1-$2.json"
  case "$kind" in
    forward-*) batch="${kind#forward-}"; seq="${batch#*x}"; batch="${batch%x*}"
             "$NSHAP" bench forward --backend "$backend" --precision "$precision" --config "$config" --batch "$batch" --seq "$seq" \
               --warmup "$warmup" --reps "$reps" --json "$out" ;;
    coalitions) "$NSHAP" bench coalitions --backend "$backend" --precision "$precision" --config "$config" --coalitions "$coalitions" \
               --prompts "$prompts" --tokens "$tokens" --layers "$layers" --warmup "$warmup" --reps "$reps" --json "$out" ;;
    gemm) "$NSHAP" bench gemm --backend "$backend" --precision "$precision" --config "$config" --m $((prompts * tokens)) \
               --warmup "$warmup" --reps "$reps" --json "$out" ;;
  esac >&2 || { echo "side_by_side.sh: nshap bench $kind failed (see above)" >&2; return 1; }
  echo "$out"
}
ref_run() { # kind round
  local kind="$1" r="$2" out="$dir/$ref-$1-$2.json"
  if [ "$ref" = numpy ]; then
    case "$kind" in
      forward-*) batch="${kind#forward-}"; seq="${batch#*x}"; batch="${batch%x*}"
                 "${NUMPY_ENV[@]}" "$PY" bench/reference_numpy.py --threads "$threads" forward --config "$config" --batch "$batch" --seq "$seq" --warmup "$warmup" --reps "$reps" $reftrim ;;
      coalitions) "${NUMPY_ENV[@]}" "$PY" bench/reference_numpy.py --threads "$threads" coalitions --config "$config" --coalitions "$coalitions" \
                    --prompts "$prompts" --tokens "$tokens" --layers "$layers" --warmup "$warmup" --reps "$reps" ;;
    esac > "$out"
  else
    case "$kind" in
      forward-*) batch="${kind#forward-}"; seq="${batch#*x}"; batch="${batch%x*}"
                 "$PY" bench/reference_torch.py forward --config "$config" --batch "$batch" --seq "$seq" --warmup "$warmup" --reps "$reps" ;;
      coalitions) "$PY" bench/reference_torch.py coalitions --config "$config" --coalitions "$coalitions" --prompts "$prompts" \
                    --tokens "$tokens" --warmup "$warmup" --reps "$reps" ;;
      gemm) "$PY" bench/reference_torch.py matmul --m $((prompts * tokens)) --k "$embd" --n $((4 * embd)) --warmup "$warmup" --reps "$reps" ;;
    esac > "$out"
  fi || { echo "side_by_side.sh: the $ref reference failed on $kind: $(cat "$out")" >&2; return 1; }
  echo "$out"
}

kinds=""
for sh in $shapes; do kinds="$kinds forward-$sh"; done
# --ref-trim changes only the reference's forward, so the coalitions would only repeat the default run
[ -z "$reftrim" ] && kinds="$kinds coalitions"
[ "$backend" = cuda ] && kinds="$kinds gemm"
pairs=()
for kind in $kinds; do
  nf="" rf=""
  for r in $(seq 1 "$rounds"); do
    echo "== $kind, round $r/$rounds: nshap, then $ref   (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    nf="${nf:+$nf,}$(nshap_run "$kind" "$r")"
    rf="${rf:+$rf,}$(ref_run "$kind" "$r")"
  done
  pairs+=("$kind:$nf:$rf")
done
title="side-by-side, $backend, GPT-2 $config ($precision): forward $shapes (batch x tokens); coalitions $coalitions x $prompts prompts x $tokens tokens, layers $layers masked"
[ -n "$reftrim" ] && title="side-by-side, $backend, GPT-2 $config ($precision): forward $shapes (batch x tokens), the reference's last layer trimmed to the last position as nshap's is"
"$PY" bench/compare.py --ref-name "$ref" --title "$title" --out "$dir/side-by-side.json" "${pairs[@]}"
