"""Real IMOS GSLA files (2011 and 2024 product versions, 12-year gap, variables
added in 2024, float32 → float64 coordinates) through zru, read with xarray."""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from conftest import (
    PROVENANCE,
    assert_event,
    assert_tree_unchanged,
    ingest,
    key_of,
    open_store,
    place,
    source_keys,
    tree_hash,
    write_config,
)

PREFIX = "IMOS/OceanCurrent/GSLA"
CHUNKS = {"TIME": 1, "LATITUDE": 351, "LONGITUDE": 641}
NEW_IN_2024 = {"UCUR_MEAN", "VCUR_MEAN"}


def setup_gsla(tmp_path, gsla_files):
    raw = tmp_path / "raw"
    placed = [place(f, raw, f"{PREFIX}/{f.name}") for f in gsla_files]
    store = tmp_path / "gsla.zarr"
    config = tmp_path / "config"
    write_config(config, "gsla", store=store, key_patterns=[rf"^{PREFIX}/.*\.nc$"],
                 append_dim="TIME", chunks=CHUNKS, time_step=None)
    return raw, placed, store, config


def load(path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def attrs_match(store_attrs: dict, src_attrs: dict, is_time: bool) -> list[str]:
    skip = {"_FillValue", "scale_factor", "add_offset", "missing_value"}
    if is_time:
        skip |= {"units", "calendar"}
    bad = []
    for k, v in src_attrs.items():
        if k in skip:
            continue
        got = store_attrs.get(k)
        if isinstance(v, np.ndarray) or isinstance(got, (list, np.ndarray)):
            ok = got is not None and np.allclose(np.asarray(got, dtype="f8"),
                                                 np.asarray(v, dtype="f8"))
        elif isinstance(v, (float, np.floating)):
            ok = got is not None and np.isclose(float(got), float(v))
        else:
            ok = got == v
        if not ok:
            bad.append(f"{k}: store {got!r} != source {v!r}")
    return bad


def compare_with_sources(ds: xr.Dataset, srcs: list[xr.Dataset], keys: list[str]) -> None:
    """Slot i of the store reads like source file i."""
    all_vars = set().union(*(set(s.variables) for s in srcs))
    assert set(ds.variables) - {PROVENANCE} == all_vars

    # TIME (and the other datetime variables) decode to the sources' instants.
    np.testing.assert_array_equal(ds["TIME"].values,
                                  np.concatenate([s["TIME"].values for s in srcs]))

    # Coordinates: the first file's (float32 in 2011), equal within float32
    # precision to the 2024 float64 ones.
    first = srcs[0]
    for c in ("LATITUDE", "LONGITUDE"):
        np.testing.assert_array_equal(ds[c].values, first[c].values)
        for s in srcs[1:]:
            np.testing.assert_allclose(ds[c].values.astype("f8"), s[c].values.astype("f8"),
                                       rtol=0, atol=1e-4)

    for i, src in enumerate(srcs):
        for name in sorted(all_vars - {"TIME", "LATITUDE", "LONGITUDE"}):
            got = ds[name].isel(TIME=i).values
            if name not in src.variables:
                assert name in NEW_IN_2024, name
                assert np.all(np.isnan(got)), f"{name} slot {i} ({keys[i]}) is not all NaN"
                continue
            want = src[name].isel(TIME=0).values
            assert got.shape == want.shape, f"{name} slot {i}: {got.shape} != {want.shape}"
            if want.dtype.kind == "M":
                diff = np.abs(got.astype("datetime64[ns]") - want).astype("int64")
                assert diff.max() <= 1_000_000, f"{name} slot {i} differs by {diff.max()} ns"
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, equal_nan=True,
                                           err_msg=f"{name} slot {i} ({keys[i]})")
                # same missing-value mask, not just close numbers
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want),
                                              err_msg=f"{name} mask, slot {i}")

    # Packing kept (int16 + scale_factor) and the variables' attrs carried
    # (from the first file that has the variable, or from the latest one).
    problems = []
    for name in sorted(all_vars):
        having = [s for s in srcs if name in s.variables]
        if having[0][name].encoding.get("dtype") == np.dtype("int16"):
            if np.dtype(ds[name].encoding.get("dtype")) != np.dtype("int16"):
                problems.append(f"{name}: stored dtype {ds[name].encoding.get('dtype')}")
        is_time = having[0][name].dtype.kind == "M"
        first_bad = attrs_match(ds[name].attrs, having[0][name].attrs, is_time)
        last_bad = attrs_match(ds[name].attrs, having[-1][name].attrs, is_time)
        if first_bad and last_bad:
            problems.append(f"{name}: attrs match neither the first nor the latest source: "
                            f"{first_bad}")
    assert not problems, "\n".join(problems)


def test_gsla_four_files_in_order(tmp_path, gsla_files):
    raw, placed, store, config = setup_gsla(tmp_path, gsla_files)
    keys = [key_of(p, raw) for p in placed]

    res = ingest(config, raw, placed, cwd=tmp_path)
    assert_event(res, keys[0], {"appended", "created"}, region=(0, 1), dim="TIME")
    for i in (1, 2, 3):
        assert_event(res, keys[i], "appended", region=(i, i + 1), dim="TIME")

    ds = open_store(store)
    srcs = [load(f) for f in gsla_files]
    assert ds.sizes["TIME"] == 4
    assert source_keys(ds) == keys

    compare_with_sources(ds, srcs, keys)


def test_gsla_out_of_order_rejected_store_unchanged(tmp_path, gsla_files):
    raw, placed, store, config = setup_gsla(tmp_path, gsla_files)
    keys = [key_of(p, raw) for p in placed]
    late = placed[1]  # 2011-09-02, arriving after the 2024 files

    res = ingest(config, raw, [placed[0], placed[2], placed[3]], cwd=tmp_path)
    for i, k in enumerate([keys[0], keys[2], keys[3]]):
        assert_event(res, k, {"appended", "created"} if i == 0 else "appended",
                     region=(i, i + 1), dim="TIME")

    before = tree_hash(store)
    res = ingest(config, raw, [late], cwd=tmp_path, expect_ok=False)
    rec = assert_event(res, keys[1], "rejected")
    reason = rec.get("reason")
    assert isinstance(reason, str) and re.search(r"order|time", reason, re.I), (
        f"reason should mention order/time: {reason!r}\n" + res.describe())
    assert_tree_unchanged(before, store, "after the rejected out-of-order file")

    ds = open_store(store)
    assert ds.sizes["TIME"] == 3
    assert source_keys(ds) == [keys[0], keys[2], keys[3]]
