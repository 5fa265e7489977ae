"""Differential (property-based) test of zru against xarray.

Hypothesis generates a family of random CF NetCDF files valid for one gridded dataset
(dimension sizes, dimension order with the append dimension first or not, dtypes
int8..uint64 / float32 / float64 / char / string, CF packing, ``_FillValue`` present or
absent, NaN, scalar, static and bounds variables, attributes, calendars, time units and
time dtypes varying between files, netCDF3 classic / 64-bit offset and netCDF-4 with
chunking and compression) and a random sequence of events on a few object keys
(append, overwrite, revision with moved times, removal, out-of-order arrival,
duplicates, a file on another grid). Each event runs the real ``zru`` binary, one
event per invocation, and then one of two things must hold:

* the event was applied and the store, read with ``xr.open_zarr``, equals the oracle:
  along ``time``, each slot holds what ``xr.open_dataset`` reads from the file of the
  LAST applied created event of the key that holds the slot (the ``xr.concat`` of
  those slices, ordered by time), slots whose key was removed (or gap slots) read as
  missing, static variables read as in any file; zarr-python opens the store and its
  consolidated metadata agrees with the arrays;
* or zru rejected the event (exit 1, action ``rejected``, a reason naming the key) and
  the store is byte-for-byte unchanged. A rejection is required where the input is
  invalid for the store (a time before the start or between slots, another grid),
  tolerated only where the input may be genuinely unsupported (a time the store's
  integer time encoding cannot hold, packing that does not fit the store's), and a
  failure anywhere else.

A panic or crash (exit code other than 0/1, a signal, ``panicked at``) always fails.

Profiles: ``ci`` (default; bounded, derandomised, no example database) and ``long``
(``ZRU_DIFF_PROFILE=long``, ``ZRU_DIFF_EXAMPLES`` examples per feature group; see
``scripts/differential.sh``). ``ZRU_DIFF_STATS=FILE`` appends one JSON line per
example (events, outcomes, rejection reasons) for the long run's figures.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from conftest import PROVENANCE, _attr_equal, run_zru, tree_hash

# --------------------------------------------------------------------------
# Hypothesis profiles
# --------------------------------------------------------------------------

_COMMON = dict(
    deadline=None,
    database=None,  # no example database in the repository
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture,
                           HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=12, derandomize=True, **_COMMON)
settings.register_profile(
    "long", max_examples=int(os.environ.get("ZRU_DIFF_EXAMPLES", "300")), derandomize=False,
    **_COMMON)
PROFILE = os.environ.get("ZRU_DIFF_PROFILE", "ci")
SETTINGS = settings.get_profile(PROFILE)
if os.environ.get("ZRU_DIFF_NO_SHRINK"):  # quick triage: report failures unshrunk
    SETTINGS = settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])
STATS_FILE = os.environ.get("ZRU_DIFF_STATS")

DATASET = "d"
KEY_PREFIX = "d/"
NV = 2
UNITS = ("days since 1985-01-01", "hours since 1950-01-01 00:00:00",
         "seconds since 1981-01-01")
CALENDARS = ("standard", "noleap", "360_day", "julian", "proleptic_gregorian")
NC3_FORMATS = ("NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF4_CLASSIC")
NC3_TYPES = ("i1", "i2", "i4", "f4", "f8")
NC4_TYPES = ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8")
INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------
# Feature flags: which parts of the input space a test run may draw from
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    time_not_first: bool = False   # data variables with (lat, time), (lat, lon, time), ...
    scalar: bool = False           # 0-d variables (a `crs` grid mapping)
    static: bool = True            # lat/lon coordinates (always) and a 2-D static field
    bounds: bool = False           # time_bnds(time, nv), lat_bnds(lat, nv); with
                                   # units_vary, time_bnds in other units than the store's
    char: bool = False             # char (S1) variables along time
    string: bool = False           # vlen string variables (netCDF-4 only)
    packing: bool = True           # scale_factor/add_offset on integer variables
    packing_varies: bool = False   # other packing in some files than in the store
    int64: bool = True             # int64 and uint64 variables (netCDF-4)
    fills: bool = True             # _FillValue present/absent, fill values in the data
    nan: bool = True               # NaN in float variables
    attrs: bool = True             # variable and global attributes of several types
    unicode_attrs: bool = False    # non-ASCII text attributes (NC_STRING in netCDF-4)
    calendars: bool = False        # noleap, 360_day, julian, proleptic_gregorian
    units_vary: bool = False       # time units and dtype chosen per file
    nc3: bool = True               # netCDF3 classic / 64-bit offset / netCDF-4 classic
    nc4: bool = True               # netCDF-4 with chunking and zlib
    optional_vars: bool = False    # a file may lack a variable the store has
    removals: bool = True
    moved_times: bool = True       # revisions of a key at other times
    off_grid: bool = False         # times between slots (must be rejected)
    bad_grid: bool = False         # a file on another grid (must be rejected)
    fine_times: bool = False       # samples 0.5 s apart (closer than the 1 s tolerance)
    far_future: bool = False       # times past 2049-01-19 (int32 seconds since 1981)
    time_step: bool = True         # the dataset config has a `time_step`
    focus: frozenset = frozenset()  # features every example of the group uses


def use(draw, feats: Features, name: str) -> bool:
    """Whether this example uses feature ``name``: never when it is off, always when
    the group focuses on it, else drawn."""
    if not getattr(feats, name):
        return False
    return name in feats.focus or draw(st.booleans())


ALL = Features(**{f.name: True for f in dataclasses.fields(Features) if f.name != "focus"})
CORE = Features()
GROUPS = {
    # What the binary is expected to handle today.
    "core": CORE,
    "units_vary": dataclasses.replace(CORE, units_vary=True, optional_vars=True),
    "bounds": dataclasses.replace(CORE, bounds=True, units_vary=True,
                                  focus=frozenset({"bounds"})),
    "char": dataclasses.replace(CORE, char=True, focus=frozenset({"char"})),
    "string": dataclasses.replace(CORE, string=True, nc3=False, focus=frozenset({"string"})),
    "unicode_attrs": dataclasses.replace(CORE, unicode_attrs=True,
                                         focus=frozenset({"unicode_attrs"})),
    "dim_order": dataclasses.replace(CORE, time_not_first=True,
                                     focus=frozenset({"time_not_first"})),
    "scalar": dataclasses.replace(CORE, scalar=True, focus=frozenset({"scalar"})),
    "calendars": dataclasses.replace(CORE, calendars=True, units_vary=True,
                                     focus=frozenset({"calendars"})),
    "off_grid": dataclasses.replace(CORE, off_grid=True, units_vary=True),
    "fine_times": dataclasses.replace(CORE, fine_times=True, units_vary=True,
                                      focus=frozenset({"fine_times"})),
    "far_future": dataclasses.replace(CORE, far_future=True, units_vary=True,
                                      focus=frozenset({"far_future"})),
    "packing_varies": dataclasses.replace(CORE, packing_varies=True, bad_grid=True),
    # Everything at once.
    "all": ALL,
}
CI_EXAMPLES = {"core": 12, "units_vary": 4, "bounds": 4, "char": 4, "string": 3,
               "unicode_attrs": 3, "dim_order": 4, "scalar": 4, "calendars": 4,
               "off_grid": 4, "fine_times": 4, "far_future": 4, "packing_varies": 4, "all": 8}

# Failures found and not fixed in the binary this file was last run against: the test
# is expected to fail (strict: it fails the suite once the bug is fixed, so the mark
# is removed with the fix). Keyed by test function name.
# Fixed (their regression tests below now pass): NC_STRING text attributes stored as a
# one-element list; int32 time bounds blanked to a date; a repacked value landing on the
# store's _FillValue; int64/uint64 blanks through a float (not netCDF's default fill).
# Not a zru bug (was listed here): int64 time bounds in a julian calendar with a blanked
# slot. xarray cannot decode any integer cftime variable with a missing value, whatever
# its _FillValue (test_xarray_cannot_decode_missing_cftime); the oracle decodes those
# stores' times itself, as for the 360_day all-missing chunk.
KNOWN_FAILURES: dict[str, str] = {}


def known_failure(name: str):
    """The strict xfail mark of a known, unfixed failure (or no mark)."""
    if name in KNOWN_FAILURES:
        return [pytest.mark.xfail(strict=True, raises=AssertionError,
                                  reason=f"zru bug: {KNOWN_FAILURES[name]}")]
    return []


def xfail_if_known(fn):
    """Marks a regression test listed in KNOWN_FAILURES as a strict xfail."""
    for mark in known_failure(fn.__name__):
        fn = mark(fn)
    return fn


# --------------------------------------------------------------------------
# The generated input: a family of files and an event sequence
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VarSpec:
    name: str
    dims: tuple          # netCDF dimensions (char variables end with "strlen")
    dtype: str           # numpy kind code, "S1" (char) or "str" (vlen string)
    fill: object = None  # raw _FillValue, None for no attribute
    packing: tuple | None = None  # (scale_factor, add_offset, attr dtype)
    nan: bool = False
    attrs: tuple = ()    # ((name, value), ...)
    wide: bool = False   # values across the dtype's whole range

    @property
    def along_time(self) -> bool:
        return "time" in self.dims


@dataclass(frozen=True)
class Family:
    """What every file of the dataset shares."""
    nc_class: str            # "nc3" or "nc4"
    ny: int
    nx: int
    strlen: int
    calendar: str
    write_calendar: bool     # write the calendar attribute even for "standard"
    base: tuple              # (year, month, day, hour) of slot 0
    step_seconds: float      # 86400 or 0.5
    units: str               # time units when they do not vary between files
    time_dtype: str
    unlimited: bool
    lat_f4: bool
    variables: tuple         # VarSpec, ...
    time_bnds: bool
    global_attrs: tuple
    zarr_format: int
    time_step: str | None
    chunks: tuple            # ((dim, len), ...)


@dataclass(frozen=True)
class Version:
    """One file content for a key."""
    times: tuple             # slot numbers (float; off-grid ones have a fraction)
    seed: int
    fmt: str                 # netCDF format
    units: str
    time_dtype: str
    zlib: int                # 0: none, else complevel (netCDF-4)
    chunked: bool
    drop: tuple = ()         # variables this file lacks
    pack_factor: float = 1.0  # scale_factor multiplier (packing_varies)
    bad_grid: str = ""       # "", "shift" or "size"


@dataclass(frozen=True)
class Event:
    op: str                  # "create" or "remove"
    key: str
    version: Version | None = None


@dataclass(frozen=True)
class Scenario:
    family: Family
    events: tuple            # Event, ...

    def recipe(self) -> str:
        f = self.family
        lines = [f"family: {f.nc_class} grid {f.ny}x{f.nx} calendar={f.calendar} base={f.base} "
                 f"step={f.step_seconds}s units={f.units!r} {f.time_dtype} "
                 f"unlimited={f.unlimited} zarr_format={f.zarr_format} "
                 f"time_step={f.time_step} chunks={dict(f.chunks)} time_bnds={f.time_bnds}"]
        for v in f.variables:
            lines.append(f"  var {v.name}{v.dims} {v.dtype} fill={v.fill!r} "
                         f"packing={v.packing} nan={v.nan} wide={v.wide} attrs={dict(v.attrs)}")
        for i, e in enumerate(self.events):
            if e.op == "remove":
                lines.append(f"  event {i}: remove {e.key}")
            else:
                v = e.version
                lines.append(f"  event {i}: create {e.key} times={list(v.times)} seed={v.seed} "
                             f"{v.fmt} {v.units!r} {v.time_dtype} zlib={v.zlib} "
                             f"chunked={v.chunked} drop={list(v.drop)} "
                             f"pack_factor={v.pack_factor} bad_grid={v.bad_grid!r}")
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------


def _attr_values(draw, feats: Features):
    names = ["sea surface temperature", "flag", "x", ""]
    if feats.unicode_attrs:
        names.append("température de surface")  # NC_STRING in netCDF-4 files
    out = [("long_name", names[-1] if "unicode_attrs" in feats.focus
            else draw(st.sampled_from(names)))]
    if draw(st.booleans()):
        out.append(("valid_count", np.int32(draw(st.integers(-5, 1000)))))
    if draw(st.booleans()):
        out.append(("coefficients", np.array(draw(st.lists(
            st.floats(-1e6, 1e6, allow_nan=False, width=64), min_size=1, max_size=3)))))
    if draw(st.booleans()):
        out.append(("comment", draw(st.text(alphabet="abc XYZ,;:-_/()0123456789",
                                            max_size=12))))
    return tuple(out)


def _fill_for(dtype: str, draw):
    d = np.dtype(dtype)
    if d.kind == "f":
        return d.type(draw(st.sampled_from([-999.0, 1e20, np.nan, -1.0e10])))
    info = np.iinfo(d)
    return d.type(draw(st.sampled_from([info.min, info.max, 0 if d.kind == "u" else -1])))


@st.composite
def data_var(draw, feats: Features, nc_class: str, name: str, time_first: bool):
    types = [t for t in (NC4_TYPES if nc_class == "nc4" else NC3_TYPES)
             if t not in ("i8", "u8") or feats.int64]
    kinds = ["num"] * 6
    if feats.char:
        kinds.append("char")
    if feats.string and nc_class == "nc4":
        kinds.append("str")
    kind = draw(st.sampled_from(kinds))
    if name == "v0" and "char" in feats.focus:
        kind = "char"
    if name == "v0" and "string" in feats.focus and nc_class == "nc4":
        kind = "str"
    if kind in ("char", "str"):
        if time_first:
            dims = draw(st.sampled_from([("time",), ("time", "lat")]))
        else:
            dims = draw(st.sampled_from([("time",), ("lat", "time"), ("time", "lat")]))
        if kind == "char":
            return VarSpec(name, dims + ("strlen",), "S1",
                           attrs=_attr_values(draw, feats) if feats.attrs else ())
        return VarSpec(name, dims, "str", attrs=_attr_values(draw, feats) if feats.attrs else ())
    dtype = draw(st.sampled_from(types))
    if time_first:
        dims = draw(st.sampled_from([("time", "lat", "lon"), ("time",), ("time", "lon")]))
    else:
        dims = draw(st.sampled_from([("lat", "time", "lon"), ("lat", "lon", "time"),
                                     ("lon", "time"), ("time", "lat", "lon")]))
    fill = _fill_for(dtype, draw) if feats.fills and draw(st.booleans()) else None
    packing = None
    if feats.packing and np.dtype(dtype).kind in "iu" and draw(st.booleans()):
        packing = (draw(st.sampled_from([0.01, 0.5, 2.0, 0.001])),
                   draw(st.sampled_from([0.0, 10.5, -273.15])),
                   draw(st.sampled_from(["f4", "f8"])))
    nan = feats.nan and np.dtype(dtype).kind == "f" and draw(st.booleans())
    wide = np.dtype(dtype).kind in "iu" and draw(st.booleans())
    attrs = _attr_values(draw, feats) if feats.attrs else ()
    return VarSpec(name, dims, dtype, fill, packing, nan, attrs, wide)


@st.composite
def families(draw, feats: Features) -> Family:
    classes = [c for c, on in (("nc3", feats.nc3), ("nc4", feats.nc4)) if on]
    nc_class = draw(st.sampled_from(classes))
    time_first = not use(draw, feats, "time_not_first")
    n_vars = draw(st.integers(1, 3))
    variables = [draw(data_var(feats, nc_class, f"v{i}", time_first)) for i in range(n_vars)]
    if feats.static and draw(st.booleans()):
        variables.append(VarSpec("mask", ("lat", "lon"), "i1",
                                 attrs=(("flag_values", np.array([0, 1], "i1")),
                                        ("flag_meanings", "water land"))))
    if use(draw, feats, "bounds"):
        variables.append(VarSpec("lat_bnds", ("lat", "nv"), "f8"))
    if use(draw, feats, "scalar"):
        variables.append(VarSpec("crs", (), "i4", attrs=(
            ("grid_mapping_name", "latitude_longitude"),
            ("semi_major_axis", 6378137.0), ("inverse_flattening", 298.257223563))))
    if feats.scalar and draw(st.booleans()):
        variables.append(VarSpec("depth", (), "f4", attrs=(("units", "m"),)))
    fine = use(draw, feats, "fine_times")
    calendar = "standard"
    if feats.calendars:
        calendar = draw(st.sampled_from(CALENDARS[1:] if "calendars" in feats.focus
                                        else CALENDARS))
    if use(draw, feats, "far_future"):
        base = (2049, 1, 15, 0)
    else:
        base = draw(st.sampled_from([(1990, 3, 1, 0), (2024, 1, 1, 12), (2001, 7, 30, 0)]))
    if fine:
        base = (base[0], base[1], base[2], 6)
    units = draw(st.sampled_from(UNITS))
    time_dtype = draw(st.sampled_from(["i4", "i8", "f8"]))
    unlimited = draw(st.booleans())
    if nc_class == "nc3" and not all(v.dims[:1] == ("time",) for v in variables
                                     if v.along_time):
        unlimited = False  # netCDF3: the unlimited dimension must come first
    ny, nx = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    time_step = None
    if feats.time_step and not fine and draw(st.booleans()):
        time_step = "1 day"
    chunks = (("time", draw(st.integers(1, 4))), ("lat", draw(st.integers(1, ny))),
              ("lon", draw(st.integers(1, nx))))
    global_attrs = ()
    if feats.attrs:
        global_attrs = (("title", "zru differential test"), ("Conventions", "CF-1.8"),
                        ("geospatial_lat_max", float(draw(st.integers(-90, 90)))),
                        ("levels", np.array(draw(st.lists(st.integers(0, 100), min_size=1,
                                                          max_size=4)), "i4")))
    return Family(
        nc_class=nc_class, ny=ny, nx=nx, strlen=draw(st.integers(1, 5)), calendar=calendar,
        write_calendar=calendar != "standard" or draw(st.booleans()), base=base,
        step_seconds=0.5 if fine else 86400.0, units=units, time_dtype=time_dtype,
        unlimited=unlimited, lat_f4=draw(st.booleans()), variables=tuple(variables),
        time_bnds=use(draw, feats, "bounds"), global_attrs=global_attrs,
        zarr_format=draw(st.sampled_from([2, 3])), time_step=time_step, chunks=chunks)


@st.composite
def versions(draw, feats: Features, fam: Family, times: tuple) -> Version:
    formats = {"nc3": NC3_FORMATS, "nc4": ("NETCDF4",)}[fam.nc_class]
    if feats.units_vary:
        units = draw(st.sampled_from(UNITS))
        time_dtype = draw(st.sampled_from(["i4", "i8", "f8"]))
    else:
        units, time_dtype = fam.units, fam.time_dtype
    droppable = [v.name for v in fam.variables if v.along_time]
    drop = ()
    if feats.optional_vars and droppable and draw(st.integers(0, 3)) == 0:
        drop = (draw(st.sampled_from(droppable)),)
    pack_factor = 1.0
    if feats.packing_varies and draw(st.integers(0, 2)) == 0:
        pack_factor = draw(st.sampled_from([0.5, 2.0]))
    return Version(times=times, seed=draw(st.integers(0, 2**31)),
                   fmt=draw(st.sampled_from(formats)), units=units, time_dtype=time_dtype,
                   zlib=draw(st.sampled_from([0, 1, 5, 9])) if fam.nc_class == "nc4" else 0,
                   chunked=fam.nc_class == "nc4" and draw(st.booleans()), drop=drop,
                   pack_factor=pack_factor)


@st.composite
def scenarios(draw, feats: Features) -> Scenario:
    fam = draw(families(feats))
    n_keys = draw(st.integers(1, 4))
    keys = [f"{KEY_PREFIX}f{i}.nc" for i in range(n_keys)]
    homes = {k: (draw(st.integers(0, 8)), draw(st.integers(1, 3))) for k in keys}
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 7))):
        choices = ["create", "create", "create", "revise"]
        if feats.removals:
            choices.append("remove")
        if feats.moved_times:
            choices.append("move")
        if events:
            choices.append("duplicate")
        if feats.off_grid:
            choices.append("off_grid")
        if feats.bad_grid and events:
            choices.append("bad_grid")
        what = draw(st.sampled_from(choices))
        key = draw(st.sampled_from(keys))
        start, length = homes[key]
        times = tuple(float(start + i) for i in range(length))
        if what == "duplicate":
            events.append(events[-1])
            continue
        if what == "remove":
            events.append(Event("remove", key))
            continue
        if what == "move":
            shift = draw(st.integers(-3, 5).filter(lambda s: s != 0))
            times = tuple(max(0.0, t + shift) for t in times)
            times = tuple(sorted(set(times)))
        elif what == "off_grid":
            times = tuple(t + 0.25 for t in times)
        ver = draw(versions(feats, fam, times))
        if what == "bad_grid":
            ver = dataclasses.replace(ver, bad_grid=draw(st.sampled_from(["shift", "size"])))
        events.append(Event("create", key, ver))
    return Scenario(fam, tuple(events))


# --------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------


def slot_date(fam: Family, n: float):
    y, m, d, h = fam.base
    base = cftime.datetime(y, m, d, h, calendar=fam.calendar)
    return base + dt.timedelta(microseconds=round(n * fam.step_seconds * 1e6))


def encode_times(fam: Family, values_n, units: str, dtype: str,
                 nc3: bool = False) -> tuple[np.ndarray, str]:
    """Time values in ``units``; an integer dtype only where exact (no int64 in
    netCDF3: int32 where it fits, else float64)."""
    dates = [slot_date(fam, n) for n in values_n]
    vals = np.asarray(cftime.date2num(dates, units, calendar=fam.calendar), dtype="f8")
    vals = np.round(vals, 9)
    if dtype == "i8" and nc3:
        dtype = "i4"
    if dtype != "f8":
        info = np.iinfo(np.dtype(dtype))
        if np.all(vals == np.round(vals)) and np.all((vals >= info.min) & (vals <= info.max)):
            return vals.astype(dtype), dtype
        dtype = "f8"
    return vals, dtype


def file_times(fam: Family, ver: Version) -> tuple[np.ndarray, str]:
    """The time values and dtype the file of ``ver`` holds."""
    return encode_times(fam, ver.times, ver.units, ver.time_dtype, nc3=ver.fmt != "NETCDF4")


def _ascii_words(rng, n, maxlen):
    letters = np.array(list("abcdefghijXYZ _-0123456789"))
    return [("".join(rng.choice(letters, rng.integers(0, maxlen + 1)))) for _ in range(n)]


def var_values(spec: VarSpec, shape, rng, pack_factor=1.0):
    """Raw (on-disk) values for a variable."""
    if spec.dtype == "str":
        pool = ["", "a", "héllo", "Zürich", "x y", "ŝtring", "123"]
        return np.array([pool[i] for i in rng.integers(0, len(pool), int(np.prod(shape)))],
                        dtype=object).reshape(shape)
    if spec.dtype == "S1":
        n = int(np.prod(shape[:-1]))
        words = _ascii_words(rng, n, shape[-1])
        arr = np.array(words, dtype=f"S{shape[-1]}").reshape(shape[:-1])
        return netCDF4.stringtochar(arr)
    d = np.dtype(spec.dtype)
    size = int(np.prod(shape))
    if d.kind == "f":
        vals = rng.normal(0, 100, size).round(2).astype(d)
        if spec.nan:
            vals[rng.random(size) < 0.2] = np.nan
    else:
        info = np.iinfo(d)
        if spec.wide:
            lo, hi = int(info.min) + 2, int(info.max) - 2
        else:
            lo, hi = max(int(info.min) + 2, -100), min(int(info.max) - 2, 100)
        if spec.packing is not None and pack_factor != 1.0:
            # The same physical values as under the store's packing: raw * 1/factor.
            lo, hi = max(lo, -50), min(hi, 50)
        vals = np.array([int(x) for x in rng.integers(lo, hi, size, endpoint=True,
                                                      dtype=np.int64 if d.kind == "i" or
                                                      hi < 2**63 else np.uint64)],
                        dtype=object).astype(d)
        # Avoid netCDF's default fill (the blank value of an unfilled integer variable).
        default = netCDF4.default_fillvals[f"{d.kind}{d.itemsize}"]
        vals[vals == d.type(default)] = d.type(1)
    if spec.fill is not None and not (d.kind == "f" and np.isnan(spec.fill)):
        vals[vals == spec.fill] = d.type(0) if spec.fill != 0 else d.type(1)
        vals[rng.random(size) < 0.15] = spec.fill
    elif spec.fill is not None:
        vals[rng.random(size) < 0.15] = np.nan
    return vals.reshape(shape)


def write_file(path: Path, fam: Family, ver: Version) -> None:
    rng = np.random.default_rng(ver.seed)
    ny = fam.ny + (1 if ver.bad_grid == "size" else 0)
    sizes = {"time": len(ver.times), "lat": ny, "lon": fam.nx, "nv": NV, "strlen": fam.strlen}
    nc4 = ver.fmt == "NETCDF4"
    with netCDF4.Dataset(path, "w", format=ver.fmt) as nc:
        for k, v in fam.global_attrs:
            nc.setncattr(k, v)
        nc.setncattr("source_version_seed", str(ver.seed))
        for dim, size in sizes.items():
            if dim == "strlen" and not any(v.dtype == "S1" for v in fam.variables):
                continue
            if dim == "nv" and not (fam.time_bnds or any(v.name == "lat_bnds"
                                                          for v in fam.variables)):
                continue
            nc.createDimension(dim, None if (dim == "time" and fam.unlimited) else size)

        def create(name, dtype, dims, fill=None, chunk=True):
            kw = {}
            if nc4 and dtype != str:
                if ver.zlib:
                    kw.update(zlib=True, complevel=ver.zlib, shuffle=bool(ver.seed % 2))
                if ver.chunked and chunk and dims:
                    kw["chunksizes"] = [max(1, sizes[d] // 2) for d in dims]
            if fill is not None:
                kw["fill_value"] = fill
            var = nc.createVariable(name, dtype, dims, **kw)
            var.set_auto_maskandscale(False)
            return var

        tvals, tdtype = file_times(fam, ver)
        time = create("time", tdtype, ("time",))
        time.setncatts({"standard_name": "time", "axis": "T", "units": ver.units})
        if fam.write_calendar:
            time.calendar = fam.calendar
        if fam.time_bnds:
            time.bounds = "time_bnds"
        time[:] = tvals
        if fam.time_bnds:
            half = fam.step_seconds / 2 / fam.step_seconds
            both, bdtype = encode_times(
                fam, [t - half for t in ver.times] + [t + half for t in ver.times], ver.units,
                tdtype, nc3=not nc4)
            tb = create("time_bnds", bdtype, ("time", "nv"))
            tb[:] = both.reshape(2, -1).T

        lat_vals = np.linspace(-60.0, 60.0, ny) + (1.0 if ver.bad_grid == "shift" else 0.0)
        lat = create("lat", "f4" if fam.lat_f4 else "f8", ("lat",))
        lat.setncatts({"units": "degrees_north", "standard_name": "latitude"})
        lat[:] = lat_vals
        lon = create("lon", "f8", ("lon",))
        lon.setncatts({"units": "degrees_east", "standard_name": "longitude"})
        lon[:] = np.linspace(100.0, 160.0, fam.nx)

        for spec in fam.variables:
            if spec.name in ver.drop:
                continue
            dims = spec.dims
            shape = tuple(sizes[d] for d in dims)
            if spec.name == "lat_bnds":
                var = create("lat_bnds", "f8", dims)
                step = 120.0 / max(ny - 1, 1)
                var[:] = np.stack([lat_vals - step / 2, lat_vals + step / 2], axis=1)
                lat.bounds = "lat_bnds"
                continue
            dtype = str if spec.dtype == "str" else spec.dtype
            var = create(spec.name, dtype, dims, fill=spec.fill)
            for k, v in spec.attrs:
                var.setncattr(k, v)
            if spec.packing is not None:
                sf, ao, adt = spec.packing
                var.setncattr("scale_factor", np.dtype(adt).type(sf * ver.pack_factor))
                var.setncattr("add_offset", np.dtype(adt).type(ao))
            if spec.name == "crs":
                var.assignValue(np.int32(0))
                continue
            if spec.name == "depth":
                var.assignValue(np.float32(5.5))
                continue
            if spec.name == "mask":
                var[:] = ((np.arange(ny)[:, None] + np.arange(fam.nx)[None, :]) % 2).astype("i1")
                continue
            sub = np.random.default_rng([ver.seed, sum(map(ord, spec.name))])
            var[...] = var_values(spec, shape, sub, ver.pack_factor)
        if any(v.name == "crs" for v in fam.variables):
            for spec in fam.variables:
                if spec.along_time and spec.dtype not in ("S1", "str") \
                        and spec.name not in ver.drop:
                    nc.variables[spec.name].grid_mapping = "crs"


# --------------------------------------------------------------------------
# The oracle: a model of the store, one slot per time
# --------------------------------------------------------------------------


@dataclass
class Model:
    fam: Family
    exists: bool = False
    axis: list = field(default_factory=list)        # slot numbers
    prov: list = field(default_factory=list)        # key or ""
    content: list = field(default_factory=list)     # (file path, index in file) or None
    variables: set = field(default_factory=set)     # variable names in the store
    time_units: str = ""
    time_dtype: str = ""
    packing: dict = field(default_factory=dict)     # variable -> pack_factor of the store
    static_file: Path | None = None

    def plan(self, ver: Version) -> tuple[str, list[int] | None, str]:
        """("apply", slots, "") / ("reject", None, why) / ("may_reject", slots, why)."""
        if not self.exists:
            if ver.bad_grid:
                return "skip", None, "a file on another grid needs a store"
            return "apply", None, ""
        if ver.bad_grid:
            return "reject", None, "another grid"
        slots = []
        end = len(self.axis)
        for n in ver.times:
            if self.fam.time_step:
                k = n - self.axis[0]
                if k < 0 or k != int(k):
                    return "reject", None, f"time {n} before the start or off the grid"
                slots.append(int(k))
            else:
                if n in self.axis:
                    slots.append(self.axis.index(n))
                elif n > self.axis[-1]:
                    slots.append(end)
                    end += 1
                else:
                    return "reject", None, f"time {n} between slots or before the start"
        why = []
        if self.time_dtype != "f8":
            vals, _ = encode_times(self.fam, ver.times, self.time_units, "f8")
            info = np.iinfo(np.dtype(self.time_dtype))
            if not (np.all(vals == np.round(vals)) and np.all(vals <= info.max)
                    and np.all(vals >= info.min)):
                why.append(f"times do not fit the store's {self.time_dtype} "
                           f"{self.time_units!r}")
        for spec in self.fam.variables:
            if spec.packing is not None and spec.name not in ver.drop \
                    and spec.name in self.packing and self.packing[spec.name] != ver.pack_factor:
                why.append(f"{spec.name}: other packing than the store's")
        if why:
            return "may_reject", slots, "; ".join(why)
        return "apply", slots, ""

    def apply(self, key: str, ver: Version, path: Path, slots) -> None:
        if not self.exists:
            self.exists = True
            _, self.time_dtype = file_times(self.fam, ver)
            self.time_units = ver.units
            self.static_file = path
            if self.fam.time_step:
                self.axis = [ver.times[0] + i
                             for i in range(int(ver.times[-1] - ver.times[0]) + 1)]
            else:
                self.axis = list(ver.times)
            self.prov = [""] * len(self.axis)
            self.content = [None] * len(self.axis)
            slots = [self.axis.index(n) for n in ver.times]
        grow = max(slots) + 1 - len(self.axis)
        if grow > 0:
            if self.fam.time_step:
                self.axis += [self.axis[0] + len(self.axis) + i for i in range(grow)]
            else:
                self.axis += [n for n in ver.times if n > self.axis[-1]]
            self.prov += [""] * grow
            self.content += [None] * grow
        for i, p in enumerate(self.prov):
            if p == key and i not in slots:
                self.prov[i], self.content[i] = "", None
        for j, s in enumerate(slots):
            self.prov[s], self.content[s] = key, (path, j, ver)
        for spec in self.fam.variables:
            if spec.name not in ver.drop:
                self.variables.add(spec.name)
                self.packing.setdefault(spec.name, ver.pack_factor)

    def remove(self, key: str) -> bool:
        hit = False
        for i, p in enumerate(self.prov):
            if p == key:
                self.prov[i], self.content[i] = "", None
                hit = True
        return hit


# --------------------------------------------------------------------------
# Comparing the store with the oracle
# --------------------------------------------------------------------------


class Mismatch(AssertionError):
    pass


def to_seconds(values, calendar: str) -> np.ndarray:
    """Decoded times (datetime64 or cftime objects) as float seconds since 1970-01-01
    in ``calendar``; missing -> NaN."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        ns = arr.astype("datetime64[ns]")
        out = (ns - np.datetime64("1970-01-01", "ns")).astype("timedelta64[ns]").astype("f8")
        out = out / 1e9
        out[np.isnat(ns)] = np.nan
        return out
    flat = arr.ravel()
    out = np.full(flat.shape, np.nan)
    for i, v in enumerate(flat):
        if v is None or (isinstance(v, (float, np.floating)) and np.isnan(v)):
            continue
        if not isinstance(v, cftime.datetime):
            raise Mismatch(f"value {v!r} ({type(v).__name__}) is not a decoded time")
        out[i] = cftime.date2num(v, "seconds since 1970-01-01", calendar=v.calendar or calendar)
    return out.reshape(arr.shape)


