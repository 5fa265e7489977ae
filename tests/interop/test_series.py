"""Observation series ("handler": "series"): stores written by zru, read back with xarray.

Self-contained: runs the zru binary from $ZRU_BIN (default <repo>/target/release/zru) on
trajectory files this test writes with netCDF4-python (irregular 1 Hz ship tracks,
netCDF3 and netCDF-4) and on the real mooring and glider files in tests/data/. For each
key, the store's rows (found through the provenance column) must equal
`xarray.open_dataset(file)`, scalars broadcast to every row.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]
ANMN = ROOT / "tests" / "data" / "imos" / "anmn"
GLIDER = ROOT / "tests" / "data" / "ioos" / "glider" / "Murphy-20150809T135508Z_rt.nc"
MOORINGS = sorted(ANMN.glob("IMOS_ANMN-NRS_TZ_*_FV01_*.nc"))
ADCP = next(ANMN.glob("IMOS_ANMN-NRS_AETVZ_*_FV01_*.nc"), None)
PROVENANCE = "zru_source_key"
ENCODING = {"_FillValue", "scale_factor", "add_offset", "missing_value", "units",
            "calendar", "coordinates", "dtype"}


def zru_bin() -> Path:
    path = Path(os.environ.get("ZRU_BIN", ROOT / "target" / "release" / "zru"))
    assert path.is_file(), f"zru binary not found at {path}: run cargo build --release"
    return path


class Workspace:
    """A config directory, a raw root and one series dataset."""

    def __init__(self, root: Path, *, prefix: str, append_dim: str, series: dict,
                 zarr_format: int = 3, chunks=None):
        self.root, self.prefix, self.append_dim = root, prefix, append_dim
        self.raw = root / "raw"
        self.config = root / "config"
        self.store = root / "series.zarr"
        (self.raw / prefix).mkdir(parents=True)
        self.config.mkdir()
        dataset = {"name": "series", "handler": "series",
                   "key_patterns": [rf"^{prefix}/.*\.nc$"], "store": str(self.store),
                   "append_dim": append_dim, "zarr_format": zarr_format, "series": series}
        if chunks:
            dataset["chunks"] = chunks
        (self.config / "series.json").write_text(json.dumps(dataset))
        self.file_dim = series.get("file_dim", append_dim)

    def path(self, name: str) -> Path:
        return self.raw / self.prefix / name

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def put(self, source: Path, name: str | None = None) -> Path:
        target = self.path(name or source.name)
        shutil.copyfile(source, target)
        return target

    def run(self, *args: str) -> tuple[int, list[dict]]:
        result = subprocess.run(
            [str(zru_bin()), *args, "--json", "--config", str(self.config),
             "--raw-root", str(self.raw), "--state-dir", str(self.root / "state")],
            capture_output=True, text=True, check=False, cwd=self.root)
        assert result.returncode in (0, 1), result.stderr
        return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]

    def ingest(self, *paths: Path) -> list[dict]:
        code, outcomes = self.run("ingest", *map(str, paths))
        assert code == 0, outcomes
        return outcomes

    def remove(self, *keys: str) -> list[dict]:
        code, outcomes = self.run("remove", *keys)
        assert code == 0, outcomes
        return outcomes

    def open(self) -> xr.Dataset:
        return xr.open_zarr(self.store, consolidated=True)

    def rows(self, name: str) -> np.ndarray:
        keys = self.open()[PROVENANCE].values
        return np.flatnonzero(keys == self.key(name))

    def assert_matches(self, name: str, source: Path | None = None) -> np.ndarray:
        rows = self.rows(name)
        assert_rows_match(self.store, source or self.path(name), rows, self.file_dim,
                          self.append_dim)
        return rows


def as_text(values: np.ndarray) -> np.ndarray:
    def text(b):
        if isinstance(b, bytes):
            return b.decode()
        return "" if isinstance(b, float) and np.isnan(b) else str(b)
    return np.vectorize(text, otypes=[object])(values)


def assert_same_values(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape, (name, got.shape, expected.shape)
    if expected.dtype.kind == "M":
        assert got.dtype.kind == "M", (name, got.dtype)
        a, b = got.astype("datetime64[ns]"), expected.astype("datetime64[ns]")
        assert (np.isnat(a) == np.isnat(b)).all(), name
        ok = ~np.isnat(b)
        diff = np.abs(a[ok].astype(np.int64) - b[ok].astype(np.int64))
        assert diff.max(initial=0) <= 1_000_000, f"{name}: times differ by {diff.max()} ns"
    elif expected.dtype.kind in "SUO":
        np.testing.assert_array_equal(as_text(got), as_text(expected), err_msg=name)
    elif expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=name)


def assert_rows_match(store_path: Path, source: Path, rows, file_dim: str,
                      append_dim: str) -> None:
    """Every variable of `source` as xarray decodes it equals the store's at `rows`:
    file_dim variables row by row, scalars on every row, others whole; attributes kept."""
    rows = np.asarray(rows)
    store = xr.open_zarr(store_path).isel({append_dim: rows})
    with xr.open_dataset(source) as src:
        count = src.sizes[file_dim]
        assert len(rows) == count, f"{len(rows)} rows in the store, {count} in {source.name}"
        assert (np.diff(rows) > 0).all(), "a key's rows are ascending"
        for name, var in src.variables.items():
            assert name in store.variables, f"{name} missing from the store"
            got = store[name]
            if var.dims[:1] == (file_dim,):
                expected = var.values
                assert got.dims == (append_dim, *var.dims[1:]), (name, got.dims)
            elif var.dims == ():
                expected = np.broadcast_to(var.values, (count,))
                assert got.dims == (append_dim,), (name, got.dims)
            else:
                expected = var.values
            assert_same_values(name, got.values, expected)
            for attr, value in var.attrs.items():
                if attr not in ENCODING:
                    assert attr in got.attrs, f"{name}: attribute {attr} lost"
                    np.testing.assert_array_equal(got.attrs[attr], value, err_msg=f"{name}.{attr}")
        for attr in ("title", "deployment_code", "platform_code"):
            if attr in src.attrs and len(rows):
                assert attr in xr.open_zarr(store_path).attrs


def assert_blank(store_path: Path, rows, append_dim: str, names) -> None:
    store = xr.open_zarr(store_path).isel({append_dim: np.asarray(rows)})
    assert (store[PROVENANCE].values == "").all(), "blank rows have no source key"
    for name in names:
        values = store[name].values
        if values.dtype.kind == "M":
            assert np.isnat(values).all(), name
        elif values.dtype.kind == "f":
            assert np.isnan(values).all(), name
        else:
            assert (as_text(values) == "").all(), name


def by_key(outcomes: list[dict]) -> dict[str, dict]:
    return {o["key"]: o for o in outcomes}


def tree_digest(path: Path, skip=".zru") -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path)
        if relative.parts[0] == skip:
            continue
        digest.update(str(relative).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- generated tracks


def write_track(path: Path, *, n: int, seed: int, platform: str, deployment: str,
                fmt: str = "NETCDF4", seconds: bool = False) -> Path:
    """An irregular 1 Hz ship track: TIME (days since 1950, or seconds since 1970),
    lat/lon, packed int16 TEMP with fills, a char platform name, a scalar depth."""
    rng = np.random.default_rng(seed)
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("TIME", n)
        ds.createDimension("name_strlen", 12)
        ds.deployment_code = deployment
        ds.title = f"ship track {platform} {deployment}"
        offsets = np.cumsum(rng.choice([1, 1, 1, 2, 7], n)).astype("f8")
        start = 25_000 + seed  # days since 1950
        t = ds.createVariable("TIME", "f8", ("TIME",))
        t.standard_name = "time"
        if seconds:
            t.units = "seconds since 1970-01-01 00:00:00 UTC"
            t[:] = (start - 7305) * 86400.0 + offsets
        else:
            t.units = "days since 1950-01-01 00:00:00 UTC"
            t[:] = start + offsets / 86400.0
        lat = ds.createVariable("LATITUDE", "f8", ("TIME",), fill_value=99999.0)
        lat.units = "degrees_north"
        lat[:] = -30 + np.cumsum(rng.normal(0, 1e-4, n))
        lon = ds.createVariable("LONGITUDE", "f8", ("TIME",), fill_value=99999.0)
        lon.units = "degrees_east"
        lon[:] = 115 + np.cumsum(rng.normal(0, 1e-4, n))
        temp = ds.createVariable("TEMP", "i2", ("TIME",), fill_value=np.int16(-32768))
        temp.set_auto_maskandscale(False)
        temp.scale_factor, temp.add_offset = 0.001, 20.0
        temp.units = "degrees_Celsius"
        temp.long_name = "sea water temperature"
        packed = np.round((18 + rng.normal(0, 1, n) - 20.0) / 0.001).astype("i2")
        packed[rng.random(n) < 0.1] = -32768
        temp[:] = packed
        name = ds.createVariable("PLATFORM", "S1", ("name_strlen",))
        name.long_name = "platform name"
        name[:] = netCDF4.stringtochar(np.array([platform], dtype="S12"))
        depth = ds.createVariable("NOMINAL_DEPTH", "f4", ())
        depth.units = "m"
        depth.assignValue(2.0 + seed % 3)
    return path


TRACK_VARS = ["TIME", "LATITUDE", "LONGITUDE", "TEMP", "PLATFORM", "NOMINAL_DEPTH"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_tracks_append_revise_shrink_remove_take_over_and_replay(tmp_path, zarr_format):
    ws = Workspace(tmp_path, prefix="soop", append_dim="OBSERVATION", zarr_format=zarr_format,
                   series={"file_dim": "TIME", "identity": ["@deployment_code"]},
                   chunks={"OBSERVATION": 64})
    a = write_track(ws.path("a.nc"), n=50, seed=1, platform="VLHJ", deployment="V1")
    b = write_track(ws.path("b.nc"), n=30, seed=2, platform="VNAA", deployment="V2",
                    fmt="NETCDF3_CLASSIC", seconds=True)
    c = write_track(ws.path("c.nc"), n=40, seed=3, platform="VLMJ", deployment="V3")
    out = by_key(ws.ingest(a, b, c))
    assert {o["action"] for o in out.values()} == {"appended"}, out
    rows = {name: ws.assert_matches(name) for name in ["a.nc", "b.nc", "c.nc"]}
    assert sorted(np.concatenate(list(rows.values()))) == list(range(120))
    ds = ws.open()
    assert ds.sizes["OBSERVATION"] == 120
    assert ds["TIME"].dims == ("OBSERVATION",) and "TIME" not in ds.indexes
    assert ds["TEMP"].encoding["dtype"] == np.dtype("i2"), "packed stays packed"

    # A longer revision: its 50 rows in place, 10 appended after the store's end.
    a = write_track(ws.path("a.nc"), n=60, seed=11, platform="VLHJ", deployment="V1")
    out = by_key(ws.ingest(a))
    assert out["soop/a.nc"]["action"] == "overwrote", out
    rows_a = ws.assert_matches("a.nc")
    assert list(rows_a) == list(rows["a.nc"]) + list(range(120, 130))

    # A shorter revision (netCDF3): its first rows reused, the surplus blanked.
    b = write_track(ws.path("b.nc"), n=10, seed=12, platform="VNAA", deployment="V2",
                    fmt="NETCDF3_CLASSIC")
    out = by_key(ws.ingest(b))
    assert out["soop/b.nc"]["action"] == "overwrote", out
    assert list(ws.assert_matches("b.nc")) == list(rows["b.nc"][:10])
    assert_blank(ws.store, rows["b.nc"][10:], "OBSERVATION", TRACK_VARS)

    # Removal blanks the key's rows; removing it again changes nothing.
    assert by_key(ws.remove("soop/c.nc"))["soop/c.nc"]["action"] == "blanked"
    assert_blank(ws.store, rows["c.nc"], "OBSERVATION", TRACK_VARS)
    assert by_key(ws.remove("soop/c.nc"))["soop/c.nc"]["action"] == "unchanged"
    ws.path("c.nc").unlink()

    # The provider republishes deployment V1 under a new name: it takes a.nc's rows.
    a2 = write_track(ws.path("a-v2.nc"), n=55, seed=21, platform="VLHJ", deployment="V1")
    out = by_key(ws.ingest(a2))
    assert out["soop/a-v2.nc"]["action"] == "overwrote", out
    assert list(ws.assert_matches("a-v2.nc")) == list(rows_a[:55])
    assert_blank(ws.store, rows_a[55:], "OBSERVATION", TRACK_VARS)
    assert len(ws.rows("a.nc")) == 0
    assert by_key(ws.remove("soop/a.nc"))["soop/a.nc"]["action"] == "unchanged"
    ws.assert_matches("b.nc")
    assert ws.open().sizes["OBSERVATION"] == 130

    # Replaying an applied file gives the identical store.
    before = tree_digest(ws.store)
    out = by_key(ws.ingest(a2))
    assert out["soop/a-v2.nc"]["action"] == "overwrote", out
    assert tree_digest(ws.store) == before
    ws.assert_matches("a-v2.nc")

    # Deleting the index: the next update rebuilds it from the provenance column.
    shutil.rmtree(ws.store / ".zru" / "series")
    b = write_track(ws.path("b.nc"), n=12, seed=13, platform="VNAA", deployment="V2")
    by_key(ws.ingest(b))
    # Its 10 rows (found by the rebuilt index), then 2 appended: rows it blanked are free.
    assert list(ws.assert_matches("b.nc")) == list(rows["b.nc"][:10]) + [130, 131]
    assert (ws.store / ".zru" / "series" / "meta.json").is_file()
    ws.assert_matches("a-v2.nc")


def test_an_extra_dimension_of_another_length_is_rejected(tmp_path):
    ws = Workspace(tmp_path, prefix="adcp", append_dim="TIME", series={})
    for name, bins in [("a.nc", 4), ("b.nc", 5)]:
        with netCDF4.Dataset(ws.path(name), "w") as ds:
            ds.createDimension("TIME", 3)
            ds.createDimension("BIN", bins)
            t = ds.createVariable("TIME", "f8", ("TIME",))
            t.units = "seconds since 2000-01-01"
            t[:] = [1, 2, 3]
            ds.createVariable("BIN", "f4", ("BIN",))[:] = np.arange(bins)
            ds.createVariable("UCUR", "f4", ("TIME", "BIN"))[:] = np.ones((3, bins))
    ws.ingest(ws.path("a.nc"))
    code, outcomes = ws.run("ingest", str(ws.path("b.nc")))
    assert code == 1 and outcomes[0]["action"] == "rejected", outcomes
    assert "shape" in outcomes[0]["reason"], outcomes[0]["reason"]
    ws.assert_matches("a.nc")


def test_an_identity_missing_from_the_file_is_rejected(tmp_path):
    ws = Workspace(tmp_path, prefix="soop", append_dim="OBS",
                   series={"file_dim": "TIME", "identity": ["@voyage_id"]})
    a = write_track(ws.path("a.nc"), n=5, seed=1, platform="X", deployment="V1")
    code, outcomes = ws.run("ingest", str(a))
    assert code == 1 and "@voyage_id" in outcomes[0]["reason"], outcomes
    assert not (ws.store / "zarr.json").exists()


# ---------------------------------------------------------------- real files


def test_real_mooring_deployments_and_a_republished_deployment(tmp_path):
    assert len(MOORINGS) == 2, MOORINGS
    # The 2019 file has no deployment_code attribute: with it as identity the file is
    # rejected (named), not placed under an empty identity.
    strict = Workspace(tmp_path / "strict", prefix="anmn", append_dim="OBSERVATION",
                       series={"file_dim": "TIME", "identity": ["@deployment_code"]})
    code, outcomes = strict.run("ingest", *map(str, [strict.put(f) for f in MOORINGS]))
    assert code == 1 and [o["action"] for o in outcomes] == ["appended", "rejected"], outcomes
    assert "@deployment_code" in outcomes[1]["reason"]
    # Site (global attribute) + nominal depth (scalar variable) identify a deployment line.
    ws = Workspace(tmp_path, prefix="anmn", append_dim="OBSERVATION",
                   series={"file_dim": "TIME", "identity": ["@platform_code", "NOMINAL_DEPTH"]})
    paths = [ws.put(f) for f in MOORINGS]
    out = by_key(ws.ingest(*paths))
    assert {o["action"] for o in out.values()} == {"appended"}, out
    rows = [ws.assert_matches(p.name) for p in paths]
    ds = ws.open()
    depths = {float(ds["NOMINAL_DEPTH"].values[r[0]]) for r in rows}
    assert depths == {23.0, 27.0}, "each row carries its deployment's nominal depth"

    # The same deployment under a new creation date takes over its rows.
    new_name = paths[0].name.replace("_C-20190827T000000Z", "_C-20230110T000000Z")
    assert new_name != paths[0].name
    republished = ws.put(MOORINGS[0], new_name)
    out = by_key(ws.ingest(republished))
    assert out[ws.key(new_name)]["action"] == "overwrote", out
    assert list(ws.assert_matches(new_name)) == list(rows[0])
    assert len(ws.rows(paths[0].name)) == 0
    assert ws.open().sizes["OBSERVATION"] == sum(len(r) for r in rows)
    assert by_key(ws.remove(ws.key(paths[0].name)))[ws.key(paths[0].name)]["action"] == "unchanged"


def test_real_adcp_keeps_its_height_dimension(tmp_path):
    assert ADCP is not None
    ws = Workspace(tmp_path, prefix="anmn", append_dim="OBSERVATION",
                   series={"file_dim": "TIME"})
    ws.ingest(ws.put(ADCP))
    ws.assert_matches(ADCP.name)
    ds = ws.open()
    assert ds["VCUR"].dims == ("OBSERVATION", "HEIGHT_ABOVE_SENSOR")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_real_glider_trajectory(tmp_path, zarr_format):
    assert GLIDER.is_file(), GLIDER
    ws = Workspace(tmp_path, prefix="glider", append_dim="obs", zarr_format=zarr_format,
                   series={"file_dim": "time", "identity": ["trajectory"]})
    path = ws.put(GLIDER)
    ws.ingest(path)
    rows = ws.assert_matches(path.name)
    assert list(rows) == list(range(8))
    # A revised copy under another name with the same trajectory takes over the rows.
    copy = ws.put(GLIDER, "Murphy-20150809T135508Z_rt-reprocessed.nc")
    out = by_key(ws.ingest(copy))
    assert out[ws.key(copy.name)]["action"] == "overwrote", out
    assert list(ws.assert_matches(copy.name)) == list(range(8))
    # Without identity, the same trajectory under a new name is appended.
    ws2 = Workspace(tmp_path / "plain", prefix="glider", append_dim="time", series={})
    ws2.ingest(ws2.put(GLIDER), ws2.put(GLIDER, "again.nc"))
    assert list(ws2.assert_matches("again.nc")) == list(range(8, 16))
    assert list(ws2.assert_matches(GLIDER.name)) == list(range(8))


def test_config_check_names_series_keys_in_other_families(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    good = {"name": "soop", "handler": "series", "key_patterns": ["^soop/"],
            "store": str(tmp_path / "soop.zarr"), "append_dim": "OBSERVATION",
            "series": {"file_dim": "TIME", "identity": ["@deployment_code", "PLATFORM"]}}
    (config / "soop.json").write_text(json.dumps(good))
    run = lambda: subprocess.run([str(zru_bin()), "config", "check", "--config", str(config),
                                  "--raw-root", str(tmp_path / "raw")],
                                 capture_output=True, text=True, cwd=tmp_path)
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    bad = dict(good, handler="gridded")
    (config / "soop.json").write_text(json.dumps(bad))
    result = run()
    assert result.returncode != 0 and "series" in result.stdout + result.stderr
    bad = dict(good, series={"file_dim": "TIME", "identity": ["@"]})
    (config / "soop.json").write_text(json.dumps(bad))
    result = run()
    assert result.returncode != 0 and "series.identity" in result.stdout + result.stderr
    bad = dict(good, series={"file_dm": "TIME"})
    (config / "soop.json").write_text(json.dumps(bad))
    assert run().returncode != 0
