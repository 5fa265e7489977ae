"""Real files from data providers other than the GSLA/Argo ones (see tests/data/README.md),
and files derived from them, through zru, read back with xarray.

Each file lands so that ``xr.open_zarr`` of the store equals ``xr.open_dataset`` of the
file(s) (CF time decoded, fills masked, packing decoded, attributes kept), or zru rejects
it with a reason and leaves the store unchanged. A panic is never an acceptable outcome.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import (
    PROVENANCE,
    SHARED_DATA,
    assert_attrs_carried,
    assert_tree_unchanged,
    ingest,
    key_of,
    open_store,
    place,
    tree_hash,
    write_config,
)

ANMN = SHARED_DATA / "imos" / "anmn"
NASA = SHARED_DATA / "nasa"
GLIDER = SHARED_DATA / "ioos" / "glider"
ARGO = SHARED_DATA / "imos" / "argo"
GSLA_2024 = SHARED_DATA / "imos" / "gsla" / "IMOS_OceanCurrent_HV_20240101T000000Z_GSLA_FV02_NRT.nc"

MOORING_1812 = ANMN / ("IMOS_ANMN-NRS_TZ_20181213T080000Z_NRSROT_FV01_NRSROT-1812-SBE39-23_"
                       "END-20190306T160000Z_C-20190827T000000Z.nc")
MOORING_1903 = ANMN / ("IMOS_ANMN-NRS_TZ_20190313T144000Z_NRSROT_FV01_NRSROT-1903-SBE39-27_"
                       "END-20190524T010000Z_C-20190827T000000Z.nc")
ADCP = ANMN / ("IMOS_ANMN-NRS_AETVZ_20181213T080000Z_NRSROT-ADCP_FV01_NRSROT-ADCP-1812-"
               "Sentinel-or-Monitor-Workhorse-ADCP-44_END-20181215T100000Z_C-20200430T000000Z.nc")
GRIDDED_TS = ANMN / "IMOS_ANMN-NRS_TZ_20181213_NRSROT_FV02_TEMP-gridded-timeseries_END-20190523_C-20230110.nc"
ABOVE = NASA / "ABoVE_TVPRM_bbox.nc4"
MERRA = NASA / "M2T1NXSLV_geo_temporal.nc4"
GPM = NASA / "GPM_3IMERGHH_bounds.nc4"
GLIDER_FILE = GLIDER / "Murphy-20150809T135508Z_rt.nc"

def real(path: Path) -> Path:
    assert path.is_file(), f"real data missing: {path} (see tests/data/README.md)"
    return path


# --------------------------------------------------------------------------
# Workspaces, derived files
# --------------------------------------------------------------------------


class Space:
    """A raw root, a config dir and one gridded dataset whose keys are ``<name>/*``."""

    def __init__(self, tmp_path: Path, name: str, append_dim: str, chunks: dict,
                 handler: str = "gridded", **extra):
        self.tmp = tmp_path
        self.name = name
        self.raw = tmp_path / "raw"
        self.store = tmp_path / f"{name}.zarr"
        self.config = tmp_path / "config"
        self.append_dim = append_dim
        write_config(self.config, name, store=self.store, key_patterns=[rf"^{name}/.*$"],
                     handler=handler, append_dim=append_dim, chunks=chunks, time_step=None,
                     **extra)

    def put(self, src: Path, filename: str | None = None) -> tuple[Path, str]:
        path = place(src, self.raw, f"{self.name}/{filename or src.name}")
        return path, key_of(path, self.raw)

    def ingest(self, *paths, expect_ok=None):
        res = ingest(self.config, self.raw, list(paths), cwd=self.tmp, expect_ok=expect_ok)
        assert "panicked" not in res.stderr, "zru panicked\n" + res.describe()
        return res


def derive(src: Path, dst: Path, change) -> Path:
    """Copy ``src`` to ``dst`` and let ``change(ds)`` edit it with netCDF4-python."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    with netCDF4.Dataset(dst, "a") as ds:
        ds.set_auto_maskandscale(False)
        change(ds)
    return dst


def shift_time(*names: str, by: float):
    """A ``change`` that adds ``by`` (in the variables' own units) to time variables."""
    def change(ds):
        for name in names:
            var = ds[name]
            var[...] = var[...] + np.asarray(by).astype(var.dtype)
    return change


def span(path: Path, name: str) -> float:
    """Last minus first time (raw units) plus one step: a shift that follows the file."""
    with netCDF4.Dataset(path) as ds:
        t = np.asarray(ds[name][:], dtype="f8")
    step = float(t[1] - t[0]) if t.size > 1 else 1.0
    return float(t[-1] - t[0]) + step


def load(*paths: Path, dim: str) -> xr.Dataset:
    """What xarray reads from the files, concatenated along ``dim`` (variables without
    ``dim`` taken from the first file)."""
    parts = []
    for p in paths:
        with xr.open_dataset(p) as ds:
            parts.append(ds.load())
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim=dim, data_vars="minimal", coords="minimal",
                     compat="override", join="exact", combine_attrs="override")


# --------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------


def as_text(values: np.ndarray) -> np.ndarray:
    def one(v):
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return str(v)
    return np.vectorize(one, otypes=[object])(values)


def assert_store_equals(store: Path, expected: xr.Dataset) -> xr.Dataset:
    """Store read by xarray == ``expected``: the same variables, dims, decoded values
    (floats within 1e-6 relative, NaN where NaN, times exact to the microsecond) and
    the source attributes."""
    ds = open_store(store)
    got_vars = set(ds.variables) - {PROVENANCE}
    assert got_vars == set(expected.variables), (
        f"variables: only in store {sorted(got_vars - set(expected.variables))}, "
        f"only in source {sorted(set(expected.variables) - got_vars)}")
    problems = []
    for name in sorted(expected.variables):
        want, got = expected[name], ds[name]
        if got.dims != want.dims or got.shape != want.shape:
            problems.append(f"{name}: dims {got.dims}{got.shape} != {want.dims}{want.shape}")
            continue
        w, g = want.values, got.values
        if w.dtype.kind == "M":
            if g.dtype.kind != "M":
                problems.append(f"{name}: store dtype {g.dtype}, source datetime64")
                continue
            gi = g.astype("datetime64[us]")
            wi = w.astype("datetime64[us]")
            if not np.array_equal(gi, wi, equal_nan=True):
                problems.append(f"{name}: times differ: {gi.ravel()[:3]} vs {wi.ravel()[:3]}")
        elif w.dtype.kind == "O" and w.size and not isinstance(w.ravel()[0], (str, bytes)):
            # cftime objects (non-standard calendars)
            if not np.array_equal(as_text(g), as_text(w)):
                problems.append(f"{name}: {as_text(g).ravel()[:3]} vs {as_text(w).ravel()[:3]}")
        elif w.dtype.kind in "SUO":
            if not np.array_equal(as_text(g), as_text(w)):
                problems.append(f"{name}: text {as_text(g).ravel()[:3]} vs {as_text(w).ravel()[:3]}")
        elif w.dtype.kind in "fc" or g.dtype.kind in "fc":
            try:
                np.testing.assert_allclose(g.astype("f8"), w.astype("f8"), rtol=1e-6, atol=0,
                                           equal_nan=True)
            except AssertionError as exc:
                problems.append(f"{name}: {str(exc)[:300]}")
        elif not np.array_equal(g, w):
            problems.append(f"{name}: values differ: {g.ravel()[:5]} vs {w.ravel()[:5]}")
    assert not problems, "store differs from xarray's reading of the source(s):\n  " + \
        "\n  ".join(problems)
    assert_attrs_carried(ds, expected)
    return ds


def assert_applied(res, key: str) -> dict:
    rec = res.record_for(key)
    assert rec.get("action") in {"appended", "overwrote"}, (
        f"{key} not applied\n" + res.describe())
    return rec


def assert_rejected(res, key: str, *patterns: str) -> str:
    rec = res.record_for(key)
    assert rec.get("action") == "rejected", f"{key} should be rejected\n" + res.describe()
    reason = rec.get("reason") or ""
    for p in patterns:
        assert re.search(p, reason), f"reason {reason!r} does not match {p!r}\n" + res.describe()
    return reason


# --------------------------------------------------------------------------
# Moorings (IMOS ANMN): scalar LATITUDE/LONGITUDE/NOMINAL_DEPTH, TIME-only variables
# --------------------------------------------------------------------------

MOORING_CHUNKS = {"TIME": 4096, "HEIGHT_ABOVE_SENSOR": 6, "DEPTH": 4}


def test_mooring_time_series_and_its_revision(tmp_path):
    sp = Space(tmp_path, "mooring", "TIME", MOORING_CHUNKS)
    path, key = sp.put(real(MOORING_1812))
    res = sp.ingest(path)
    assert_applied(res, key)
    assert_store_equals(sp.store, load(MOORING_1812, dim="TIME"))

    # A revision: same times, TEMP raised by 0.5 degrees, one QC flag changed.
    def revise(ds):
        ds["TEMP"][:] = ds["TEMP"][:] + np.float32(0.5)
        ds["TEMP_quality_control"][10] = 4
    revised = derive(MOORING_1812, tmp_path / "rev" / MOORING_1812.name, revise)
    path = place(revised, sp.raw, key)
    res = sp.ingest(path)
    assert_applied(res, key)
    assert_store_equals(sp.store, load(revised, dim="TIME"))


def test_mooring_next_deployment_with_other_nominal_depth_is_rejected(tmp_path):
    """The next deployment at the site has NOMINAL_DEPTH 27 m (23 m in the store): a
    static coordinate that differs is rejected, the store is unchanged."""
    sp = Space(tmp_path, "mooring", "TIME", MOORING_CHUNKS)
    first, key1 = sp.put(real(MOORING_1812))
    assert_applied(sp.ingest(first), key1)
    before = tree_hash(sp.store)
    second, key2 = sp.put(real(MOORING_1903))
    res = sp.ingest(second)
    assert_rejected(res, key2, r"NOMINAL_DEPTH")
    assert_tree_unchanged(before, sp.store, "after the rejected deployment")


def test_adcp_velocity_profiles_two_files(tmp_path):
    """(TIME, HEIGHT_ABOVE_SENSOR) velocities, TIME-only pressure/depth, scalars; a second
    file with the times shifted past the first appends."""
    sp = Space(tmp_path, "adcp", "TIME", MOORING_CHUNKS)
    later = derive(real(ADCP), tmp_path / "derived" / "adcp_later.nc",
                   shift_time("TIME", by=span(ADCP, "TIME")))
    p1, k1 = sp.put(ADCP)
    p2, k2 = sp.put(later, "adcp_later.nc")
    res = sp.ingest(p1, p2)
    assert_applied(res, k1)
    assert_applied(res, k2)
    assert_store_equals(sp.store, load(ADCP, later, dim="TIME"))


def test_gridded_mooring_product(tmp_path):
    """TEMP(TIME, DEPTH) on fixed target depths, hourly, scalar LATITUDE/LONGITUDE."""
    sp = Space(tmp_path, "gridded_ts", "TIME", MOORING_CHUNKS)
    path, key = sp.put(real(GRIDDED_TS))
    assert_applied(sp.ingest(path), key)
    assert_store_equals(sp.store, load(GRIDDED_TS, dim="TIME"))


# --------------------------------------------------------------------------
# NASA granules: curvilinear + grid mapping + bounds; MERRA-2; GPM in a group
# --------------------------------------------------------------------------

ABOVE_CHUNKS = {"time": 5, "y": 20, "x": 20, "nv": 2}


def test_curvilinear_grid_mapping_and_time_bounds(tmp_path):
    """2-D lat/lon, a scalar `crs` grid mapping, time_bnds(time, nv); a second file
    10 hours later appends, lat/lon/crs stay static."""
    sp = Space(tmp_path, "above", "time", ABOVE_CHUNKS)
    later = derive(real(ABOVE), tmp_path / "derived" / "above_later.nc4",
                   shift_time("time", "time_bnds", by=10.0))
    p1, k1 = sp.put(ABOVE)
    p2, k2 = sp.put(later, "above_later.nc4")
    res = sp.ingest(p1, p2)
    assert_applied(res, k1)
    assert_applied(res, k2)
    assert_store_equals(sp.store, load(ABOVE, later, dim="time"))


def test_curvilinear_noleap_calendar_across_february(tmp_path):
    """The ABoVE file re-dated into a `noleap` calendar over 28 Feb - 1 Mar 2008 (a
    leap year in the standard calendar): the store decodes to the same cftime dates."""
    def to_noleap(ds, start):
        for name in ("time", "time_bnds"):
            ds[name].setncattr("calendar", "noleap")
            ds[name].setncattr("units", "hours since 2008-02-28 00:00:00")
            ds[name][...] = ds[name][...] + start
    first = derive(real(ABOVE), tmp_path / "derived" / "noleap_a.nc4",
                   lambda ds: to_noleap(ds, 18.0))
    second = derive(real(ABOVE), tmp_path / "derived" / "noleap_b.nc4",
                    lambda ds: to_noleap(ds, 28.0))
    sp = Space(tmp_path, "noleap", "time", ABOVE_CHUNKS)
    p1, k1 = sp.put(first)
    p2, k2 = sp.put(second)
    res = sp.ingest(p1, p2)
    assert_applied(res, k1)
    assert_applied(res, k2)
    expected = load(first, second, dim="time")
    # 2008-02-28T18:30 + 10 h crosses into 1 March (no 29 February in noleap).
    assert "2008-03-01" in str(expected["time"].values[-1])
    assert_store_equals(sp.store, expected)


def test_merra2_int32_minutes_and_float_packing(tmp_path):
    """int32 `minutes since 2021-01-10 00:30:00`, float32 PS with scale 1 / offset 0 and
    equal _FillValue/missing_value; a second file two hours later appends."""
    sp = Space(tmp_path, "merra", "time", {"time": 2, "lat": 21, "lon": 17})
    later = derive(real(MERRA), tmp_path / "derived" / "merra_later.nc4",
                   shift_time("time", by=120))
    p1, k1 = sp.put(MERRA)
    p2, k2 = sp.put(later, "merra_later.nc4")
    res = sp.ingest(p1, p2)
    assert_applied(res, k1)
    assert_applied(res, k2)
    assert_store_equals(sp.store, load(MERRA, later, dim="time"))


def test_gpm_variables_in_a_group_are_rejected(tmp_path):
    """GPM IMERG keeps every variable in /Grid: rejected with a reason naming the group,
    and no store is created."""
    sp = Space(tmp_path, "gpm", "time", {"time": 1, "lon": 150, "lat": 150})
    path, key = sp.put(real(GPM))
    res = sp.ingest(path, expect_ok=False)
    assert_rejected(res, key, r"groups are not supported: the file has groups /Grid\b")
    assert not (sp.store / "zarr.json").exists(), "a rejected first file created a store"


# --------------------------------------------------------------------------
# Glider trajectory (IOOS glider DAC)
# --------------------------------------------------------------------------


def test_glider_trajectory_along_time(tmp_path):
    """lat/lon/depth/temperature along `time`, a `char` trajectory name and per-profile
    scalars; the same file re-dated an hour later (its scalars equal) appends."""
    sp = Space(tmp_path, "glider", "time", {"time": 16})
    later = derive(real(GLIDER_FILE), tmp_path / "derived" / "glider_later.nc",
                   shift_time("time", by=3600.0))
    p1, k1 = sp.put(GLIDER_FILE)
    p2, k2 = sp.put(later, "glider_later.nc")
    res = sp.ingest(p1, p2)
    assert_applied(res, k1)
    assert_applied(res, k2)
    assert_store_equals(sp.store, load(GLIDER_FILE, later, dim="time"))


# --------------------------------------------------------------------------
# Encoding attributes of the wrong type or value (real file, one attribute changed)
# --------------------------------------------------------------------------


def set_attr(name: str, attr: str, value):
    def change(ds):
        var = ds[name]
        if isinstance(value, str):
            var.setncattr_string(attr, value)
        else:
            var.setncattr(attr, value)
    return change


BAD_ENCODINGS = {
    "string_scale_factor": (set_attr("PS", "scale_factor", "0.01"),
                            r'variable PS: scale_factor is a string \("0\.01"\), expected a number'),
    "string_add_offset": (set_attr("PS", "add_offset", "100"),
                          r'variable PS: add_offset is a string \("100"\), expected a number'),
    "string_missing_value": (set_attr("PS", "missing_value", "1e15"),
                             r'variable PS: missing_value is a string \("1e15"\)'),
    "zero_scale_factor": (set_attr("PS", "scale_factor", np.float32(0.0)),
                          r"variable PS: scale_factor is 0; it must be a finite, non-zero number"),
    "nan_scale_factor": (set_attr("PS", "scale_factor", np.float32("nan")),
                         r"variable PS: scale_factor is NaN"),
    "two_scale_factors": (set_attr("PS", "scale_factor", np.array([1.0, 2.0], "f4")),
                          r"variable PS: scale_factor has 2 values"),
    "fill_and_missing_differ": (set_attr("PS", "missing_value", np.float32(-1.0)),
                                r"variable PS: _FillValue \(.*\) and missing_value \(-1\) differ"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENCODINGS))
def test_bad_encoding_attribute_is_rejected_store_unchanged(tmp_path, case):
    change, pattern = BAD_ENCODINGS[case]
    sp = Space(tmp_path, "merra", "time", {"time": 2, "lat": 21, "lon": 17})
    p1, k1 = sp.put(real(MERRA))
    assert_applied(sp.ingest(p1), k1)
    before = tree_hash(sp.store)
    bad = derive(MERRA, tmp_path / "derived" / "bad.nc4",
                 lambda ds: (shift_time("time", by=120)(ds), change(ds)))
    p2, k2 = sp.put(bad)
    res = sp.ingest(p2, expect_ok=False)
    assert_rejected(res, k2, pattern, re.escape(k2))
    assert_tree_unchanged(before, sp.store, f"after the rejected {case} file")


# --------------------------------------------------------------------------
# Argo: an identity equal to its _FillValue
# --------------------------------------------------------------------------


def test_argo_cycle_number_equal_to_fill_is_rejected(tmp_path):
    """CYCLE_NUMBER = 99999 (its _FillValue) is no identity: the file is rejected naming
    the profile index and the variable; the store keeps the earlier file untouched."""
    sp = Space(tmp_path, "argo", "N_PROF", {"N_PROF": 64, "N_LEVELS": 144},
               handler="profiles")
    good, k1 = sp.put(real(ARGO / "ct64-M001-09_prof.nc"))
    assert_applied(sp.ingest(good), k1)
    before = tree_hash(sp.store)

    def fill_cycle(ds):
        ds["CYCLE_NUMBER"][7] = ds["CYCLE_NUMBER"].getncattr("_FillValue")
    bad = derive(ARGO / "2902093_prof.nc", tmp_path / "derived" / "2902093_prof.nc", fill_cycle)
    p2, k2 = sp.put(bad)
    res = sp.ingest(p2, expect_ok=False)
    assert_rejected(res, k2, r"variable CYCLE_NUMBER: profile 7 \(index along N_PROF\) has no "
                             r"identity: CYCLE_NUMBER is its _FillValue \(99999\)")
    assert_tree_unchanged(before, sp.store, "after the file with a fill identity")


def test_argo_blank_platform_number_is_rejected(tmp_path):
    sp = Space(tmp_path, "argo", "N_PROF", {"N_PROF": 64, "N_LEVELS": 144},
               handler="profiles")

    def blank(ds):
        ds["PLATFORM_NUMBER"][3] = np.array(list(" " * 8), "S1")
    bad = derive(real(ARGO / "2902093_prof.nc"), tmp_path / "derived" / "2902093_prof.nc", blank)
    p, k = sp.put(bad)
    res = sp.ingest(p, expect_ok=False)
    assert_rejected(res, k, r"variable PLATFORM_NUMBER: profile 3 .*PLATFORM_NUMBER is blank")
    assert not (sp.store / "zarr.json").exists()


# --------------------------------------------------------------------------
# Damaged or foreign files: say what is wrong
# --------------------------------------------------------------------------


def damaged(tmp_path: Path, kind: str) -> Path:
    out = tmp_path / "derived" / f"{kind}.nc"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = real(GSLA_2024).read_bytes()
    if kind == "truncated_half":
        out.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_tail":
        out.write_bytes(data[:-100])
    elif kind == "empty":
        out.write_bytes(b"")
    elif kind == "random":
        out.write_bytes(np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8)
                        .tobytes())
    elif kind == "html":
        out.write_bytes(b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>")
    return out


DAMAGED = {
    "truncated_half": r"truncated: the HDF5 superblock says the file ends at byte \d+ but it has \d+ bytes",
    "truncated_tail": r"truncated: the HDF5 superblock says the file ends at byte \d+ but it has \d+ bytes",
    "empty": r"the file is empty \(0 bytes\)",
    "random": r"not a netCDF or HDF5 file: it starts with the bytes",
    "html": r"not a netCDF or HDF5 file: it starts with the text \"<\?xml ve\"",
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_file_says_what_is_wrong(tmp_path, kind):
    sp = Space(tmp_path, "gsla", "TIME", {"TIME": 1, "LATITUDE": 351, "LONGITUDE": 641})
    p, k = sp.put(damaged(tmp_path, kind))
    res = sp.ingest(p, expect_ok=False)
    assert_rejected(res, k, DAMAGED[kind])
    assert not (sp.store / "zarr.json").exists()


# --------------------------------------------------------------------------
# Generated odd files: groups, odd types, zero-length dimensions
# --------------------------------------------------------------------------


def odd_file(path: Path, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "NETCDF3_CLASSIC" if kind.startswith("classic") else "NETCDF4"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None if kind != "zero_fixed_dim" else 2)
        xlen = {"zero_fixed_dim": 0, "huge_dim": 1_500_000_000}.get(kind, 3)
        ds.createDimension("x", xlen)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        if kind == "groups":
            for g in ("a", "b"):
                grp = ds.createGroup(g)
                v = grp.createVariable("sst", "f4", ("time", "x"))
                v[0, :] = [1, 2, 3]
            t[0] = 1.0
        elif kind in ("enum", "compound", "vlen"):
            if kind == "enum":
                typ = ds.createEnumType("u1", "flag_t", {"ok": 0, "bad": 1})
            elif kind == "compound":
                typ = ds.createCompoundType(np.dtype([("a", "f4"), ("b", "i4")]), "pair_t")
            else:
                typ = ds.createVLType("i4", "ragged_t")
            ds.createVariable("odd", typ, ("time", "x"))
            v = ds.createVariable("sst", "f4", ("time", "x"))
            v[0, :] = [1, 2, 3]
            t[0] = 1.0
        elif kind == "unlimited_empty":
            ds.createVariable("sst", "f4", ("time", "x"))
        elif kind == "zero_fixed_dim":
            ds.createVariable("sst", "f4", ("time", "x"))
            t[:] = [1.0, 2.0]
        elif kind == "huge_dim":
            # 6 GB declared, nothing written: the file is a few kB.
            ds.createVariable("sst", "f4", ("time", "x"))
            t[0] = 1.0
        elif kind == "classic_odd_attrs":
            v = ds.createVariable("sst", "i1", ("time", "x"))
            v.setncattr("flag_values", np.array([0, 1, 2], "i1"))
            v.setncattr("valid_range", np.array([-5, 5], "i1"))
            v.setncattr("empty_text", "")
            v[0, :] = [1, 2, 3]
            t[0] = 1.0
    return path


# What zru must say, or None: the file is accepted and reads like xarray's reading.
ODD = {
    "groups": r"groups are not supported: the file has groups /a, /b",
    "enum": r"variable odd has type enum, which zru cannot store",
    "compound": r"variable odd has type compound, which zru cannot store",
    "vlen": r"variable odd has type vlen",
    "unlimited_empty": r"time|empty|no ",
    "zero_fixed_dim": None,
    # Read whole (one store chunk along x): more than zru reads at once. (A bound on
    # chunk sizes in the config may reject it earlier, naming the chunks.)
    "huge_dim": r"sst.*(needs 6000000000 bytes in one read|chunk)",
    "classic_odd_attrs": None,
}


@pytest.mark.parametrize("kind", sorted(ODD))
def test_odd_file_is_rejected_with_a_reason_or_lands(tmp_path, kind):
    # huge_dim: x is not listed, so its chunk is the file's whole length (a listed
    # length of 1.5e9 is refused by `config check` before any file is read).
    chunks = {"time": 1} if kind == "huge_dim" else {"time": 4, "x": 3}
    sp = Space(tmp_path, "odd", "time", chunks)
    src = odd_file(tmp_path / "derived" / f"{kind}.nc", kind)
    p, k = sp.put(src)
    pattern = ODD[kind]
    if pattern is None:
        res = sp.ingest(p)
        assert_applied(res, k)
        assert_store_equals(sp.store, load(src, dim="time"))
    else:
        res = sp.ingest(p, expect_ok=False)
        assert_rejected(res, k, pattern)
        assert not (sp.store / "zarr.json").exists()


def test_unavailable_filter_is_named(tmp_path, zru_bin):
    """A variable compressed with zstd, read by a netCDF-C without the zstd plugin: the
    reason names the variable and the filter. (netCDF4-python sets HDF5_PLUGIN_PATH to
    its own plugins when imported; zru runs here with an empty plugin directory.)"""
    src = tmp_path / "derived" / "zstd.nc"
    src.parent.mkdir(parents=True)
    with netCDF4.Dataset(src, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[0] = 1.0
        v = ds.createVariable("sst", "f4", ("time", "x"), compression="zstd")
        v[0, :] = [1, 2, 3]
    sp = Space(tmp_path, "zstd", "time", {"time": 4, "x": 3})
    p, k = sp.put(src)
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    env = {**os.environ, "HDF5_PLUGIN_PATH": str(empty), "NO_COLOR": "1"}
    proc = subprocess.run([str(zru_bin), "ingest", "--config", str(sp.config), "--raw-root",
                           str(sp.raw), "--json", str(p)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "panicked" not in proc.stderr, proc.stderr
    assert proc.returncode != 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    rec = [r for r in records if r.get("key") == k]
    assert len(rec) == 1 and rec[0].get("action") == "rejected", proc.stdout + proc.stderr
    assert re.search(r"variable sst: cannot read values \(HDF5 filters of this variable: "
                     r"32015 \(zstd, not available to this netCDF-C", rec[0]["reason"]), rec[0]
    assert not (sp.store / "zarr.json").exists()


MUTATED = {
    "classic": (SHARED_DATA / "imos" / "gsla" /
                "IMOS_OceanCurrent_HV_20110901T000000Z_GSLA_FV02_NRT.nc", 3000, 3),
    "netcdf4": (GSLA_2024, 20000, 5),
}


@pytest.mark.parametrize("kind", sorted(MUTATED))
def test_mutated_headers_never_panic(tmp_path, kind):
    """Real files with 1-4 random bytes of their header changed (fixed seeds; before
    the fix these found netcdf-crate panics on non-UTF-8 names and on unreadable
    netCDF-4 attribute metadata): each is applied or rejected with a reason, never a
    panic, an abort or a signal."""
    src, region, seed = MUTATED[kind]
    data = real(src).read_bytes()
    rng = np.random.default_rng(seed)
    outcomes = {}
    for i in range(25):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            d[int(rng.integers(0, region))] = int(rng.integers(0, 256))
        sub = tmp_path / f"m{i}"
        sp = Space(sub, "gsla", "TIME", {"TIME": 1, "LATITUDE": 351, "LONGITUDE": 641})
        raw_file = sub / "mutated.nc"
        raw_file.write_bytes(bytes(d))
        p, k = sp.put(raw_file)
        res = sp.ingest(p)  # asserts no "panicked" in stderr
        assert res.returncode in (0, 1), f"mutation {i}: exit {res.returncode}\n" + res.describe()
        assert "memory allocation" not in res.stderr, res.describe()
        rec = res.record_for(k)
        if rec["action"] == "rejected":
            assert rec.get("reason"), res.describe()
        else:
            assert rec["action"] == "appended", res.describe()
        outcomes[rec["action"]] = outcomes.get(rec["action"], 0) + 1
    assert outcomes.get("rejected", 0) > 0, f"no mutation was rejected: {outcomes}"
