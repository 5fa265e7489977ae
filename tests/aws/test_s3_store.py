"""Stores at ``s3://bucket/prefix`` (the emulator's S3): the same events give the same
store as local mode, byte for byte, and xarray reads it through zarr-python on S3."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from conftest import interop, local_files, open_s3_dataset, s3_objects, zru_env

BUCKET = "zarr-stores"
LAT, LON = 40, 60


def run(zru_bin, env, *args, ok=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(zru_bin), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    if ok is not None:
        assert (proc.returncode == 0) == ok, (
            f"zru {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_s3_store_matches_local_mode(tmp_path, moto, zru_bin, zarr_format):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    env = zru_env(moto)
    raw = tmp_path / "raw"
    files = interop.sample(tmp_path / "gen", days=3, lat=LAT, lon=LON)
    revised = interop.sample(tmp_path / "gen2", days=3, lat=LAT, lon=LON, revision=1)
    keys = [f"sst/{f.name}" for f in files]
    local_cfg, s3_cfg = tmp_path / "cfg-local", tmp_path / "cfg-s3"
    local_store = tmp_path / "local.zarr"
    interop.write_config(local_cfg, "sst", store=local_store, zarr_format=zarr_format)
    interop.write_config(s3_cfg, "sst", store=f"s3://{BUCKET}/stores/sst.zarr",
                         zarr_format=zarr_format)

    steps = [
        ("ingest", [interop.place(f, raw, k) for f, k in zip(files, keys)]),
        ("ingest", [interop.place(revised[1], raw, keys[1])]),
        ("remove", [keys[2]]),
    ]
    for command, args in steps:
        outs = []
        for cfg in (local_cfg, s3_cfg):
            proc = run(zru_bin, env, command, "--config", cfg, "--raw-root", raw, "--json",
                       "--state-dir", tmp_path / f"state-{cfg.name}", *args)
            outs.append([{k: r.get(k) for k in ("key", "event", "action", "region", "reason")}
                         for r in map(json.loads, proc.stdout.splitlines())])
        assert outs[0] == outs[1], f"{command}: local and S3 outcomes differ:\n{outs}"
        assert all(r["action"] in ("appended", "overwrote", "blanked") for r in outs[1])

    # The same objects with the same bytes: chunks, metadata, consolidated metadata.
    on_s3 = s3_objects(moto, BUCKET, "stores/sst.zarr")
    local = local_files(local_store)
    assert sorted(on_s3) == sorted(local)
    differ = [k for k in local if local[k] != on_s3[k]]
    assert not differ, f"objects whose bytes differ from local mode: {differ}"

    # Readers: xarray through zarr-python on S3 sees what it sees locally.
    from_s3 = open_s3_dataset(moto, BUCKET, "stores/sst.zarr")
    xr.testing.assert_identical(from_s3, interop.open_store(local_store))
    assert interop.source_keys(from_s3) == [keys[0], keys[1], ""]
    interop.assert_slot_blank(from_s3, "time", 2)

    summary = run(zru_bin, env, "inspect", f"s3://{BUCKET}/stores/sst.zarr").stdout
    assert "time" in summary and keys[0] in summary, summary


def test_rejected_file_leaves_the_s3_store_untouched(tmp_path, moto, zru_bin):
    moto.client("s3").create_bucket(Bucket=BUCKET)
    env = zru_env(moto)
    raw = tmp_path / "raw"
    files = interop.sample(tmp_path / "gen", days=2, lat=LAT, lon=LON)
    cfg = tmp_path / "cfg"
    interop.write_config(cfg, "sst", store=f"s3://{BUCKET}/sst.zarr")
    first = interop.place(files[0], raw, f"sst/{files[0].name}")
    run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--state-dir",
        tmp_path / "state", first)
    before = s3_objects(moto, BUCKET, "sst.zarr")

    broken = raw / "sst" / files[1].name
    broken.write_bytes(files[1].read_bytes()[:5000])
    proc = run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--json",
               "--state-dir", tmp_path / "state", broken, ok=False)
    assert '"rejected"' in proc.stdout, proc.stdout
    assert s3_objects(moto, BUCKET, "sst.zarr") == before


def test_missing_bucket_is_a_clear_rejection(tmp_path, moto, zru_bin):
    env = zru_env(moto)
    raw = tmp_path / "raw"
    files = interop.sample(tmp_path / "gen", days=1, lat=LAT, lon=LON)
    cfg = tmp_path / "cfg"
    interop.write_config(cfg, "sst", store="s3://no-such-bucket/sst.zarr")
    path = interop.place(files[0], raw, f"sst/{files[0].name}")
    proc = run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--state-dir",
               tmp_path / "state", path, ok=False)
    assert "rejected" in proc.stdout and "no-such-bucket" in proc.stdout, proc.stdout


def test_a_flush_killed_while_growing_an_s3_store_leaves_nothing_in_later_gaps(
        tmp_path, moto, zru_bin):
    """A flush killed (`ZRU_FAULT_KILL_AT=k`: after its k-th store key, ledger or
    acknowledgement) while a batch grows the store from 3 slots to 5; days 4 and 5 are
    then withdrawn and day 6 arrives: the gap slots 3 and 4 read blank, and the store's
    objects are those of a run that never crashed, byte for byte (the recovery pass
    erased the dead batch's chunks beyond the committed shape, by key, on S3)."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    files = interop.sample(tmp_path / "gen", days=6, lat=LAT, lon=LON)
    keys = [f"sst/{f.name}" for f in files]
    env = zru_env(moto)

    def options(work: Path) -> list:
        interop.write_config(work / "cfg", "sst", store=f"s3://{BUCKET}/{work.name}/sst.zarr",
                             chunks={"time": 2, "lat": LAT, "lon": LON})
        return ["--config", work / "cfg", "--raw-root", work / "raw",
                "--state-dir", work / "state"]

    # Days 1-3 in the store, days 4 and 5 queued.
    base = tmp_path / "base"
    run(zru_bin, env, "ingest", *options(base),
        *[interop.place(f, base / "raw", k) for f, k in zip(files[:3], keys[:3])])
    run(zru_bin, env, "ingest", "--no-flush", *options(base),
        *[interop.place(f, base / "raw", k) for f, k in zip(files[3:5], keys[3:5])])

    def copy_of_base(name: str) -> list:
        work = tmp_path / name
        for part in ("raw", "state"):
            shutil.copytree(base / part, work / part)
        # Queued local events name their raw root, and a flush refuses events of
        # another one: the copy's events are pointed at the copy's raw root.
        queue = sqlite3.connect(work / "state" / "queue.sqlite")
        with queue:
            queue.execute("UPDATE messages SET body = replace(body, ?, ?)",
                          (f'"raw_root":"{(base / "raw").resolve()}"',
                           f'"raw_root":"{(work / "raw").resolve()}"'))
        queue.close()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                Prefix="base/"):
            for obj in page.get("Contents", []):
                s3.copy_object(Bucket=BUCKET, Key=name + obj["Key"][len("base"):],
                               CopySource={"Bucket": BUCKET, "Key": obj["Key"]})
        return options(work)

    def withdraw_then_append_day_6(work_options: list) -> None:
        raw = work_options[3]
        for key in keys[3:5]:
            (raw / key).unlink()
        run(zru_bin, env, "remove", "--no-flush", *work_options, *keys[3:5])
        run(zru_bin, env, "ingest", *work_options, interop.place(files[5], raw, keys[5]))

    withdraw_then_append_day_6(copy_of_base("clean"))
    expected = s3_objects(moto, BUCKET, "clean/sst.zarr")
    clean = open_s3_dataset(moto, BUCKET, "clean/sst.zarr")
    assert interop.source_keys(clean) == [*keys[:3], "", "", keys[5]]
    for slot in (3, 4):
        interop.assert_slot_blank(clean, "time", slot)

    killed = 0
    for k in range(1, 200):
        work_options = copy_of_base(f"k{k}")
        proc = run(zru_bin, zru_env(moto, ZRU_FAULT_KILL_AT=k), "flush", *work_options,
                   ok=None)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr
        killed += 1
        withdraw_then_append_day_6(work_options)
        got = s3_objects(moto, BUCKET, f"k{k}/sst.zarr")
        assert sorted(got) == sorted(expected), f"k={k}"
        assert [n for n in expected if got[n] != expected[n]] == [], f"k={k}"
    assert killed >= 10, f"only {killed} crash points"