def decode_raw_times(da: xr.DataArray, units: str, calendar: str) -> xr.DataArray:
    """Undecoded CF times as cftime objects (None where missing)."""
    vals = np.asarray(da.values, dtype="f8")
    out = np.full(vals.shape, None, dtype=object)
    ok = np.isfinite(vals)
    if ok.any():
        out[ok] = cftime.num2date(vals[ok], units, calendar=calendar,
                                  only_use_cftime_datetimes=True)
    return xr.DataArray(out, dims=da.dims, attrs=da.attrs)


def has_missing_cftime(ds: xr.Dataset) -> bool:
    """Whether an undecoded store has a time-like variable (CF units "... since ...", or
    the time coordinate's bounds) with a missing value: xarray cannot decode those in a
    non-standard calendar."""
    bounds = ds["time"].attrs.get("bounds") if "time" in ds.variables else None
    for name, var in ds.variables.items():
        if " since " not in str(var.attrs.get("units", "")) and name != bounds:
            continue
        if var.dtype.kind == "f" and np.isnan(var.values).any():
            return True
    return False


def is_time_like(da: xr.DataArray) -> bool:
    if da.dtype.kind == "M":
        return True
    if da.dtype == object and da.size:
        first = next((v for v in da.values.ravel() if v is not None), None)
        return isinstance(first, cftime.datetime)
    return False


