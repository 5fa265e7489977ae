"""A revised file whose times moved (a corrected timestamp, a file reissued for another
day under the same key) takes the key's new slots and blanks its earlier ones, as if
the old version had been removed first — whether the revision arrives alone or in one
batch after the key's removal."""

from __future__ import annotations

import pytest

from conftest import (
    PROVENANCE,
    assert_dataset_values,
    assert_event,
    assert_slot_blank,
    ingest,
    open_sources,
    open_store,
    place,
    remove,
    run_zru,
    sample,
    write_config,
)

KEY = "sst/reissued.nc"


@pytest.fixture
def days(tmp_path):
    return sample(tmp_path / "gen", days=3, lat=20, lon=30, start="2024-05-01")


def check(store, day_three):
    """Slot 0 (the key's old day) is blank, slot 2 holds the reissued day."""
    ds = open_store(store)
    assert list(ds[PROVENANCE].values) == ["", "", KEY]
    assert_slot_blank(ds, "time", 0)
    assert_slot_blank(ds, "time", 1)
    got = ds.drop_vars(PROVENANCE).isel(time=[2])
    assert_dataset_values(got, open_sources([day_three]))


def test_a_revision_with_other_times_blanks_the_keys_earlier_slots(tmp_path, days):
    raw, config, store = tmp_path / "raw", tmp_path / "config", tmp_path / "sst.zarr"
    write_config(config, "sst", store=store, key_patterns=[r"^sst/.*\.nc$"])
    ingest(config, raw, [place(days[0], raw, KEY)], cwd=tmp_path)
    res = ingest(config, raw, [place(days[2], raw, KEY)], cwd=tmp_path)
    record = assert_event(res, KEY, "appended", region=(2, 3))
    assert "earlier [0, 1)" in (record.get("reason") or ""), record
    check(store, days[2])


def test_removal_then_recreation_in_one_batch(tmp_path, days):
    raw, config, store = tmp_path / "raw", tmp_path / "config", tmp_path / "sst.zarr"
    write_config(config, "sst", store=store, key_patterns=[r"^sst/.*\.nc$"])
    ingest(config, raw, [place(days[0], raw, KEY)], cwd=tmp_path)
    remove(config, raw, [KEY, "--no-flush"], cwd=tmp_path)
    run_zru("ingest", "--config", config, "--raw-root", raw, "--no-flush",
            place(days[2], raw, KEY), cwd=tmp_path, expect_ok=True)
    run_zru("flush", "--config", config, "--raw-root", raw, cwd=tmp_path, expect_ok=True)
    check(store, days[2])
