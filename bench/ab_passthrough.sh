#!/usr/bin/env bash
# Interleaved A/B/C of passthrough against decoding: GHRSST-size daily files from
# `zru sample gridded` (6 packed variables, chunks 1 x 500 x 1000, shuffle + deflate 4)
# into a store chunked and compressed like them (the config `zru config suggest`
# prints), appending then overwriting the last day with ZRU_DECODE=passthrough,
# parallel and netcdf-c in turn. Prints wall and CPU seconds, peak RSS and the chunks
# passed through of each run. Usage: bench/ab_passthrough.sh [ROUNDS] [LAT LON]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
zru="${ZRU_BIN:-$root/target/release/zru}"
rounds="${1:-3}" lat="${2:-4500}" lon="${3:-6000}"
w="$root/bench/work-pass-$lat-$lon"
mkdir -p "$w/gen" "$w/raw/sst" "$w/config"
if [ "$(ls "$w/gen" | wc -l)" -lt 3 ]; then
  "$zru" sample gridded "$w/gen" --days 3 --lat "$lat" --lon "$lon" >/dev/null
fi
files=($(ls "$w/gen" | sort))
"$zru" config suggest "$w/gen/${files[0]}" --name sst 2>/dev/null \
  | sed 's#"data/zarr/sst.zarr"#"ab.zarr"#' > "$w/config/sst.json"
for f in "${files[@]}"; do cp "$w/gen/$f" "$w/raw/sst/$f"; done
last="raw/sst/${files[2]}"
if [ ! -d "$w/base.zarr" ]; then
  (cd "$w" && rm -rf ab.zarr ab.zarr.zru-ledger.json \
    && "$zru" ingest --config config --raw-root raw "raw/sst/${files[0]}" "raw/sst/${files[1]}" >/dev/null \
    && mv ab.zarr base.zarr && mv ab.zarr.zru-ledger.json base.zarr.zru-ledger.json)
fi
run() { # mode label
  (cd "$w" && ZRU_DECODE=$1 /usr/bin/time -f "$1 $2 wall %e user %U sys %S maxrss_kb %M" \
    "$zru" ingest --config config --raw-root raw --json "$last" 2>&1 \
    | sed -n 's/.*"chunks_passed_through":\([0-9]*\).*/passed \1/p;/wall/p' | paste -sd' ')
}
for _ in $(seq "$rounds"); do
  for mode in passthrough parallel netcdf-c; do
    rm -rf "$w/ab.zarr" "$w/ab.zarr.zru-ledger.json"
    cp -r "$w/base.zarr" "$w/ab.zarr"
    cp "$w/base.zarr.zru-ledger.json" "$w/ab.zarr.zru-ledger.json"
    run "$mode" append
    run "$mode" overwrite
  done
done