def text_values(arr) -> list:
    out = []
    for v in np.asarray(arr).ravel():
        if isinstance(v, bytes):
            out.append(v.decode("utf-8", "replace"))
        elif v is None or (isinstance(v, float) and np.isnan(v)):
            out.append("")
        else:
            out.append(str(v))
    return out


def blank_like(store_var: xr.DataArray):
    """What a blank element of ``store_var`` reads as."""
    if store_var.dtype.kind in "fc":
        return np.nan
    if store_var.dtype.kind in "iu":
        d = store_var.dtype
        return netCDF4.default_fillvals[f"{d.kind}{d.itemsize}"]
    return None


def compare_slot(name: str, slot: int, got: xr.DataArray, want: xr.DataArray | None,
                 calendar: str, atol: float, blank=None) -> None:
    where = f"{name} at time slot {slot}"
    if want is not None and got.dims != want.dims:
        raise Mismatch(f"{where}: dims {got.dims}, file {want.dims}")
    if want is not None and is_time_like(want) or is_time_like(got):
        g = to_seconds(got.values, calendar)
        w = (np.full(g.shape, np.nan) if want is None else to_seconds(want.values, calendar))
        if not np.allclose(g, w, rtol=0, atol=1e-3, equal_nan=True):
            raise Mismatch(f"{where}: times {got.values!r} (s {g}), expected "
                           f"{None if want is None else want.values!r} (s {w})")
        return
    if got.dtype.kind in "OSUT" or (want is not None and want.dtype.kind in "OSUT"):
        g = text_values(got.values)
        w = [""] * len(g) if want is None else text_values(want.values)
        if g != w:
            raise Mismatch(f"{where}: text {g}, expected {w}")
        return
    g = np.asarray(got.values)
    if want is None:
        blank = blank_like(got) if blank is None else blank
        ok = (np.all(np.isnan(g)) if isinstance(blank, float) and np.isnan(blank)
              else np.allclose(g.astype("f8"), blank, rtol=1e-6, atol=0)
              if g.dtype.kind == "f" else np.all(g == blank))
        if not ok:
            raise Mismatch(f"{where}: blank slot reads {g.ravel()[:8]}... "
                           f"(dtype {g.dtype}), expected all {blank}")
        return
    w = np.asarray(want.values)
    if g.dtype.kind in "iu" and w.dtype.kind in "iu":
        if not np.array_equal(g, w):
            raise Mismatch(f"{where}: {g.ravel()[:12]} != file {w.ravel()[:12]}")
        return
    gf, wf = g.astype("f8"), w.astype("f8")
    if not np.allclose(gf, wf, rtol=1e-6, atol=atol, equal_nan=True):
        bad = ~np.isclose(gf, wf, rtol=1e-6, atol=atol, equal_nan=True)
        raise Mismatch(f"{where}: {int(bad.sum())} elements differ: store {gf[bad][:6]} "
                       f"file {wf[bad][:6]} (dtypes {g.dtype}/{w.dtype})")


