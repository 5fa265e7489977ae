"""zru decodes netCDF-4 chunks itself, on every core (deflate, shuffle, Fletcher-32),
and falls back to netCDF-C for anything else; `ZRU_DECODE=netcdf-c` forces netCDF-C.
Stores written through both paths must read identically in xarray, raw and decoded,
and like the source files."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from conftest import (
    PROVENANCE,
    DecodePathStore,
    assert_dataset_values,
    open_sources,
    open_store,
    sample,
)

CHUNKS = {"time": 1, "lat": 300, "lon": 40}


def checked_files(out, days=2, lat=130, lon=71):
    """Daily files written by netCDF4-python with shuffle + zlib + Fletcher-32, chunks
    that leave partial edges, an unlimited time, packed int16 with a fill value, a
    masked block (fill)."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for d in range(days):
        day = np.datetime64("2024-02-01") + np.timedelta64(d, "D")
        path = out / f"{str(day).replace('-', '')}120000-checked.nc"
        rng = np.random.default_rng(d)
        sst = (rng.normal(15, 5, (1, lat, lon)) * 100).astype("int16")
        sst[0, 10:20, 5:9] = -32767  # masked
        ds = xr.Dataset(
            {"sea_surface_temperature": (("time", "lat", "lon"), sst,
                                         {"scale_factor": 0.01, "add_offset": 273.15,
                                          "_FillValue": np.int16(-32767), "units": "kelvin"}),
             "wind": (("time", "lat", "lon"), rng.normal(0, 3, (1, lat, lon)).astype("float32"))},
            coords={"time": ("time", [day.astype("datetime64[ns]")]),
                    "lat": ("lat", np.linspace(-60, 60, lat)),
                    "lon": ("lon", np.linspace(100, 170, lon))},
        )
        encoding = {
            "sea_surface_temperature": {"zlib": True, "shuffle": True, "fletcher32": True,
                                        "chunksizes": (1, 50, 30)},
            "wind": {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": (1, 64, 64),
                     "_FillValue": np.float32(np.nan)},
        }
        ds.to_netcdf(path, encoding=encoding, unlimited_dims=["time"])
        files.append(path)
    return files


def build(tmp_path, monkeypatch, files, decode, zarr_format):
    store = DecodePathStore(tmp_path, decode, zarr_format, CHUNKS)
    store.ingest(monkeypatch, files)
    return store.store


@pytest.mark.parametrize("zarr_format", [3, 2])
@pytest.mark.parametrize("kind", ["sample", "checked"])
def test_both_decode_paths_write_the_same_store(tmp_path, monkeypatch, kind, zarr_format):
    if kind == "sample":
        files = sample(tmp_path / "gen", days=2, lat=1130, lon=70)
    else:
        files = checked_files(tmp_path / "gen")
    with xr.open_dataset(files[0]) as ds:
        assert ds["sea_surface_temperature"].encoding["zlib"]
    stores = {d: build(tmp_path, monkeypatch, files, d, zarr_format)
              for d in ("netcdf-c", "parallel")}
    for mask_and_scale in (False, True):
        c_side, ours = (open_store(stores[d], mask_and_scale=mask_and_scale)
                        for d in ("netcdf-c", "parallel"))
        xr.testing.assert_identical(ours, c_side)
    assert_dataset_values(open_store(stores["parallel"]).drop_vars(PROVENANCE),
                          open_sources(files))
