#!/usr/bin/env bash
# Long run of the differential (property-based) test of zru against xarray
# (tests/interop/test_differential.py, docs/testing.md). Runs every feature group
# with the `long` Hypothesis profile and prints figures at the end: examples run,
# events applied, failures found, rejections by reason.
#
#   scripts/differential.sh                 # ZRU_DIFF_EXAMPLES=300 examples per group
#   ZRU_DIFF_EXAMPLES=2000 scripts/differential.sh -k core
#
# Extra arguments go to pytest. ZRU_BIN defaults to target/release/zru.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
export ZRU_BIN="${ZRU_BIN:-$root/target/release/zru}"
export ZRU_DIFF_PROFILE=long
export ZRU_DIFF_EXAMPLES="${ZRU_DIFF_EXAMPLES:-300}"
work="$(mktemp -d "${TMPDIR:-/tmp}/zru-differential.XXXXXX")"
export ZRU_DIFF_STATS="$work/stats.jsonl"
: > "$ZRU_DIFF_STATS"
cd "$root"
started=$SECONDS
# Hypothesis keeps no example database in the repository (database=None in the test).
"$venv/bin/python" -m pytest -q -rfE -p no:cacheprovider tests/interop/test_differential.py \
  -k "test_differential_" "$@" 2>&1 | tee "$work/pytest.log"
rc=${PIPESTATUS[0]}
"$venv/bin/python" - "$ZRU_DIFF_STATS" "$work/pytest.log" "$((SECONDS - started))" <<'PY'
import collections, json, re, sys
stats_path, log_path, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(stats_path) if l.strip()]
by_group = collections.Counter(r["group"] for r in rows)
fails = [r for r in rows if r["outcome"] != "ok"]
reasons = collections.Counter(x for r in rows for x in r["rejections"])
log = open(log_path).read()
failed_tests = sorted(set(re.findall(r"FAILED \S+::(\S+)", log)))
print("\n==================== differential test figures ====================")
print(f"  time                  {seconds} s")
print(f"  examples run          {len(rows)} (incl. shrinking) {dict(by_group)}")
print(f"  events run            {sum(r['events'] for r in rows)}: "
      f"{sum(r['applied'] for r in rows)} created applied, "
      f"{sum(r['removed'] for r in rows)} removals applied, "
      f"{sum(len(r['rejections']) for r in rows)} rejected")
print(f"  failing examples      {len(fails)} (while searching and shrinking)")
print(f"  failures found        {len(failed_tests)} feature group(s) with a minimal failing example: "
      f"{', '.join(failed_tests) or 'none'}")
kinds = collections.Counter(r["outcome"][len("fail: "):]
                            for r in fails)
for k, n in kinds.most_common():
    print(f"    {n:5d}  {k}")
print("  rejections by reason:")
for k, n in reasons.most_common(25):
    print(f"    {n:5d}  {k}")
PY
echo "  stats: $ZRU_DIFF_STATS  log: $work/pytest.log"
exit "$rc"