def open_file(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def expected_time(model: Model, n: float) -> float:
    d = slot_date(model.fam, n)
    return cftime.date2num(d, "seconds since 1970-01-01", calendar=model.fam.calendar)


def check_store(store: Path, model: Model, cache: dict) -> None:
    fam = model.fam
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw_times = False
        try:
            with xr.open_zarr(store, consolidated=True) as ds:
                ds = ds.load()
        except Exception as exc:  # the store must always read
            if fam.calendar in ("standard", "proleptic_gregorian"):
                raise Mismatch(f"xarray cannot read the store: {type(exc).__name__}: "
                               f"{str(exc)[:600]}") from exc
            # xarray limitation, not zru's: it cannot decode a cftime variable with a
            # missing value (integers overflow: "unable to decode time units"; a float
            # chunk that is all missing: "All-NaN slice encountered"); a Dataset xarray
            # builds itself fails the same way (test_xarray_cannot_decode_missing_cftime).
            # Only then read the times undecoded and decode them here: the values are
            # still compared below.
            with xr.open_zarr(store, consolidated=True, decode_times=False) as ds:
                ds = ds.load()
            if not has_missing_cftime(ds):
                raise Mismatch(f"xarray cannot read the store: {type(exc).__name__}: "
                               f"{str(exc)[:600]}") from exc
            raw_times = True
            tattrs = dict(ds["time"].attrs)
            for name in list(ds.variables):
                attrs = ds[name].attrs
                if name == tattrs.get("bounds"):  # CF: bounds take the time's units
                    attrs = {**tattrs, **attrs}
                units = attrs.get("units", "")
                if " since " in units:
                    ds[name] = decode_raw_times(ds[name], units,
                                                attrs.get("calendar", fam.calendar))

    def file_ds(path):
        if path not in cache:
            cache[path] = open_file(path)
        return cache[path]

    # The provenance and the time axis (removed and gap slots keep their time).
    prov = [str(v) for v in ds[PROVENANCE].values] if PROVENANCE in ds else None
    if prov != model.prov:
        raise Mismatch(f"provenance {prov}, expected {model.prov}")
    got_t = to_seconds(ds["time"].values, fam.calendar)
    want_t = np.array([expected_time(model, n) for n in model.axis])
    if got_t.shape != want_t.shape or not np.allclose(got_t, want_t, rtol=0, atol=1e-3):
        raise Mismatch(f"time axis {ds['time'].values!r}, expected slots {model.axis} "
                       f"(seconds since 1970 {want_t}, got {got_t})")
    ref_time = file_ds(model.static_file)["time"]
    if not raw_times and (ds["time"].dtype.kind == "M") != (ref_time.dtype.kind == "M"):
        raise Mismatch(f"store time decodes as {ds['time'].dtype}, the file's as "
                       f"{ref_time.dtype} (calendar {fam.calendar})")
    enc_units = ds["time"].encoding.get("units", ds["time"].attrs.get("units")
                                        if raw_times else None)
    if enc_units != model.time_units:
        raise Mismatch(f"store time units {enc_units!r}, the first file's {model.time_units!r}")

    # Variable set: every variable of every applied file (the static grid too).
    static = file_ds(model.static_file)
    want_vars = {"time", "lat", "lon"} | model.variables | (
        {"time_bnds"} if fam.time_bnds else set())
    got_vars = set(ds.variables) - {PROVENANCE}
    if got_vars != want_vars:
        raise Mismatch(f"store variables {sorted(got_vars)}, expected {sorted(want_vars)}")

    for name in sorted(want_vars - {"time"}):
        var = ds[name]
        spec = next((v for v in fam.variables if v.name == name), None)
        ref = static[name] if name in static else None
        if "time" not in var.dims:
            if ref is None:
                raise Mismatch(f"static {name} not in the first file")
            compare_slot(name, -1, var, ref, fam.calendar, 0.0)
        else:
            atol, blank = 0.0, None
            if spec is not None and spec.packing is not None:
                sf = spec.packing[0] * model.packing.get(name, 1.0)
                atol = sf * 0.5001
                if spec.fill is None:
                    # Documented rule: an integer variable without _FillValue is blank as
                    # netCDF's default fill for its type, here decoded with the packing.
                    d = np.dtype(spec.dtype)
                    raw = netCDF4.default_fillvals[f"{d.kind}{d.itemsize}"]
                    blank = float(np.dtype(spec.packing[2]).type(raw) * np.dtype(
                        spec.packing[2]).type(sf) + np.dtype(spec.packing[2]).type(
                        spec.packing[1]))
            for s in range(len(model.axis)):
                got = var.isel(time=s)
                c = model.content[s]
                want = None
                if c is not None:
                    path, j, ver = c
                    f = file_ds(path)
                    if name in f:
                        want = f[name].isel(time=j)
                compare_slot(name, s, got, want, fam.calendar, atol, blank)
        # Attributes: every decoded attribute of the file is carried over.
        if ref is not None:
            skip = {"_FillValue", "scale_factor", "add_offset", "missing_value"}
            if is_time_like(ref):
                skip |= {"units", "calendar"}
            for k, v in ref.attrs.items():
                if k in skip:
                    continue
                if k not in var.attrs or not _attr_equal(var.attrs[k], v):
                    raise Mismatch(f"{name}: attribute {k!r} = {var.attrs.get(k)!r}, "
                                   f"file {v!r}")
            want_dtype = ref.encoding.get("dtype")
            got_dtype = var.encoding.get("dtype")
            if spec is not None and spec.dtype not in ("S1", "str") and want_dtype is not None \
                    and np.dtype(got_dtype) != np.dtype(want_dtype):
                raise Mismatch(f"{name}: stored dtype {got_dtype}, file {want_dtype}")
    for k, v in static.attrs.items():
        if k == "source_version_seed":
            continue
        if k not in ds.attrs or not _attr_equal(ds.attrs[k], v):
            raise Mismatch(f"global attribute {k!r} = {ds.attrs.get(k)!r}, file {v!r}")
    check_zarr_python(store, fam.zarr_format)


def check_zarr_python(store: Path, zarr_format: int) -> None:
    g = zarr.open_group(str(store), mode="r", use_consolidated=False)
    if g.metadata.zarr_format != zarr_format:
        raise Mismatch(f"zarr format {g.metadata.zarr_format}, config {zarr_format}")
    arrays = dict(g.arrays())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc = zarr.open_consolidated(str(store), mode="r", zarr_format=zarr_format)
    cm = gc.metadata.consolidated_metadata
    if cm is None:
        raise Mismatch("no consolidated metadata")
    for name, arr in arrays.items():
        if name not in cm.metadata or tuple(cm.metadata[name].shape) != tuple(arr.shape):
            raise Mismatch(f"{name}: consolidated metadata {cm.metadata.get(name)} does not "
                           f"match the array's shape {arr.shape}")
        arr[...]  # every chunk decodes


# --------------------------------------------------------------------------
# Running a scenario
# --------------------------------------------------------------------------

CRASH_CODES = {101, 134, 139}


def reason_class(reason: str, key: str) -> str:
    text = reason.replace(key, "KEY")
    text = re.sub(r"/\S+", "PATH", text)
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text)
    return text[:90]


