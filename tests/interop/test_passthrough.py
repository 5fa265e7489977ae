"""Compressed-chunk passthrough: when a variable's chunks and filters (shuffle +
deflate) are its store array's chunks and codecs (shuffle + zlib), zru copies the
compressed chunks into the store without decoding them. Stores written that way read in
xarray exactly like stores written through netCDF-C and through the parallel decode,
through appends, a gap filled later, a revision and a removal, in Zarr V2 and V3; and
like the source files. Fletcher-32 and big-endian variables fall back to decoding."""

from __future__ import annotations

import json

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import (
    PROVENANCE,
    DecodePathStore,
    assert_dataset_values,
    ingest,
    open_sources,
    open_store,
    place,
    run_zru,
    write_config,
)

CHUNKS = {"time": 1, "lat": 50, "lon": 30}
COMPRESSOR = {"name": "zlib", "level": 4, "shuffle": True}
DECODES = ("passthrough", "parallel", "netcdf-c")
# sea_surface_temperature and wind: 110 x 90 in 50 x 30 chunks (a partial edge row).
PASSED_PER_FILE = 2 * 3 * 3


def daily_files(out, days=3, lat=110, lon=90, revision=0):
    """Daily files written by netCDF4-python: two variables chunked and filtered as the
    store will be (packed int16 with a fill and a masked block; float32 with NaN), one
    with Fletcher-32 and one big-endian (both decoded, not copied)."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for d in range(days):
        day = np.datetime64("2024-03-01") + np.timedelta64(d, "D")
        path = out / f"{str(day).replace('-', '')}120000-pass.nc"
        rng = np.random.default_rng(10 * d + revision)
        sst = (rng.normal(15, 5, (1, lat, lon)) * 100).astype("int16")
        sst[0, 10:20, 5:9] = -32767
        wind = rng.normal(0, 3, (1, lat, lon)).astype("float32")
        wind[0, 60:70, :] = np.nan
        dims = ("time", "lat", "lon")
        packed = {"scale_factor": 0.01, "add_offset": 273.15, "units": "kelvin"}
        ds = xr.Dataset(
            {"sea_surface_temperature": (dims, sst, packed),
             "wind": (dims, wind),
             "checked": (dims, sst, packed)},
            coords={"time": ("time", [day.astype("datetime64[ns]")]),
                    "lat": ("lat", np.linspace(-60, 60, lat)),
                    "lon": ("lon", np.linspace(100, 170, lon))},
        )
        chunked = {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (1, 50, 30)}
        fill16 = {"_FillValue": np.int16(-32767)}
        encoding = {
            "sea_surface_temperature": {**chunked, **fill16},
            "wind": {**chunked, "_FillValue": np.float32(np.nan)},
            "checked": {**chunked, **fill16, "fletcher32": True},
        }
        ds.to_netcdf(path, encoding=encoding, unlimited_dims=["time"])
        # xarray writes native byte order only.
        with netCDF4.Dataset(path, "a") as nc:
            big = nc.createVariable("big", ">f4", dims, zlib=True, complevel=4, shuffle=True,
                                    chunksizes=(1, 50, 30), endian="big",
                                    fill_value=np.float32(np.nan))
            big[:] = wind
        files.append(path)
    return files


def passed(res):
    return [r["stats"]["chunks_passed_through"] for r in res.records]


def assert_same_stores(stores):
    for mask_and_scale in (False, True):
        opened = {s.decode: open_store(s.store, mask_and_scale=mask_and_scale)
                  for s in stores}
        for decode in DECODES[1:]:
            xr.testing.assert_identical(opened["passthrough"], opened[decode])


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_passthrough_stores_read_like_decoded_ones(tmp_path, monkeypatch, zarr_format):
    files = daily_files(tmp_path / "gen")
    revised = daily_files(tmp_path / "rev", revision=1)
    stores = [DecodePathStore(tmp_path, d, zarr_format, CHUNKS, COMPRESSOR) for d in DECODES]
    # Days 0 and 2 (day 1 is a gap), then day 1 into the gap, then a revision of day 2.
    for step, batch in enumerate([[files[0], files[2]], [files[1]], [revised[2]]]):
        for store in stores:
            res = store.ingest(monkeypatch, batch)
            want = PASSED_PER_FILE if store.decode == "passthrough" else 0
            assert passed(res) == [want] * len(batch), f"step {step}\n" + res.describe()
        assert_same_stores(stores)
    expected = open_sources([files[0], files[1], revised[2]])
    pass_store = open_store(stores[0].store).drop_vars(PROVENANCE)
    assert_dataset_values(pass_store, expected)
    # The arrays' codecs are the file's filters.
    meta_name = "zarr.json" if zarr_format == 3 else ".zarray"
    meta = json.loads((stores[0].store / "wind" / meta_name).read_text())
    codecs = json.dumps(meta.get("codecs") or [meta["filters"], meta["compressor"]])
    assert "shuffle" in codecs and "zlib" in codecs, codecs
    # A removal blanks the slot the same way whichever path wrote it.
    for store in stores:
        res = store.remove(monkeypatch, [files[0]])
        assert [r["action"] for r in res.records] == ["blanked"], res.describe()
    assert_same_stores(stores)
    blanked = open_store(stores[0].store)["sea_surface_temperature"].isel(time=0)
    assert bool(blanked.isnull().all())


def test_a_store_with_other_chunks_or_codecs_is_decoded(tmp_path, monkeypatch):
    files = daily_files(tmp_path / "gen", days=1)
    for name, extra in [("zstd", {"compressor": {"name": "zstd"}}),
                        ("chunks", {"compressor": COMPRESSOR,
                                    "chunks": {"time": 1, "lat": 50, "lon": 45}}),
                        ("noshuffle", {"compressor": {"name": "zlib", "level": 4}})]:
        root = tmp_path / name
        config = root / "config"
        options = {"chunks": CHUNKS, **extra}
        write_config(config, "sst", store=root / "sst.zarr", **options)
        res = ingest(config, root / "raw", [place(files[0], root / "raw", f"sst/{files[0].name}")],
                     cwd=root)
        assert passed(res) == [0], name + "\n" + res.describe()
        assert_dataset_values(open_store(root / "sst.zarr").drop_vars(PROVENANCE),
                              open_sources(files))


def test_the_event_line_says_how_many_chunks_were_copied(tmp_path, monkeypatch):
    files = daily_files(tmp_path / "gen", days=1)
    monkeypatch.delenv("ZRU_DECODE", raising=False)
    store = DecodePathStore(tmp_path, "passthrough", 3, CHUNKS, COMPRESSOR)
    placed = place(files[0], store.raw, f"sst/{files[0].name}")
    res = run_zru("ingest", "--config", store.config, "--raw-root", store.raw, placed,
                  cwd=store.root, expect_ok=True)
    assert f"(passthrough: {PASSED_PER_FILE} chunks)" in res.stdout, res.describe()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_config_suggest_prints_a_valid_config_under_which_chunks_pass_through(
        tmp_path, monkeypatch, zarr_format):
    files = daily_files(tmp_path / "gen", days=2)
    monkeypatch.delenv("ZRU_DECODE", raising=False)
    res = run_zru("config", "suggest", files[0], "--name", "sst",
                  "--zarr-format", str(zarr_format), expect_ok=True)
    config = json.loads(res.stdout)
    assert config["zarr_format"] == zarr_format, res.describe()
    assert config["chunks"] == CHUNKS, res.describe()
    assert config["compressor"] == COMPRESSOR, res.describe()
    assert "passthrough\tsea_surface_temperature" in res.stderr, res.describe()
    assert "passthrough\twind" in res.stderr, res.describe()
    assert "decoded\tchecked\tFletcher-32" in res.stderr, res.describe()
    assert "decoded\tbig\tnot chunked netCDF-4 data zru reads itself" in res.stderr
    root = tmp_path / "suggested"
    (root / "config").mkdir(parents=True)
    (root / "config" / "sst.json").write_text(res.stdout)
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    run_zru("config", "check", "--config", root / "config", "--raw-root", raw, cwd=root,
            expect_ok=True)
    placed = [place(f, raw, f"sst/{f.name}") for f in files]
    res = ingest(root / "config", raw, placed, cwd=root)
    assert passed(res) == [PASSED_PER_FILE] * 2, res.describe()
    store = root / config["store"]
    assert (store / ("zarr.json" if zarr_format == 3 else ".zgroup")).exists()
    assert_dataset_values(open_store(store).drop_vars(PROVENANCE), open_sources(files))


def test_config_suggest_refuses_a_zarr_format_it_does_not_write(tmp_path):
    files = daily_files(tmp_path / "gen", days=1)
    res = run_zru("config", "suggest", files[0], "--zarr-format", "4", expect_ok=False)
    assert "--zarr-format" in res.stderr and "2..=3" in res.stderr, res.describe()


def test_config_suggest_explains_a_file_with_nothing_to_pass(tmp_path):
    path = tmp_path / "classic.nc"
    xr.Dataset({"v": (("time", "x"), np.zeros((1, 4), "f4"))},
               coords={"time": [np.datetime64("2024-01-01", "ns")]}).to_netcdf(
        path, format="NETCDF3_CLASSIC")
    res = run_zru("config", "suggest", path, expect_ok=False)
    assert "no variable along time can be copied compressed: v: not chunked" in res.stderr, (
        res.describe())
