#!/usr/bin/env python3
"""zru against xarray + zarr-python, and against the floor, side by side.

Same full-size GHRSST-like files (4500 x 6000, six packed variables, zlib netCDF-4),
same chunks (1 x 1000 x 1000 for data, 1024 for 1-D time arrays), same codec
(zstd level 3), Zarr V3. Each measured call runs in a fresh process against a fresh
copy of a prepared store; the table shows medians of --runs runs.

- zru: `zru ingest` / `zru remove` (release build).
- xarray: open_dataset + open_zarr + time search + to_zarr(append_dim=...|region=...),
  blanking by writing NaN over the slot (bench/xarray_ops.py).
- floor: netCDF-C reading the file's variables once, raw (netCDF4-python with
  auto mask/scale off): the part no implementation of this design can skip.

Stores of N steps hold real data in their first and last slot; the slots between
have time values but no chunks (zru: time_step gap; xarray: to_zarr(compute=False)),
so every N costs the same to build and only the axis length differs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))
PYTHON = sys.executable
OPS = Path(__file__).resolve().parent / "xarray_ops.py"
D0 = date(1990, 1, 1)  # day 10,000 must fit int32 seconds since 1981
CHUNKS = {"time": 1, "lat": 1000, "lon": 1000}


def day(i):
    return D0 + timedelta(days=i)


def name(i):
    return f"{day(i):%Y%m%d}120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"


def timed(cmd, cwd=None):
    """Runs a command; returns (seconds, peak RSS MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{out.decode()}\n{err.decode()}")
    return seconds, out.decode()


def measured(cmd, cwd=None, seconds_from_stdout=False):
    """Runs a command under GNU time; returns (seconds, peak RSS MiB).

    Seconds are the wall time of the process, or what it printed (xarray_ops.py
    reports the operation alone, without interpreter start-up)."""
    report = Path(cwd or ".") / ".time-report"
    full = ["/usr/bin/time", "-f", "%M", "-o", str(report), *map(str, cmd)]
    start = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")
    peak_kib = int(report.read_text().split()[-1])
    if seconds_from_stdout:
        seconds = float(proc.stdout.split()[-1])
    return seconds, peak_kib / 1024


def tree_state(path):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


def bytes_written(before, after):
    return sum(size for p, (size, mtime) in after.items() if before.get(p) != (size, mtime))


class Bench:
    def __init__(self, work, lat, lon, runs):
        self.work, self.lat, self.lon, self.runs = work, lat, lon, runs
        self.raw = work / "raw" / "sst"
        self.raw.mkdir(parents=True, exist_ok=True)
        (work / "config").mkdir(exist_ok=True)
        (work / "config" / "sst.json").write_text(json.dumps({
            "name": "sst", "handler": "gridded", "key_patterns": ["^sst/.*\\.nc$"],
            "store": "zru.zarr", "append_dim": "time", "chunks": CHUNKS,
            "time_step": "1 day", "compressor": {"name": "zstd", "level": 3}}))

    def file(self, i):
        path = self.raw / name(i)
        if not path.exists():
            gen = self.work / "gen"
            shutil.rmtree(gen, ignore_errors=True)
            timed([ZRU, "sample", "gridded", gen, "--days", "1", "--lat", str(self.lat),
                   "--lon", str(self.lon), "--start", day(i).isoformat()])
            (gen / name(i)).rename(path)
        return path

    def zru_store(self, steps):
        base = self.work / f"base-zru-{steps}.zarr"
        if not base.exists():
            shutil.rmtree(self.work / "zru.zarr", ignore_errors=True)
            files = [self.file(0)] + ([self.file(steps - 1)] if steps > 1 else [])
            timed([ZRU, "ingest", "--config", "config", "--raw-root", "raw", *files], cwd=self.work)
            (self.work / "zru.zarr").rename(base)
        return base

    def xarray_store(self, steps):
        base = self.work / f"base-xarray-{steps}.zarr"
        if base.exists():
            return base
        first = xr.open_dataset(self.file(0))
        times = first.time.values[0] + np.arange(steps).astype("timedelta64[D]")
        template = first.chunk({"time": 1}).isel(time=np.zeros(steps, dtype=int)).assign_coords(time=times)
        template.time.encoding = first.time.encoding
        codec = zarr.codecs.ZstdCodec(level=3)
        encoding = {v: {"chunks": (1, CHUNKS["lat"], CHUNKS["lon"]), "compressors": [codec]}
                    for v in first.data_vars}
        encoding["time"] = {"chunks": (1024,), "compressors": [codec]}
        template.to_zarr(base, zarr_format=3, consolidated=True, compute=False, encoding=encoding)
        for i in sorted({0, steps - 1}):
            slot = xr.open_dataset(self.file(i)).drop_vars(["lat", "lon"])
            slot.to_zarr(base, region={"time": slice(i, i + 1)}, consolidated=True)
        return base

    def run_zru(self, op, steps):
        target = self.work / "zru.zarr"
        key = lambda i: f"sst/{name(i)}"  # noqa: E731
        if op == "append":
            cmd = [ZRU, "ingest", "--config", "config", "--raw-root", "raw", self.file(steps)]
        elif op == "overwrite":
            cmd = [ZRU, "ingest", "--config", "config", "--raw-root", "raw", self.file(steps - 1)]
        else:
            cmd = [ZRU, "remove", "--config", "config", "--raw-root", "raw", key(steps - 1)]
        return self.repeat(self.zru_store(steps), target, cmd)

    def run_xarray(self, op, steps):
        target = self.work / "xarray.zarr"
        index = steps if op == "append" else steps - 1
        cmd = [PYTHON, OPS, op, target, self.file(index)]
        return self.repeat(self.xarray_store(steps), target, cmd, seconds_from_stdout=True)

    def repeat(self, base, target, cmd, seconds_from_stdout=False):
        times, peaks, written = [], [], []
        for _ in range(self.runs):
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(base, target)
            before = tree_state(target)
            seconds, peak = measured(cmd, cwd=self.work, seconds_from_stdout=seconds_from_stdout)
            written.append(bytes_written(before, tree_state(target)))
            times.append(seconds)
            peaks.append(peak)
        return statistics.median(times), max(peaks), statistics.median(written)

    def floor(self, i):
        cmd = [PYTHON, OPS, "floor", "-", self.file(i)]
        times = [measured(cmd, cwd=self.work, seconds_from_stdout=True)[0] for _ in range(self.runs)]
        return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lat", type=int, default=4500)
    parser.add_argument("--lon", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--work", type=Path, default=ROOT / "bench/work-compare")
    args = parser.parse_args()
    if not ZRU.exists():
        sys.exit(f"{ZRU} not found: run `cargo build --release` first")
    args.work.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.work, args.lat, args.lon, args.runs)

    rows = []
    base = args.steps[0]
    for op in ["append", "overwrite", "blank"]:
        for steps in args.steps if op != "blank" else [base]:
            z = bench.run_zru(op, steps)
            x = bench.run_xarray(op, steps)
            floor = bench.floor(steps if op == "append" else steps - 1) if op != "blank" else None
            rows.append((op, steps, z, x, floor))
            print(f"  measured {op} at {steps} steps", file=sys.stderr, flush=True)

    print(f"\ngridded: {args.lat} x {args.lon}, 6 packed variables, chunks 1x1000x1000, zstd 3, Zarr V3; "
          f"median of {args.runs} runs; {os.cpu_count()} cores")
    header = (f"{'operation':<10}{'steps':>7}{'zru s':>8}{'xarray s':>10}{'xr/zru':>8}{'floor s':>9}"
              f"{'zru/floor':>10}{'zru MB':>8}{'xr MB':>8}{'zru MiB':>9}{'xr MiB':>8}")
    print(header)
    for op, steps, (zs, zp, zb), (xs, xp, xb), floor in rows:
        fl = f"{floor:>9.2f}" if floor else f"{'-':>9}"
        ratio = f"{zs / floor:>10.2f}" if floor else f"{'-':>10}"
        print(f"{op:<10}{steps:>7}{zs:>8.2f}{xs:>10.2f}{xs / zs:>8.1f}{fl}{ratio}"
              f"{zb / 1e6:>8.1f}{xb / 1e6:>8.1f}{zp:>9.0f}{xp:>8.0f}")
    by = {(op, steps): (z, x) for op, steps, z, x, _ in rows}
    if len(args.steps) > 1:
        hi = args.steps[-1]
        print("\nstore-length scaling (per-file time at the longest store / at the shortest):")
        for op in ["append", "overwrite"]:
            (z_hi, x_hi), (z_lo, x_lo) = by[(op, hi)], by[(op, base)]
            print(f"  {op:<9} zru {z_hi[0] / z_lo[0]:.2f}   xarray {x_hi[0] / x_lo[0]:.2f}")


if __name__ == "__main__":
    main()
