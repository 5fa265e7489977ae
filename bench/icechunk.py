#!/usr/bin/env python3
"""Plain Zarr against Icechunk (`"format": "icechunk"`): per-batch latency and bytes
written, and the latency of one more batch as the repository's history grows.

Usage: .venv/bin/python bench/icechunk.py [--only batch history]
           [--lat 4500 --lon 6000] [--flush-files 100 --flush-lat 720 --flush-lon 1440]
           [--history 1 100 1000] [--runs 3]

Needs `cargo build --release` (or ZRU_BIN). Prints Markdown tables (docs/benchmarks.md):
figures and ratios only, nothing is asserted.

- batch: one GHRSST-size file (--lat x --lon, six packed variables) appended by
  `zru ingest` to a store holding the day before; then --flush-files queued daily
  files (--flush-lat x --flush-lon) appended by one `zru flush` (one batch). Wall
  seconds (median of --runs, each in a fresh copy of the prepared store) and bytes the
  batch added under the store's directory (chunks; plus manifests, snapshot, repo info
  and transaction log for Icechunk).
- history: a store of a small grid (--hist-lat x --hist-lon, one chunk per slot)
  with N batches behind it (N daily files flushed with --batch-size 1: N commits),
  then --runs more days ingested one batch each: the median wall seconds of such a
  batch at N, the repository's repo info object (every commit rewrites it whole) and
  the copies of it Icechunk keeps under `overwritten/` (one per update).
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
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))
BACKENDS = ("zarr", "icechunk")


def config(backend: str, chunks: dict) -> dict:
    cfg = {
        "name": "sst", "handler": "gridded", "key_patterns": [r"^sst/.*\.nc$"],
        "store": "store", "append_dim": "time", "chunks": chunks, "time_step": "1 day",
    }
    if backend == "icechunk":
        cfg["format"] = "icechunk"
    return cfg


def run(args, cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(ZRU), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"zru {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def samples(out: Path, days: int, lat: int, lon: int, start: date) -> list[Path]:
    run(["sample", "gridded", out, "--days", days, "--lat", lat, "--lon", lon,
         "--start", start.isoformat()], cwd=out.parent)
    return sorted(out.glob("*.nc"))


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prepared(root: Path, backend: str, chunks: dict, first: Path) -> Path:
    """A work directory whose store holds `first` (one batch)."""
    work = root / f"prep-{backend}"
    (work / "config").mkdir(parents=True)
    (work / "config" / "sst.json").write_text(json.dumps(config(backend, chunks)))
    raw = work / "raw" / "sst"
    raw.mkdir(parents=True)
    shutil.copy(first, raw / first.name)
    run(["ingest", "--config", "config", "--raw-root", "raw", raw / first.name], cwd=work)
    return work


def measure_batch(root: Path, work: Path, files: list[Path], runs: int) -> tuple[float, int]:
    """Median wall seconds of one batch applying `files` (queued, then one flush), and
    the bytes it added to the store."""
    seconds, added = [], 0
    for i in range(runs):
        copy = root / f"run{i}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(work, copy, symlinks=True)
        raw = copy / "raw" / "sst"
        for f in files:
            shutil.copy(f, raw / f.name)
        paths = [raw / f.name for f in files]
        run(["ingest", "--no-flush", "--config", "config", "--raw-root", "raw", *paths],
            cwd=copy)
        before = tree_bytes(copy / "store")
        seconds.append(run(["flush", "--config", "config", "--raw-root", "raw",
                            "--batch-size", len(files) + 1], cwd=copy))
        added = tree_bytes(copy / "store") - before
        shutil.rmtree(copy)
    return statistics.median(seconds), added


def batch_rows(tmp: Path, args) -> None:
    print(f"\n### One batch: plain Zarr vs Icechunk (local filesystem, median of {args.runs})\n")
    print("| batch | backend | wall s | MB written | wall vs zarr | bytes vs zarr |")
    print("|---|---|---:|---:|---:|---:|")
    cases = [
        (f"1 file {args.lat}x{args.lon}", args.lat, args.lon, 1,
         {"time": 1, "lat": 1000, "lon": 1000}),
        (f"{args.flush_files} files {args.flush_lat}x{args.flush_lon}", args.flush_lat,
         args.flush_lon, args.flush_files, {"time": 1, "lat": 500, "lon": 1000}),
    ]
    for name, lat, lon, count, chunks in cases:
        case = tmp / f"case-{lat}x{lon}-{count}"
        gen = case / "gen"
        gen.mkdir(parents=True)
        files = samples(gen, count + 1, lat, lon, date(2024, 1, 1))
        figures = {}
        for backend in BACKENDS:
            work = prepared(case, backend, chunks, files[0])
            figures[backend] = measure_batch(case, work, files[1:], args.runs)
            shutil.rmtree(work)
        z_s, z_b = figures["zarr"]
        for backend in BACKENDS:
            s, b = figures[backend]
            print(f"| {name} | {backend} | {s:.2f} | {b / 1e6:.1f} | {s / z_s:.2f}x | "
                  f"{b / max(z_b, 1):.3f}x |")
        shutil.rmtree(case)


def repo_info_bytes(store: Path) -> tuple[int, int]:
    """Size of the repository's repo info object, and of the copies of it Icechunk kept
    under `overwritten/` (one per update); zeros for a plain store."""
    repo = store / "repo"
    size = repo.stat().st_size if repo.is_file() else 0
    kept = store / "overwritten"
    return size, tree_bytes(kept) if kept.is_dir() else 0


def history_rows(tmp: Path, args) -> None:
    print(f"\n### One more batch as history grows ({args.hist_lat}x{args.hist_lon} grid, "
          f"one file per batch, median of {args.runs})\n")
    print("| commits before | backend | wall s per batch | vs 1 commit | repo info KB "
          "| overwritten/ MB |")
    print("|---:|---|---:|---:|---:|---:|")
    most = max(args.history)
    gen = tmp / "hist-gen"
    gen.mkdir(parents=True)
    files = samples(gen, most + args.runs, args.hist_lat, args.hist_lon, date(2000, 1, 1))
    chunks = {"time": 1, "lat": args.hist_lat, "lon": args.hist_lon}
    base = {}
    for n in sorted(args.history):
        for backend in BACKENDS:
            work = tmp / f"hist-{backend}-{n}"
            (work / "config").mkdir(parents=True)
            (work / "config" / "sst.json").write_text(json.dumps(config(backend, chunks)))
            raw = work / "raw" / "sst"
            raw.mkdir(parents=True)
            history = []
            for f in files[:n]:
                shutil.copy(f, raw / f.name)
                history.append(raw / f.name)
            run(["ingest", "--no-flush", "--config", "config", "--raw-root", "raw", *history],
                cwd=work)
            build = run(["flush", "--config", "config", "--raw-root", "raw", "--batch-size", 1],
                        cwd=work)
            seconds = []
            for f in files[n:n + args.runs]:
                shutil.copy(f, raw / f.name)
                seconds.append(run(["ingest", "--config", "config", "--raw-root", "raw",
                                    raw / f.name], cwd=work))
            s = statistics.median(seconds)
            base.setdefault(backend, s)
            info, kept = repo_info_bytes(work / "store")
            print(f"| {n} | {backend} | {s:.3f} | {s / base[backend]:.2f}x | "
                  f"{info / 1e3:.1f} | {kept / 1e6:.2f} |", flush=True)
            print(f"<!-- building {n} batches took {build:.1f} s ({backend}) -->", flush=True)
            shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=["batch", "history"],
                        default=["batch", "history"])
    parser.add_argument("--lat", type=int, default=4500)
    parser.add_argument("--lon", type=int, default=6000)
    parser.add_argument("--flush-files", type=int, default=100)
    parser.add_argument("--flush-lat", type=int, default=720)
    parser.add_argument("--flush-lon", type=int, default=1440)
    parser.add_argument("--history", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--hist-lat", type=int, default=8)
    parser.add_argument("--hist-lon", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not ZRU.exists():
        sys.exit(f"{ZRU} not found: cargo build --release --bins (or set ZRU_BIN)")
    print(f"zru {ZRU}; load average before: {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="zru-bench-icechunk-") as tmp:
        if "batch" in args.only:
            batch_rows(Path(tmp), args)
        if "history" in args.only:
            history_rows(Path(tmp), args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
