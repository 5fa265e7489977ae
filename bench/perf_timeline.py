#!/usr/bin/env python3
"""Where the time of one zru run goes, thread by thread, from a `perf record` profile.

    perf record -e cpu-clock -F 2000 -g -o perf.data target/release/zru ingest ...
    python3 bench/perf_timeline.py perf.data [--bucket 0.025]

`cpu-clock` is a software event, so this works on virtual machines whose hardware
counters perf cannot read. Prints, for each busy thread, one character per time
bucket: R = netCDF-C/HDF5/zlib reading, Z = zstd encoding, W = writing files,
. = anything else, blank = not running. Then the samples per thread and library.
A reader thread of R's with encoder threads of Z's beside it is the overlap
bench/compare's zru/floor column measures; gaps in the R row are the reader waiting.
"""
import argparse
import collections
import re
import subprocess

READ = ("libz", "libhdf5", "libnetcdf", "inflate", "adler32", "H5")
ENCODE = ("ZSTD", "HUF_", "HIST_", "zstd")
WRITE = ("write", "rename", "fsync")


def samples(path):
    """(thread id, seconds, [frames]) of each sample, innermost frame first."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "tid,time,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    result, current = [], None
    for line in out.splitlines():
        head = re.match(r"\s*(\d+)\s+([\d.]+):\s*$", line)
        if head:
            current = (int(head.group(1)), float(head.group(2)), [])
            result.append(current)
        elif line.strip() and current is not None:
            current[2].append(line.strip())
    return result


def kind(frames):
    top = frames[0] if frames else ""
    if any(k in top for k in READ):
        return "R"
    if any(k in top for k in ENCODE):
        return "Z"
    if any(k in " ".join(frames[:6]) for k in WRITE):
        return "W"
    return "."


def library(frame):
    found = re.search(r"\(([^)]*)\)\s*$", frame)
    return found.group(1).rsplit("/", 1)[-1] if found else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile")
    parser.add_argument("--bucket", type=float, default=0.025, help="seconds per character")
    args = parser.parse_args()
    data = samples(args.profile)
    if not data:
        raise SystemExit(f"{args.profile}: no samples")
    start = min(t for _, t, _ in data)
    buckets = int((max(t for _, t, _ in data) - start) / args.bucket) + 1
    rows = collections.defaultdict(lambda: [collections.Counter() for _ in range(buckets)])
    per_library = collections.defaultdict(collections.Counter)
    for tid, t, frames in data:
        rows[tid][int((t - start) / args.bucket)][kind(frames)] += 1
        per_library[tid][library(frames[0]) if frames else "?"] += 1
    busiest = sorted(rows, key=lambda tid: -sum(per_library[tid].values()))
    print(f"{buckets * args.bucket:.2f} s in buckets of {args.bucket} s")
    for tid in busiest:
        total = sum(per_library[tid].values())
        if total < 10:
            continue
        line = "".join(c.most_common(1)[0][0] if c else " " for c in rows[tid])
        print(f"{tid:>8} {total:>6} {line}")
    print("\nsamples per thread and library")
    for tid in busiest:
        top = ", ".join(f"{lib} {n}" for lib, n in per_library[tid].most_common(4))
        print(f"{tid:>8} {top}")


if __name__ == "__main__":
    main()
