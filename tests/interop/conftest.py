"""Shared helpers for the zru ⇄ xarray interop tests.

These tests drive the real ``zru`` binary (path in the ``ZRU_BIN`` environment
variable, set by ``scripts/test.sh``) and read the stores it writes with
xarray and zarr-python, comparing against what xarray reads from the source
NetCDF files.  A missing binary or missing real data is a test *failure*,
never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT / "tests" / "data"
GSLA_DIR = SHARED_DATA / "imos" / "gsla"

PROVENANCE = "zru_source_key"
# Encoding keys that xarray moves out of attrs when decoding; they are not
# expected to appear verbatim in the store's attrs.
ENCODING_ATTRS = {"_FillValue", "scale_factor", "add_offset", "missing_value"}
TIME_ENCODING_ATTRS = {"units", "calendar"}

SAMPLE_SUFFIX = "120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"
SST_PATTERN = r"^sst/.*\.nc$"
ZRU_TIMEOUT = float(os.environ.get("ZRU_TEST_TIMEOUT", "600"))


# --------------------------------------------------------------------------
# Running zru
# --------------------------------------------------------------------------


@dataclass
class ZruResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    records: list[dict] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n"
            f"exit code: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def record_for(self, key: str) -> dict:
        matches = [r for r in self.records if r.get("key") == key]
        assert len(matches) == 1, (
            f"expected exactly one JSON record for key {key!r}, got {len(matches)}\n"
            + self.describe()
        )
        return matches[0]


def zru_path() -> Path:
    value = os.environ.get("ZRU_BIN")
    if not value:
        pytest.fail(
            "ZRU_BIN is not set; run the suite through scripts/test.sh or set "
            f"ZRU_BIN={REPO_ROOT / 'target/release/zru'}",
            pytrace=False,
        )
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"ZRU_BIN={value} is not an executable file (build it with "
                    "`cargo build --release --bins`)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def zru_bin() -> Path:
    return zru_path()


def run_zru(*args, cwd: Path | None = None, expect_ok: bool | None = None) -> ZruResult:
    """Run zru with ``args``. ``expect_ok=True/False`` asserts on the exit code.

    When ``--json`` is among the args, stdout is parsed as one JSON object per
    non-empty line (a line that does not parse is an assertion failure).
    """
    argv = [str(zru_path()), *[str(a) for a in args]]
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=ZRU_TIMEOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    res = ZruResult(argv, proc.returncode, proc.stdout, proc.stderr)
    if "--json" in res.args:
        for line in proc.stdout.splitlines():
            if not line.strip():
                continue
            try:
                res.records.append(json.loads(line))
            except json.JSONDecodeError as exc:  # pragma: no cover - failure path
                raise AssertionError(
                    f"--json output line is not JSON ({exc}): {line!r}\n" + res.describe()
                ) from None
    if expect_ok is True:
        assert res.returncode == 0, "zru failed unexpectedly\n" + res.describe()
    elif expect_ok is False:
        assert res.returncode != 0, "zru succeeded but should have failed\n" + res.describe()
    return res


def ingest(config_dir: Path, raw_root: Path, files, *, cwd: Path, expect_ok=True) -> ZruResult:
    return run_zru("ingest", "--config", config_dir, "--raw-root", raw_root, "--json",
                   *files, cwd=cwd, expect_ok=expect_ok)


def remove(config_dir: Path, raw_root: Path, keys, *, cwd: Path, expect_ok=True) -> ZruResult:
    return run_zru("remove", "--config", config_dir, "--raw-root", raw_root, "--json",
                   *keys, cwd=cwd, expect_ok=expect_ok)


def assert_event(res: ZruResult, key: str, actions, region=None, dim="time") -> dict:
    """Check the JSON record of ``key``: its action is one of ``actions`` and,
    when ``region`` is given as (start, stop), its region along ``dim``."""
    if isinstance(actions, str):
        actions = {actions}
    rec = res.record_for(key)
    assert rec.get("action") in actions, (
        f"{key}: action {rec.get('action')!r}, expected one of {sorted(actions)}\n"
        + res.describe())
    if region is not None:
        got = rec.get("region")
        assert isinstance(got, dict) and list(got.get(dim, [])) == list(region), (
            f"{key}: region {got!r}, expected {{{dim!r}: {list(region)}}}\n" + res.describe())
    return rec


def sample(out_dir: Path, *, days: int, lat: int, lon: int, start: str = "2024-01-01",
           revision: int | None = None, seed: int | None = None) -> list[Path]:
    """Generate sample GHRSST-like files with ``zru sample gridded``; returns
    the files in time order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["sample", "gridded", out_dir, "--days", days, "--lat", lat, "--lon", lon,
            "--start", start]
    if revision is not None:
        args += ["--revision", revision]
    if seed is not None:
        args += ["--seed", seed]
    run_zru(*args, expect_ok=True)
    files = sorted(out_dir.glob(f"*{SAMPLE_SUFFIX}"))
    assert len(files) == days, f"zru sample wrote {len(files)} files, expected {days}: {files}"
    return files


