#!/usr/bin/env python3
"""zru against xarray + zarr-python, and against the floor, side by side.

Same full-size GHRSST-like files (4500 x 6000, six packed variables, zlib netCDF-4),
same chunks (1 x 1000 x 1000 for data, 1024 for 1-D time arrays), same codec
(zstd level 3), Zarr V3. Each measured call runs in a fresh process against a fresh
copy of a prepared store; the table shows medians of --runs runs.

- zru: `zru ingest` / `zru remove` (release build).
- xarray: open_dataset + open_zarr + time search + to_zarr(append_dim=...|region=...),
  blanking by writing NaN over the slot (bench/xarray_ops.py).
- xarray+dask ("dask" columns): the same append and overwrite with the file opened
  with dask chunks equal to the store's, so that decoding and encoding run on every
  core (append, overwrite and flush rows).
- floor: netCDF-C reading the file's variables once, raw (netCDF4-python with
  auto mask/scale off): the part no implementation of this design can skip.

Stores of N steps hold real data in their first and last slot; the slots between
have time values but no chunks (zru: time_step gap; xarray: to_zarr(compute=False)),
so every N costs the same to build and only the axis length differs.

More row groups (--only gridded passthrough argo flush selects them):

- passthrough: the same files appended and overwritten (store of the first --steps
  steps) in the layout `zru config suggest` prints for them (the files' chunks
  1 x 500 x 1000, byte shuffle + zlib 4, V3), where zru copies the compressed chunks.
  Rows: zru (ZRU_DECODE=passthrough), zru decoding and re-encoding
  (ZRU_DECODE=parallel), xarray and xarray+dask writing the same chunks and codecs
  (numcodecs shuffle + zlib), the floor; wall and CPU seconds. With `flush` also
  selected, the flush below in the layout suggested for its files.

- argo: one single-cycle Argo file into a store of --profiles generated profiles
  (bench/profiles.py's collection, 20 levels in store and file alike, so that a plain
  to_zarr append fits): a new cycle (appended along N_PROF) and a revised existing
  cycle (overwritten in place). zru: `zru ingest`; xarray: open_dataset + open_zarr +
  a search of the identity columns (PLATFORM_NUMBER, CYCLE_NUMBER, DIRECTION) +
  to_zarr(region=...) or to_zarr(append_dim="N_PROF"), into a store xarray made from
  the same profiles with the zru store's chunks and codec.
- flush: --flush-files queued daily files (bench/pipeline.py's config and samples,
  --flush-lat x --flush-lon) appended to a store holding the day before them. zru:
  `zru ingest --no-flush` of every file, then one `zru flush`; xarray: one process
  appending the files in turn (open_dataset + open_zarr + to_zarr(append_dim=...));
  floor: netCDF-C reading every file once. A second row divides by the file count.

After every measured run, both stores are read back with xarray and checked against
the files (the appended or overwritten profile, the flushed days).
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

import pipeline
import profiles
import xarray_ops

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parent.parent
ZRU = Path(os.environ.get("ZRU_BIN", ROOT / "target/release/zru"))
PYTHON = sys.executable
OPS = Path(__file__).resolve().parent / "xarray_ops.py"
D0 = date(1990, 1, 1)  # day 10,000 must fit int32 seconds since 1981
CHUNKS = {"time": 1, "lat": 1000, "lon": 1000}
GROUPS = ["gridded", "passthrough", "argo", "flush"]
LEVELS = 20  # N_LEVELS of the generated store and of the single-cycle files alike
PROF = xarray_ops.PROF


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


def measured(cmd, cwd=None, seconds_from_stdout=False, env=None):
    """Runs a command under GNU time; returns (seconds, peak RSS MiB, CPU seconds).

    Seconds are the wall time of the process and CPU its user + system time, or what
    it printed (xarray_ops.py reports the operation alone, without interpreter
    start-up: wall then CPU seconds). `env` adds variables to the environment."""
    report = Path(cwd or ".") / ".time-report"
    full = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(report), *map(str, cmd)]
    start = time.perf_counter()
    proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}")
    peak_kib, user, system = report.read_text().split()[-3:]
    cpu = float(user) + float(system)
    if seconds_from_stdout:
        seconds, cpu = map(float, proc.stdout.split()[-2:])
    return seconds, int(peak_kib) / 1024, cpu


def tree_state(path):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


def bytes_written(before, after):
    return sum(size for p, (size, mtime) in after.items() if before.get(p) != (size, mtime))


def ledger(store):
    """The zru ledger beside a store."""
    return store.with_name(store.name + ".zru-ledger.json")


def move_store(source, target):
    """Renames a store made by zru, and its ledger."""
    source.rename(target)
    if ledger(source).exists():
        ledger(source).rename(ledger(target))


def fresh_copy(base, target):
    """Replaces `target` (and its ledger) by a copy of the store `base` (and of its ledger)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(base, target)
    ledger(target).unlink(missing_ok=True)
    if ledger(base).exists():
        shutil.copyfile(ledger(base), ledger(target))


