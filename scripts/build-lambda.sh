#!/usr/bin/env bash
# Builds the Lambda functions (target/lambda/{watcher,updater}/bootstrap) with
# cargo-lambda and zig from the venv (scripts/requirements-aws.txt), with netCDF-C and
# HDF5 built from source and linked statically (feature `static-netcdf`, CMake >= 3.26
# from the venv), so the binaries need only glibc. The `lambda` Cargo profile (no
# debug info, stripped, thin LTO) keeps them far below Lambda's 250 MB limit.
#
#   scripts/build-lambda.sh            x86_64 (the template's default Architecture)
#   scripts/build-lambda.sh --arm64    arm64 (Graviton): deploy with Architecture=arm64
#
# Cargo reuses the build when nothing changed. Other arguments go to
# `cargo lambda build` (e.g. `--lambda-dir DIR` to keep both architectures apart).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
cd "$root"
target=(--x86-64)
args=()
for arg in "$@"; do
  case "$arg" in
    --arm64) target=(--arm64) ;;
    --x86-64|--x86_64) target=(--x86-64) ;;
    *) args+=("$arg") ;;
  esac
done
for tool in cargo-lambda cmake; do
  if [ ! -x "$venv/bin/$tool" ]; then
    echo "build-lambda: $venv/bin/$tool is missing (run scripts/setup.sh)" >&2
    exit 1
  fi
done
if [ "${target[0]}" = --arm64 ] && ! rustup target list --installed 2>/dev/null \
    | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi
export PATH="$venv/bin:$PATH"
export CMAKE="$venv/bin/cmake"
# Without the `icechunk` feature (~40 more crates, minutes of a cold static build):
# the Lambdas refuse "format": "icechunk" datasets with "built without Icechunk support"
# (docs/icechunk.md).
cargo lambda build --profile lambda "${target[@]}" --no-default-features \
  --features static-netcdf,sample \
  --bin watcher --bin updater ${args[@]+"${args[@]}"}
