#!/usr/bin/env bash
# Interleaved A/B of the chunk decode paths: appends the last GHRSST-size file of
# bench/work-compare (made by `bench/compare --only gridded --steps 10`) to a fresh copy
# of its 10-step store, alternating ZRU_DECODE=netcdf-c and the parallel default.
# Prints wall and CPU seconds and peak RSS of each run. Usage: bench/ab_decode.sh [PAIRS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
w="$root/bench/work-compare"
zru="${ZRU_BIN:-$root/target/release/zru}"
pairs="${1:-5}"
config="$(mktemp -d)"
trap 'rm -rf "$config" "$w/ab.zarr" "$w/ab.zarr.zru-ledger.json"' EXIT
f="raw/sst/$(ls "$w/raw/sst/" | sort | tail -1)"
sed 's/"zru.zarr"/"ab.zarr"/' "$w/config/sst.json" > "$config/sst.json"
for _ in $(seq "$pairs"); do
  for mode in netcdf-c parallel; do
    rm -rf "$w/ab.zarr" "$w/ab.zarr.zru-ledger.json"
    cp -r "$w/base-zru-10.zarr" "$w/ab.zarr"
    cp "$w/base-zru-10.zarr.zru-ledger.json" "$w/ab.zarr.zru-ledger.json"
    (cd "$w" && ZRU_DECODE=$mode /usr/bin/time -f "$mode wall %e user %U sys %S maxrss_kb %M" \
      "$zru" ingest --config "$config" --raw-root raw "$f" 2>&1 >/dev/null | tail -1)
  done
done
