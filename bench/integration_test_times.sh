#!/bin/bash
# Wall time of integration tests in a clone DIR of this repo (e.g. `git clone . /tmp/x &&
# git -C /tmp/x checkout REV`), with this checkout's .venv and DIR's code first on
# PYTHONPATH (so two revisions can run side by side under the same load).
# usage: bench/integration_test_times.sh DIR LOG TESTS...   (LOG.time gets uptime before/after)
d=$1; log=$2; shift 2
VENV=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}
cd $d
{ echo "start $(date -u +%T) $(uptime)"; } > $log.time
PYTHONPATH=$d/src:$d/components:$d/pipelines:$d/serving PATH=$VENV/bin:$PATH nice -n 10 $VENV/bin/python -m pytest "$@" --durations=0 -q -p no:cacheprovider > $log 2>&1
{ echo "end $(date -u +%T) $(uptime)"; } >> $log.time
