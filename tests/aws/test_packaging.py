"""The Lambda packages: ``cargo lambda build --release --features static-netcdf``
gives ``bootstrap`` binaries that need only glibc (netCDF-C and HDF5 linked in), and no
glibc symbol newer than 2.34 (the provided.al2023 runtime)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

FUNCTIONS = ("watcher", "updater")
MAX_GLIBC = (2, 34)
# What provided.al2023 has: glibc's own libraries and libgcc.
ALLOWED_LIBS = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
                "libpthread.so.0", "libdl.so.2", "librt.so.1"}


def readelf(*args) -> str:
    exe = shutil.which("readelf")
    if exe is None:
        pytest.fail("readelf (binutils) is not installed", pytrace=False)
    return subprocess.run([exe, "-W", *args], capture_output=True, text=True,
                          check=True).stdout


def glibc_versions(binary: Path) -> set[tuple[int, ...]]:
    found = re.findall(r"@GLIBC_([0-9.]+)", readelf("--dyn-syms", str(binary)))
    return {tuple(int(p) for p in v.split(".")) for v in found}


def needed(binary: Path) -> set[str]:
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                          readelf("-d", str(binary))))


def problems(binary: Path) -> list[str]:
    out = []
    newer = sorted(v for v in glibc_versions(binary) if v > MAX_GLIBC)
    if newer:
        out.append(f"needs glibc {'.'.join(map(str, newer[-1]))} > 2.34")
    extra = needed(binary) - ALLOWED_LIBS
    if extra:
        out.append(f"links libraries the runtime lacks: {sorted(extra)}")
    return out


@pytest.mark.parametrize("function", FUNCTIONS)
def test_bootstrap_needs_only_old_glibc(lambda_dir, function):
    bootstrap = lambda_dir / function / "bootstrap"
    assert bootstrap.is_file(), f"{bootstrap} missing: cargo lambda build did not make it"
    assert glibc_versions(bootstrap), "no versioned glibc symbols found: not a glibc binary?"
    assert not problems(bootstrap), f"{bootstrap}: {problems(bootstrap)}"


def test_the_check_catches_a_dynamically_linked_netcdf(zru_bin):
    """The host build links the system libnetcdf: the same check must flag it."""
    assert any("libnetcdf" in lib for lib in needed(zru_bin)), needed(zru_bin)
    assert problems(zru_bin)