def write_config(cfg_dir: Path, store: Path, fam: Family) -> None:
    cfg_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"name": DATASET, "handler": "gridded", "key_patterns": [r"^d/.*\.nc$"],
           "store": str(store), "append_dim": "time", "chunks": dict(fam.chunks),
           "zarr_format": fam.zarr_format}
    if fam.time_step:
        cfg["time_step"] = fam.time_step
    (cfg_dir / f"{DATASET}.json").write_text(json.dumps(cfg, indent=2))


def run_scenario(sc: Scenario, work: Path, stats: dict) -> None:
    fam = sc.family
    raw, cfg, gen = work / "raw", work / "config", work / "gen"
    store = work / "d.zarr"
    for p in (raw, gen):
        p.mkdir(parents=True, exist_ok=True)
    write_config(cfg, store, fam)
    model = Model(fam)
    cache: dict = {}
    files: dict[Version, Path] = {}
    for i, ev in enumerate(sc.events):
        before = tree_hash(store) if store.exists() else None
        ctx = f"event {i} ({ev.op} {ev.key})"
        if ev.op == "create":
            ver = ev.version
            if ver not in files:
                files[ver] = gen / f"v{len(files)}.nc"
                write_file(files[ver], fam, ver)
            verdict, slots, why = model.plan(ver)
            if verdict == "skip":
                stats["skipped_generation"] += 1
                continue
            dst = raw / ev.key
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files[ver], dst)
            res = run_zru("ingest", "--config", cfg, "--raw-root", raw, "--json", dst, cwd=work)
        else:
            (raw / ev.key).unlink(missing_ok=True)
            verdict, why = "remove", ""
            res = run_zru("remove", "--config", cfg, "--raw-root", raw, "--json", ev.key,
                          cwd=work)
        stats["events"] += 1
        if res.returncode in CRASH_CODES or res.returncode < 0 or "panicked at" in res.stderr \
                or res.returncode not in (0, 1):
            raise Mismatch(f"{ctx}: zru crashed or failed (exit {res.returncode})\n"
                           + res.describe())
        rec = res.record_for(ev.key)
        action = rec.get("action")
        if action == "rejected":
            reason = rec.get("reason") or ""
            stats["rejections"].append(reason_class(reason, ev.key))
            if res.returncode != 1:
                raise Mismatch(f"{ctx}: rejected with exit code {res.returncode}\n"
                               + res.describe())
            if ev.key not in reason and Path(ev.key).name not in reason:
                raise Mismatch(f"{ctx}: the reason does not name the key\n" + res.describe())
            after = tree_hash(store) if store.exists() else None
            if before is None and after == {}:
                stats["empty_store_dir_left"] = stats.get("empty_store_dir_left", 0) + 1
                after = None  # an empty directory at the store path, no file written
            if after != before:
                changed = sorted(k for k in set(before or {}) | set(after or {})
                                 if (before or {}).get(k) != (after or {}).get(k))
                raise Mismatch(f"{ctx}: rejected but the store changed: {changed[:10]}\n"
                               + res.describe())
            if verdict in ("apply", "remove"):
                raise Mismatch(f"{ctx}: zru rejected an event the store can take "
                               f"(reason: {reason})\n" + res.describe())
            continue
        if res.returncode != 0:
            raise Mismatch(f"{ctx}: exit code {res.returncode} without a rejection\n"
                           + res.describe())
        if verdict == "reject":
            raise Mismatch(f"{ctx}: zru applied an event it must reject ({why}): action "
                           f"{action!r}, region {rec.get('region')}\n" + res.describe())
        if ev.op == "create":
            model.apply(ev.key, ev.version, files[ev.version], slots)
            stats["applied"] += 1
        else:
            model.remove(ev.key)
            stats["removed"] += 1
        if not model.exists:
            if store.exists() and before is None:
                raise Mismatch(f"{ctx}: a removal created the store\n" + res.describe())
            continue
        try:
            check_store(store, model, cache)
        except Mismatch as exc:
            raise Mismatch(f"{ctx}: store differs from the oracle: {exc}\n"
                           f"zru said: {rec}") from None


