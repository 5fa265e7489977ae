"""Failure paths and concurrency of the updater on the emulator (issue 14).

- A failed message waits: the updater sets its visibility to an exponential backoff
  (``ZRU_BACKOFF_BASE_SECONDS``), so it is not received again before that delay and is
  received after it; moto keeps it invisible as SQS does.
- An error that concerns one store (its lock, a raw object it needs) fails that
  store's group only; the other groups of the batch are applied.
- The scheduled drain does not retry a failed message at once.
- The event source and a drain running at the same time on one queue: every message
  is applied once, in order per store, nothing is left and nothing dead-lettered.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from contextlib import contextmanager

import pytest

from conftest import interop, open_s3_dataset
from harness import REGION
from test_lambdas import (PREFIX, STORES, Deployment, assert_same_as_local, key, local_mode,
                          samples)  # noqa: F401  (samples is a fixture)

BASE = 15  # ZRU_BACKOFF_BASE_SECONDS of these tests
OTHER = "sst2"  # a second dataset, its own store: stores/sst2.zarr
OTHER_PREFIX = f"stores/{OTHER}.zarr"


@pytest.fixture
def deployment(moto, tmp_path, lambda_dir):
    d = Deployment(moto, tmp_path, lambda_dir, extra_datasets=(OTHER,), updater_env={
        "ZRU_LOCK_TIMEOUT_SECONDS": "1", "ZRU_BACKOFF_BASE_SECONDS": str(BASE),
        "ZRU_BACKOFF_CAP_SECONDS": "60"})
    yield d
    d.stop()


@contextmanager
def holding(path):
    """Holds a store's lock file (flock), as a stale updater would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def other_key(path) -> str:
    return f"{OTHER}/{path.name}"


def group_of(message: dict) -> str:
    return message["Attributes"]["MessageGroupId"]


def wait_for_message(deployment: Deployment, until: float) -> list[dict]:
    """Receives until something comes or ``until`` (monotonic) passes."""
    while True:
        batch = deployment.receive_batch()
        if batch or time.monotonic() > until:
            return batch
        time.sleep(0.5)


def test_a_locked_store_backs_off_alone_and_comes_back_after_its_delay(deployment, samples):
    days, _ = samples
    deployment.upload(days[0], key(days[0]))
    deployment.upload(days[0], other_key(days[0]))
    deployment.deliver_to_watcher()
    batch = deployment.receive_batch()
    assert sorted(group_of(m) for m in batch) == [f"s3://{STORES}/{PREFIX}",
                                                  f"s3://{STORES}/{OTHER_PREFIX}"]
    locked = next(m for m in batch if group_of(m).endswith(PREFIX))
    with holding(deployment.lock_file()):
        start = time.monotonic()
        response = deployment.invoke_ok(deployment.updater, deployment.sqs_event(batch))
        returned = time.monotonic()
        # The locked store's message alone is a failure; the other store is updated.
        assert response["batchItemFailures"] == [{"itemIdentifier": locked["MessageId"]}]
        deployment.settle(batch, response)
        assert interop.source_keys(open_s3_dataset(deployment.moto, STORES, OTHER_PREFIX)) == [
            other_key(days[0])]
        # Not received again before its backoff (set during the invocation, so it
        # runs at least until start + BASE).
        assert deployment.receive_batch() == []
        time.sleep(max(0.0, start + BASE / 2 - time.monotonic()))
        if time.monotonic() < start + BASE - 1:
            assert deployment.receive_batch() == []
    # Received after it, and applied.
    again = wait_for_message(deployment, returned + BASE + 20)
    assert [m["MessageId"] for m in again] == [locked["MessageId"]], deployment.logs()
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    response = deployment.invoke_ok(deployment.updater, deployment.sqs_event(again))
    assert response["batchItemFailures"] == []
    deployment.settle(again, response)
    assert interop.source_keys(open_s3_dataset(deployment.moto, STORES, PREFIX)) == [
        key(days[0])]
    assert deployment.dead_letters() == []
    assert deployment.queue_depth() == 0


