#!/usr/bin/env bash
# Builds the Lambda functions (target/lambda/{watcher,updater}/bootstrap) with
# cargo-lambda and zig from the venv (scripts/requirements-aws.txt), with netCDF-C and
# HDF5 built from source and linked statically (feature `static-netcdf`, CMake >= 3.26
# from the venv), so the binaries need only glibc. Cargo reuses the build when
# nothing changed. Extra arguments go to `cargo lambda build`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
cd "$root"
for tool in cargo-lambda cmake; do
  if [ ! -x "$venv/bin/$tool" ]; then
    echo "build-lambda: $venv/bin/$tool is missing (run scripts/setup.sh)" >&2
    exit 1
  fi
done
export PATH="$venv/bin:$PATH"
export CMAKE="$venv/bin/cmake"
cargo lambda build --release --features static-netcdf --bin watcher --bin updater "$@"
# The release profile keeps debug info for local profiling; Lambda packages do not
# need it (and are limited to 250 MB unzipped).
for f in watcher updater; do
  strip --strip-debug "target/lambda/$f/bootstrap"
  ls -l "target/lambda/$f/bootstrap"
done
