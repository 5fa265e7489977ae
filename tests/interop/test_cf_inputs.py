"""Issue 11: real CF files of any provider land as xarray reads them, or are rejected
with a reason and leave the store unchanged; no input crashes the process.

Each test builds the files that reproduced a defect (scalar grid mappings, append
dimension not first, 1 Hz and 1 ms tracks, int32 time overflow, absurd dates, gap
slots filled later, calendars, units changing between files) with netCDF4-python, runs
the real zru binary and compares the store, read with xarray, with xarray's reading of
the files.
"""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import (
    PROVENANCE,
    assert_event,
    assert_tree_unchanged,
    ingest,
    open_store,
    place,
    run_zru,
    tree_hash,
    write_config,
)

PATTERN = r"^obs/.*\.nc$"


# --------------------------------------------------------------------------
# File builders
# --------------------------------------------------------------------------


def gridded_file(path: Path, times, *, units="days since 1985-01-01", calendar=None,
                 time_dtype="f8", scale=1.0, crs_attrs=None, lat=None, fmt="NETCDF4",
                 wavelength_first=False, scalars=False, bounds=False) -> Path:
    """A small gridded file: time x lat x lon temperature (packed int16), a
    (wavelength, time) or (time, wavelength) variable, optionally a scalar grid mapping
    `crs` and a scalar `forecast_period`, and time bounds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lat = np.array([-10.0, -9.5, -9.0]) if lat is None else np.asarray(lat)
    lon = np.array([100.0, 100.5, 101.0, 101.5])
    times = np.asarray(times, dtype="f8")
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", len(lat))
        nc.createDimension("lon", len(lon))
        nc.createDimension("wavelength", 2)
        t = nc.createVariable("time", time_dtype, ("time",))
        t.units = units
        t.standard_name = "time"
        if calendar:
            t.calendar = calendar
        if bounds:
            nc.createDimension("nv", 2)
            t.bounds = "time_bnds"
            tb = nc.createVariable("time_bnds", time_dtype, ("time", "nv"))
        t[:] = times
        if bounds:
            tb[:] = np.stack([times - 0.5, times + 0.5], axis=1)
        la = nc.createVariable("lat", "f4", ("lat",))
        la.units = "degrees_north"
        la[:] = lat
        lo = nc.createVariable("lon", "f4", ("lon",))
        lo.units = "degrees_east"
        lo[:] = lon
        if scalars:
            crs = nc.createVariable("crs", "i4", ())
            attrs = {"grid_mapping_name": "latitude_longitude",
                     "semi_major_axis": 6378137.0, "inverse_flattening": 298.257223563}
            attrs.update(crs_attrs or {})
            crs.setncatts(attrs)
            crs.assignValue(0)
            fp = nc.createVariable("forecast_period", "f8", ())
            fp.units = "hours"
            fp.assignValue(6.0)
        sst = nc.createVariable("sst", "i2", ("time", "lat", "lon"), fill_value=-32768)
        sst.scale_factor = 0.01
        sst.add_offset = 20.0
        sst.units = "degree_Celsius"
        if scalars:
            sst.grid_mapping = "crs"
        base = (np.arange(len(lat) * len(lon)).reshape(len(lat), len(lon)) * 0.1)
        data = np.stack([base + day % 7 for day in times]) * scale
        data[:, 0, 0] = np.nan
        sst[:] = np.ma.masked_invalid(data)
        dims = ("wavelength", "time") if wavelength_first else ("time", "wavelength")
        ed = nc.createVariable("Ed", "f4", dims, fill_value=np.float32(np.nan))
        ed.units = "W m-2 nm-1"
        values = np.stack([np.asarray(times) * 0.001 + w for w in (1.0, 2.0)]) * scale
        ed[:] = values if wavelength_first else values.T
    return path


def track_file(path: Path, times, *, units="seconds since 1970-01-01", scale=1.0) -> Path:
    """A ship track along time: temperature and position per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", len(times))
        t = nc.createVariable("time", "f8", ("time",))
        t.units = units
        t[:] = times
        temp = nc.createVariable("TEMP", "f4", ("time",), fill_value=np.float32(-999))
        temp[:] = (15.0 + np.sin(np.arange(len(times)) / 10.0)) * scale
        la = nc.createVariable("LATITUDE", "f8", ("time",))
        la[:] = -30.0 + np.arange(len(times)) * 1e-4
    return path


