#!/usr/bin/env python3
"""Per-file cost of zru's append, overwrite and blank on full-size GHRSST-like files,
and how it changes with the length of the store.

Usage: .venv/bin/python bench/gridded.py [--lat 4500 --lon 6000] [--runs 3]

Prints a table of median seconds, throughput of the file's packed bytes and peak
memory (max RSS of the zru process), then the ratios the issue asks for. Each
measured operation runs against a fresh copy of a prepared store, so runs are
independent. Long stores are made with time_step "1 day": ingesting day 1 and day N
gives an N-step axis whose middle slots are blank (no chunks), which is exactly what
the per-file cost could depend on (metadata size, time-axis search, provenance).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))


def sample_name(day: date) -> str:
    return f"{day:%Y%m%d}120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"


def run(args, cwd):
    """Runs zru, returning (seconds, max RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(ZRU), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"zru {' '.join(args)} failed:\n{out}\n{err}")
    return seconds, usage.ru_maxrss / 1024, out


def generate(work: Path, lat: int, lon: int, days: list, revision: int = 0) -> None:
    out = work / ("raw/sst" if revision == 0 else f"rev{revision}")
    for day in days:
        if (out / sample_name(day)).exists():
            continue
        tmp = work / "gen"
        shutil.rmtree(tmp, ignore_errors=True)
        run(["sample", "gridded", str(tmp), "--days", "1", "--lat", str(lat), "--lon", str(lon),
             "--start", day.isoformat(), "--revision", str(revision)], cwd=work)
        out.mkdir(parents=True, exist_ok=True)
        (tmp / sample_name(day)).rename(out / sample_name(day))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lat", type=int, default=4500)
    parser.add_argument("--lon", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "bench/work")
    args = parser.parse_args()
    if not ZRU.exists():
        sys.exit(f"{ZRU} not found: run `cargo build --release` first")

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    (work / "config").mkdir(exist_ok=True)
    config = {
        "name": "sst", "handler": "gridded", "key_patterns": ["^sst/.*\\.nc$"],
        "store": "store.zarr", "append_dim": "time",
        "chunks": {"time": 1, "lat": 1000, "lon": 1000}, "time_step": "1 day",
    }
    (work / "config/sst.json").write_text(json.dumps(config))

    d0 = date(2024, 1, 1)
    day = lambda i: d0 + timedelta(days=i)  # noqa: E731
    lengths = [1, 10, 1000]
    needed = sorted({day(0), day(1)} | {day(n - 1) for n in lengths} | {day(n) for n in lengths})
    print(f"generating {len(needed)} files of {args.lat} x {args.lon} ...", flush=True)
    generate(work, args.lat, args.lon, needed)
    file_bytes = (work / "raw/sst" / sample_name(day(1))).stat().st_size
    packed_bytes = args.lat * args.lon * (2 + 1 + 1 + 1 + 2 + 2)  # the six variables, packed

    def key(i):
        return f"sst/{sample_name(day(i))}"

    def prepared(name, steps):
        """A store with `steps` slots (day 0 .. day steps-1), built once and cached."""
        store = work / f"prepared-{name}.zarr"
        if not store.exists():
            target = work / "store.zarr"
            shutil.rmtree(target, ignore_errors=True)
            files = [work / "raw" / key(0)] + ([work / "raw" / key(steps - 1)] if steps > 1 else [])
            run(["ingest", "--config", "config", "--raw-root", "raw", *map(str, files)], cwd=work)
            target.rename(store)
        return store

    def measure(label, steps, op):
        times, peaks = [], []
        for _ in range(args.runs):
            target = work / "store.zarr"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(prepared(f"{steps}", steps), target)
            if op == "overwrite":
                # Re-ingesting the last slot's file costs what a revision costs.
                seconds, peak, _ = run(["ingest", "--config", "config", "--raw-root", "raw",
                                        str(work / "raw" / key(steps - 1))], cwd=work)
            elif op == "append":
                seconds, peak, _ = run(["ingest", "--config", "config", "--raw-root", "raw",
                                        str(work / "raw" / key(steps))], cwd=work)
            else:
                seconds, peak, _ = run(["remove", "--config", "config", "--raw-root", "raw", key(steps - 1)], cwd=work)
            times.append(seconds)
            peaks.append(peak)
        return label, steps, statistics.median(times), max(peaks)

    rows = []
    for steps in lengths:
        rows.append(measure("append", steps, "append"))
    for steps in [2, 10, 1000]:
        rows.append(measure("overwrite", steps, "overwrite"))
    for steps in [2, 10, 1000]:
        rows.append(measure("blank", steps, "blank"))

    print(f"\nfile: {args.lat} x {args.lon}, 6 packed variables ({packed_bytes / 1e6:.0f} MB packed, "
          f"{file_bytes / 1e6:.0f} MB zlib netCDF-4); chunks 1 x 1000 x 1000, zstd 3; "
          f"median of {args.runs} runs; {os.cpu_count()} cores")
    print(f"{'operation':<10} {'store steps':>11} {'seconds':>8} {'MB/s packed':>12} {'peak MiB':>9}")
    for label, steps, seconds, peak in rows:
        print(f"{label:<10} {steps:>11} {seconds:>8.3f} {packed_bytes / 1e6 / seconds:>12.1f} {peak:>9.0f}")
    by = {(label, steps): s for label, steps, s, _ in rows}
    print("\nratios (flat in store length means close to 1.0):")
    print(f"  append    1000 / 10 steps: {by[('append', 1000)] / by[('append', 10)]:.2f}")
    print(f"  overwrite 1000 / 10 steps: {by[('overwrite', 1000)] / by[('overwrite', 10)]:.2f}")
    print(f"  blank     1000 / 10 steps: {by[('blank', 1000)] / by[('blank', 10)]:.2f}")
    print(f"  append / blank (blank erases chunks): {by[('append', 10)] / by[('blank', 10)]:.1f}")


if __name__ == "__main__":
    main()