# --------------------------------------------------------------------------
# Configs, keys, trees
# --------------------------------------------------------------------------


def write_config(config_dir: Path, name: str, *, store: Path, key_patterns=(SST_PATTERN,),
                 handler: str = "gridded", append_dim: str = "time", chunks=None,
                 time_step: str | None = "1 day", **extra) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": name,
        "handler": handler,
        "key_patterns": list(key_patterns),
        "store": str(store),
        "append_dim": append_dim,
        "chunks": chunks if chunks is not None else {"time": 1, "lat": 50, "lon": 60},
    }
    if time_step is not None:
        cfg["time_step"] = time_step
    cfg.update(extra)
    path = config_dir / f"{name}.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def key_of(path: Path, raw_root: Path) -> str:
    return path.relative_to(raw_root).as_posix()


def place(src: Path, raw_root: Path, key: str) -> Path:
    """Copy ``src`` to ``raw_root/key`` (replacing any file there)."""
    dst = raw_root / key
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


class DecodePathStore:
    """One sst store, its config and raw root under ``tmp_path/decode``, written
    through one decode path (``ZRU_DECODE``): tests compare the paths' stores."""

    def __init__(self, tmp_path: Path, decode: str, zarr_format: int, chunks: dict,
                 compressor: dict | None = None):
        self.decode = decode
        self.root = tmp_path / decode
        self.raw = self.root / "raw"
        self.store = self.root / "sst.zarr"
        self.config = self.root / "config"
        extra = {} if compressor is None else {"compressor": compressor}
        write_config(self.config, "sst", store=self.store, chunks=chunks,
                     zarr_format=zarr_format, **extra)

    def ingest(self, monkeypatch, files) -> ZruResult:
        monkeypatch.setenv("ZRU_DECODE", self.decode)
        placed = [place(f, self.raw, f"sst/{f.name}") for f in files]
        return ingest(self.config, self.raw, placed, cwd=self.root)

    def remove(self, monkeypatch, files) -> ZruResult:
        monkeypatch.setenv("ZRU_DECODE", self.decode)
        keys = [f"sst/{f.name}" for f in files]
        for key in keys:
            (self.raw / key).unlink()
        return remove(self.config, self.raw, keys, cwd=self.root)


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (and a marker for every directory),
    keyed by relative path. Compare two calls to prove a store is untouched."""
    root = Path(root)
    assert root.exists(), f"{root} does not exist"
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[(rel_dir / d).as_posix() + "/"] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            out[(rel_dir / f).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_tree_unchanged(before: dict[str, str], root: Path, context: str = "") -> None:
    after = tree_hash(root)
    if before == after:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    raise AssertionError(
        f"store {root} changed{': ' + context if context else ''}\n"
        f"  added:   {added}\n  removed: {removed}\n  changed: {changed}")


@pytest.fixture(scope="session")
def gsla_files() -> list[Path]:
    """The four real IMOS GSLA files, in time order."""
    if not GSLA_DIR.is_dir():
        pytest.fail(f"real data missing: expected the IMOS GSLA files in {GSLA_DIR} "
                    f"(<repo root>/tests/data/imos/gsla)", pytrace=False)
    files = sorted(GSLA_DIR.glob("IMOS_OceanCurrent_HV_*_GSLA_FV02_NRT.nc"))
    if len(files) != 4:
        pytest.fail(f"expected 4 GSLA files in {GSLA_DIR}, found {len(files)}: "
                    f"{[f.name for f in files]}", pytrace=False)
    return files


# --------------------------------------------------------------------------
# xarray comparisons
# --------------------------------------------------------------------------


def open_store(store: Path, **kw) -> xr.Dataset:
    """Open a store the way a reader would (consolidated metadata), loaded."""
    kw.setdefault("consolidated", True)
    with xr.open_zarr(store, **kw) as ds:
        return ds.load()


def open_sources(files) -> xr.Dataset:
    files = [str(f) for f in files]
    with xr.open_mfdataset(files, combine="by_coords") as ds:
        return ds.load()


def source_keys(store_ds: xr.Dataset) -> list[str]:
    assert PROVENANCE in store_ds.variables, (
        f"store has no {PROVENANCE!r} variable; variables: {sorted(store_ds.variables)}")
    return [str(v) for v in store_ds[PROVENANCE].values]


def assert_same_variables(store_ds: xr.Dataset, expected: xr.Dataset, ignore=()) -> None:
    got = set(store_ds.variables) - {PROVENANCE} - set(ignore)
    want = set(expected.variables) - set(ignore)
    assert got == want, (f"variable sets differ: only in store {sorted(got - want)}, "
                         f"only in source {sorted(want - got)}")


def assert_dataset_values(store_ds: xr.Dataset, expected: xr.Dataset) -> None:
    """Decoded values (masked, scaled, CF-time decoded) and coordinates of
    every variable of ``expected`` equal those in ``store_ds``."""
    assert_same_variables(store_ds, expected)
    for name in expected.variables:
        got, want = store_ds[name], expected[name]
        assert got.dims == want.dims, f"{name}: dims {got.dims} != {want.dims}"
        if want.dtype.kind in "fc":
            xr.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
        else:
            xr.testing.assert_equal(got, want)


def _attr_equal(a, b) -> bool:
    if isinstance(a, (str, bytes)) or isinstance(b, (str, bytes)):
        return str(a) == str(b)
    try:
        aa, bb = np.asarray(a), np.asarray(b)
        if aa.shape != bb.shape:
            return False
        if aa.dtype.kind in "iufb" and bb.dtype.kind in "iufb":
            return bool(np.allclose(aa.astype("f8"), bb.astype("f8"), rtol=1e-6, atol=0,
                                    equal_nan=True))
        return bool(np.all(aa == bb))
    except Exception:
        return a == b


def assert_attrs_carried(store_ds: xr.Dataset, source: xr.Dataset, names=None) -> None:
    """Every decoded attr of each source variable is in the store variable's attrs."""
    problems = []
    for name in names or source.variables:
        skip = set(ENCODING_ATTRS)
        if source[name].dtype.kind in "mM":
            skip |= TIME_ENCODING_ATTRS
        for k, v in source[name].attrs.items():
            if k in skip:
                continue
            if k not in store_ds[name].attrs:
                problems.append(f"{name}: attr {k!r} missing (source value {v!r})")
            elif not _attr_equal(store_ds[name].attrs[k], v):
                problems.append(f"{name}: attr {k!r} = {store_ds[name].attrs[k]!r}, "
                                f"source {v!r}")
    assert not problems, "attrs not carried over:\n  " + "\n  ".join(problems)