def test_a_variable_named_with_characters_urls_escape_is_stored_under_its_own_name(
        tmp_path, moto, zru_bin):
    """A netCDF variable named ``sst~anomaly[K]%é`` becomes an S3 store's array whose
    objects are named by the raw Zarr keys (what zarr-python looks up): zru reopens the
    store with it (a second ingest), and xarray on S3 reads it as xarray reads the files.
    (zru once stored such keys percent-encoded, unseen by other readers and lost on
    reopening: docs/aws.md "Object names".)"""
    import netCDF4

    moto.client("s3").create_bucket(Bucket=BUCKET)
    env = zru_env(moto)
    raw = tmp_path / "raw"
    name = "sst~anomaly[K]%\u00e9"
    files = interop.sample(tmp_path / "gen", days=2, lat=LAT, lon=LON)
    renamed = []
    for f in files:
        with netCDF4.Dataset(f) as nc:
            old = next(v for v, var in nc.variables.items() if var.ndim == 3)
        copy = tmp_path / "renamed" / f.name
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(f, copy)
        with netCDF4.Dataset(copy, "a") as nc:
            nc.renameVariable(old, name)
        renamed.append(copy)
    cfg = tmp_path / "cfg"
    interop.write_config(cfg, "sst", store=f"s3://{BUCKET}/stores/odd.zarr")
    for f in renamed:
        run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--state-dir",
            tmp_path / "state", interop.place(f, raw, f"sst/{f.name}"))

    objects = s3_objects(moto, BUCKET, "stores/odd.zarr")
    assert f"{name}/zarr.json" in objects, sorted(objects)
    assert not [k for k in objects if "%25" in k or "%7E" in k], sorted(objects)
    ds = open_s3_dataset(moto, BUCKET, "stores/odd.zarr")
    assert name in ds.data_vars, list(ds.data_vars)
    with xr.open_mfdataset(renamed, combine="by_coords") as src:
        xr.testing.assert_allclose(ds[name].load(), src[name].load(), rtol=1e-6)


