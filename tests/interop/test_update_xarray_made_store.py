"""zru updates a store that xarray wrote (``to_zarr``) without changing its
Zarr format, codecs or chunking, and xarray then reads the expected values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import (
    PROVENANCE,
    assert_attrs_carried,
    assert_dataset_values,
    assert_event,
    assert_slot_blank,
    assert_tree_unchanged,
    blank_slot,
    ingest,
    key_of,
    open_sources,
    open_store,
    place,
    remove,
    sample,
    tree_hash,
    write_config,
)

LAT, LON = 60, 120
CHUNKS = {"time": 1, "lat": 30, "lon": 60}
SST = "sea_surface_temperature"
# CF encoding keys that the zarr backend accepts in an explicit ``encoding=``.
CF_ENCODING = {"dtype", "_FillValue", "missing_value", "scale_factor", "add_offset",
               "units", "calendar"}


def xarray_write(files, store, zarr_format: int) -> None:
    """What a user would do: open the NetCDF files and write them with xarray,
    keeping their packing (int16 + scale/offset) and chunking along time by 1."""
    with xr.open_mfdataset([str(f) for f in files], combine="by_coords") as ds:
        encoding = {}
        for name, var in ds.variables.items():
            enc = {k: v for k, v in var.encoding.items() if k in CF_ENCODING}
            enc["chunks"] = tuple(min(CHUNKS.get(d, n), n) for d, n in zip(var.dims, var.shape))
            encoding[name] = enc
        ds.to_zarr(str(store), zarr_format=zarr_format, consolidated=True, mode="w-",
                   encoding=encoding)


def array_metadata(store, name: str, zarr_format: int) -> dict:
    """The array's metadata document as written on disk."""
    if zarr_format == 3:
        return json.loads((store / name / "zarr.json").read_text())
    return json.loads((store / name / ".zarray").read_text())


def attrs_on_disk(store, name: str, zarr_format: int) -> dict:
    if zarr_format == 3:
        return array_metadata(store, name, 3).get("attributes", {})
    return json.loads((store / name / ".zattrs").read_text())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zru_updates_xarray_written_store(tmp_path, zarr_format):
    raw = tmp_path / "raw"
    gen = sample(tmp_path / "gen", days=3, lat=LAT, lon=LON, start="2024-01-01")
    rev = sample(tmp_path / "gen_rev", days=3, lat=LAT, lon=LON, start="2024-01-01",
                 revision=1)
    placed = [place(f, raw, f"sst/{f.name}") for f in gen]
    keys = [key_of(p, raw) for p in placed]

    store = tmp_path / "xr.zarr"
    xarray_write(gen[:2], store, zarr_format)
    # Sanity: xarray's own store reads back as the sources (test premise).
    assert_dataset_values(open_store(store), open_sources(gen[:2]))
    assert np.dtype(open_store(store)[SST].encoding["dtype"]) == np.dtype("int16")

    meta_before = array_metadata(store, SST, zarr_format)
    attrs_before = attrs_on_disk(store, SST, zarr_format)
    assert meta_before["shape"] == [2, LAT, LON]

    config = tmp_path / "config"
    write_config(config, "sst", store=store, chunks=CHUNKS)

    # day 3 appended
    res = ingest(config, raw, [placed[2]], cwd=tmp_path)
    assert_event(res, keys[2], "appended", region=(2, 3))
    # revised day 1 overwrites slot 0
    place(rev[0], raw, keys[0])
    res = ingest(config, raw, [raw / keys[0]], cwd=tmp_path)
    assert_event(res, keys[0], "overwrote", region=(0, 1))
    # day 2 removed. zru removes by provenance, and slot 1 was written by
    # xarray, so zru does not know which key it came from: the removal must be
    # a no-op that leaves the store untouched (it must not guess) ...
    before = tree_hash(store)
    res = remove(config, raw, [keys[1]], cwd=tmp_path)
    assert_event(res, keys[1], "unchanged")
    assert_tree_unchanged(before, store, "removing a key no slot is attributed to")
    # ... until the file is ingested through zru (a revision of slot 1 with
    # the same content) and then removed: slot 1 blanked.
    res = ingest(config, raw, [placed[1]], cwd=tmp_path)
    assert_event(res, keys[1], "overwrote", region=(1, 2))
    res = remove(config, raw, [keys[1]], cwd=tmp_path)
    assert_event(res, keys[1], "blanked", region=(1, 2))

    # Format unchanged: v2 stores keep .zarray/.zmetadata and gain no zarr.json
    # (and vice versa).
    g = zarr.open_group(str(store), mode="r", use_consolidated=False)
    assert g.metadata.zarr_format == zarr_format
    if zarr_format == 2:
        assert (store / ".zmetadata").is_file()
        assert not list(store.rglob("zarr.json")), "zru wrote v3 metadata into a v2 store"
    else:
        assert not list(store.rglob(".zarray")), "zru wrote v2 metadata into a v3 store"

    # Codecs/compressor, dtype, chunks, fill value unchanged; only the shape grew.
    meta_after = array_metadata(store, SST, zarr_format)
    assert meta_after["shape"] == [3, LAT, LON]
    strip = {"shape", "attributes"}
    assert {k: v for k, v in meta_after.items() if k not in strip} == \
        {k: v for k, v in meta_before.items() if k not in strip}
    attrs_after = attrs_on_disk(store, SST, zarr_format)
    for k, v in attrs_before.items():
        assert attrs_after.get(k) == v, f"{SST} attr {k!r}: {attrs_after.get(k)!r} != {v!r}"

    ds = open_store(store)  # consolidated, as readers open it
    if PROVENANCE in ds.variables:
        prov = [str(v) for v in ds[PROVENANCE].values]
        assert prov[0] == keys[0] and prov[1] == "" and prov[2] == keys[2], prov
        ds = ds.drop_vars(PROVENANCE)
    expected = blank_slot(open_sources([rev[0], gen[1], gen[2]]), "time", 1, like=ds)
    assert_slot_blank(ds, "time", 1)
    assert_dataset_values(ds, expected)
    assert_attrs_carried(ds, open_sources(gen[:1]))
    assert np.dtype(ds[SST].encoding["dtype"]) == np.dtype("int16")
