#!/usr/bin/env python3
"""Profile collections (Argo): seconds to ingest each real file, and the per-file time
of a single-cycle update into stores of 1,000 and 100,000 (generated) profiles.

Usage: .venv/bin/python bench/profiles.py [--sizes 1000 100000] [--runs 3] [--levels 20]

Every measured `zru ingest` is a separate process (a batch of one event) on a fresh copy
of a prepared store, so it includes reading the identity index (the few shards of
`.zru/profiles/` the file needs). The last column is the same append into a copy whose
`.zru/` was deleted (a store written by a zru without the index): the index is rebuilt
from the store's columns, what every run cost before the index was kept. The
generated stores hold Argo-like profiles (PLATFORM_NUMBER, CYCLE_NUMBER, DIRECTION,
JULD, LATITUDE, LONGITUDE, PRES/TEMP/PSAL and their per-level QC) of 100 cycles per
float. The single-cycle update is measured twice: a new cycle (appended) and a revised
existing cycle in the middle of the store (overwritten in place).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))
ARGO = ROOT / "tests" / "data" / "imos" / "argo"
REAL = ["2902093_prof.nc", "ct64-M001-09_prof.nc"]


def run(args) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(ZRU), *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"zru {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def write_config(work: Path, store: Path) -> Path:
    config = work / "config"
    config.mkdir(exist_ok=True)
    (config / "argo.json").write_text(json.dumps({
        "name": "argo", "handler": "profiles", "key_patterns": [r"^argo/.*\.nc$"],
        "store": str(store), "append_dim": "N_PROF",
        "chunks": {"N_PROF": 500, "N_LEVELS": 1000},
    }))
    return config


def ingest_args(work: Path, store: Path, path: Path) -> list[str]:
    """`zru` arguments ingesting `path` (under `work/raw`) into `store`."""
    config = write_config(work, store)
    return ["ingest", "--config", str(config), "--raw-root", str(work / "raw"), str(path)]


def ingest(work: Path, store: Path, path: Path) -> float:
    return run(ingest_args(work, store, path))


def write_profiles(path: Path, first: int, count: int, levels: int, shift: float = 0.0) -> None:
    """Profiles `first .. first + count` of the generated collection (100 cycles a float)."""
    index = np.arange(first, first + count)
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("N_PROF", count)
        ds.createDimension("N_LEVELS", levels)
        ds.createDimension("STRING8", 8)
        platform = ds.createVariable("PLATFORM_NUMBER", "S1", ("N_PROF", "STRING8"), fill_value=b" ")
        platform[:] = netCDF4.stringtochar(np.array([f"{5900000 + i // 100:<8d}" for i in index], dtype="S8"))
        cycle = ds.createVariable("CYCLE_NUMBER", "i4", ("N_PROF",), fill_value=99999)
        cycle[:] = index % 100 + 1
        direction = ds.createVariable("DIRECTION", "S1", ("N_PROF",), fill_value=b" ")
        direction[:] = np.full(count, b"A", dtype="S1")
        juld = ds.createVariable("JULD", "f8", ("N_PROF",), fill_value=999999.0)
        juld.units = "days since 1950-01-01 00:00:00 UTC"
        juld[:] = 20000.0 + index * 0.1
        for name, values in (("LATITUDE", -40.0 + index % 50), ("LONGITUDE", 100.0 + index % 60)):
            var = ds.createVariable(name, "f8", ("N_PROF",), fill_value=99999.0)
            var[:] = values
        depth = np.arange(levels, dtype="f4") * 10.0
        for name, base in (("PRES", 0.0), ("TEMP", 20.0), ("PSAL", 35.0)):
            var = ds.createVariable(name, "f4", ("N_PROF", "N_LEVELS"), fill_value=99999.0)
            var[:] = base + shift + depth[None, :] * 0.01 + (index % 7)[:, None]
            qc = ds.createVariable(f"{name}_QC", "S1", ("N_PROF", "N_LEVELS"), fill_value=b" ")
            qc[:] = np.full((count, levels), b"1", dtype="S1")


def single_cycle_files(raw: Path, size: int, levels: int) -> tuple[Path, Path]:
    """Single-cycle files for a store of `size` generated profiles: a new cycle (the
    next profile) and a revision of the middle profile (values shifted by 0.5)."""
    new = raw / "R_new.nc"
    write_profiles(new, size, 1, levels)
    revised = raw / "R_mid.nc"
    write_profiles(revised, size // 2, 1, levels, shift=0.5)
    return new, revised


def median_runs(prepared: Path, work: Path, path: Path, runs: int, keep_index: bool = True) -> float:
    times = []
    for _ in range(runs):
        store = work / "measured.zarr"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(prepared, store)
        if not keep_index:
            shutil.rmtree(store / ".zru", ignore_errors=True)
        times.append(ingest(work, store, path))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levels", type=int, default=20)
    args = parser.parse_args()
    if not ZRU.is_file():
        sys.exit(f"{ZRU} missing: cargo build --release")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "raw" / "argo").mkdir(parents=True)
        print("real files, into a new store (median of runs)")
        for name in REAL:
            path = work / "raw" / "argo" / name
            shutil.copyfile(ARGO / name, path)
            times = []
            for _ in range(args.runs):
                store = work / "real.zarr"
                shutil.rmtree(store, ignore_errors=True)
                times.append(ingest(work, store, path))
            print(f"  {name:<24} {statistics.median(times):7.3f} s")
        print(f"single-cycle update (one zru process, {args.levels} levels)")
        print(f"  {'store profiles':>14} {'prepare s':>10} {'append s':>9} {'overwrite s':>12}"
              f" {'append, no index s':>19}")
        for size in args.sizes:
            prepared = work / f"store{size}.zarr"
            big = work / "raw" / "argo" / f"all{size}.nc"
            write_profiles(big, 0, size, args.levels)
            prepare = ingest(work, prepared, big)
            big.unlink()
            new, revised = single_cycle_files(work / "raw" / "argo", size, args.levels)
            append = median_runs(prepared, work, new, args.runs)
            overwrite = median_runs(prepared, work, revised, args.runs)
            rebuild = median_runs(prepared, work, new, args.runs, keep_index=False)
            print(f"  {size:>14,} {prepare:>10.2f} {append:>9.3f} {overwrite:>12.3f} {rebuild:>19.3f}")
            shutil.rmtree(prepared)


if __name__ == "__main__":
    main()
