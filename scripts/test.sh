#!/usr/bin/env bash
# The test command: fast checks first (rustfmt, then clippy and rustdoc once the
# environment is set up), release build, Rust tests (with the queue and store
# conformance suites, whose SQS and S3 runs start a moto server from the venv setup
# made), the Python
# interop tests (real zru binary against xarray / zarr-python readers), then the AWS
# side: the Lambda packages (cargo lambda, static netCDF) and tests/aws against a
# moto server and a Lambda Runtime API emulator.
# Extra arguments are passed to pytest, e.g. `scripts/test.sh -k gsla -x`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
ice_venv="${ZRU_ICECHUNK_VENV:-$root/.venv-icechunk}"
cd "$root"

steps=()
current=""
started=$SECONDS

summary() {
  local rc=$?
  echo
  echo "==================== test summary ===================="
  local s
  for s in "${steps[@]}"; do echo "  ok    $s"; done
  if [ "$rc" -ne 0 ] && [ -n "$current" ]; then
    echo "  FAIL  $current (exit $rc)"
  fi
  echo "  total $((SECONDS - started))s"
  if [ "$rc" -eq 0 ]; then echo "ALL PASSED"; else echo "FAILED"; fi
}
trap summary EXIT

step() {
  local name="$1"; shift
  current="$name"
  local t0=$SECONDS
  echo
  echo "==> $name"
  "$@"
  steps+=("$name ($((SECONDS - t0))s)")
  current=""
}

step "cargo fmt --check" cargo fmt --all -- --check
step "setup (scripts/setup.sh)" bash scripts/setup.sh
step "cargo clippy (all targets, warnings are errors)" \
  cargo clippy --release --workspace --all-targets -- -D warnings
step "cargo doc (no broken links, warnings are errors)" \
  env RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps
step "cargo build --release --bins" cargo build --release --bins
step "cargo test --release --workspace" cargo test --release --workspace
step "python interop tests (tests/interop)" \
  env ZRU_BIN="$root/target/release/zru" \
  "$venv/bin/python" -m pytest -q -rfE -p no:cacheprovider tests/interop \
  --ignore=tests/interop/test_icechunk.py "$@"
# icechunk-python 2.x needs Python >= 3.12: the Icechunk reader venv setup.sh made.
step "python Icechunk interop tests (tests/interop/test_icechunk.py, Python >= 3.12)" \
  env ZRU_BIN="$root/target/release/zru" \
  "$ice_venv/bin/python" -m pytest -q -rfE -p no:cacheprovider tests/interop/test_icechunk.py
step "cargo lambda build --profile lambda (static netCDF)" bash scripts/build-lambda.sh
step "python AWS tests (tests/aws: moto, Runtime API emulator)" \
  env ZRU_BIN="$root/target/release/zru" ZRU_LAMBDA_DIR="$root/target/lambda" \
  "$venv/bin/python" -m pytest -q -rfE -p no:cacheprovider tests/aws