def assert_packed_dtypes(store_ds: xr.Dataset, source: xr.Dataset) -> None:
    """The on-disk (encoding) dtype of every source data variable is kept."""
    problems = []
    for name in source.data_vars:
        want = source[name].encoding.get("dtype")
        got = store_ds[name].encoding.get("dtype")
        if want is not None and np.dtype(want).kind in "iu" and (
                got is None or np.dtype(got) != np.dtype(want)):
            problems.append(f"{name}: stored dtype {got}, source {want}")
    assert not problems, "packed dtypes differ:\n  " + "\n  ".join(problems)


def missing_value_for(dtype) -> object:
    """What an emptied slot must read as. NaN/NaT for decoded floats and times;
    for a variable that decodes to integers (no _FillValue in the source, e.g.
    GHRSST ``l2p_flags``) nothing can be NaN, so the netCDF default fill value
    of the dtype (what netCDF readers see in never-written data) is accepted."""
    dtype = np.dtype(dtype)
    if dtype.kind in "mM":
        return np.array("NaT", dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind in "iu":
        return netCDF4.default_fillvals[f"{dtype.kind}{dtype.itemsize}"]
    raise AssertionError(f"no missing value for dtype {dtype}")


def blank_slot(expected: xr.Dataset, dim: str, index: int,
               like: xr.Dataset | None = None) -> xr.Dataset:
    """``expected`` with every data variable along ``dim`` set to missing at
    ``index`` (what a reader must see after ``zru remove``). Float, NaN unless
    ``like`` (the store as read) decodes the variable to integers, then the
    netCDF default fill value (see :func:`missing_value_for`)."""
    out = expected.copy(deep=True)
    for name, var in expected.data_vars.items():
        if dim not in var.dims:
            continue
        where = (slice(None),) * var.dims.index(dim) + (index,)
        if var.dtype.kind in "mM":
            vals = var.values.copy()
        elif like is not None and name in like and like[name].dtype.kind in "iu":
            vals = var.values.astype(like[name].dtype, copy=True)
        else:
            vals = var.values.astype(np.result_type(var.dtype, np.float32), copy=True)
        vals[where] = missing_value_for(vals.dtype)
        out[name] = (var.dims, vals, var.attrs)
    return out


def assert_slot_blank(store_ds: xr.Dataset, dim: str, index: int) -> None:
    """Every data variable along ``dim`` is all missing at ``index``: NaN/NaT,
    or for integer-decoded variables the netCDF default fill value."""
    problems = []
    for name, var in store_ds.data_vars.items():
        if name == PROVENANCE or dim not in var.dims:
            continue
        slot = var.isel({dim: index}).values
        if slot.dtype.kind in "mM":
            ok = bool(np.all(np.isnat(slot)))
        elif slot.dtype.kind in "fc":
            ok = bool(np.all(np.isnan(slot)))
        elif slot.dtype.kind in "iu":
            ok = bool(np.all(slot == missing_value_for(slot.dtype)))
        else:
            ok = False
        if not ok:
            vals, counts = np.unique(slot, return_counts=True)
            problems.append(f"{name} (dtype {slot.dtype}) is not all missing at {dim}={index}; "
                            f"values {dict(zip(vals[:5].tolist(), counts[:5].tolist()))}")
    assert not problems, "\n".join(problems)
