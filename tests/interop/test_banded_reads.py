"""zru reads large variables in bands (rows along one axis) so that encoding overlaps
netCDF-C's reading. The bands must not show: a store built from files whose chunking
differs from the store's (misaligned rows, a partial last band, several times in one
file) reads through xarray exactly like the source files."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from conftest import (
    PROVENANCE,
    assert_dataset_values,
    ingest,
    key_of,
    open_sources,
    open_store,
    place,
    sample,
    write_config,
)

# The sample writer chunks files by 500 rows: 1,130 rows give file-chunk rows of
# 500, 500 and 130; the store's 300-row chunks end inside them.
LAT, LON = 1130, 70
CHUNKS = {"time": 1, "lat": 300, "lon": 40}


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_misaligned_file_and_store_chunks(tmp_path, zarr_format):
    raw = tmp_path / "raw"
    files = sample(tmp_path / "gen", days=2, lat=LAT, lon=LON)
    with xr.open_dataset(files[0]) as ds:
        assert ds["sea_surface_temperature"].encoding["chunksizes"] == (1, 500, LON)
    store = tmp_path / "sst.zarr"
    config = tmp_path / "config"
    write_config(config, "sst", store=store, chunks=CHUNKS, zarr_format=zarr_format)
    placed = [place(f, raw, f"sst/{f.name}") for f in files]
    ingest(config, raw, placed, cwd=tmp_path)
    got = open_store(store).drop_vars(PROVENANCE)
    assert_dataset_values(got, open_sources(files))


def test_several_times_in_one_file_go_to_their_slots(tmp_path):
    """A file of three days (chunked one day per chunk) is read one day at a time;
    the days land in their slots, including one that overwrites an earlier file."""
    raw = tmp_path / "raw"
    days = sample(tmp_path / "gen", days=4, lat=40, lon=30, start="2024-03-01")
    first = place(days[0], raw, f"sst/{days[0].name}")
    three = tmp_path / "three-days.nc"
    with xr.open_mfdataset(days[:3], combine="by_coords", mask_and_scale=False,
                           decode_times=False) as ds:
        encoding = {name: {"chunksizes": (1, 40, 30), "zlib": True}
                    for name, var in ds.data_vars.items() if var.dims[0] == "time"}
        ds.load().to_netcdf(three, encoding=encoding)
    multi = place(three, raw, "sst/20240301-20240303-three-days.nc")
    store = tmp_path / "sst.zarr"
    config = tmp_path / "config"
    write_config(config, "sst", store=store, chunks={"time": 1, "lat": 20, "lon": 30})
    ingest(config, raw, [first], cwd=tmp_path)
    ingest(config, raw, [multi], cwd=tmp_path)
    ds = open_store(store)
    assert list(ds[PROVENANCE].values) == [key_of(multi, raw)] * 3
    assert_dataset_values(ds.drop_vars(PROVENANCE), open_sources(days[:3]))
    assert np.all(ds.time.values == open_sources(days[:3]).time.values)
