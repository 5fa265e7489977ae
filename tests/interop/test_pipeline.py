"""Ordering property test of the event pipeline, checked with xarray.

Random histories of created / revised / removed events for a few keys, with S3
sequencers, are delivered shuffled across and within keys, duplicated, and
redelivered after they were applied. The store must read, in xarray, as if each
key's events had been applied one at a time in sequencer order (the reference run
below does exactly that, with each version's content on disk at its turn).

Self-contained: the ``zru`` binary comes from ``ZRU_BIN`` (default
``<repo>/target/release/zru``); a missing binary is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[2]
ZRU = Path(os.environ.get("ZRU_BIN", REPO / "target" / "release" / "zru"))
DAYS = 4
REVISIONS = 3
SUFFIX = "120000-ZRU-L3S_GHRSST-SSTsubskin-SAMPLE-v02.0-fv01.0.nc"
CONFIG = {
    "name": "sst",
    "handler": "gridded",
    "key_patterns": [r"^sst/.*\.nc$"],
    "store": "data/zarr/sst.zarr",
    "append_dim": "time",
    "chunks": {"time": 2, "lat": 8, "lon": 8},
    "time_step": "1 day",
}


def zru(*args, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    assert ZRU.is_file(), f"zru binary not found at {ZRU} (build it or set ZRU_BIN)"
    res = subprocess.run([str(ZRU), *map(str, args)], cwd=cwd, capture_output=True,
                         text=True, timeout=600)
    if ok:
        assert res.returncode == 0, f"zru {args}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def key(day: int) -> str:
    return f"sst/202401{day:02d}{SUFFIX}"


def workdir(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "config" / "sst.json").write_text(json.dumps(CONFIG))
    (root / "data" / "raw" / "sst").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> Path:
    """versions/rev{r}/<file> for each revision of each day."""
    root = tmp_path_factory.mktemp("versions")
    for r in range(REVISIONS):
        zru("sample", "gridded", root / f"rev{r}", "--days", DAYS, "--lat", 6, "--lon", 12,
            "--revision", r, cwd=root)
    return root


def sequencer_text(seq: int) -> str:
    """The sequencer S3 would send: fixed-width hex with trailing zeros dropped, so
    lengths differ and only right-padding with zeros orders them ("1A" after "19F")."""
    return f"{seq:012X}".rstrip("0") or "0"


def history(rng: random.Random) -> list[dict]:
    """Events per key with increasing sequencers that change length (see sequencer_text)."""
    events = []
    sequencer = rng.randrange(0x1, 0x10)
    for day in range(1, DAYS + 1):
        for i in range(rng.randint(1, 4)):
            # Steps of very different sizes: sequencers keep changing length.
            sequencer += rng.choice([1, 0x9, 0x90, 0xF00, 0x100 - sequencer % 0x100])
            removed = i > 0 and rng.random() < 0.35
            events.append({"day": day, "removed": removed, "rev": rng.randrange(REVISIONS),
                           "seq": sequencer})
    return events


def record(event: dict) -> dict:
    name = "ObjectRemoved:Delete" if event["removed"] else "ObjectCreated:Put"
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2024-05-01T12:00:00.000Z",
            "eventName": name,
            "s3": {"bucket": {"name": "raw"},
                   "object": {"key": quote_plus(key(event["day"])), "sequencer": sequencer_text(event["seq"])}}}


def enqueue(work: Path, events: list[dict], name: str, *extra) -> str:
    doc = work / f"{name}.json"
    doc.write_text(json.dumps({"Records": [record(e) for e in events]}))
    return zru("enqueue", *extra, doc, cwd=work).stdout


def place(work: Path, versions: Path, event: dict) -> None:
    target = work / "data" / "raw" / key(event["day"])
    if event["removed"]:
        target.unlink(missing_ok=True)
    else:
        shutil.copy(versions / f"rev{event['rev']}" / Path(key(event["day"])).name, target)


def pipeline_run(work: Path, versions: Path, events: list[dict], rng: random.Random) -> str:
    """The raw bucket as it is after every event; the events shuffled, duplicated,
    delivered in several documents, then part of them redelivered."""
    for event in sorted(events, key=lambda e: e["seq"]):
        place(work, versions, event)
    deliveries = events + [e for e in events if rng.random() < 0.3]
    rng.shuffle(deliveries)
    out = ""
    while deliveries:
        n = rng.randint(1, 5)
        out += enqueue(work, deliveries[:n], f"doc{len(deliveries)}")
        deliveries = deliveries[n:]
    out += zru("flush", "--batch-size", rng.randint(2, 5), cwd=work).stdout
    again = [e for e in events if rng.random() < 0.5] or events[:1]
    enqueue(work, again, "again", "--dedup-window", "0")
    out += zru("flush", cwd=work).stdout
    return out


def reference_run(work: Path, versions: Path, events: list[dict]) -> None:
    """Each event applied alone, in sequencer order, with its version on disk."""
    for event in sorted(events, key=lambda e: e["seq"]):
        place(work, versions, event)
        if event["removed"]:
            zru("remove", key(event["day"]), cwd=work)
        else:
            zru("ingest", work / "data" / "raw" / key(event["day"]), cwd=work)


def read(work: Path) -> xr.Dataset | None:
    store = work / "data" / "zarr" / "sst.zarr"
    return xr.open_zarr(store).load() if (store / "zarr.json").exists() else None


def by_day(ds: xr.Dataset | None) -> dict:
    """Per day present: every data variable and the provenance. A slot that is
    blank everywhere reads the same as no slot (a key whose removal arrived before
    its creation never gets one)."""
    if ds is None:
        return {}
    days = {}
    for i, t in enumerate(ds["time"].values):
        slot = ds.isel(time=i)
        source = str(slot["zru_source_key"].values)
        variables = {name: slot[name].values for name in ds.data_vars if name != "zru_source_key"}
        blank = source == "" and all(
            np.all(np.isnan(v)) if v.dtype.kind == "f" else True for v in variables.values())
        if not blank:
            days[np.datetime64(t, "D")] = (source, variables)
    return days


def assert_same(got: dict, want: dict, context: str) -> None:
    assert sorted(got) == sorted(want), f"{context}: days {sorted(got)} != {sorted(want)}"
    for day, (source, variables) in want.items():
        assert got[day][0] == source, f"{context}: {day} provenance {got[day][0]} != {source}"
        for name, values in variables.items():
            np.testing.assert_array_equal(got[day][1][name], values,
                                          err_msg=f"{context}: {day} {name}")


@pytest.mark.parametrize("seed", range(6))
def test_shuffled_duplicated_redelivered_events_match_sequencer_order(tmp_path, versions, seed):
    rng = random.Random(seed)
    events = history(rng)
    work = workdir(tmp_path / "pipeline")
    out = pipeline_run(work, versions, events, rng)
    ref = workdir(tmp_path / "reference")
    reference_run(ref, versions, events)
    context = f"seed {seed}, events {[(e['day'], e['removed'], e['rev'], hex(e['seq'])) for e in events]}"
    assert_same(by_day(read(work)), by_day(read(ref)), context)
    assert "skipped(duplicate)" in out or "skipped(stale)" in out, out
    queue = json.loads(zru("queue", "--json", cwd=work).stdout)
    assert all(g["ready"] == 0 and g["in_flight"] == 0 and g["dead"] == 0
               for g in queue["groups"]), queue
    ledger = json.loads((work / "data" / "zarr" / "sst.zarr.zru-ledger.json").read_text())
    newest = {key(e["day"]): sequencer_text(e["seq"]) for e in sorted(events, key=lambda e: e["seq"])}
    assert {k: v["order"]["sequencer"] for k, v in ledger["entries"].items()} == newest


def test_a_revised_file_with_a_new_etag_is_applied_over_the_ledger(tmp_path, versions):
    work = workdir(tmp_path / "w")
    place(work, versions, {"day": 1, "removed": False, "rev": 0})
    zru("ingest", work / "data" / "raw" / key(1), cwd=work)
    before = read(work)["sea_surface_temperature"].isel(time=0).values
    place(work, versions, {"day": 1, "removed": False, "rev": 1})
    out = zru("ingest", "--json", work / "data" / "raw" / key(1), cwd=work).stdout
    assert json.loads(out.splitlines()[-1])["action"] == "overwrote", out
    after = read(work)["sea_surface_temperature"].isel(time=0).values
    assert not np.array_equal(before, after, equal_nan=True)
    expected = xr.open_dataset(versions / "rev1" / Path(key(1)).name)["sea_surface_temperature"]
    np.testing.assert_allclose(after, expected.isel(time=0).values, equal_nan=True)
