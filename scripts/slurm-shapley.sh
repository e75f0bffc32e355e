#!/usr/bin/env bash
# One Shapley run over many GPUs: a Slurm job array whose task 0 is the driver and tasks 1..N are workers, one per
# GPU. Results are bit-identical to a one-process run with the same arguments on the workers' backend.
#
#   export NSHAP_CLUSTER_SECRET=$(openssl rand -hex 32)     # shared by every task (sbatch exports the environment)
#   sbatch --array=0-8 scripts/slurm-shapley.sh --model models/gpt2-xl --dataset datasets/athlete.jsonl \
#       --players all --estimator tmab --top-k 20 --budget 2000000 --seed 1 --checkpoint-every 20000 --out results/xl
#
# After a driver crash, resubmit task 0 alone with --resume (same job id, so it finds the workers still running):
#   NSHAP_JOB=<array job id> sbatch --array=0 scripts/slurm-shapley.sh <same arguments> --resume
#
# Settings (environment): NSHAP_JOB (rendezvous id, default the array job id), NSHAP_RENDEZVOUS (a directory every
# node sees; default $SLURM_SUBMIT_DIR/.nshap-rendezvous), NSHAP_BASE_PORT (5701; task i listens on base + i),
# NSHAP_MIN_WORKERS (workers the driver waits for; default every worker task of the array), NSHAP_BACKEND (cuda).
#SBATCH --job-name=nshap-shapley
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=24:00:00
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?run with sbatch --array=0-N (task 0 = driver, 1..N = workers)}"
: "${NSHAP_CLUSTER_SECRET:?set NSHAP_CLUSTER_SECRET (e.g. openssl rand -hex 32) before sbatch}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ -d "${SLURM_SUBMIT_DIR:-}" ] && root="$SLURM_SUBMIT_DIR"
job="${NSHAP_JOB:-${SLURM_ARRAY_JOB_ID:?}}"
rdv="${NSHAP_RENDEZVOUS:-$root/.nshap-rendezvous}/$job"
id="$SLURM_ARRAY_TASK_ID"
port=$(( ${NSHAP_BASE_PORT:-5701} + id ))
host="$(hostname -I 2>/dev/null | awk '{print $1}')"; [ -n "$host" ] || host="$(hostname -f)"
backend="${NSHAP_BACKEND:-cuda}"
nshap="$root/nshap"
mkdir -p "$rdv"

addresses() { cat "$rdv"/worker-* 2>/dev/null | paste -sd, -; }

if [ "$id" -eq 0 ]; then
  echo "$host:$port" > "$rdv/driver.tmp" && mv "$rdv/driver.tmp" "$rdv/driver"
  want="${NSHAP_MIN_WORKERS:-$(( ${SLURM_ARRAY_TASK_MAX:-1} - ${SLURM_ARRAY_TASK_MIN:-0} ))}"
  [ "$want" -ge 1 ] || want=1
  # wait until the first worker has published its address (the driver lists the workers so that a restarted
  # driver finds them again); the rest join the driver as they start
  for _ in $(seq 600); do [ -n "$(addresses)" ] && break; sleep 1; done
  [ -n "$(addresses)" ] || { echo "slurm-shapley: no worker published an address in $rdv within 10 min" >&2; exit 2; }
  exec "$nshap" shapley "$@" --cluster "$(addresses)" --bind "$host" --port "$port" \
      --min-workers "$want" --join-timeout 1800
else
  echo "$host:$port" > "$rdv/worker-$id.tmp" && mv "$rdv/worker-$id.tmp" "$rdv/worker-$id"
  for _ in $(seq 600); do [ -f "$rdv/driver" ] && break; sleep 1; done
  [ -f "$rdv/driver" ] || { echo "slurm-shapley: no driver address in $rdv within 10 min" >&2; exit 2; }
  # only the model options matter to a worker: the driver sends the game (dataset, players, metric, ...)
  model=()
  args=("$@")
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
      --model|--precision) model+=("${args[$i]}" "${args[$((i + 1))]}"); i=$((i + 1)) ;;
    esac
  done
  exec "$nshap" worker --join "$(cat "$rdv/driver"),$(addresses)" --bind "$host" --port "$port" \
      --backend "$backend" "${model[@]}" --join-timeout 1800
fi