def concat_files(files) -> xr.Dataset:
    """What xarray gives for the files: time variables concatenated, static ones once."""
    parts = [xr.open_dataset(f).load() for f in files]
    try:
        return xr.concat(parts, dim="time", data_vars="minimal", coords="minimal",
                         compat="override", join="override")
    finally:
        for p in parts:
            p.close()


def assert_store_equals(store: Path, files, *, drop=()):
    ds = open_store(store).drop_vars([PROVENANCE, *drop])
    want = concat_files(files).drop_vars(list(drop))
    assert set(ds.variables) == set(want.variables), (sorted(ds.variables), sorted(want.variables))
    for name in want.variables:
        got, exp = ds[name], want[name]
        assert got.dims == exp.dims, f"{name}: dims {got.dims} != {exp.dims}"
        if exp.dtype.kind == "f":
            xr.testing.assert_allclose(got, exp, rtol=1e-6)
        elif exp.dtype.kind in "SOUT" and got.dtype.kind not in "mMO":
            # Text: xarray reads a file's char arrays as bytes and the store's as str.
            as_text = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v),
                                   otypes=[object])
            np.testing.assert_array_equal(as_text(got.values), as_text(exp.values), name)
        else:
            xr.testing.assert_equal(got, exp)
    return ds


def workspace(tmp_path, **config):
    raw, cfg, store = tmp_path / "raw", tmp_path / "config", tmp_path / "obs.zarr"
    config.setdefault("chunks", {"time": 1, "lat": 2, "lon": 4})
    write_config(cfg, "obs", store=store, key_patterns=[PATTERN], **config)
    return raw, cfg, store


def assert_no_crash(res):
    """A rejection is an exit code and a reason, never a panic or an abort."""
    assert res.returncode in (0, 1), res.describe()
    assert "panicked" not in res.stderr and "memory allocation" not in res.stderr, res.describe()


# --------------------------------------------------------------------------
# Scalars and static variables
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_scalar_grid_mapping_and_static_variables_are_stored_once(tmp_path, fmt):
    raw, cfg, store = workspace(tmp_path)
    files = [gridded_file(tmp_path / f"src/d{d}.nc", [9000 + d], fmt=fmt, scalars=True)
             for d in range(3)]
    keys = [place(f, raw, f"obs/{f.name}") for f in files]
    res = ingest(cfg, raw, keys, cwd=tmp_path)
    for k in keys:
        assert_event(res, k.relative_to(raw).as_posix(), "appended")
    ds = assert_store_equals(store, files)
    assert ds["crs"].dims == () and ds["crs"].attrs["grid_mapping_name"] == "latitude_longitude"
    assert float(ds["forecast_period"]) == 6.0