def repeat(runs, base, target, cmds, cwd, seconds_from_stdout=False, check=None, env=None):
    """Runs `cmds` in turn on a fresh copy of `base` at `target`, `runs` times.

    Returns the median seconds (summed over the commands), the highest peak RSS (MiB),
    the median bytes written and the median CPU seconds; `check(target)` runs after
    every run."""
    times, peaks, written, cpus = [], [], [], []
    for _ in range(runs):
        fresh_copy(base, target)
        before = tree_state(target)
        results = [measured(cmd, cwd=cwd, seconds_from_stdout=seconds_from_stdout, env=env) for cmd in cmds]
        written.append(bytes_written(before, tree_state(target)))
        times.append(sum(seconds for seconds, _, _ in results))
        peaks.append(max(peak for _, peak, _ in results))
        cpus.append(sum(cpu for _, _, cpu in results))
        if check:
            check(target)
    return statistics.median(times), max(peaks), statistics.median(written), statistics.median(cpus)


def floor_seconds(runs, paths, cwd):
    """Median seconds of netCDF-C reading every variable of `paths` once, in one process."""
    cmd = [PYTHON, OPS, "floor", "-", *paths]
    return statistics.median(measured(cmd, cwd=cwd, seconds_from_stdout=True)[0] for _ in range(runs))


def same_values(expected, actual):
    """Decoded values agree: text trimmed, floats to float32 rounding, NaN and NaT equal."""
    expected, actual = xarray_ops.trimmed(expected), xarray_ops.trimmed(actual)
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(actual, expected, rtol=1e-6, equal_nan=True)
    else:
        np.testing.assert_array_equal(actual, expected)


def cf_packing(var):
    """The CF encoding keys of a variable read from a file (dtype, packing, fill, time units)."""
    keys = ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar")
    return {k: var.encoding[k] for k in keys if k in var.encoding}


def encode_like(ds, zru_store):
    """Sets, in each variable's own encoding (dtype, packing and fill kept), the chunks
    and compressors of the zru store's array of that name.

    Text variables lose their `_FillValue`: xarray writes a bytes fill to a V3 store
    that it then cannot read back ("Failed to decode fill_value")."""
    group = zarr.open_group(zru_store, mode="r")
    for name, var in ds.variables.items():
        var.encoding.update(chunks=group[name].chunks, compressors=list(group[name].compressors))
        if var.encoding.get("dtype", var.dtype).kind == "S":
            var.encoding["_FillValue"] = None
    return ds


def xarray_copy(source, zru_store, base):
    """`base`, made once by xarray itself from `source` (to_zarr, V3, consolidated) with
    the zru store's chunks and codec (see encode_like)."""
    if not base.exists():
        making = base.with_name(f"making-{base.name}")
        shutil.rmtree(making, ignore_errors=True)
        ds = encode_like(xr.open_dataset(source), zru_store)
        ds.to_zarr(making, zarr_format=3, consolidated=True)
        making.rename(base)
    return base


