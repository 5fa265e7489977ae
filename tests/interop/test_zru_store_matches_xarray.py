"""A store built by zru from sample GHRSST-like files reads, through xarray,
exactly like the source files read with ``xr.open_mfdataset`` — after appends,
a revision (overwrite) and a removal (blank) — in Zarr format 3 and 2."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import (
    PROVENANCE,
    assert_attrs_carried,
    assert_dataset_values,
    assert_event,
    assert_packed_dtypes,
    assert_slot_blank,
    blank_slot,
    ingest,
    key_of,
    open_sources,
    open_store,
    place,
    remove,
    sample,
    source_keys,
    write_config,
)

LAT, LON = 60, 120
SST = "sea_surface_temperature"


def check_with_zarr_python(store, zarr_format: int, n_time: int) -> None:
    """zarr-python opens the store; the consolidated metadata agrees with the
    arrays' own metadata (so consolidated readers see the current shape)."""
    g = zarr.open_group(str(store), mode="r", use_consolidated=False)
    assert g.metadata.zarr_format == zarr_format
    arrays = dict(g.arrays())
    assert SST in arrays, f"no {SST} array in store; arrays: {sorted(arrays)}"
    assert arrays[SST].shape == (n_time, LAT, LON)
    assert arrays[SST].dtype == np.dtype("int16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of v3 spec"
        gc = zarr.open_consolidated(str(store), mode="r", zarr_format=zarr_format)
    cm = gc.metadata.consolidated_metadata
    assert cm is not None, "store has no consolidated metadata"
    assert cm.metadata[SST].shape == arrays[SST].shape
    for name, arr in arrays.items():
        assert name in cm.metadata, f"array {name} missing from consolidated metadata"
        assert cm.metadata[name].shape == arr.shape, (
            f"{name}: consolidated shape {cm.metadata[name].shape} != array shape {arr.shape}")


def check_store(store, expected: xr.Dataset, keys: list[str], zarr_format: int,
                attrs_source: xr.Dataset) -> xr.Dataset:
    ds = open_store(store)
    assert source_keys(ds) == keys
    got = ds.drop_vars(PROVENANCE)
    assert_dataset_values(got, expected)
    assert_attrs_carried(got, attrs_source)
    assert_packed_dtypes(ds, attrs_source)
    assert np.dtype(ds[SST].encoding.get("dtype")) == np.dtype("int16")
    check_with_zarr_python(store, zarr_format, len(keys))
    return ds


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_append_overwrite_remove_match_xarray(tmp_path, zarr_format):
    raw = tmp_path / "raw"
    gen = sample(tmp_path / "gen", days=4, lat=LAT, lon=LON, start="2024-01-01")
    rev = sample(tmp_path / "gen_rev", days=4, lat=LAT, lon=LON, start="2024-01-01",
                 revision=1)
    assert [p.name for p in gen] == [p.name for p in rev]
    store = tmp_path / "sst.zarr"
    config = tmp_path / "config"
    write_config(config, "sst", store=store, zarr_format=zarr_format)

    placed = [place(f, raw, f"sst/{f.name}") for f in gen]
    keys = [key_of(p, raw) for p in placed]

    # The revised files really are different from the originals.
    with xr.open_dataset(gen[1]) as a, xr.open_dataset(rev[1]) as b:
        assert not a[SST].equals(b[SST]), "--revision 1 produced identical values"

    # -- days 1-3 into a new store ------------------------------------------
    res = ingest(config, raw, placed[:3], cwd=tmp_path)
    assert_event(res, keys[0], {"appended", "created"}, region=(0, 1))
    assert_event(res, keys[1], "appended", region=(1, 2))
    assert_event(res, keys[2], "appended", region=(2, 3))
    for k in keys[:3]:
        assert res.record_for(k).get("dataset") == "sst"
        assert res.record_for(k).get("reason") is None

    src3 = open_sources(gen[:3])
    check_store(store, src3, keys[:3], zarr_format, src3)

    # -- day 4: append ---------------------------------------------------------
    res = ingest(config, raw, [placed[3]], cwd=tmp_path)
    assert_event(res, keys[3], "appended", region=(3, 4))
    check_store(store, open_sources(gen), keys, zarr_format, src3)

    # -- revised day 2 under the same key: overwrite ---------------------------
    place(rev[1], raw, keys[1])
    res = ingest(config, raw, [raw / keys[1]], cwd=tmp_path)
    assert_event(res, keys[1], "overwrote", region=(1, 2))
    current = [gen[0], rev[1], gen[2], gen[3]]
    expected = open_sources(current)
    before_remove = check_store(store, expected, keys, zarr_format, src3)

    # -- day 3 removed: slot blanked, time coordinate kept ----------------------
    res = remove(config, raw, [keys[2]], cwd=tmp_path)
    assert_event(res, keys[2], "blanked", region=(2, 3))
    ds = open_store(store)
    np.testing.assert_array_equal(ds["time"].values, before_remove["time"].values)
    np.testing.assert_array_equal(ds["time"].values, expected["time"].values)
    assert source_keys(ds) == [keys[0], keys[1], "", keys[3]]
    assert_slot_blank(ds, "time", 2)
    assert_dataset_values(ds.drop_vars(PROVENANCE), blank_slot(expected, "time", 2, like=ds))
    assert_attrs_carried(ds.drop_vars(PROVENANCE), src3)
    assert np.dtype(ds[SST].encoding.get("dtype")) == np.dtype("int16")
    check_with_zarr_python(store, zarr_format, 4)
