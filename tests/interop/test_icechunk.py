"""Icechunk repositories as zru stores (``"format": "icechunk"``, docs/icechunk.md).

zru writes an Icechunk repository, one commit per batch; icechunk-python and xarray
(``xr.open_zarr(session.store)``) read every commit, which must equal xarray's reading
of the source NetCDF files as they stood after that batch. Also: a repository made
by xarray + icechunk is updated in place, ``zru log`` / ``zru rollback`` work by
event, and a reader polling while zru writes only ever sees whole batches.
"""

from __future__ import annotations

import json
import subprocess

import icechunk as ic
import numpy as np
import xarray as xr
import zarr

from conftest import (
    PROVENANCE,
    assert_dataset_values,
    assert_event,
    blank_slot,
    ingest,
    key_of,
    open_sources,
    place,
    remove,
    run_zru,
    sample,
    source_keys,
    write_config,
    zru_path,
)

LAT, LON = 20, 30
CHUNKS = {"time": 1, "lat": 10, "lon": 15}


def open_repo(path) -> ic.Repository:
    return ic.Repository.open(ic.local_filesystem_storage(str(path)))


def read_snapshot(repo: ic.Repository, snapshot_id: str) -> xr.Dataset:
    session = repo.readonly_session(snapshot_id=snapshot_id)
    with xr.open_zarr(session.store, consolidated=False) as ds:
        return ds.load()


def read_tip(repo: ic.Repository, branch: str = "main") -> xr.Dataset:
    session = repo.readonly_session(branch=branch)
    with xr.open_zarr(session.store, consolidated=False) as ds:
        return ds.load()


def zru_commits(repo: ic.Repository, branch: str = "main") -> list:
    """The branch's commits made by zru, oldest first."""
    return [s for s in reversed(list(repo.ancestry(branch=branch))) if "zru" in s.metadata]


def setup(tmp_path, days=3, **config):
    raw = tmp_path / "raw"
    gen = sample(tmp_path / "gen", days=days, lat=LAT, lon=LON, start="2024-01-01")
    placed = [place(f, raw, f"sst/{f.name}") for f in gen]
    store = tmp_path / "sst.icechunk"
    cfg = tmp_path / "config"
    write_config(cfg, "sst", store=store, chunks=CHUNKS, format="icechunk", **config)
    return raw, gen, placed, store, cfg


def test_every_commit_reads_as_the_sources_after_its_batch(tmp_path):
    raw, gen, placed, store, cfg = setup(tmp_path)
    keys = [key_of(p, raw) for p in placed]
    rev = sample(tmp_path / "rev", days=3, lat=LAT, lon=LON, start="2024-01-01", revision=1)

    # Batch 1: day 0. Batch 2: days 1 and 2. Batch 3: day 1 revised. Batch 4: day 0 removed.
    res = ingest(cfg, raw, placed[:1], cwd=tmp_path)
    assert_event(res, keys[0], "appended", region=(0, 1))
    res = ingest(cfg, raw, placed[1:], cwd=tmp_path)
    assert_event(res, keys[2], "appended", region=(2, 3))
    place(rev[1], raw, keys[1])
    res = ingest(cfg, raw, [placed[1]], cwd=tmp_path)
    assert_event(res, keys[1], "overwrote", region=(1, 2))
    res = remove(cfg, raw, [keys[0]], cwd=tmp_path)
    assert_event(res, keys[0], "blanked", region=(0, 1))

    # No plain-Zarr sidecars or intent records: only the repository and zru's files
    # beside it (ledger, lock).
    assert not (store / "zarr.json").exists()
    repo = open_repo(store)
    commits = zru_commits(repo)
    assert len(commits) == 4, [c.message for c in commits]
    expected = [
        open_sources(gen[:1]),
        open_sources(gen),
        open_sources([gen[0], rev[1], gen[2]]),
    ]
    expected.append(blank_slot(expected[2], "time", 0, like=read_tip(repo)))
    batch_keys = [[keys[0]], keys[1:], [keys[1]], [keys[0]]]
    for commit, want, batch in zip(commits, expected, batch_keys):
        got = read_snapshot(repo, commit.id)
        assert_dataset_values(got.drop_vars(PROVENANCE), want)
        events = commit.metadata["zru"]["events"]
        assert [e["key"] for e in events] == batch, events
        assert all("order" in e and e["action"] for e in events), events
    assert source_keys(read_snapshot(repo, commits[-1].id)) == ["", keys[1], keys[2]]

    # zru log: one line per commit, newest first; --key keeps the commits of a key.
    res = run_zru("log", "--config", cfg, "sst", "--json", cwd=tmp_path, expect_ok=True)
    assert [r["id"] for r in res.records][:4] == [c.id for c in reversed(commits)]
    res = run_zru("log", "--config", cfg, "sst", "--key", keys[1], "--json", cwd=tmp_path,
                  expect_ok=True)
    assert [r["id"] for r in res.records] == [commits[2].id, commits[1].id]
    text = run_zru("log", "--config", cfg, "sst", cwd=tmp_path, expect_ok=True).stdout
    assert text.splitlines()[0].startswith(commits[-1].id) and "blanked removed" in text

    # zru inspect names the snapshot it describes.
    out = subprocess.run([str(zru_path()), "inspect", str(store), "--json"], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout)
    assert summary["snapshot"] == commits[-1].id
    assert summary["dims"]["time"] == 3