class Bench:
    """The gridded rows: stores chunked 1 x 1000 x 1000, zstd 3 (zru's default codec)."""
    layout = ""  # tells apart the stores and the config of another layout (Passthrough)

    def __init__(self, work, lat, lon, runs):
        self.work, self.lat, self.lon, self.runs = work, lat, lon, runs
        self.raw = work / "raw" / "sst"
        self.raw.mkdir(parents=True, exist_ok=True)
        self.chunks = CHUNKS
        self.write_config({
            "name": "sst", "handler": "gridded", "key_patterns": ["^sst/.*\\.nc$"],
            "append_dim": "time", "chunks": CHUNKS, "compressor": {"name": "zstd", "level": 3}})

    def write_config(self, config):
        """Writes the dataset config (into config{layout}/, store zru{layout}.zarr, 1-day steps)."""
        (self.work / self.config).mkdir(exist_ok=True)
        config = {**config, "store": self.store, "time_step": "1 day"}
        (self.work / self.config / "sst.json").write_text(json.dumps(config))

    @property
    def config(self):
        return f"config{self.layout}"

    @property
    def store(self):
        return f"zru{self.layout}.zarr"

    def compressors(self, dtype):
        """The xarray store's codecs for a variable of packed type `dtype`: zru's."""
        return [zarr.codecs.ZstdCodec(level=3)]

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
        base = self.work / f"base-zru{self.layout}-{steps}.zarr"
        if not base.exists():
            shutil.rmtree(self.work / self.store, ignore_errors=True)
            files = [self.file(0)] + ([self.file(steps - 1)] if steps > 1 else [])
            _, out = timed([ZRU, "ingest", "--config", self.config, "--raw-root", "raw", *files], cwd=self.work)
            self.check_made(out)
            move_store(self.work / self.store, base)
        return base

    def check_made(self, out):
        """Checks the output of the ingest that made the zru base store (nothing here)."""

    def xarray_store(self, steps):
        base = self.work / f"base-xarray{self.layout}-{steps}.zarr"
        if base.exists():
            return base
        first = xr.open_dataset(self.file(0))
        times = first.time.values[0] + np.arange(steps).astype("timedelta64[D]")
        template = first.chunk({"time": 1}).isel(time=np.zeros(steps, dtype=int)).assign_coords(time=times)
        # The file's own packing (int16/int8 with scale, offset and fill) as zru keeps
        # it; `encoding=` replaces a variable's encoding, so it must carry them.
        encoding = {v: {**cf_packing(first[v]), "chunks": (1, self.chunks["lat"], self.chunks["lon"]),
                        "compressors": self.compressors(first[v].encoding["dtype"])} for v in first.data_vars}
        encoding["time"] = {**cf_packing(first.time), "chunks": (1024,),
                            "compressors": self.compressors(first.time.encoding["dtype"])}
        template.to_zarr(base, zarr_format=3, consolidated=True, compute=False, encoding=encoding)
        for i in sorted({0, steps - 1}):
            slot = xr.open_dataset(self.file(i)).drop_vars(["lat", "lon"])
            slot.to_zarr(base, region={"time": slice(i, i + 1)}, consolidated=True)
        return base

    def run_zru(self, op, steps, decode=None):
        """zru's `op` into a store of `steps` steps; `decode`: ZRU_DECODE's value, if set."""
        target = self.work / self.store
        key = lambda i: f"sst/{name(i)}"  # noqa: E731
        args = ["--config", self.config, "--raw-root", "raw"]
        if op == "append":
            cmd = [ZRU, "ingest", *args, self.file(steps)]
        elif op == "overwrite":
            cmd = [ZRU, "ingest", *args, self.file(steps - 1)]
        else:
            cmd = [ZRU, "remove", *args, key(steps - 1)]
        env = {"ZRU_DECODE": decode} if decode else None
        return repeat(self.runs, self.zru_store(steps), target, [cmd], self.work, env=env)

    def run_xarray(self, op, steps, dask=False):
        target = self.work / f"xarray{self.layout}.zarr"
        index = steps if op == "append" else steps - 1
        cmd = [PYTHON, OPS, f"{op}-dask" if dask else op, target, self.file(index)]
        return repeat(self.runs, self.xarray_store(steps), target, [cmd], self.work, seconds_from_stdout=True)

    def floor(self, i):
        return floor_seconds(self.runs, [self.file(i)], self.work)


