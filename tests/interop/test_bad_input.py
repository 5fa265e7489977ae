"""Bad input is rejected with a non-zero exit and a reason naming the file or
key, and leaves the store byte-for-byte unchanged."""

from __future__ import annotations

import json
import os
import re

import netCDF4
import numpy as np
import pytest

from conftest import (
    assert_tree_unchanged,
    ingest,
    key_of,
    place,
    run_zru,
    sample,
    tree_hash,
    write_config,
)

LAT, LON = 20, 30
CHUNKS = {"time": 1, "lat": 10, "lon": 15}


@pytest.fixture
def base(tmp_path):
    """A store holding day 1, plus the (valid) day-2 file to corrupt."""
    gen = sample(tmp_path / "gen", days=2, lat=LAT, lon=LON, start="2024-01-01")
    raw = tmp_path / "raw"
    store = tmp_path / "sst.zarr"
    config = tmp_path / "config"
    write_config(config, "sst", store=store, chunks=CHUNKS)
    first = place(gen[0], raw, f"sst/{gen[0].name}")
    ingest(config, raw, [first], cwd=tmp_path)
    assert store.is_dir()
    return {"tmp": tmp_path, "raw": raw, "store": store, "config": config,
            "day2": gen[1]}


def write_truncated(b) -> str:
    data = b["day2"].read_bytes()
    key = f"sst/{b['day2'].name}"
    dst = b["raw"] / key
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 2])
    return key