def new_stats() -> dict:
    return {"events": 0, "applied": 0, "removed": 0, "rejections": [],
            "skipped_generation": 0}


def run_and_record(sc: Scenario, group: str) -> None:
    note(sc.recipe())
    stats = new_stats()
    work = Path(tempfile.mkdtemp(prefix="zru-diff-"))
    outcome = "ok"
    try:
        run_scenario(sc, work, stats)
    except BaseException as exc:
        first = (str(exc).splitlines() or [""])[0]
        first = re.sub(r"^event \d+ \(\w+ \S+\): ", "", first)
        first = re.sub(r"/\S+", "PATH", first)
        outcome = "fail: " + re.sub(r"-?\d+(\.\d+)?", "N", first)[:120]
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if STATS_FILE:
            with open(STATS_FILE, "a") as fh:
                fh.write(json.dumps({"group": group, "outcome": outcome, **stats}) + "\n")


def _settings_for(group: str):
    if PROFILE == "ci":
        extra = {}
        if f"test_differential_{group}" in KNOWN_FAILURES:
            # A known failure: report it unshrunk (shrinking takes minutes in CI).
            extra["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
            extra["report_multiple_bugs"] = False
        return settings(SETTINGS, max_examples=CI_EXAMPLES[group], **extra)
    return SETTINGS


# Triage only (never in CI): ZRU_DIFF_EXCLUDE=string,unicode_attrs turns features off in
# every group, to look past a known failure for the next one.
EXCLUDED = {x for x in os.environ.get("ZRU_DIFF_EXCLUDE", "").split(",") if x}


def _make_test(group: str):
    feats = dataclasses.replace(GROUPS[group], **{x: False for x in EXCLUDED})

    @_settings_for(group)
    @given(sc=scenarios(feats))
    def test(sc):
        run_and_record(sc, group)

    test.__name__ = f"test_differential_{group}"
    if PROFILE == "ci":  # a long run reports known failures as failures found
        for mark in known_failure(test.__name__):
            test = mark(test)
    return test


test_differential_core = _make_test("core")
test_differential_units_vary = _make_test("units_vary")
test_differential_bounds = _make_test("bounds")
test_differential_char = _make_test("char")
test_differential_string = _make_test("string")
test_differential_unicode_attrs = _make_test("unicode_attrs")
test_differential_dim_order = _make_test("dim_order")
test_differential_scalar = _make_test("scalar")
test_differential_calendars = _make_test("calendars")
test_differential_off_grid = _make_test("off_grid")
test_differential_fine_times = _make_test("fine_times")
test_differential_far_future = _make_test("far_future")
test_differential_packing_varies = _make_test("packing_varies")
test_differential_all = _make_test("all")


# --------------------------------------------------------------------------
# Regression examples: each failure the generator found, fixed and named
# --------------------------------------------------------------------------


def family(**kw) -> Family:
    base = dict(nc_class="nc4", ny=2, nx=3, strlen=3, calendar="standard", write_calendar=True,
                base=(2024, 1, 1, 0), step_seconds=86400.0, units="days since 1985-01-01",
                time_dtype="f8", unlimited=True, lat_f4=False,
                variables=(VarSpec("v0", ("time", "lat", "lon"), "f4"),), time_bnds=False,
                global_attrs=(("title", "zru differential test"),), zarr_format=3,
                time_step=None, chunks=(("time", 1), ("lat", 2), ("lon", 3)))
    base.update(kw)
    return Family(**base)


def version(times, seed=1, **kw) -> Version:
    base = dict(times=tuple(float(t) for t in times), seed=seed, fmt="NETCDF4",
                units="days since 1985-01-01", time_dtype="f8", zlib=0, chunked=False)
    base.update(kw)
    return Version(**base)


def create(key, ver) -> Event:
    return Event("create", f"{KEY_PREFIX}{key}", ver)


def remove_(key) -> Event:
    return Event("remove", f"{KEY_PREFIX}{key}")


def run_regression(sc: Scenario, tmp_path: Path) -> None:
    stats = new_stats()
    try:
        run_scenario(sc, tmp_path, stats)
    except Mismatch as exc:
        raise Mismatch(f"{exc}\nrecipe:\n{sc.recipe()}") from None


@xfail_if_known
def test_regression_time_bnds_in_other_units(tmp_path):
    """time_bnds(time, nv) of a file whose time units differ from the store's are
    written unconverted (found: a day of 2001 stored as year 3222 in a julian store, or
    1951 instead of 2024): time-like variables other than the coordinate must be
    converted to the store's units like the coordinate."""
    fam = family(time_bnds=True)
    run_regression(Scenario(fam, (
        create("a.nc", version([0], units="days since 1985-01-01")),
        create("b.nc", version([1], units="hours since 1950-01-01 00:00:00")),
    )), tmp_path)


@xfail_if_known
def test_regression_time_bnds_in_other_units_360_day(tmp_path):
    """Same in a 360_day calendar: the unconverted bounds make the whole store
    unreadable by xarray ("unable to decode time units ... calendar '360_day'")."""
    fam = family(time_bnds=True, calendar="360_day", base=(2001, 7, 30, 0))
    run_regression(Scenario(fam, (
        create("a.nc", version([0], units="days since 1985-01-01")),
        create("b.nc", version([1], units="seconds since 1981-01-01")),
    )), tmp_path)


@xfail_if_known
def test_regression_int64_uint64_without_fill_blank(tmp_path):
    """A removed slot of an int64 / uint64 variable without _FillValue must read as
    netCDF's default fill, -9223372036854775806 / 18446744073709551614
    (docs/config.md); zru wrote -2**63 and 2**64-1 (the default fill passed through
    a float64)."""
    fam = family(variables=(VarSpec("v0", ("time",), "u8"), VarSpec("v1", ("time",), "i8")))
    run_regression(Scenario(fam, (
        create("a.nc", version([0])),
        create("b.nc", version([1])),
        remove_("a.nc"),
    )), tmp_path)


@xfail_if_known
def test_regression_vlen_string_variable(tmp_path):
    """A netCDF-4 vlen string variable along time was rejected ("variable v0 has type
    String, which zru cannot store"; fixed in the lead's 734fe00)."""
    fam = family(variables=(VarSpec("v0", ("time",), "str"),
                            VarSpec("v1", ("time", "lat", "lon"), "f4")))
    run_regression(Scenario(fam, (
        create("a.nc", version([0])),
        create("b.nc", version([1], seed=2)),
        remove_("a.nc"),
    )), tmp_path)


@xfail_if_known
def test_regression_non_ascii_text_attribute(tmp_path):
    """netCDF4-python writes a non-ASCII text attribute of a netCDF-4 file as NC_STRING;
    xarray reads it as a str, zru stored it as a one-element list
    (['température de surface'])."""
    fam = family(variables=(VarSpec("v0", ("time", "lat", "lon"), "f4",
                                    attrs=(("long_name", "température de surface"),)),))
    run_regression(Scenario(fam, (create("a.nc", version([0])),)), tmp_path)


@xfail_if_known
def test_regression_int32_seconds_store_past_2049(tmp_path):
    """A store whose time is int32 "seconds since 1981-01-01" (the first file's, GHRSST's
    layout) cannot hold a time after 2049-01-19T03:14:07: the file must be rejected
    (or the store's encoding widened), never clamped to 2**31-1."""
    fam = family(base=(2049, 1, 15, 0))
    run_regression(Scenario(fam, (
        create("a.nc", version([0], units="seconds since 1981-01-01", time_dtype="i4")),
        create("b.nc", version([6], units="days since 1985-01-01", time_dtype="f8")),
        create("c.nc", version([7], units="days since 1985-01-01", time_dtype="f8")),
    )), tmp_path)


@xfail_if_known
def test_regression_half_second_samples_revised(tmp_path):
    """Samples 0.5 s apart (closer than the old 1 s default tolerance): a revision of
    the same times must overwrite exactly its own slots."""
    fam = family(base=(2024, 1, 1, 6), step_seconds=0.5, units="seconds since 1981-01-01")
    a = version(range(4), units="seconds since 1981-01-01")
    run_regression(Scenario(fam, (
        create("a.nc", a),
        create("b.nc", version(range(4, 8), seed=3, units="seconds since 1981-01-01")),
        create("a.nc", dataclasses.replace(a, seed=9)),
    )), tmp_path)


@xfail_if_known
def test_regression_scalar_grid_mapping(tmp_path):
    """A 0-d `crs` grid mapping and a 0-d `depth` (issue 11: zru panicked on any scalar
    variable)."""
    fam = family(variables=(
        VarSpec("v0", ("time", "lat", "lon"), "i2", fill=np.int16(-1),
                packing=(0.01, 10.5, "f4")),
        VarSpec("crs", (), "i4", attrs=(("grid_mapping_name", "latitude_longitude"),)),
        VarSpec("depth", (), "f4", attrs=(("units", "m"),))))
    run_regression(Scenario(fam, (
        create("a.nc", version([0])), create("b.nc", version([1])), remove_("a.nc"),
    )), tmp_path)


@xfail_if_known
def test_regression_append_dim_not_first(tmp_path):
    """Variables on (lat, time, lon) and (lon, time) (issue 11: rejected because the
    append dimension was not first)."""
    fam = family(unlimited=False, variables=(
        VarSpec("v0", ("lat", "time", "lon"), "f8", nan=True),
        VarSpec("v1", ("lon", "time"), "i4", fill=np.int32(-1))))
    run_regression(Scenario(fam, (
        create("a.nc", version([0, 1])), create("b.nc", version([2])),
        create("a.nc", version([0, 1], seed=5)), remove_("b.nc"),
    )), tmp_path)


@xfail_if_known
def test_regression_blank_integer_time_bounds(tmp_path):
    """A removed slot of an integer time_bnds (int32 "hours since 1950", no _FillValue)
    is blanked with netCDF's default fill -2147483647, which xarray decodes as a date in
    year -243030 instead of NaT: a time-like variable's blank must read as missing."""
    fam = family(time_bnds=True, units="hours since 1950-01-01 00:00:00", time_dtype="i4")
    hours = dict(units="hours since 1950-01-01 00:00:00", time_dtype="i4")
    run_regression(Scenario(fam, (
        create("a.nc", version([0], **hours)),
        create("b.nc", version([1], **hours)),
        remove_("a.nc"),
    )), tmp_path)


@xfail_if_known
def test_regression_blanked_time_bounds_360_day(tmp_path):
    """A blanked float time_bnds in a 360_day store: zru is right, but xr.open_zarr
    cannot decode a cftime variable with an all-missing chunk ("All-NaN slice
    encountered"; a store xarray writes itself fails the same way), so the oracle reads
    the times undecoded there. Found by the `all` group."""
    fam = family(time_bnds=True, calendar="360_day")
    run_regression(Scenario(fam, (
        create("a.nc", version([0])), create("b.nc", version([1])), remove_("a.nc"),
        create("c.nc", version([2], units="hours since 1950-01-01 00:00:00")),
    )), tmp_path)


@xfail_if_known
def test_regression_repacked_value_becomes_fill(tmp_path):
    """Repacking between files: the store's packing is the first file's (int8,
    scale_factor 1.0, _FillValue -1); a later file packs with scale_factor 0.5, and its
    valid raw value -2 (physical -1.0) repacks to the store's raw -1, its _FillValue:
    the value silently reads as missing. It must be rejected (or stored as a value).
    Found by the `packing_varies` group on the lead's 734fe00 (repacking)."""
    fam = family(variables=(VarSpec("v0", ("time", "lat", "lon"), "i1", fill=np.int8(-1),
                                    packing=(0.5, 0.0, "f4")),))
    run_regression(Scenario(fam, (
        create("a.nc", version([0], seed=3, pack_factor=2.0)),
        create("b.nc", version([1], seed=11, pack_factor=1.0)),  # raw -2 at [0, 1, 1]
    )), tmp_path)


@xfail_if_known
def test_regression_blank_int64_time_bounds_unreadable(tmp_path):
    """Same with int64 times in a julian store: a revision at moved times blanks slot 0;
    xr.open_zarr cannot decode the blank int64 time_bnds ("unable to decode time units
    'hours since 1950-01-01 00:00:00' with calendar 'julian'"), an xarray limitation
    (test_xarray_cannot_decode_missing_cftime), so the oracle decodes the times itself
    and checks zru's values: bounds blank (NaN undecoded) in slot 0, the file's after.
    Found by the `all` group."""
    hours = dict(units="hours since 1950-01-01 00:00:00", time_dtype="i8")
    fam = family(time_bnds=True, calendar="julian", base=(2049, 1, 15, 0), **hours)
    run_regression(Scenario(fam, (
        create("a.nc", version([0, 1, 2], **hours)),
        create("a.nc", version([1, 2, 3], seed=7, **hours)),
    )), tmp_path)


@pytest.mark.parametrize("fill", [np.iinfo(np.int64).min, -9223372036854775806, -1])
def test_xarray_cannot_decode_missing_cftime(fill):
    """The xarray limitation the oracle works around (check_store): an integer time
    variable in a non-standard calendar with one missing value cannot be decoded, for any
    _FillValue, even in a Dataset built in memory (no zru, no Zarr). When xarray fixes
    it, this test fails: then drop has_missing_cftime's tolerance in check_store."""
    bounds = np.array([[fill, fill], [868188, 868212]], dtype="i8")
    ds = xr.Dataset({"time_bnds": (("time", "nv"), bounds, {
        "_FillValue": fill, "units": "hours since 1950-01-01 00:00:00",
        "calendar": "julian"})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="unable to decode time units"):
            xr.decode_cf(ds)