class Passthrough(Bench):
    """The gridded rows in the layout `zru config suggest` prints for the files (their
    chunks 1 x 500 x 1000, zlib level 4 after a byte shuffle), where zru copies the
    files' compressed chunks (passthrough); the xarray stores are written with the same
    chunks and codecs (numcodecs shuffle + zlib)."""
    layout = "-pass"

    def __init__(self, work, lat, lon, runs):
        super().__init__(work, lat, lon, runs)
        _, out = timed([ZRU, "config", "suggest", self.file(0), "--name", "sst"])
        config = json.loads(out)
        if config["compressor"] != {"name": "zlib", "level": 4, "shuffle": True}:
            sys.exit(f"zru config suggest: compressor {config['compressor']}, expected zlib 4 + shuffle")
        self.chunks = config["chunks"]
        self.level = config["compressor"]["level"]
        self.write_config(config)

    def compressors(self, dtype):
        return [zarr.codecs.numcodecs.Shuffle(elementsize=np.dtype(dtype).itemsize),
                zarr.codecs.numcodecs.Zlib(level=self.level)]

    def check_made(self, out):
        check_passed_through(out)


def check_passed_through(out):
    """Every event line of a zru ingest says it copied chunks compressed (else the
    layout is not one where passthrough applies, and no row would measure it)."""
    lines = out.splitlines()
    if not lines or not all("(passthrough: " in line for line in lines):
        sys.exit(f"no passthrough in the ingest of the base store:\n{out}")


def passthrough_rows(bench, steps):
    """(operation, zru passthrough, zru parallel decode, xarray, xarray+dask, floor) of
    append and overwrite into a store of `steps` steps, all in the passthrough layout."""
    rows = []
    for op in ["append", "overwrite"]:
        copied = bench.run_zru(op, steps, decode="passthrough")
        decoded = bench.run_zru(op, steps, decode="parallel")
        x = bench.run_xarray(op, steps)
        d = bench.run_xarray(op, steps, dask=True)
        rows.append((op, copied, decoded, x, d, bench.floor(steps if op == "append" else steps - 1)))
        print(f"  measured {op} at {steps} steps, passthrough layout", file=sys.stderr, flush=True)
    return rows


def print_passthrough(caption, rows):
    """The passthrough layout's table: wall and CPU seconds of each path, the floor,
    zru / floor and xarray+dask / zru (passthrough), peak RSS."""
    print()
    print(caption)
    print(f"{'operation':<11}{'path':<17}{'wall s':>8}{'cpu s':>8}{'peak MiB':>9}{'/ floor':>9}"
          f"{'dask / it':>10}")
    for op, copied, decoded, x, d, floor in rows:
        for path, (s, peak, _, cpu) in (("zru passthrough", copied), ("zru parallel", decoded),
                                        ("xarray", x), ("xarray+dask", d)):
            ratio = f"{d[0] / s:>10.1f}" if path.startswith("zru") else f"{'-':>10}"
            print(f"{op:<11}{path:<17}{fixed(s, 8, 2)}{fixed(cpu, 8, 2)}{peak:>9.0f}{s / floor:>9.2f}{ratio}")
        print(f"{op:<11}{'netCDF-C floor':<17}{fixed(floor, 8, 2)}{'-':>8}{'-':>9}{1:>9.2f}{'-':>10}")


def check_profile(store, path, row, rows):
    """The store has `rows` profiles, the file's profile once, at `row`, with its values."""
    ds, z = xr.open_dataset(path), xr.open_zarr(store)
    assert z.sizes[PROF] == rows, f"{store}: {z.sizes[PROF]} profiles, expected {rows}"
    found = list(xarray_ops.profile_rows(z, ds))
    assert found == [row], f"{store}: profile of {path.name} at rows {found}, expected [{row}]"
    for name in ds.data_vars:
        same_values(ds[name].values, z[name].isel({PROF: [row]}).values)


