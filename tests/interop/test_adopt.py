"""`zru adopt` brings the files behind a store that xarray wrote under zru's
management: each key becomes the source of the slots its file's times occupy, no data
is rewritten, and a later removal of the key blanks its slot (before adoption it
found nothing to blank)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import (
    PROVENANCE,
    assert_dataset_values,
    assert_event,
    assert_slot_blank,
    key_of,
    open_sources,
    open_store,
    place,
    remove,
    run_zru,
    sample,
    write_config,
)
from test_update_xarray_made_store import CHUNKS, LAT, LON, xarray_write

def data_chunks(store):
    """Bytes of every chunk file of the data variables (not provenance or metadata)."""
    return {p.relative_to(store).as_posix(): p.read_bytes()
            for p in store.rglob("*") if p.is_file() and PROVENANCE not in p.as_posix()
            and not p.name.startswith((".z", "zarr.json"))}


def adopt(config, raw, files, cwd, expect_ok=True):
    return run_zru("adopt", "--config", config, "--raw-root", raw, "--json", *files,
                   cwd=cwd, expect_ok=expect_ok)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_adopted_keys_can_be_removed_and_no_data_is_rewritten(tmp_path, zarr_format):
    raw, config, store = tmp_path / "raw", tmp_path / "config", tmp_path / "sst.zarr"
    files = sample(tmp_path / "gen", days=4, lat=LAT, lon=LON)
    placed = [place(f, raw, f"sst/{f.name}") for f in files]
    keys = [key_of(p, raw) for p in placed]
    xarray_write(files[:3], store, zarr_format)
    write_config(config, "sst", store=store, chunks=CHUNKS, zarr_format=zarr_format)

    # Before adoption, zru knows no source of any slot.
    res = remove(config, raw, [keys[1]], cwd=tmp_path)
    assert_event(res, keys[1], "unchanged")

    chunks_before = data_chunks(store)
    assert any("sea_surface_temperature" in k for k in chunks_before), sorted(chunks_before)
    res = adopt(config, raw, placed[:3], cwd=tmp_path)
    for i in range(3):
        assert_event(res, keys[i], "adopted", region=(i, i + 1))
    assert data_chunks(store) == chunks_before, "adopt rewrote data chunks"
    ds = open_store(store)
    assert list(ds[PROVENANCE].values) == keys[:3]
    assert_dataset_values(ds.drop_vars(PROVENANCE), open_sources(files[:3]))

    # A file whose time is not in the store is refused; nothing changes.
    res = adopt(config, raw, [placed[3]], cwd=tmp_path, expect_ok=False)
    record = assert_event(res, keys[3], "rejected")
    assert "not all in the store" in record["reason"], record
    assert list(open_store(store)[PROVENANCE].values) == keys[:3]

    # Now a removal finds the adopted slot.
    res = remove(config, raw, [keys[1]], cwd=tmp_path)
    assert_event(res, keys[1], "blanked", region=(1, 2))
    ds = open_store(store)
    assert_slot_blank(ds, "time", 1)
    assert np.array_equal(ds[PROVENANCE].values, [keys[0], "", keys[2]])