def test_rollback_resets_branch_and_ledger(tmp_path):
    raw, gen, placed, store, cfg = setup(tmp_path, tag_batches=True)
    keys = [key_of(p, raw) for p in placed]
    rev = sample(tmp_path / "rev", days=3, lat=LAT, lon=LON, start="2024-01-01", revision=1)
    ingest(cfg, raw, placed, cwd=tmp_path)
    place(rev[1], raw, keys[1])
    res = ingest(cfg, raw, [placed[1]], cwd=tmp_path)
    assert_event(res, keys[1], "overwrote", region=(1, 2))
    repo = open_repo(store)
    first, bad = zru_commits(repo)
    # tag_batches: every batch commit has a tag.
    tags = {repo.lookup_tag(t): t for t in repo.list_tags()}
    assert first.id in tags and bad.id in tags, tags

    # Roll the revision back (by tag), then read the tip: the original day 1.
    res = run_zru("rollback", "--config", cfg, "sst", "--to", tags[first.id], cwd=tmp_path,
                  expect_ok=True)
    assert f"undone\t{bad.id}" in res.stdout, res.describe()
    repo = open_repo(store)
    assert repo.lookup_branch("main") == first.id
    assert_dataset_values(read_tip(repo).drop_vars(PROVENANCE), open_sources(gen))
    ledger = json.loads((tmp_path / "sst.icechunk.zru-ledger.json").read_text())
    assert ledger["snapshot"] == first.id
    assert ledger["entries"][keys[1]]["action"] == "appended", ledger

    # The revision's event can be applied again: the ledger no longer records it.
    res = ingest(cfg, raw, [placed[1]], cwd=tmp_path)
    assert_event(res, keys[1], "overwrote", region=(1, 2))
    assert_dataset_values(read_tip(open_repo(store)).drop_vars(PROVENANCE),
                          open_sources([gen[0], rev[1], gen[2]]))

    # A commit that is not on the branch is refused with the reason.
    res = run_zru("rollback", "--config", cfg, "sst", "--to", "0" * 20, cwd=tmp_path,
                  expect_ok=False)
    assert "not a commit of the branch" in res.stderr or "neither" in res.stderr, res.describe()