def test_a_grid_mapping_or_static_coordinate_that_differs_is_rejected(tmp_path):
    raw, cfg, store = workspace(tmp_path)
    first = gridded_file(tmp_path / "src/a.nc", [9000], scalars=True)
    ingest(cfg, raw, [place(first, raw, "obs/a.nc")], cwd=tmp_path)
    before = tree_hash(store)
    other_crs = gridded_file(tmp_path / "src/b.nc", [9001], scalars=True,
                             crs_attrs={"semi_major_axis": 6371000.0})
    res = ingest(cfg, raw, [place(other_crs, raw, "obs/b.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/b.nc", "rejected")
    assert "grid mapping crs" in rec["reason"] and "semi_major_axis" in rec["reason"], rec
    moved = gridded_file(tmp_path / "src/c.nc", [9001], lat=[-10.0, -9.5, -8.0], scalars=True)
    res = ingest(cfg, raw, [place(moved, raw, "obs/c.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/c.nc", "rejected")
    assert "coordinate lat[2]" in rec["reason"], rec
    assert_tree_unchanged(before, store, "differing static variables")


# --------------------------------------------------------------------------
# The append dimension anywhere
# --------------------------------------------------------------------------


def test_append_dimension_not_first_is_appended_and_revised(tmp_path):
    raw, cfg, store = workspace(tmp_path, chunks={"time": 1, "lat": 3, "lon": 4,
                                                  "wavelength": 2})
    days = [gridded_file(tmp_path / f"src/d{d}.nc", [9000 + d], wavelength_first=True)
            for d in range(3)]
    keys = [place(f, raw, f"obs/d{i}.nc") for i, f in enumerate(days)]
    ingest(cfg, raw, keys, cwd=tmp_path)
    revised = gridded_file(tmp_path / "src/r1.nc", [9001], wavelength_first=True, scale=1.01)
    res = ingest(cfg, raw, [place(revised, raw, "obs/d1.nc")], cwd=tmp_path)
    assert_event(res, "obs/d1.nc", "overwrote", region=(1, 2))
    ds = assert_store_equals(store, [days[0], revised, days[2]])
    assert ds["Ed"].dims == ("wavelength", "time")


def test_a_file_split_around_a_gap_writes_each_run_along_a_later_axis(tmp_path):
    """Times 9003 and 9005 of one file fill slots 3 and 5 of a daily axis, whose slot 4
    holds another file: two runs of the (wavelength, time) variable."""
    raw, cfg, store = workspace(tmp_path)
    first = gridded_file(tmp_path / "src/a.nc", [9000], wavelength_first=True)
    middle = gridded_file(tmp_path / "src/m.nc", [9004], wavelength_first=True)
    pair = gridded_file(tmp_path / "src/p.nc", [9003, 9005], wavelength_first=True)
    ingest(cfg, raw, [place(first, raw, "obs/a.nc"), place(middle, raw, "obs/m.nc")],
           cwd=tmp_path)
    res = ingest(cfg, raw, [place(pair, raw, "obs/p.nc")], cwd=tmp_path)
    assert_event(res, "obs/p.nc", {"appended", "overwrote"})
    ds = open_store(store)
    assert list(ds[PROVENANCE].values) == ["obs/a.nc", "", "", "obs/p.nc", "obs/m.nc",
                                           "obs/p.nc"]
    want = concat_files([first, middle, pair]).sortby("time")
    got = ds.drop_vars(PROVENANCE).isel(time=[0, 3, 4, 5])
    for name in ("Ed", "sst"):
        xr.testing.assert_allclose(got[name], want[name])


# --------------------------------------------------------------------------
# Time tolerance: 1 Hz and 1 ms
# --------------------------------------------------------------------------


def test_a_1_hz_track_revision_overwrites_every_sample_in_place(tmp_path):
    raw, cfg, store = workspace(tmp_path, time_step=None, chunks={"time": 64})
    times = 1.6e9 + np.arange(300) * 0.99999992
    track = track_file(tmp_path / "src/t.nc", times)
    ingest(cfg, raw, [place(track, raw, "obs/t.nc")], cwd=tmp_path)
    revised = track_file(tmp_path / "src/t2.nc", times, scale=1.01)
    res = ingest(cfg, raw, [place(revised, raw, "obs/t.nc")], cwd=tmp_path)
    assert_event(res, "obs/t.nc", "overwrote", region=(0, 300))
    ds = assert_store_equals(store, [revised])
    assert ds.sizes["time"] == 300
    assert list(ds.indexes["time"]) == list(concat_files([revised]).indexes["time"])


def test_1_ms_samples_need_a_tolerance_below_half_their_spacing(tmp_path):
    times = 1.6e9 + np.arange(100) * 0.001
    track = track_file(tmp_path / "src/ms.nc", times)
    raw, cfg, store = workspace(tmp_path / "default", time_step=None, chunks={"time": 64})
    res = ingest(cfg, raw, [place(track, raw, "obs/ms.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/ms.nc", "rejected")
    assert "lower time_tolerance" in rec["reason"], rec
    assert not (store / "time").exists(), "a rejected first file created the time array"
    raw, cfg, store = workspace(tmp_path / "fine", time_step=None, chunks={"time": 64},
                                time_tolerance="0.1 ms")
    ingest(cfg, raw, [place(track, raw, "obs/ms.nc")], cwd=tmp_path)
    revised = track_file(tmp_path / "src/ms2.nc", times, scale=1.01)
    res = ingest(cfg, raw, [place(revised, raw, "obs/ms.nc")], cwd=tmp_path)
    assert_event(res, "obs/ms.nc", "overwrote", region=(0, 100))
    assert_store_equals(store, [revised])


# --------------------------------------------------------------------------
# Times that do not fit, absurd dates
# --------------------------------------------------------------------------


def test_a_time_beyond_an_int32_store_encoding_is_rejected_not_clamped(tmp_path):
    raw, cfg, store = workspace(tmp_path, time_step=None)
    # GHRSST's layout: int32 seconds since 1981. 2040-01-01 fits, 2050-01-01 does not.
    ok = gridded_file(tmp_path / "src/a.nc", [(np.datetime64("2040-01-01") -
                                              np.datetime64("1981-01-01")).astype("m8[s]")
                                             .astype(int)],
                      units="seconds since 1981-01-01 00:00:00", time_dtype="i4")
    ingest(cfg, raw, [place(ok, raw, "obs/a.nc")], cwd=tmp_path)
    before = tree_hash(store)
    late = gridded_file(tmp_path / "src/b.nc", [(np.datetime64("2050-01-01") -
                                                 np.datetime64("2000-01-01")).astype(int)],
                        units="days since 2000-01-01")
    res = ingest(cfg, raw, [place(late, raw, "obs/b.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/b.nc", "rejected")
    assert "does not fit the store's I32 time encoding" in rec["reason"], rec
    assert_tree_unchanged(before, store, "time overflow")


def test_a_date_absurdly_far_ahead_is_rejected_before_allocating(tmp_path):
    raw, cfg, store = workspace(tmp_path)
    ingest(cfg, raw, [place(gridded_file(tmp_path / "src/a.nc", [9000]), raw, "obs/a.nc")],
           cwd=tmp_path)
    before = tree_hash(store)
    far = gridded_file(tmp_path / "src/far.nc", [1e9])
    res = ingest(cfg, raw, [place(far, raw, "obs/far.nc")], cwd=tmp_path, expect_ok=False)
    assert_no_crash(res)
    rec = assert_event(res, "obs/far.nc", "rejected")
    assert "slots to the store's time axis" in rec["reason"], rec
    assert_tree_unchanged(before, store, "absurd date")


# --------------------------------------------------------------------------
# Order independence with a time step
# --------------------------------------------------------------------------


def test_a_gap_slot_filled_later_holds_the_files_time_whatever_the_order(tmp_path):
    """Day 9001's file is stamped 30 s after midnight (within a 1 minute tolerance):
    the store's time must be the file's whether it arrives before or after day 9002."""
    offset = 30 / 86400
    files = [gridded_file(tmp_path / "src/a.nc", [9000]),
             gridded_file(tmp_path / "src/b.nc", [9001 + offset]),
             gridded_file(tmp_path / "src/c.nc", [9002])]
    stores = []
    for order in ([0, 1, 2], [0, 2, 1]):
        ws = tmp_path / "".join(map(str, order))
        raw, cfg, store = workspace(ws, time_tolerance="1 minute")
        for i in order:
            ingest(cfg, raw, [place(files[i], raw, f"obs/{files[i].name}")], cwd=ws)
        stores.append(assert_store_equals(store, files))
    xr.testing.assert_identical(stores[0], stores[1])


# --------------------------------------------------------------------------
# Calendars and units
# --------------------------------------------------------------------------


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "julian", "proleptic_gregorian"])
def test_cf_calendars_decode_as_xarray_decodes_the_files(tmp_path, calendar):
    raw, cfg, store = workspace(tmp_path)
    files = [gridded_file(tmp_path / f"src/{d}.nc", [d], units="days since 2001-02-27",
                          calendar=calendar) for d in range(4)]
    ingest(cfg, raw, [place(f, raw, f"obs/{f.name}") for f in files], cwd=tmp_path)
    ds = assert_store_equals(store, files)
    assert ds["time"].dtype == concat_files(files)["time"].dtype


def test_a_file_in_another_calendar_is_rejected(tmp_path):
    raw, cfg, store = workspace(tmp_path)
    ingest(cfg, raw, [place(gridded_file(tmp_path / "src/a.nc", [0], units="days since 2001-01-01",
                                         calendar="noleap"), raw, "obs/a.nc")], cwd=tmp_path)
    before = tree_hash(store)
    other = gridded_file(tmp_path / "src/b.nc", [1], units="days since 2001-01-01",
                         calendar="360_day")
    res = ingest(cfg, raw, [place(other, raw, "obs/b.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/b.nc", "rejected")
    assert "calendar" in rec["reason"], rec
    assert_tree_unchanged(before, store, "other calendar")


def test_time_units_that_change_between_files_are_converted(tmp_path):
    """The time coordinate and its bounds (which take its units) of the second file,
    in hours since 1950, land in the store's days since 1985."""
    raw, cfg, store = workspace(tmp_path, time_step=None)
    a = gridded_file(tmp_path / "src/a.nc", [9000], units="days since 1985-01-01", bounds=True)
    hours_1950 = (np.datetime64("1985-01-01") - np.datetime64("1950-01-01")).astype(int) * 24
    b = gridded_file(tmp_path / "src/b.nc", [hours_1950 + 9001 * 24],
                     units="hours since 1950-01-01 00:00:00", bounds=True)
    ingest(cfg, raw, [place(a, raw, "obs/a.nc"), place(b, raw, "obs/b.nc")], cwd=tmp_path)
    ds = assert_store_equals(store, [a, b])
    want = np.array([np.datetime64("1985-01-01") + np.timedelta64(d, "D")
                     for d in (9000, 9001)], dtype="M8[ns]")
    np.testing.assert_array_equal(ds["time"].values, want)


# --------------------------------------------------------------------------
# No input crashes the process
# --------------------------------------------------------------------------


def test_a_panic_while_staging_one_file_rejects_it_alone(tmp_path):
    raw, cfg, store = workspace(tmp_path)
    files = [gridded_file(tmp_path / f"src/d{d}.nc", [9000 + d]) for d in range(3)]
    keys = [place(f, raw, f"obs/{f.name}") for f in files]
    import os
    env_before = os.environ.get("ZRU_FAULT_PANIC_ON_KEY")
    os.environ["ZRU_FAULT_PANIC_ON_KEY"] = "obs/d1.nc"
    try:
        res = ingest(cfg, raw, keys, cwd=tmp_path, expect_ok=False)
    finally:
        if env_before is None:
            os.environ.pop("ZRU_FAULT_PANIC_ON_KEY")
        else:
            os.environ["ZRU_FAULT_PANIC_ON_KEY"] = env_before
    # The process exits as for any rejection (the panic's message stays on stderr for
    # a bug report); it did not abort.
    assert res.returncode == 1, res.describe()
    assert "dead letters" in res.stderr + res.stdout, res.describe()
    rec = assert_event(res, "obs/d1.nc", "rejected")
    assert "internal error: injected panic" in rec["reason"], rec
    assert_event(res, "obs/d0.nc", "appended")
    assert_event(res, "obs/d2.nc", "appended")
    ds = open_store(store)
    assert list(ds[PROVENANCE].values) == ["obs/d0.nc", "", "obs/d2.nc"]
    assert bool(ds["sst"].isel(time=1).isnull().all()), "the panicked file's rows were kept"
    want = concat_files([files[0], files[2]])
    xr.testing.assert_allclose(ds["sst"].isel(time=[0, 2]), want["sst"])


# --------------------------------------------------------------------------
# Packing, text, curvilinear grids
# --------------------------------------------------------------------------


def test_files_packed_differently_are_repacked_and_overflow_is_rejected(tmp_path):
    """The second file packs sst with another scale and offset: its physical values land
    repacked in the store's int16; a third whose values do not fit is rejected."""
    raw, cfg, store = workspace(tmp_path)
    a = gridded_file(tmp_path / "src/a.nc", [9000])
    b = gridded_file(tmp_path / "src/b.nc", [9001])
    with netCDF4.Dataset(b, "a") as nc:
        sst = nc["sst"]
        sst.set_auto_maskandscale(True)
        physical = sst[:]
        sst.scale_factor = 0.02
        sst.add_offset = 10.0
        sst[:] = physical
    ingest(cfg, raw, [place(a, raw, "obs/a.nc"), place(b, raw, "obs/b.nc")], cwd=tmp_path)
    ds = open_store(store)
    want = concat_files([a, b])
    # The store keeps the first file's packing (0.01): b's values round to it.
    xr.testing.assert_allclose(ds["sst"], want["sst"], atol=0.0051, rtol=0)
    before = tree_hash(store)
    hot = gridded_file(tmp_path / "src/c.nc", [9002])
    with netCDF4.Dataset(hot, "a") as nc:
        nc["sst"].scale_factor = 1.0  # physical values up to ~32767: beyond 0.01 * int16
    res = ingest(cfg, raw, [place(hot, raw, "obs/c.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/c.nc", "rejected")
    assert "sst" in rec["reason"], rec
    assert_tree_unchanged(before, store, "values that do not fit the store's packing")


def text_file(path: Path, day: int, fmt: str) -> Path:
    """A gridded file with a per-time char array (S1 x strlen) and, in netCDF-4, a
    variable-length string variable along time."""
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("time", None)
        nc.createDimension("strlen", 8)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 1985-01-01"
        t[:] = [day]
        platform = nc.createVariable("platform", "S1", ("time", "strlen"))
        platform[:] = netCDF4.stringtochar(np.array([f"ship{day % 100:02d}"], dtype="S8"))
        if fmt == "NETCDF4":
            note = nc.createVariable("note", str, ("time",))
            note[0] = f"day {day} ok"
        value = nc.createVariable("value", "f4", ("time",))
        value[:] = [day * 0.5]
    return path


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_char_and_string_variables_along_time(tmp_path, fmt):
    raw, cfg, store = workspace(tmp_path, chunks={"time": 1})
    tmp_path.joinpath("src").mkdir()
    files = [text_file(tmp_path / f"src/{d}.nc", 9000 + d, fmt) for d in range(3)]
    ingest(cfg, raw, [place(f, raw, f"obs/{f.name}") for f in files], cwd=tmp_path)
    assert_store_equals(store, files)


def test_a_curvilinear_grid_is_static_and_checked(tmp_path):
    """2-D latitude/longitude (y, x) are stored once; a file on another grid is rejected."""
    def curvilinear(path: Path, day: int, shift: float = 0.0) -> Path:
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", None)
            nc.createDimension("y", 3)
            nc.createDimension("x", 4)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "days since 1985-01-01"
            t[:] = [day]
            yy, xx = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
            lat = nc.createVariable("lat", "f8", ("y", "x"))
            lat.units = "degrees_north"
            lat[:] = -40 + yy * 0.5 + xx * 0.1 + shift
            lon = nc.createVariable("lon", "f8", ("y", "x"))
            lon.units = "degrees_east"
            lon[:] = 140 + xx * 0.5 - yy * 0.1
            v = nc.createVariable("ssh", "f4", ("time", "y", "x"), fill_value=np.float32(-9e9))
            v.coordinates = "lat lon"
            v[:] = (yy + xx + day % 5)[None].astype("f4")
        return path

    raw, cfg, store = workspace(tmp_path, chunks={"time": 1, "y": 3, "x": 4})
    tmp_path.joinpath("src").mkdir()
    files = [curvilinear(tmp_path / f"src/{d}.nc", 9000 + d) for d in range(2)]
    ingest(cfg, raw, [place(f, raw, f"obs/{f.name}") for f in files], cwd=tmp_path)
    assert_store_equals(store, files)
    before = tree_hash(store)
    other = curvilinear(tmp_path / "src/other.nc", 9002, shift=0.25)
    res = ingest(cfg, raw, [place(other, raw, "obs/other.nc")], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, "obs/other.nc", "rejected")
    assert "static variable lat[" in rec["reason"], rec
    assert_tree_unchanged(before, store, "another curvilinear grid")
