#!/usr/bin/env python3
"""Files per second of `zru flush` of N queued daily files versus ingesting them one
event at a time (one `zru ingest FILE` per file: enqueue, lock, one transaction, ledger,
ack), and the queue's overhead per event.

Usage: .venv/bin/python bench/pipeline.py [--files 100] [--lat 720 --lon 1440]

Needs `cargo build --release` (or ZRU_BIN). Prints a Markdown table (docs/benchmarks.md).
Queue overhead is measured without store work: the enqueue of N events
(`zru ingest --no-flush`), and a flush of N redelivered events that the ledger
skips as stale (receive, plan, ledger, ack).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))
CONFIG = {
    "name": "sst", "handler": "gridded", "key_patterns": [r"^sst/.*\.nc$"],
    "store": "data/zarr/sst.zarr", "append_dim": "time",
    "chunks": {"time": 1, "lat": 500, "lon": 1000}, "time_step": "1 day",
}


def run(args, cwd) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([str(ZRU), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"zru {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def write_samples(samples: Path, days: int, lat: int, lon: int) -> list[str]:
    """Generated daily files (`zru sample gridded`) in `samples`; their names in day order."""
    run(["sample", "gridded", samples, "--days", days, "--lat", lat, "--lon", lon], cwd=samples.parent)
    return sorted(p.name for p in samples.glob("*.nc"))


def workdir(root: Path, samples: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config" / "sst.json").write_text(json.dumps(CONFIG))
    shutil.copytree(samples, root / "data" / "raw" / "sst")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lat", type=int, default=720)
    parser.add_argument("--lon", type=int, default=1440)
    args = parser.parse_args()
    if not ZRU.is_file():
        sys.exit(f"no zru binary at {ZRU}: cargo build --release")
    with tempfile.TemporaryDirectory(prefix="zru-bench-pipeline-") as tmp:
        tmp = Path(tmp)
        samples = tmp / "samples"
        files = write_samples(samples, args.files, args.lat, args.lon)

        batch = workdir(tmp / "batch", samples)
        paths = [f"data/raw/sst/{f}" for f in files]
        enqueue_s, _ = run(["ingest", "--no-flush", *paths], cwd=batch)
        flush_s, out = run(["flush"], cwd=batch)
        assert out.count("\tappended\t") == len(files), out

        single = workdir(tmp / "single", samples)
        single_s = 0.0
        for path in paths:
            seconds, out = run(["ingest", path], cwd=single)
            assert "\tappended\t" in out, out
            single_s += seconds

        # Deliver the whole history again, as S3 events older than what the ledger
        # holds: every event is received, planned, skipped as stale and acknowledged.
        events = [{"eventTime": "2024-01-01T00:00:00Z", "eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": "raw"},
                          "object": {"key": f"sst/{f}", "sequencer": f"{i + 1:X}"}}}
                  for i, f in enumerate(files)]
        doc = batch / "history.json"
        doc.write_text(json.dumps({"Records": events}))
        run(["enqueue", doc], cwd=batch)
        skip_s, out = run(["flush"], cwd=batch)
        assert out.count("\tskipped(stale)\t") == len(files), out

    n = len(files)
    print(f"{n} daily files of {args.lat} x {args.lon} (6 variables), release build\n")
    print("| what | seconds | files/s |")
    print("|---|---|---|")
    print(f"| `zru ingest --no-flush` of {n} files, then one `zru flush` | "
          f"{enqueue_s + flush_s:.2f} | {n / (enqueue_s + flush_s):.1f} |")
    print(f"| {n} x `zru ingest FILE` (one event per process and transaction) | "
          f"{single_s:.2f} | {n / single_s:.1f} |")
    print(f"\nqueue overhead per event: enqueue {1000 * enqueue_s / n:.2f} ms "
          f"(one process for {n} events), receive + ledger check + ack of a stale event "
          f"{1000 * skip_s / n:.2f} ms (one flush of {n})")


if __name__ == "__main__":
    main()