def test_icechunk_repository_on_s3(tmp_path, moto, zru_bin):
    """An Icechunk repository at s3://bucket/prefix: one commit per batch, read back by
    `zru log` and `zru inspect`, reset by `zru rollback`; no root-metadata object of a
    plain store's fence is written beside the repository's own objects (the commit is
    its fence)."""
    moto.client("s3").create_bucket(Bucket=BUCKET)
    env = zru_env(moto)
    raw, cfg, state = tmp_path / "raw", tmp_path / "cfg", tmp_path / "state"
    files = interop.sample(tmp_path / "gen", days=3, lat=LAT, lon=LON)
    keys = [f"sst/{f.name}" for f in files]
    url = f"s3://{BUCKET}/stores/sst.icechunk"
    interop.write_config(cfg, "sst", store=url, format="icechunk")
    placed = [interop.place(f, raw, k) for f, k in zip(files, keys)]
    for batch in (placed[:1], placed[1:]):
        run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--state-dir", state,
            *batch)

    log = [json.loads(line) for line in
           run(zru_bin, env, "log", "--config", cfg, "sst", "--json").stdout.splitlines()]
    batches = [c for c in log if c["events"]]
    assert [sorted(e["key"] for e in c["events"]) for c in batches] == [keys[1:], keys[:1]]
    summary = json.loads(run(zru_bin, env, "inspect", url, "--json").stdout)
    assert summary["snapshot"] == batches[0]["id"] and summary["dims"]["time"] == 3, summary
    objects = s3_objects(moto, BUCKET, "stores/sst.icechunk")
    assert "zarr.json" not in objects, sorted(objects)
    assert "repo" in objects and any(k.startswith("snapshots/") for k in objects)

    run(zru_bin, env, "rollback", "--config", cfg, "sst", "--to", batches[1]["id"],
        "--lock-dir", state / "locks")
    summary = json.loads(run(zru_bin, env, "inspect", url, "--json").stdout)
    assert summary["snapshot"] == batches[1]["id"] and summary["dims"]["time"] == 1, summary
    # The undone events apply again.
    proc = run(zru_bin, env, "ingest", "--config", cfg, "--raw-root", raw, "--state-dir",
               state, "--json", *placed[1:])
    assert [json.loads(line)["action"] for line in proc.stdout.splitlines()] == \
        ["appended", "appended"], proc.stdout
