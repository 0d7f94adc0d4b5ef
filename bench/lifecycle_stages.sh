#!/usr/bin/env bash
# Wall-clock time of each lifecycle stage of `dvc repro`, one stage at a time, in a checkout
# whose data/ and validate outputs already exist (e.g. after `dvc repro validate`).
#
#   bench/lifecycle_stages.sh /path/to/checkout [/path/to/.venv/bin]
#
# Prints one line per stage: name, exit code, wall seconds, 1-min load average before/after
# (a load above the core count means other jobs shared the CPU and the time is inflated).
set -u
repo=${1:?usage: bench/lifecycle_stages.sh CHECKOUT [VENV_BIN]}
bin=${2:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin}
cd "$repo"
export PATH="$bin:$PATH" TQDM_DISABLE=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1
for stage in train quantize evaluate gate register; do
  start=$(date +%s.%N); before=$(cut -d' ' -f1 /proc/loadavg)
  dvc repro -s "$stage" > "/tmp/hairseg-bench-$stage.log" 2>&1; rc=$?
  end=$(date +%s.%N); after=$(cut -d' ' -f1 /proc/loadavg)
  printf '%s rc=%d wall_s=%.1f load_before=%s load_after=%s\n' \
    "$stage" "$rc" "$(echo "$end - $start" | bc)" "$before" "$after"
  [ "$rc" -ne 0 ] && { echo "see /tmp/hairseg-bench-$stage.log"; exit "$rc"; }
done