class Argo:
    """A single-cycle Argo file into a store of `size` generated profiles
    (bench/profiles.py's collection and single-cycle files)."""

    def __init__(self, work, size, runs):
        self.work, self.size, self.runs = work / "argo", size, runs
        raw = self.work / "raw" / "argo"
        raw.mkdir(parents=True, exist_ok=True)
        self.collection = raw / f"all{size}.nc"
        self.new, self.revised = profiles.single_cycle_files(raw, size, LEVELS)

    def zru_store(self):
        base = self.work / f"base-zru-{self.size}.zarr"
        if not base.exists():
            if not self.collection.exists():
                profiles.write_profiles(self.collection, 0, self.size, LEVELS)
            making = self.work / "making.zarr"
            shutil.rmtree(making, ignore_errors=True)
            timed([ZRU, *profiles.ingest_args(self.work, making, self.collection)], cwd=self.work)
            move_store(making, base)
        return base

    def xarray_store(self):
        return xarray_copy(self.collection, self.zru_store(),
                           self.work / f"base-xarray-{self.size}.zarr")

    def rows(self):
        """(operation, profiles, zru, xarray, no dask, floor) of a new cycle and a revised one."""
        zru_base, xarray_base = self.zru_store(), self.xarray_store()
        out = []
        for op, path, row, rows in (("argo new", self.new, self.size, self.size + 1),
                                    ("argo rev", self.revised, self.size // 2, self.size)):
            check = lambda store: check_profile(store, path, row, rows)  # noqa: E731
            target = self.work / "zru.zarr"
            cmd = [ZRU, *profiles.ingest_args(self.work, target, path)]  # writes the config
            z = repeat(self.runs, zru_base, target, [cmd], self.work, check=check)
            target = self.work / "xarray.zarr"
            cmd = [PYTHON, OPS, "profile", target, path]
            x = repeat(self.runs, xarray_base, target, [cmd], self.work, seconds_from_stdout=True, check=check)
            out.append((op, self.size, z, x, None, floor_seconds(self.runs, [path], self.work)))
            print(f"  measured {op} at {self.size} profiles", file=sys.stderr, flush=True)
        return out


class Flush:
    """`files` queued daily files (bench/pipeline.py's config and samples) appended to
    a store holding the day before them; with `passthrough`, into the layout that
    `zru config suggest` prints for the files (their chunks, shuffle + zlib)."""

    def __init__(self, work, files, lat, lon, runs, passthrough=False):
        self.work, self.runs = work / f"flush-{files}-{lat}x{lon}", runs
        if not self.work.exists():
            making = work / "making-flush"
            shutil.rmtree(making, ignore_errors=True)
            making.mkdir()
            pipeline.write_samples(making / "samples", files + 1, lat, lon)
            pipeline.workdir(making / "work", making / "samples")
            (making / "work").rename(self.work)
            shutil.rmtree(making)
        raw = sorted((self.work / "data" / "raw" / "sst").glob("*.nc"))
        self.first, self.files = raw[0], raw[1:]
        self.keys = [str(p.relative_to(self.work)) for p in self.files]
        self.zarr = self.work / "data" / "zarr"
        self.layout, self.config = ("-pass", "config-pass") if passthrough else ("", "config")
        config = pipeline.CONFIG
        if passthrough:
            _, out = timed([ZRU, "config", "suggest", self.first, "--name", "sst"])
            config = {**json.loads(out), "store": "data/zarr/sst-pass.zarr", "time_step": "1 day",
                      "key_patterns": pipeline.CONFIG["key_patterns"]}
            (self.work / self.config).mkdir(exist_ok=True)
            (self.work / self.config / "sst.json").write_text(json.dumps(config))
        self.store = self.work / config["store"]

    def zru_store(self):
        base = self.zarr / f"base-zru{self.layout}.zarr"
        if not base.exists():
            shutil.rmtree(self.store, ignore_errors=True)
            ledger(self.store).unlink(missing_ok=True)
            _, out = timed([ZRU, "ingest", "--config", self.config, self.first.relative_to(self.work)], cwd=self.work)
            if self.layout:
                check_passed_through(out)
            move_store(self.store, base)
        return base

    def xarray_store(self):
        return xarray_copy(self.first, self.zru_store(), self.zarr / f"base-xarray{self.layout}.zarr")

    def check(self, store):
        """The store's time axis is the first day's then the files' in order, and the
        first and last flushed files read back with their values."""
        z = xr.open_zarr(store)
        times = [xr.open_dataset(p).time.values[0] for p in [self.first, *self.files]]
        np.testing.assert_array_equal(z.time.values, np.array(times))
        for i in sorted({1, len(self.files)}):
            ds = xr.open_dataset(self.files[i - 1])
            for name in ds.data_vars:
                same_values(ds[name].values, z[name].isel(time=[i]).values)

    def rows(self):
        """(operation, files, zru, xarray, xarray+dask, floor) of the whole flush and per file."""
        z, x, d, floor = self.measure()
        n = len(self.files)
        return [("flush", n, z, x, d, floor),
                ("flush/file", n, *(per_file(m, n) for m in (z, x, d)), floor / n)]

    def passthrough_rows(self):
        """(operation, zru passthrough, zru parallel decode, xarray, xarray+dask, floor)
        of the whole flush and per file, in the passthrough layout."""
        copied, x, d, floor = self.measure("passthrough")
        decoded = self.zru("parallel")
        n = len(self.files)
        return [("flush", copied, decoded, x, d, floor),
                ("flush/file", *(per_file(m, n) for m in (copied, decoded, x, d)), floor / n)]

    def zru(self, decode=None):
        """zru's enqueue + flush of the files (`decode`: ZRU_DECODE's value, if set)."""
        shutil.rmtree(self.work / "data" / "state", ignore_errors=True)
        cmds = [[ZRU, "ingest", "--config", self.config, "--no-flush", *self.keys],
                [ZRU, "flush", "--config", self.config]]
        env = {"ZRU_DECODE": decode} if decode else None
        return repeat(self.runs, self.zru_store(), self.store, cmds, self.work, check=self.check, env=env)

    def measure(self, decode=None):
        """zru, xarray, xarray+dask and the floor: (seconds, peak MiB, bytes, CPU seconds)
        of the first three, seconds of the floor."""
        xarray_base = self.xarray_store()
        z = self.zru(decode)
        target = self.zarr / f"xarray{self.layout}.zarr"
        cmd = [PYTHON, OPS, "append", target, *self.files]
        x = repeat(self.runs, xarray_base, target, [cmd], self.work, seconds_from_stdout=True, check=self.check)
        cmd = [PYTHON, OPS, "append-dask", target, *self.files]
        d = repeat(self.runs, xarray_base, target, [cmd], self.work, seconds_from_stdout=True, check=self.check)
        floor = floor_seconds(self.runs, self.files, self.work)
        print(f"  measured flush of {len(self.files)} files{self.layout}", file=sys.stderr, flush=True)
        return z, x, d, floor


def per_file(measure, n):
    """A (seconds, peak MiB, bytes, CPU seconds) of n files, per file (peak unchanged)."""
    seconds, peak, written, cpu = measure
    return seconds / n, peak, written / n, cpu / n


def gridded_rows(bench, all_steps):
    """(operation, steps, zru, xarray, xarray+dask, floor) of append, overwrite and
    blank (no dask row: a NaN write has nothing to read)."""
    rows = []
    for op in ["append", "overwrite", "blank"]:
        for steps in all_steps if op != "blank" else [all_steps[0]]:
            z = bench.run_zru(op, steps)
            x = bench.run_xarray(op, steps)
            d = bench.run_xarray(op, steps, dask=True) if op != "blank" else None
            floor = bench.floor(steps if op == "append" else steps - 1) if op != "blank" else None
            rows.append((op, steps, z, x, d, floor))
            print(f"  measured {op} at {steps} steps", file=sys.stderr, flush=True)
    return rows


def fixed(value, width, decimals):
    """`value` right-aligned in `width` with `decimals` decimals, or three where that
    would print a non-zero value as 0.0 (single-profile rows)."""
    if 0 < value < 0.5 * 10 ** -decimals:
        decimals = 3
    return f"{value:>{width}.{decimals}f}"


def print_table(captions, rows):
    print()
    for caption in captions:
        print(caption)
    header = (f"{'operation':<10}{'steps':>7}{'zru s':>8}{'xarray s':>10}{'xr/zru':>8}{'dask s':>8}"
              f"{'dk/zru':>8}{'floor s':>9}{'zru/floor':>10}{'zru MB':>8}{'xr MB':>8}{'zru MiB':>9}"
              f"{'xr MiB':>8}{'dk MiB':>8}")
    print(header)
    for op, steps, (zs, zp, zb, _), (xs, xp, xb, _), dask, floor in rows:
        fl = fixed(floor, 9, 2) if floor else f"{'-':>9}"
        ratio = f"{zs / floor:>10.2f}" if floor else f"{'-':>10}"
        ds, dr, dp = (f"{'-':>8}",) * 3
        if dask:
            ds, dr, dp = fixed(dask[0], 8, 2), f"{dask[0] / zs:>8.1f}", f"{dask[1]:>8.0f}"
        print(f"{op:<10}{steps:>7}{fixed(zs, 8, 2)}{fixed(xs, 10, 2)}{xs / zs:>8.1f}{ds}{dr}{fl}{ratio}"
              f"{fixed(zb / 1e6, 8, 1)}{fixed(xb / 1e6, 8, 1)}{zp:>9.0f}{xp:>8.0f}{dp}")


def print_scaling(rows, all_steps):
    by = {(op, steps): (z, x) for op, steps, z, x, _, _ in rows}
    base, hi = all_steps[0], all_steps[-1]
    print("\nstore-length scaling (per-file time at the longest store / at the shortest):")
    for op in ["append", "overwrite"]:
        (z_hi, x_hi), (z_lo, x_lo) = by[(op, hi)], by[(op, base)]
        print(f"  {op:<9} zru {z_hi[0] / z_lo[0]:.2f}   xarray {x_hi[0] / x_lo[0]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=GROUPS, help="row groups to run")
    parser.add_argument("--lat", type=int, default=4500)
    parser.add_argument("--lon", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--profiles", type=int, default=100000, help="profiles in the argo store")
    parser.add_argument("--flush-files", type=int, default=100)
    parser.add_argument("--flush-lat", type=int, default=720)
    parser.add_argument("--flush-lon", type=int, default=1440)
    parser.add_argument("--work", type=Path, default=ROOT / "bench/work-compare")
    args = parser.parse_args()
    if not ZRU.exists():
        sys.exit(f"{ZRU} not found: run `cargo build --release` first")
    args.work.mkdir(parents=True, exist_ok=True)

    captions, rows = [], []
    if "gridded" in args.only:
        rows += gridded_rows(Bench(args.work, args.lat, args.lon, args.runs), args.steps)
        captions.append(f"gridded: {args.lat} x {args.lon}, 6 packed variables, chunks 1x1000x1000, zstd 3, "
                        f"Zarr V3; median of {args.runs} runs; {os.cpu_count()} cores")
    if "argo" in args.only:
        rows += Argo(args.work, args.profiles, args.runs).rows()
        captions.append(f"argo: one single-cycle file ({LEVELS} levels) into {args.profiles:,} generated "
                        f"profiles (steps), chunks N_PROF 500, zstd 3, Zarr V3; new = appended, "
                        f"rev = revised cycle overwritten in place; median of {args.runs} runs")
    if "flush" in args.only:
        rows += Flush(args.work, args.flush_files, args.flush_lat, args.flush_lon, args.runs).rows()
        captions.append(f"flush: {args.flush_files} queued daily files (steps) of {args.flush_lat} x "
                        f"{args.flush_lon}, 6 packed variables, chunks 1x500x1000, zstd 3; zru: enqueue + "
                        f"one flush, xarray: one process appending them in turn; median of {args.runs} runs")
    if rows:
        print_table(captions, rows)
    if "gridded" in args.only and len(args.steps) > 1:
        print_scaling(rows, args.steps)
    if "passthrough" in args.only:
        bench = Passthrough(args.work, args.lat, args.lon, args.runs)
        caption = (f"passthrough layout (zru config suggest): {args.lat} x {args.lon}, 6 packed variables, "
                   f"chunks 1x{bench.chunks['lat']}x{bench.chunks['lon']} (the files'), shuffle + zlib "
                   f"{bench.level}, Zarr V3, store of {args.steps[0]} steps; zru passthrough "
                   f"(ZRU_DECODE=passthrough) and parallel decode (ZRU_DECODE=parallel); "
                   f"median of {args.runs} runs; {os.cpu_count()} cores")
        rows = passthrough_rows(bench, args.steps[0])
        if "flush" in args.only:
            flush = Flush(args.work, args.flush_files, args.flush_lat, args.flush_lon, args.runs, passthrough=True)
            rows += flush.passthrough_rows()
            caption += (f"; flush: {args.flush_files} queued daily files of {args.flush_lat} x {args.flush_lon} "
                        f"in the layout zru config suggest prints for them")
        print_passthrough(caption, rows)


if __name__ == "__main__":
    main()
