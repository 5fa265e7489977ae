"""Versioned raw buckets, end to end on the emulator (watcher and updater bootstraps).

In a versioned bucket S3 sends ``ObjectRemoved:Delete`` also when a noncurrent version
is deleted and when a delete marker is deleted (an undelete): the key still has a
current version. A plain delete sends ``ObjectRemoved:DeleteMarkerCreated``. moto
sends no notification for deletes in a versioned bucket and no ``versionId`` or
``sequencer`` in its records, so these tests turn moto's notifications off and hand
the watcher the records AWS would send, with the real version ids moto gave the
objects and increasing sequencers.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
import xarray as xr

from conftest import interop, open_s3_dataset
from harness import REGION
from test_lambdas import PREFIX, RAW, STORES, deployment, key, samples  # noqa: F401


class VersionedBucket:
    """The deployment's raw bucket with versioning on and S3 notifications written by
    the test (the records AWS sends, in order, with increasing sequencers)."""

    def __init__(self, deployment):
        self.d = deployment
        self.s3 = deployment.s3
        self.s3.put_bucket_versioning(Bucket=RAW,
                                      VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_notification_configuration(Bucket=RAW,
                                                      NotificationConfiguration={})
        self.d.drain_notifications()
        self._sequencer = itertools.count(0x10)

    def record(self, name: str, key_: str, version: str, **obj) -> dict:
        return {"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "zru",
                   "bucket": {"name": RAW, "arn": f"arn:aws:s3:::{RAW}"},
                   "object": {"key": quote_plus(key_), "versionId": version,
                              "sequencer": f"{next(self._sequencer):018X}", **obj}},
        }]}

    def put(self, path: Path, key_: str) -> tuple[str, dict]:
        """Uploads a version; returns its id and the notification S3 sends for it."""
        out = self.s3.put_object(Bucket=RAW, Key=key_, Body=path.read_bytes())
        version = out["VersionId"]
        return version, self.record("ObjectCreated:Put", key_, version,
                                    size=path.stat().st_size, eTag=out["ETag"].strip('"'))

    def delete(self, key_: str) -> tuple[str, dict]:
        """A delete without version id: a delete marker."""
        out = self.s3.delete_object(Bucket=RAW, Key=key_)
        assert out.get("DeleteMarker"), out
        marker = out["VersionId"]
        return marker, self.record("ObjectRemoved:DeleteMarkerCreated", key_, marker)

    def delete_version(self, key_: str, version: str) -> dict:
        """A permanent delete of one version (or of a delete marker: an undelete)."""
        self.s3.delete_object(Bucket=RAW, Key=key_, VersionId=version)
        return self.record("ObjectRemoved:Delete", key_, version)

    def apply(self, *notifications: dict) -> list[dict]:
        """The watcher queues the notifications; the updater applies the queue (event
        source); returns the updater's report lines for this run."""
        before = len(self.d.updater.log())
        for n in notifications:
            self.d.invoke_ok(self.d.watcher, n)
        self.d.event_source()
        assert not self.d.receive_batch(), "messages left in the queue"
        return self.d.updater.log()[before:].splitlines()


def store(d) -> xr.Dataset:
    return open_s3_dataset(d.moto, STORES, PREFIX)


def assert_slot_holds(ds: xr.Dataset, index: int, source: Path) -> None:
    with xr.open_dataset(source) as src:
        want = src["sea_surface_temperature"].isel(time=0).values
    got = ds["sea_surface_temperature"].isel(time=index).values
    np.testing.assert_allclose(got, want, rtol=1e-6)


def line_for(lines: list[str], key_: str, action: str) -> str:
    """The report line of the updater's JSON log line for ``key_`` and ``action``."""
    hits = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (record.get("key"), record.get("dataset"), record.get("action")) == (
                key_, "sst", action):
            hits.append(record["message"])
    assert hits, f"no {action} line for {key_} in:\n" + "\n".join(lines)
    return hits[-1]


def test_deleting_a_noncurrent_version_does_not_blank(deployment, samples):
    days, revised = samples
    bucket = VersionedBucket(deployment)
    k = key(days[0])
    v1, put1 = bucket.put(days[0], k)
    v2, put2 = bucket.put(revised[0], k)
    bucket.apply(put1, put2)
    lines = bucket.apply(bucket.delete_version(k, v1))
    assert "still exists" in line_for(lines, k, "skipped(still-exists)")
    ds = store(deployment)
    assert interop.source_keys(ds) == [k]
    assert_slot_holds(ds, 0, revised[0])
    assert deployment.ledger()["entries"][k]["version_id"] == v2


def test_a_delete_marker_blanks_and_its_undelete_restores_the_data(deployment, samples):
    days, _ = samples
    bucket = VersionedBucket(deployment)
    k0, k1 = key(days[0]), key(days[1])
    _, put0 = bucket.put(days[0], k0)
    v1, put1 = bucket.put(days[1], k1)
    bucket.apply(put0, put1)
    marker, deleted = bucket.delete(k1)
    lines = bucket.apply(deleted)
    line_for(lines, k1, "blanked")
    ds = store(deployment)
    assert interop.source_keys(ds) == [k0, ""]
    interop.assert_slot_blank(ds, "time", 1)

    lines = bucket.apply(bucket.delete_version(k1, marker))
    assert "still exists" in line_for(lines, k1, "overwrote")
    ds = store(deployment)
    assert interop.source_keys(ds) == [k0, k1]
    assert_slot_holds(ds, 1, days[1])
    entry = deployment.ledger()["entries"][k1]
    assert (entry["kind"], entry["version_id"]) == ("created", v1)


def test_a_created_event_reads_the_version_it_names(deployment, samples):
    """v2 is uploaded before v1's event is applied: the store holds v1 (what the event
    says), then v2 once v2's event is applied."""
    days, revised = samples
    bucket = VersionedBucket(deployment)
    k = key(days[0])
    v1, put1 = bucket.put(days[0], k)
    v2, put2 = bucket.put(revised[0], k)
    bucket.apply(put1)
    assert_slot_holds(store(deployment), 0, days[0])
    assert deployment.ledger()["entries"][k]["version_id"] == v1
    bucket.apply(put2)
    assert_slot_holds(store(deployment), 0, revised[0])
    assert deployment.ledger()["entries"][k]["version_id"] == v2


def test_a_created_event_whose_version_was_deleted_is_gone(deployment, samples):
    """v1's event comes after v1 was deleted (v2 is current): skipped(gone), not
    applied with v2's bytes; the deletion's own event is checked when it comes."""
    days, revised = samples
    bucket = VersionedBucket(deployment)
    k0, k = key(days[0]), key(days[1])
    _, put0 = bucket.put(days[0], k0)
    v1, put1 = bucket.put(days[1], k)
    bucket.put(revised[1], k)
    bucket.apply(put0)
    bucket.s3.delete_object(Bucket=RAW, Key=k, VersionId=v1)
    lines = bucket.apply(put1)
    line_for(lines, k, "skipped(gone)")
    assert interop.source_keys(store(deployment)) == [k0]