def test_repository_made_by_xarray_is_updated_in_place(tmp_path):
    raw, gen, placed, store, cfg = setup(tmp_path)
    keys = [key_of(p, raw) for p in placed]
    repo = ic.Repository.create(ic.local_filesystem_storage(str(store)))
    session = repo.writable_session("main")
    with xr.open_mfdataset([str(f) for f in gen[:2]], combine="by_coords") as ds:
        ds.chunk({"time": 1}).to_zarr(session.store, zarr_format=3, consolidated=False)
    made = session.commit("written by xarray")

    res = ingest(cfg, raw, placed[2:], cwd=tmp_path)
    assert_event(res, keys[2], "appended", region=(2, 3))
    repo = open_repo(store)
    history = list(repo.ancestry(branch="main"))
    assert history[1].id == made and "zru" in history[0].metadata
    got = read_tip(repo)
    assert_dataset_values(got.drop_vars(PROVENANCE), open_sources(gen))
    assert source_keys(got) == ["", "", keys[2]]
    # The commit xarray made still reads as it was.
    assert_dataset_values(read_snapshot(repo, made), open_sources(gen[:2]))


def test_readers_see_whole_batches_only(tmp_path):
    days = 8
    raw, gen, placed, store, cfg = setup(tmp_path, days=days)
    ingest(cfg, raw, placed[:1], cwd=tmp_path)
    # Every state a reader may see: after each whole batch (one file per batch).
    states = {n: open_sources(gen[:n]) for n in range(1, days + 1)}
    proc = subprocess.Popen(
        [str(zru_path()), "ingest", "--config", str(cfg), "--raw-root", str(raw),
         "--batch-size", "1", *[str(p) for p in placed[1:]]],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    while True:
        done = proc.poll() is not None
        ds = read_tip(open_repo(store))
        n = ds.sizes["time"]
        assert_dataset_values(ds.drop_vars(PROVENANCE), states[n])
        seen.add(n)
        if done:
            break
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert max(seen) == days
    assert len(zru_commits(open_repo(store))) == days
    # Snapshots read during the run were whole batches; after it, every commit is one.
    for i, commit in enumerate(zru_commits(open_repo(store)), start=1):
        assert read_snapshot(open_repo(store), commit.id).sizes["time"] == i
    assert np.isfinite(read_tip(open_repo(store))["sea_surface_temperature"].values).any()


def test_compressed_chunks_pass_through_into_a_repository(tmp_path, monkeypatch):
    # The layout `zru config suggest` prints for the sample files (their chunks, shuffle +
    # zlib): their compressed chunks are copied into the batch's session undecoded.
    monkeypatch.delenv("ZRU_DECODE", raising=False)
    gen = sample(tmp_path / "gen", days=2, lat=LAT, lon=LON, start="2024-01-01")
    rev = sample(tmp_path / "rev", days=2, lat=LAT, lon=LON, start="2024-01-01", revision=1)
    suggested = json.loads(
        run_zru("config", "suggest", gen[0], "--name", "sst", expect_ok=True).stdout)
    raw, store, cfg = tmp_path / "raw", tmp_path / "sst.icechunk", tmp_path / "config"
    write_config(cfg, "sst", store=store, chunks=suggested["chunks"],
                 compressor=suggested["compressor"], format="icechunk")
    placed = [place(f, raw, f"sst/{f.name}") for f in gen]
    res = ingest(cfg, raw, placed, cwd=tmp_path)
    copied = [r["stats"]["chunks_passed_through"] for r in res.records]
    assert len(copied) == 2 and all(n > 0 for n in copied), res.describe()
    key = key_of(placed[1], raw)
    place(rev[1], raw, key)
    res = ingest(cfg, raw, [placed[1]], cwd=tmp_path)
    assert_event(res, key, "overwrote", region=(1, 2))
    assert res.records[0]["stats"]["chunks_passed_through"] == copied[1], res.describe()

    repo = open_repo(store)
    first, revised = zru_commits(repo)
    assert_dataset_values(read_snapshot(repo, first.id).drop_vars(PROVENANCE), open_sources(gen))
    assert_dataset_values(read_tip(repo).drop_vars(PROVENANCE), open_sources([gen[0], rev[1]]))
    # The arrays' codecs in the repository are the files' filters.
    session = repo.readonly_session(branch="main")
    array = zarr.open_array(session.store, path="sea_surface_temperature", mode="r")
    codecs = json.dumps(array.metadata.to_dict()["codecs"], default=str)
    assert "shuffle" in codecs and "zlib" in codecs, codecs
