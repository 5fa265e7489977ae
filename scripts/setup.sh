#!/usr/bin/env bash
# Installs what zru needs on a fresh Debian machine: netCDF-C (for the netcdf crate)
# and a Python venv with the reader side (xarray, zarr-python, netCDF4) used by the
# interop tests, notebooks and benchmarks, plus the AWS test side (moto, cfn-lint,
# cargo-lambda, CMake: scripts/requirements-aws.txt), and a second venv on Python >= 3.12
# for the Icechunk reader (icechunk-python 2.x: scripts/requirements-icechunk.txt).
# Idempotent: re-running is cheap.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${ZRU_VENV:-$root/.venv}"
ice_venv="${ZRU_ICECHUNK_VENV:-$root/.venv-icechunk}"

need_apt=()
command -v nc-config >/dev/null 2>&1 || need_apt+=(libnetcdf-dev)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v sqlite3 >/dev/null 2>&1 || need_apt+=(sqlite3)
[ -x /usr/bin/time ] || need_apt+=(time)  # GNU time: peak memory in the benchmarks
command -v readelf >/dev/null 2>&1 || need_apt+=(binutils)  # Lambda package symbol check
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import xarray, zarr, netCDF4, dask, pytest, matplotlib, nbclient, nbformat, ipykernel' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements.txt"
fi
# The notebooks run in a kernel named python3 (the venv's python; ipykernel ships it).
if ! "$venv/bin/python" -c 'from jupyter_client.kernelspec import KernelSpecManager as K; K().get_kernel_spec("python3")' >/dev/null 2>&1; then
  "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
fi
# AWS side (tests/aws, Lambda packaging): moto, boto3, obstore, cfn-lint, cargo-lambda, cmake.
if ! "$venv/bin/python" -c 'import moto, boto3, obstore, cfnlint, samtranslator, cbor2' >/dev/null 2>&1 \
    || [ ! -x "$venv/bin/cargo-lambda" ] || [ ! -x "$venv/bin/cmake" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-aws.txt"
fi
# Icechunk reader (tests/interop/test_icechunk.py): icechunk-python 2.x has no build
# for Python < 3.12, and the main venv stays as it is; a venv of its own, on the first
# Python >= 3.12 among $ZRU_PYTHON, python3.12, python3.13, python3 and pyenv's
# versions. None is an error (the Icechunk tests need it), not a skip.
py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
find_python() {
  local c
  for c in "${ZRU_PYTHON:-}" python3.12 python3.13 python3 \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -V); do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && py_ok "$c" && { command -v "$c"; return 0; }
  done
  return 1
}
if [ -x "$ice_venv/bin/python" ] && ! py_ok "$ice_venv/bin/python"; then
  rm -rf "$ice_venv"
fi
if [ ! -x "$ice_venv/bin/python" ]; then
  if ! python="$(find_python)"; then
    echo "setup: no Python >= 3.12 found for the Icechunk reader venv (tried \$ZRU_PYTHON, python3.12, python3.13, python3, ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.12+)." >&2
    echo "setup: install one (e.g. 'apt-get install python3.12-venv' on Debian 13 / Ubuntu 24.04, or 'pyenv install 3.12'), or set ZRU_PYTHON=/path/to/python3.12" >&2
    exit 1
  fi
  "$python" -m venv "$ice_venv"
fi
if ! "$ice_venv/bin/python" -c 'import icechunk, xarray, zarr, netCDF4, pytest' >/dev/null 2>&1; then
  "$ice_venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-icechunk.txt"
fi
echo "setup: netCDF-C $(nc-config --version 2>/dev/null | awk '{print $2}'), venv at $venv, Icechunk reader venv at $ice_venv"