def test_a_raw_object_that_cannot_be_read_fails_its_group_only(deployment, samples):
    days, _ = samples
    deployment.upload(days[1], other_key(days[1]))
    deployment.deliver_to_watcher()
    # An event whose object cannot be downloaded (its bucket does not exist).
    deployment.invoke_ok(deployment.watcher, {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION,
        "eventTime": "2024-05-01T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "no-such-raw-bucket"},
               "object": {"key": key(days[0]), "eTag": "e1", "size": 10,
                          "sequencer": "0055AED6DCD90281E5"}}}]})
    batch = deployment.receive_batch()
    assert len(batch) == 2, batch
    unreadable = next(m for m in batch if group_of(m).endswith(PREFIX))
    response = deployment.invoke_ok(deployment.updater, deployment.sqs_event(batch))
    assert response["batchItemFailures"] == [{"itemIdentifier": unreadable["MessageId"]}]
    deployment.settle(batch, response)
    assert interop.source_keys(open_s3_dataset(deployment.moto, STORES, OTHER_PREFIX)) == [
        other_key(days[1])]
    assert "no-such-raw-bucket" in deployment.updater.log()
    # Transient: waiting for its backoff, not dead-lettered.
    assert deployment.receive_batch() == []
    assert deployment.dead_letters() == []
    assert deployment.queue_depth() == 1


def test_the_drain_does_not_retry_a_failed_message_at_once(deployment, samples):
    days, _ = samples
    deployment.upload(days[2], key(days[2]))
    deployment.deliver_to_watcher()
    with holding(deployment.lock_file()):
        summary = deployment.scheduled_drain()
        drained = time.monotonic()
    # Received once, failed once, left to wait: the drain ended instead of receiving
    # it again until the dead-letter queue.
    assert summary == {"batches": 1, "received": 1, "deleted": 0, "failed": 1,
                       "dead_lettered": 0, "stopped_for_deadline": False}, summary
    assert deployment.dead_letters() == []
    assert deployment.receive_batch() == []
    back = wait_for_message(deployment, drained + BASE + 20)
    assert len(back) == 1 and back[0]["Attributes"]["ApproximateReceiveCount"] == "2", back
    deployment.settle(back, {"batchItemFailures": [{"itemIdentifier": back[0]["MessageId"]}]})


def test_event_source_and_drain_at_once_lose_nothing(deployment, samples, tmp_path, zru_bin):
    days, revised = samples
    for d in days:
        deployment.upload(d, key(d))
        deployment.upload(d, other_key(d))
    deployment.deliver_to_watcher()
    deployment.upload(revised[1], key(days[1]))
    deployment.upload(revised[0], other_key(days[0]))
    deployment.deliver_to_watcher()
    assert deployment.queue_depth() == 8
    second = deployment.new_updater("updater-drain")
    results: dict[str, object] = {}

    def event_source():
        results["event-source"] = deployment.event_source(batch_size=2)

    def drain():
        results["drain"] = deployment.scheduled_drain(second)

    threads = [threading.Thread(target=event_source), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert set(results) == {"event-source", "drain"}, deployment.logs()
    summary = results["drain"]
    assert summary["failed"] == 0 and summary["dead_lettered"] == 0, summary
    responses = results["event-source"]
    assert all(r["batchItemFailures"] == [] for r in responses), responses
    # Nothing lost, nothing left, nothing dead-lettered.
    assert deployment.queue_depth() == 0
    assert deployment.dead_letters() == []
    # Each store equals applying its events in order.
    steps = [("ingest", days), ("ingest", [revised[1]])]
    assert_same_as_local(deployment, local_mode(tmp_path, zru_bin, steps))
    other = open_s3_dataset(deployment.moto, STORES, OTHER_PREFIX)
    assert interop.source_keys(other) == [other_key(d) for d in days]
    ledger = json.loads(deployment.s3.get_object(
        Bucket=STORES, Key=OTHER_PREFIX + ".zru-ledger.json")["Body"].read())["entries"]
    etag = deployment.s3.head_object(Bucket="raw-bucket", Key=other_key(days[0]))["ETag"]
    assert ledger[other_key(days[0])]["etag"] == etag.strip('"')