def write_truncated_classic(b) -> str:
    """The day-2 file rewritten as netCDF3 classic, then cut to 3/4 of its size.

    netCDF-C opens such a file and reads past its end without an error, so only a
    check of the sizes its header declares can tell it was truncated."""
    key = f"sst/{b['day2'].name}"
    dst = b["raw"] / key
    dst.parent.mkdir(parents=True, exist_ok=True)
    whole = b["tmp"] / "classic.nc"
    with netCDF4.Dataset(b["day2"]) as src, \
            netCDF4.Dataset(whole, "w", format="NETCDF3_CLASSIC") as out:
        src.set_auto_maskandscale(False)
        out.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for name, dim in src.dimensions.items():
            out.createDimension(name, None if dim.isunlimited() else len(dim))
        for name, var in src.variables.items():
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            fill = attrs.pop("_FillValue", None)
            new = out.createVariable(name, var.dtype, var.dimensions, fill_value=fill)
            new.set_auto_maskandscale(False)
            new.setncatts(attrs)
            new[...] = var[...]
    data = whole.read_bytes()
    with netCDF4.Dataset(whole) as check:
        assert check.data_model == "NETCDF3_CLASSIC"
    dst.write_bytes(data[: len(data) * 3 // 4])
    with netCDF4.Dataset(dst) as reopened:  # netCDF-C itself does not notice
        assert "sea_surface_temperature" in reopened.variables
    return key


def write_random_bytes(b) -> str:
    key = f"sst/{b['day2'].name}"
    dst = b["raw"] / key
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(np.random.default_rng(7).bytes(20_000))
    return key


def write_other_grid(b) -> str:
    other = sample(b["tmp"] / "gen_grid", days=2, lat=LAT + 5, lon=LON + 5,
                   start="2024-01-01")
    assert other[1].name == b["day2"].name
    key = f"sst/{other[1].name}"
    place(other[1], b["raw"], key)
    return key


def write_unmatched_key(b) -> str:
    key = f"other/{b['day2'].name}"
    place(b["day2"], b["raw"], key)
    return key


def write_without_time(b) -> str:
    """Copy of the day-2 file with the ``time`` dimension and variable removed
    (time-dependent variables keep their first, only, step)."""
    key = f"sst/{b['day2'].name}"
    dst = b["raw"] / key
    dst.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(b["day2"]) as src, netCDF4.Dataset(dst, "w", format="NETCDF4") as out:
        src.set_auto_maskandscale(False)
        out.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for name, dim in src.dimensions.items():
            if name != "time":
                out.createDimension(name, None if dim.isunlimited() else len(dim))
        for name, var in src.variables.items():
            if name == "time":
                continue
            dims = tuple(d for d in var.dimensions if d != "time")
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            fill = attrs.pop("_FillValue", None)
            new = out.createVariable(name, var.dtype, dims, fill_value=fill)
            new.set_auto_maskandscale(False)
            new.setncatts(attrs)
            data = var[...]
            if "time" in var.dimensions:
                data = np.take(data, 0, axis=var.dimensions.index("time"))
            new[...] = data
    with netCDF4.Dataset(dst) as check:
        assert "time" not in check.variables and "time" not in check.dimensions
        assert "sea_surface_temperature" in check.variables
    return key


# case -> (how to make the bad file, what the reason must talk about)
CASES = {
    "truncated": (write_truncated, r"netcdf|hdf|open|read"),
    "truncated_classic": (write_truncated_classic, r"truncated"),
    "not_netcdf": (write_random_bytes, r"netcdf|format|open|read"),
    "other_grid": (write_other_grid, r"grid|shape|\blat\b|\blon\b"),
    "unmatched_key": (write_unmatched_key, r"match|no dataset|pattern"),
    "no_append_dim": (write_without_time, r"\btime\b|append"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_rejected_store_unchanged(base, case):
    make, cause = CASES[case]
    key = make(base)
    path = base["raw"] / key
    before = tree_hash(base["store"])

    res = ingest(base["config"], base["raw"], [path], cwd=base["tmp"], expect_ok=False)
    rec = res.record_for(key)
    assert rec.get("action") == "rejected", res.describe()
    reason = rec.get("reason")
    assert isinstance(reason, str) and (key in reason or path.name in reason), (
        "reason does not name the file/key\n" + res.describe())
    assert re.search(cause, reason, re.I), (
        f"reason does not explain the {case} problem (/{cause}/)\n" + res.describe())
    assert rec.get("region") is None, res.describe()
    assert_tree_unchanged(before, base["store"], f"after rejected {case} file")

    # Human-readable mode: also fails, and says which key/file it was.
    res = run_zru("ingest", "--config", base["config"], "--raw-root", base["raw"], path,
                  cwd=base["tmp"], expect_ok=False)
    assert key in res.output or path.name in res.output, (
        "output does not name the rejected file/key\n" + res.describe())
    assert_tree_unchanged(before, base["store"], f"after rejected {case} file (plain run)")


def test_broken_config(base):
    bad = base["config"] / "broken.json"
    bad.write_text(json.dumps({
        "name": "broken", "handler": "gridded", "key_patterns": ["^broken/(unclosed\\.nc$"],
        "store": str(base["tmp"] / "broken.zarr"), "append_dim": "time",
        "chunks": {"time": 1, "lat": 10, "lon": 15}, "time_step": "1 day",
    }))
    res = run_zru("config", "check", "--config", base["config"], cwd=base["tmp"],
                  expect_ok=False)
    assert "broken.json" in res.output, res.describe()
    assert "key_patterns" in res.output, res.describe()

    # Nothing is applied with a broken config directory, not even to the
    # healthy dataset.
    before = tree_hash(base["store"])
    day2 = place(base["day2"], base["raw"], f"sst/{base['day2'].name}")
    res = run_zru("ingest", "--config", base["config"], "--raw-root", base["raw"], day2,
                  cwd=base["tmp"], expect_ok=False)
    assert "broken.json" in res.output, res.describe()
    assert_tree_unchanged(before, base["store"], "ingest with a broken config")
    assert not (base["tmp"] / "broken.zarr").exists()

    # and the healthy config alone checks fine
    os.remove(bad)
    run_zru("config", "check", "--config", base["config"], cwd=base["tmp"], expect_ok=True)
