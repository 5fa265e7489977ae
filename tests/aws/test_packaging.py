"""The Lambda packages: ``scripts/build-lambda.sh`` (``cargo lambda build --profile
lambda --features static-netcdf``) gives ``bootstrap`` binaries that need only glibc
(netCDF-C and HDF5 linked in), no glibc symbol newer than 2.34 (the provided.al2023
runtime), and that fit Lambda's package limits with room to spare."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

FUNCTIONS = ("watcher", "updater")
MAX_GLIBC = (2, 34)
# What provided.al2023 has: glibc's own libraries and libgcc.
ALLOWED_LIBS = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
                "ld-linux-aarch64.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1"}
MB = 1024 * 1024
# Lambda's limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
# 250 MB unzipped (function and layers), 50 MB zipped for a direct upload. The
# packages must stay well inside them: half the unzipped limit, and 40 MB zipped.
MAX_UNZIPPED = 125 * MB
MAX_ZIPPED = 40 * MB


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


def debug_sections(binary: Path) -> list[str]:
    return re.findall(r"\] (\.z?debug_(?!gdb_scripts)\w+)", readelf("-S", str(binary)))


def size_problems(binary: Path) -> list[str]:
    """What keeps ``binary`` from being a lean Lambda package (zip size aside)."""
    out = []
    if binary.stat().st_size > MAX_UNZIPPED:
        out.append(f"{binary.stat().st_size / MB:.0f} MB unzipped > {MAX_UNZIPPED // MB} MB")
    if debug_sections(binary):
        out.append(f"debug info left in: {debug_sections(binary)[:3]}")
    return out


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


@pytest.mark.parametrize("function", FUNCTIONS)
def test_package_fits_lambda_limits_with_a_margin(lambda_dir, function, tmp_path):
    """The `lambda` profile: no debug info, stripped; the zip as `sam deploy` uploads it
    (the bootstrap alone, deflated)."""
    bootstrap = lambda_dir / function / "bootstrap"
    assert not size_problems(bootstrap), f"{bootstrap}: {size_problems(bootstrap)}"
    package = tmp_path / f"{function}.zip"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(bootstrap, "bootstrap")
    assert package.stat().st_size <= MAX_ZIPPED, (
        f"{function}: {package.stat().st_size / MB:.1f} MB zipped > {MAX_ZIPPED // MB} MB")


def test_the_size_check_catches_a_release_build_with_debug_info(zru_bin):
    """`release` keeps line tables for profiling: the check must flag such a build."""
    assert debug_sections(zru_bin), "the host release build has no debug info to catch"
    assert size_problems(zru_bin)


def test_the_check_catches_a_dynamically_linked_netcdf(zru_bin):
    """The host build links the system libnetcdf: the same check must flag it."""
    assert any("libnetcdf" in lib for lib in needed(zru_bin)), needed(zru_bin)
    assert problems(zru_bin)
