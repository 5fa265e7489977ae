"""Profile collections (Argo): stores written by zru, read back with xarray.

Self-contained: runs the zru binary from $ZRU_BIN (default <repo>/target/release/zru)
on the real files in tests/data/imos/argo/ and on files this test derives from
them (revised, split into single cycles, broken). Missing inputs fail, never skip.

How text compares: zru stores `char` arrays as strings as the file holds them
(trailing spaces kept, trailing NULs dropped), except that text equal to the variable's
`_FillValue` (" "), which xarray masks to NaN, is stored as "", the store's missing
text (also what rows or levels a file does not have read as). The store is compared
with the source as xarray decodes it: bytes decoded, NaN as "".
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
ARGO = ROOT / "tests" / "data" / "imos" / "argo"
FLOAT = "2902093_prof.nc"
SEAL = "ct64-M001-09_prof.nc"
IDENTITY = ["PLATFORM_NUMBER", "CYCLE_NUMBER", "DIRECTION"]


# ---------------------------------------------------------------- helpers


def zru_bin() -> Path:
    path = Path(os.environ.get("ZRU_BIN", ROOT / "target" / "release" / "zru"))
    assert path.is_file(), f"zru binary not found at {path}: run cargo build --release"
    return path


def real_file(name: str) -> Path:
    path = ARGO / name
    assert path.is_file(), f"real file missing: {path}"
    return path


class Workspace:
    """A config directory, a raw root and one profiles dataset."""

    def __init__(self, root: Path, zarr_format: int = 3, chunks=None):
        self.root = root
        self.raw = root / "raw"
        self.config = root / "config"
        self.store = root / "argo.zarr"
        (self.raw / "argo").mkdir(parents=True)
        self.config.mkdir()
        dataset = {
            "name": "argo",
            "handler": "profiles",
            "key_patterns": [r"^argo/.*\.nc$"],
            "store": str(self.store),
            "append_dim": "N_PROF",
            "zarr_format": zarr_format,
        }
        if chunks is not None:
            dataset["chunks"] = chunks
        (self.config / "argo.json").write_text(json.dumps(dataset))

    def put(self, source: Path, name: str | None = None) -> Path:
        target = self.raw / "argo" / (name or source.name)
        shutil.copyfile(source, target)
        return target

    def run(self, *args: str) -> tuple[int, list[dict]]:
        # The queue and locks go under the workspace (not data/state of the working
        # directory), which is also the working directory: the repository stays clean.
        result = subprocess.run(
            [str(zru_bin()), *args, "--json", "--config", str(self.config),
             "--raw-root", str(self.raw), "--state-dir", str(self.root / "state")],
            capture_output=True, text=True, check=False, cwd=self.root,
        )
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


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        digest.update(str(item.relative_to(path)).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def profile_vars(ds: xr.Dataset) -> list[str]:
    return [n for n, v in ds.variables.items()
            if v.dims[:1] == ("N_PROF",) and n != "zru_source_key"]


def as_text(values: np.ndarray) -> np.ndarray:
    """xarray's decoded text (bytes; NaN where it equals the char _FillValue) as the
    store holds it: str, with "" for missing."""
    def text(b):
        if isinstance(b, bytes):
            return b.decode()
        return "" if isinstance(b, float) and np.isnan(b) else str(b)
    return np.vectorize(text, otypes=[object])(values)


def time_labels(values: np.ndarray) -> np.ndarray:
    """Calendar labels of decoded times (datetime64 or cftime) as datetime64[us]."""
    if values.dtype.kind == "M":
        return values.astype("datetime64[us]")
    return np.array([np.datetime64(d.isoformat()) if hasattr(d, "isoformat") else np.datetime64("NaT")
                     for d in values.ravel()], dtype="datetime64[us]").reshape(values.shape)


def is_text(raw: xr.DataArray) -> bool:
    return raw.dtype.kind == "S" or (raw.dtype == object and raw.size and isinstance(raw.values.flat[0], bytes))


def assert_rows_match(store_path: Path, source: Path, rows) -> None:
    """Every N_PROF variable of `source` equals the store at `rows` (levels beyond the
    file's are fill), as xarray reads both: decoded, and for times also as numbers."""
    rows = np.asarray(rows)
    store = xr.open_zarr(store_path)
    store_numbers = xr.open_zarr(store_path, decode_times=False)
    decoded = xr.open_dataset(source)
    raw = xr.open_dataset(source, mask_and_scale=False, decode_times=False)
    numbers = xr.open_dataset(source, decode_times=False)
    names = profile_vars(decoded)
    assert names, source
    for name in names:
        src = decoded[name]
        got = store[name].isel(N_PROF=rows)
        assert got.dims == src.dims, name
        inside = {d: slice(0, n) for d, n in src.sizes.items() if d != "N_PROF"}
        head = got.isel(inside).values
        if is_text(raw[name]):
            np.testing.assert_array_equal(head.astype(object), as_text(src.values), err_msg=name)
        elif src.dtype.kind == "M" or src.dtype == object:  # datetime64 or cftime
            assert head.dtype.kind == "M" or head.dtype == object, name
            stored = store_numbers[name].isel(N_PROF=rows).isel(inside).values
            np.testing.assert_array_equal(stored, numbers[name].values, err_msg=name)
            # Labels of valid times (xarray's cftime path decodes a missing time as the
            # epoch, so missing ones are compared as numbers above).
            valid = ~np.isnan(stored)
            delta = np.abs(time_labels(head) - time_labels(src.values))[valid]
            assert (delta <= np.timedelta64(1, "ms")).all(), name
        else:
            assert got.dtype == src.dtype, (name, got.dtype, src.dtype)
            np.testing.assert_array_equal(head, src.values, err_msg=name)
        for dim, n in inside.items():
            tail = got.isel({dim: slice(n.stop, None)}).values
            if tail.size == 0:
                continue
            if tail.dtype.kind == "f":
                assert np.isnan(tail).all(), (name, dim)
            elif tail.dtype.kind in "OTU":
                assert (tail.astype(object) == "").all(), (name, dim)


def copy_profiles(source: Path, target: Path, profiles, *, levels=None, change=None, drop=(), as_char=()):
    """Writes a netCDF3 file holding the given profiles of `source` (in that order),
    optionally cut to `levels` levels, with `change(name, array)` applied, variables
    in `drop` left out and variables in `as_char` written as 8-char text."""
    profiles = list(profiles)
    with netCDF4.Dataset(source) as src, netCDF4.Dataset(target, "w", format="NETCDF3_CLASSIC") as dst:
        src.set_auto_maskandscale(False)
        dst.setncatts({k: src.getncattr(k) for k in src.ncattrs()})
        for name, dim in src.dimensions.items():
            size = len(dim)
            if name == "N_PROF":
                size = len(profiles)
            elif name == "N_LEVELS" and levels is not None:
                size = levels
            dst.createDimension(name, None if dim.isunlimited() else size)
        if as_char and "STRING8" not in dst.dimensions:
            dst.createDimension("STRING8", 8)
        for name, var in src.variables.items():
            if name in drop:
                continue
            data = var[:]
            if "N_PROF" in var.dimensions:
                data = np.take(data, profiles, axis=var.dimensions.index("N_PROF"))
            if "N_LEVELS" in var.dimensions and levels is not None:
                data = np.take(data, range(levels), axis=var.dimensions.index("N_LEVELS"))
            if change is not None:
                data = change(name, data)
            attrs = {k: var.getncattr(k) for k in var.ncattrs()}
            fill = attrs.pop("_FillValue", None)
            dims = var.dimensions
            dtype = var.dtype
            if name in as_char:
                data = netCDF4.stringtochar(np.array([str(x).ljust(8) for x in data], dtype="S8"))
                dims, dtype, fill = dims + ("STRING8",), "S1", None
            out = dst.createVariable(name, dtype, dims, fill_value=fill)
            out.set_auto_maskandscale(False)
            out.setncatts(attrs)
            if data.size:
                out[:] = data


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "zarr_format,first",
    [(3, FLOAT), (2, SEAL)],
    ids=["v3-float-first", "v2-seal-first"],
)
def test_real_files_into_one_store_read_as_the_sources(tmp_path, zarr_format, first):
    ws = Workspace(tmp_path, zarr_format, {"N_PROF": 500, "N_LEVELS": 1000})
    second = SEAL if first == FLOAT else FLOAT
    counts = {FLOAT: 234, SEAL: 865}
    # Seal first: 17 levels, then 144: the level dimension grows (inside one 1000-level
    # chunk) and the earlier rows stay fill. Float first: the seal's rows are padded.
    outcomes = ws.ingest(ws.put(real_file(first)), ws.put(real_file(second)))
    assert [o["action"] for o in outcomes] == ["appended", "appended"]
    total = counts[first] + counts[second]
    assert outcomes[1]["region"] == {"N_PROF": [counts[first], total]}
    ds = ws.open()
    assert ds.sizes["N_PROF"] == total and ds.sizes["N_LEVELS"] == 144
    first_rows, second_rows = slice(0, counts[first]), slice(counts[first], total)
    assert_rows_match(ws.store, real_file(first), range(total)[first_rows])
    assert_rows_match(ws.store, real_file(second), range(total)[second_rows])
    # A variable present in one file only is fill in the other's rows.
    seal_rows, float_rows = (second_rows, first_rows) if first == FLOAT else (first_rows, second_rows)
    assert (ds.INST_REFERENCE.values[float_rows] == "").all()
    assert (ds.FIRMWARE_VERSION.values[seal_rows] == "").all()
    assert (ds.PLATFORM_NUMBER.values[float_rows] == "2902093 ").all()
    float_start = float_rows.start
    assert ds.PRES_QC.dims == ("N_PROF", "N_LEVELS") and ds.PRES_QC.values[float_start + 1, 0] == "1"
    if first == FLOAT:  # JULD takes the float's attributes: standard calendar, datetime64
        assert ds.JULD.dtype.kind == "M" and np.isnat(ds.JULD.values[0])
    assert ds.TEMP.attrs["units"] == "degree_Celsius"
    assert "N_HISTORY" not in ds.dims and "DATA_TYPE" not in ds  # documented: not copied
    assert (ds.zru_source_key.values[seal_rows] == f"argo/{SEAL}").all()
    # Ingesting the same file again overwrites in place: nothing is duplicated.
    again = ws.ingest(ws.raw / "argo" / FLOAT)
    assert again[0]["action"] == "overwrote" and ws.open().sizes["N_PROF"] == total


