#!/usr/bin/env bash
# Runs `make test` RUNS times (default 3) with a CPU burner on every core,
# as a loaded CI machine would: a test that synchronises on time instead of
# events fails here first. Prints each run's result and wall time.
#
#   hack/test-under-load.sh            # 3 runs
#   RUNS=1 hack/test-under-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cores=$(getconf _NPROCESSORS_ONLN)

burners=()
stop_burners() {
	for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop_burners EXIT
for _ in $(seq "$cores"); do
	# A busy loop of the shell itself: no tool to install, one core each.
	( while :; do :; done ) &
	burners+=($!)
done
echo "burning $cores cores (pids ${burners[*]})"

failed=0
for i in $(seq "$runs"); do
	began=$(date +%s)
	if make test >"test-under-load-$i.log" 2>&1; then result=pass; else result=FAIL; failed=1; fi
	echo "run $i: $result in $(( $(date +%s) - began ))s (log: test-under-load-$i.log)"
done
exit "$failed"
