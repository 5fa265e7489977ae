#!/usr/bin/env bash
# The README's main job: installs what is missing (netCDF-C, the Python venv), builds
# zru and runs the demo of the whole pipeline on the embedded local default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo run --release --quiet -- demo "$@"