def test_inspect_finds_the_profile_dimension(tmp_path):
    ws = Workspace(tmp_path)
    ws.ingest(ws.put(real_file(FLOAT)))
    out = subprocess.run([str(zru_bin()), "inspect", "--json", str(ws.store)],
                         capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert summary["append_dim"] == "N_PROF"
    assert summary["provenance"] == [[f"argo/{FLOAT}", [[0, 234]]]]


def test_revised_prof_file_then_removal(tmp_path):
    ws = Workspace(tmp_path, 3, {"N_PROF": 100})
    original = real_file(FLOAT)
    first = tmp_path / "v1.nc"
    copy_profiles(original, first, range(200))
    revised = tmp_path / "v2.nc"

    def warmer(name, data):
        if name == "TEMP":
            data = data.copy()
            valid = data[10:20] != 99999.0
            data[10:20][valid] += 1.5
        return data

    copy_profiles(original, revised, range(234), change=warmer)
    key = f"argo/{FLOAT}"
    ws.ingest(ws.put(first, FLOAT))
    ws.ingest(ws.put(real_file(SEAL)))  # rows 200..1065
    out = ws.ingest(ws.put(revised, FLOAT))[0]
    assert out["action"] == "overwrote", out
    assert "200 overwritten, 34 appended" in out["reason"]
    ds = ws.open()
    assert ds.sizes["N_PROF"] == 200 + 865 + 34
    rows = list(range(200)) + list(range(1065, 1099))
    assert_rows_match(ws.store, revised, rows)
    assert_rows_match(ws.store, real_file(SEAL), range(200, 1065))
    src = xr.open_dataset(original)
    np.testing.assert_allclose(ds.TEMP.values[10:20, :144], src.TEMP.values[10:20] + 1.5, rtol=1e-6)

    # Removal: every row of the key is blank, identity and provenance included.
    removed = ws.remove(key)[0]
    assert removed["action"] == "blanked" and removed["region"] == {"N_PROF": [0, 1099]}
    ds = ws.open()
    gone = np.array(rows)
    assert (ds.zru_source_key.values[gone] == "").all()
    assert (ds.PLATFORM_NUMBER.values[gone] == "").all()
    assert ds.CYCLE_NUMBER.isel(N_PROF=gone).isnull().all()
    assert ds.TEMP.isel(N_PROF=gone).isnull().all()
    assert_rows_match(ws.store, real_file(SEAL), range(200, 1065))
    assert ws.remove(key)[0]["action"] == "unchanged"
    # Documented: a profile that comes back after a removal is appended, not put back.
    back = ws.ingest(ws.put(revised, FLOAT))[0]
    assert back["region"] == {"N_PROF": [1099, 1333]}
    assert_rows_match(ws.store, revised, range(1099, 1333))


def test_a_revision_that_drops_profiles_blanks_them(tmp_path):
    ws = Workspace(tmp_path)
    whole, fewer = tmp_path / "a.nc", tmp_path / "b.nc"
    copy_profiles(real_file(FLOAT), whole, range(10))
    copy_profiles(real_file(FLOAT), fewer, [0, 1, 2, 5])
    ws.ingest(ws.put(whole, "p.nc"))
    out = ws.ingest(ws.put(fewer, "p.nc"))[0]
    assert "6 no longer in the file blanked" in out["reason"], out
    ds = ws.open()
    assert list(ds.CYCLE_NUMBER.values[[0, 1, 2, 5]]) == [1, 2, 3, 6]
    assert ds.CYCLE_NUMBER.isel(N_PROF=[3, 4, 6, 7, 8, 9]).isnull().all()


def test_single_cycle_files_give_the_rows_of_the_prof_file(tmp_path):
    original = real_file(FLOAT)
    count = 40
    with netCDF4.Dataset(original) as src:
        src.set_auto_mask(False)
        pres = src["PRES"][:count]
        cycles = src["CYCLE_NUMBER"][:count]
    single = Workspace(tmp_path / "single", 3, {"N_PROF": 16, "N_LEVELS": 64})
    paths = []
    for p in range(count):
        depth = max(1, int((pres[p] != 99999.0).sum()))  # real single-cycle files are cut to their depth
        path = single.raw / "argo" / f"R2902093_{cycles[p]:03d}.nc"
        copy_profiles(original, path, [p], levels=depth)
        paths.append(path)
    # One by one: each file its own event, some in their own zru run (index rebuilt).
    for path in paths[:5]:
        assert single.ingest(path)[0]["action"] == "appended"
    assert all(o["action"] == "appended" for o in single.ingest(*paths[5:]))

    multi = Workspace(tmp_path / "multi")
    subset = tmp_path / "prof.nc"
    copy_profiles(original, subset, range(count))
    multi.ingest(multi.put(subset, FLOAT))
    a, b = single.open(), multi.open()
    depth = a.sizes["N_LEVELS"]  # the deepest of the 40 profiles: shallower than the file
    assert depth < b.sizes["N_LEVELS"] and a.sizes["N_PROF"] == b.sizes["N_PROF"] == count
    for name in profile_vars(b):
        expected = b[name].isel(N_LEVELS=slice(0, depth)) if "N_LEVELS" in b[name].dims else b[name]
        np.testing.assert_array_equal(a[name].values, expected.values, err_msg=name)
    # And each single-cycle file reads back as its source (levels beyond its depth fill).
    for p in (0, 1, 17, count - 1):
        assert_rows_match(single.store, paths[p], [p])
    # The multi-profile file over the single-cycle rows overwrites them all in place.
    over = single.ingest(single.put(subset, FLOAT))[0]
    assert "40 overwritten, 0 appended" in over["reason"], over


def test_bad_inputs_are_rejected_and_leave_the_store_unchanged(tmp_path):
    ws = Workspace(tmp_path)
    ws.ingest(ws.put(real_file(FLOAT)))
    before = tree_digest(ws.store)

    twice = tmp_path / "twice.nc"
    copy_profiles(real_file(SEAL), twice, [0, 1, 2, 1])
    no_identity = tmp_path / "noid.nc"
    copy_profiles(real_file(SEAL), no_identity, range(3), drop=("PLATFORM_NUMBER",))
    text_juld = tmp_path / "textjuld.nc"
    copy_profiles(real_file(SEAL), text_juld, range(3), as_char=("JULD",))
    corrupt = ws.raw / "argo" / "corrupt.nc"
    corrupt.write_bytes(real_file(SEAL).read_bytes()[:5000])

    cases = {
        ws.put(twice): "appears twice",
        ws.put(no_identity): "PLATFORM_NUMBER",
        ws.put(text_juld): "mismatched types",
        corrupt: "corrupt.nc",
    }
    for path, reason in cases.items():
        code, outcomes = ws.run("ingest", str(path))
        assert code == 1 and outcomes[0]["action"] == "rejected", outcomes
        assert reason in outcomes[0]["reason"] and path.name in outcomes[0]["reason"], outcomes
        assert tree_digest(ws.store) == before, path.name
    assert_rows_match(ws.store, real_file(FLOAT), range(234))


# ---------------------------------------------------------------- identity index


def store_digest(path: Path) -> str:
    """Digest of a store without its sidecar directory (.zru/)."""
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        relative = item.relative_to(path)
        if relative.parts[0] == ".zru":
            continue
        digest.update(str(relative).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def index_content(store: Path) -> dict:
    """The identity index as data: meta.json without generations, and every shard
    meta.json lists (written != 0) without its generation."""
    index = store / ".zru" / "profiles"
    meta = json.loads((index / "meta.json").read_text())
    written = meta.pop("written")
    meta.pop("generation")
    shards = {}
    for position, generation in enumerate(written):
        if generation == 0:
            continue
        kind, number = ("identity", position) if position < meta["shards"] else ("key", position - meta["shards"])
        shard = json.loads((index / kind / f"{number:02x}.json").read_text())
        assert shard.pop("generation") == generation
        shards[f"{kind}/{number:02x}"] = shard
    return {"meta": meta, "shards": shards}


def index_files(store: Path) -> dict:
    return {str(p.relative_to(store)): p.read_bytes()
            for p in sorted((store / ".zru").rglob("*")) if p.is_file()}


def history_files(tmp_path: Path) -> list[tuple[str, Path]]:
    """A history of events: a partial _prof.nc, the seal, single cycles, a revision."""
    first, revised = tmp_path / "v1.nc", tmp_path / "v2.nc"
    copy_profiles(real_file(FLOAT), first, range(100))
    copy_profiles(real_file(FLOAT), revised, list(range(0, 90)) + list(range(120, 150)))
    singles = []
    for p in (100, 101, 5):
        path = tmp_path / f"R2902093_{p:03d}.nc"
        copy_profiles(real_file(FLOAT), path, [p], levels=30)
        singles.append((path.name, path))
    return [(FLOAT, first), (SEAL, real_file(SEAL)), *singles, (FLOAT, revised)]


def test_a_single_cycle_update_rewrites_a_few_index_files(tmp_path):
    ws = Workspace(tmp_path, 3, {"N_PROF": 100})
    ws.ingest(ws.put(real_file(FLOAT)), ws.put(real_file(SEAL)))
    before = index_files(ws.store)
    assert ".zru/profiles/meta.json" in before and len(before) > 100, sorted(before)
    single = tmp_path / "R.nc"
    copy_profiles(real_file(FLOAT), single, [17], levels=50)
    out = ws.ingest(ws.put(single, "R2902093_018.nc"))[0]
    assert "1 overwritten, 0 appended" in out["reason"], out
    after = index_files(ws.store)
    changed = sorted(k for k in after if before.get(k) != after[k])
    # meta.json, the profile's identity shard, the new key's shard and the shard of the
    # key that wrote the profile before (the _prof.nc), which no longer lists its row.
    assert len(changed) <= 4 and ".zru/profiles/meta.json" in changed, changed
    assert set(after) >= set(before)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_deleting_the_index_then_ingesting_again_gives_the_same_store(tmp_path, zarr_format):
    events = history_files(tmp_path)
    kept = Workspace(tmp_path / "kept", zarr_format, {"N_PROF": 64, "N_LEVELS": 200})
    deleted = Workspace(tmp_path / "deleted", zarr_format, {"N_PROF": 64, "N_LEVELS": 200})
    for step, (name, path) in enumerate(events):
        for ws in (kept, deleted):
            if ws is deleted and step > 0:
                shutil.rmtree(ws.store / ".zru")  # a store last written without an index
            ws.ingest(ws.put(path, name))
        assert store_digest(kept.store) == store_digest(deleted.store), name
        assert index_content(kept.store) == index_content(deleted.store), name
    kept.remove(f"argo/{SEAL}")
    shutil.rmtree(deleted.store / ".zru")
    deleted.remove(f"argo/{SEAL}")
    assert store_digest(kept.store) == store_digest(deleted.store)
    assert index_content(kept.store) == index_content(deleted.store)
    ds = kept.open()
    assert ".zru" not in ds.variables and ds.sizes["N_PROF"] == 100 + 865 + 2 + 30
    assert_rows_match(kept.store, events[-1][1], list(range(90)) + list(range(967, 997)))


def test_an_index_left_behind_by_an_update_without_it_is_rebuilt(tmp_path):
    """A store appended to by a zru that does not know the index (or another tool): the
    index's row count no longer matches the store, so it is rebuilt, not trusted."""
    events = history_files(tmp_path)
    reference = Workspace(tmp_path / "reference")
    stale = Workspace(tmp_path / "stale")
    for ws in (reference, stale):
        ws.ingest(ws.put(events[0][1], events[0][0]))
    old_index = tmp_path / "old-index"
    shutil.copytree(stale.store / ".zru", old_index)
    for name, path in events[1:]:
        for ws in (reference, stale):
            ws.ingest(ws.put(path, name))
            if ws is stale and name != events[-1][0]:
                shutil.rmtree(ws.store / ".zru")
                shutil.copytree(old_index, ws.store / ".zru")
    assert store_digest(reference.store) == store_digest(stale.store)
    assert index_content(reference.store) == index_content(stale.store)
