#!/usr/bin/env bash
# Long run of the chaos test of the whole local pipeline (tests/interop/chaos.py,
# docs/testing.md): watch, enqueue, flush, two flushers, random SIGKILLs, a disk that
# fills, a read-only store, duplicated and reordered notifications, random removals;
# then the stores against the oracle (read with xarray), the ledgers, and the fate of
# every event. Prints figures at the end: events, duplicates, kills, injected faults,
# flushes, dead letters replayed, lost (must be 0). Exit code 1 on a failure, whose
# message says how to reproduce it (the seed; the work directory is kept).
#
#   scripts/chaos.sh                       # 5 minutes, a random seed
#   scripts/chaos.sh --minutes 20 --seed 7
#
# Uses the release binary (ZRU_BIN, default target/release/zru: build it first with
# `cargo build --release --bins`). Other arguments go to the driver (--work DIR,
# --no-faults io_error,read_only, --seconds S).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
export ZRU_BIN="${ZRU_BIN:-$root/target/release/zru}"
minutes=5
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --minutes=*) minutes="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -x "$ZRU_BIN" ]; then
  echo "chaos.sh: $ZRU_BIN is not an executable (cargo build --release --bins)" >&2
  exit 2
fi
cd "$root"
exec "$venv/bin/python" tests/interop/chaos.py --zru "$ZRU_BIN" --minutes "$minutes" "${args[@]}"
