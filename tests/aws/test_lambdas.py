"""End to end on the emulator: the real watcher and updater ``bootstrap`` binaries run
through a Lambda Runtime API emulator against moto.

Files are uploaded to the raw bucket; moto notifies a standard SQS queue (it cannot
trigger Lambda functions), from which the test hands each notification to the
watcher; the watcher queues the events on the FIFO queue; the updater consumes it
through the SQS event source (emulated here: batches of up to 10, batch item failures
left in flight as SQS leaves them: they come back when the visibility timeout the
updater set runs out; the rest deleted) or through a scheduled drain. The store on S3 is
then compared with what local mode (``zru ingest`` / ``zru remove``) gives for the
same events: same objects, same bytes, same dataset in xarray.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import xarray as xr

from conftest import interop, local_files, open_s3_dataset, s3_objects, zru_env
from harness import ACCOUNT, REGION, LambdaFunction

RAW, STORES = "raw-bucket", "zarr-stores"
PREFIX = "stores/sst.zarr"
LAT, LON = 30, 40
MAX_RECEIVES = 3


class Deployment:
    """What deploy/template.yaml creates, on the emulator, with both functions."""

    def __init__(self, moto, tmp_path: Path, lambda_dir: Path, *,
                 extra_datasets: tuple[str, ...] = (), updater_env: dict | None = None):
        self.moto, self.tmp = moto, tmp_path
        self.s3, self.sqs = moto.client("s3"), moto.client("sqs")
        self.s3.create_bucket(Bucket=RAW)
        self.s3.create_bucket(Bucket=STORES)
        dlq = self.sqs.create_queue(QueueName="zru-dlq.fifo",
                                    Attributes={"FifoQueue": "true"})["QueueUrl"]
        self.dlq_url = dlq
        dlq_arn = self.arn(dlq)
        self.queue_url = self.sqs.create_queue(QueueName="zru-events.fifo", Attributes={
            "FifoQueue": "true", "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(MAX_RECEIVES)}),
        })["QueueUrl"]
        self.notify_url = self.sqs.create_queue(QueueName="s3-notifications")["QueueUrl"]
        self.s3.put_bucket_notification_configuration(
            Bucket=RAW, NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": self.arn(self.notify_url),
                "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        # Configuration: packaged with the watcher, on S3 for the updater.
        self.config = tmp_path / "config"
        interop.write_config(self.config, "sst", store=f"s3://{STORES}/{PREFIX}")
        self.s3.upload_file(str(self.config / "sst.json"), STORES, "zru-config/sst.json")
        # Further datasets: name N takes keys N/*.nc into s3://STORES/stores/N.zarr.
        for name in extra_datasets:
            interop.write_config(self.config, name, store=f"s3://{STORES}/stores/{name}.zarr",
                                 key_patterns=[rf"^{name}/.*\.nc$"])
            self.s3.upload_file(str(self.config / f"{name}.json"), STORES,
                                f"zru-config/{name}.json")
        self.lock_dir = tmp_path / "efs" / "zru-locks"
        common = {**moto.env(), "ZRU_QUEUE_URL": self.queue_url, "ZRU_LOG": "info"}
        self.lambda_dir = lambda_dir
        self.updater_env = {**common, "ZRU_CONFIG": f"s3://{STORES}/zru-config",
                            "ZRU_LOCK_DIR": str(self.lock_dir), "ZRU_LOCK_TIMEOUT_SECONDS": "60",
                            "ZRU_DRAIN_SAFETY_SECONDS": "5", "ZRU_VISIBILITY_SECONDS": "60",
                            "ZRU_SCRATCH_DIR": str(tmp_path), **(updater_env or {})}
        self.watcher = LambdaFunction(lambda_dir / "watcher" / "bootstrap", "zru-watcher",
                                      {**common, "ZRU_CONFIG": str(self.config)},
                                      tmp_path / "watcher.log")
        self.updater = self.new_updater("updater")
        self.functions = [self.watcher, self.updater]
        self.drain_notifications()  # moto's s3:TestEvent

    def new_updater(self, name: str) -> LambdaFunction:
        fn = LambdaFunction(self.lambda_dir / "updater" / "bootstrap", f"zru-{name}",
                            self.updater_env, self.tmp / f"{name}.log")
        if hasattr(self, "functions"):
            self.functions.append(fn)
        return fn

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def stop(self):
        for fn in self.functions:
            fn.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {fn.log_path.name}\n{fn.log()}" for fn in self.functions)

    # ---------------------------------------------------------------- raw bucket
    def upload(self, path: Path, key: str):
        self.s3.upload_file(str(path), RAW, key)

    def delete(self, key: str):
        self.s3.delete_object(Bucket=RAW, Key=key)

    def drain_notifications(self) -> list[dict]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.notify_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.notify_url,
                                        ReceiptHandle=m["ReceiptHandle"])

    def deliver_to_watcher(self) -> list[dict]:
        """Every pending S3 notification, handed to the watcher in order."""
        notifications = self.drain_notifications()
        assert notifications, "moto sent no S3 notification"
        for n in notifications:
            self.invoke_ok(self.watcher, n)
        return notifications

    def invoke_ok(self, fn: LambdaFunction, event, **kw):
        inv = fn.invoke(event, **kw)
        assert inv.ok, f"{fn.log_path.name} failed: {inv.payload}\n{self.logs()}"
        return inv.payload

    # ---------------------------------------------------------------- updater
    def lock_file(self, prefix: str = PREFIX) -> Path:
        """The EFS lock file of the store at ``prefix`` (as the updater names it)."""
        return self.lock_dir / f"s3___{STORES}_{prefix.replace('/', '_')}.lock"

    def queue_depth(self) -> int:
        """Messages in the queue, visible or in flight."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"])
                + int(attrs["ApproximateNumberOfMessagesNotVisible"]))

    def dead_letters(self) -> list[dict]:
        return self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10,
                                        MessageAttributeNames=["All"]).get("Messages", [])

    def receive_batch(self, max_messages=10) -> list[dict]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0,
            VisibilityTimeout=60, AttributeNames=["All"],
            MessageAttributeNames=["All"]).get("Messages", [])

    def sqs_event(self, messages: list[dict]) -> dict:
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:zru-events.fifo"
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"], "attributes": m.get("Attributes", {}),
            "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION,
        } for m in messages]}

    def event_source(self, fn: LambdaFunction | None = None, rounds: int = 50,
                     batch_size: int = 10) -> list[dict]:
        """The SQS event source mapping: batches of up to ``batch_size`` until nothing
        is visible; the messages not reported failed are deleted. Reported failures
        stay in flight, as SQS keeps them: they come back when their visibility
        timeout (the queue's, or what the updater set) runs out."""
        fn = fn or self.updater
        responses = []
        for _ in range(rounds):
            batch = self.receive_batch(batch_size)
            if not batch:
                return responses
            response = self.invoke_ok(fn, self.sqs_event(batch))
            responses.append(response)
            self.settle(batch, response)
        raise AssertionError(f"queue not empty after {rounds} batches\n{self.logs()}")

    def settle(self, batch: list[dict], response: dict) -> None:
        """What the event source does after an invocation: deletes the messages not
        reported failed."""
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for m in batch:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=m["ReceiptHandle"])

    def scheduled_drain(self, fn: LambdaFunction | None = None, budget_s: float = 120) -> dict:
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": ACCOUNT, "region": REGION,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/zru-flush"],
                 "detail": {}}
        return self.invoke_ok(fn or self.updater, event, timeout_s=budget_s + 30,
                              deadline_s=budget_s)

    def consume(self, path: str):
        if path == "event-source":
            self.event_source()
        else:
            summary = self.scheduled_drain()
            assert not summary["stopped_for_deadline"], summary
        assert not self.receive_batch(), "messages left in the queue"

    def store_objects(self) -> dict[str, bytes]:
        return s3_objects(self.moto, STORES, PREFIX)

    def ledger(self) -> dict:
        body = self.s3.get_object(Bucket=STORES, Key=PREFIX + ".zru-ledger.json")["Body"]
        return json.loads(body.read())


@pytest.fixture
def deployment(moto, tmp_path, lambda_dir):
    d = Deployment(moto, tmp_path, lambda_dir)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    days = interop.sample(root / "v0", days=3, lat=LAT, lon=LON)
    revised = interop.sample(root / "v1", days=3, lat=LAT, lon=LON, revision=1)
    return days, revised


def key(path: Path) -> str:
    return f"sst/{path.name}"


def local_mode(tmp_path: Path, zru_bin: Path, steps) -> Path:
    """The same events through local mode; returns the local store."""
    raw, cfg, store = tmp_path / "local-raw", tmp_path / "local-cfg", tmp_path / "local.zarr"
    interop.write_config(cfg, "sst", store=store)
    for command, files in steps:
        if command == "ingest":
            placed = [interop.place(f, raw, key(f)) for f in files]
            interop.run_zru("ingest", "--config", cfg, "--raw-root", raw, *placed,
                            cwd=tmp_path, expect_ok=True)
        else:
            interop.run_zru("remove", "--config", cfg, "--raw-root", raw,
                            *[key(f) for f in files], cwd=tmp_path, expect_ok=True)
    return store


def assert_same_as_local(deployment: Deployment, local_store: Path):
    on_s3 = deployment.store_objects()
    local = local_files(local_store)
    assert sorted(on_s3) == sorted(local)
    differ = sorted(k for k in local if local[k] != on_s3[k])
    assert not differ, f"objects that differ from local mode: {differ}"
    xr.testing.assert_identical(open_s3_dataset(deployment.moto, STORES, PREFIX),
                                interop.open_store(local_store))


@pytest.mark.parametrize("path", ["event-source", "scheduled-drain"])
def test_s3_store_matches_local_mode(deployment, samples, tmp_path, zru_bin, path):
    days, revised = samples
    steps = [("ingest", days), ("ingest", [revised[1]]), ("remove", [days[2]])]
    for command, files in steps:
        for f in files:
            if command == "ingest":
                deployment.upload(f, key(f))
            else:
                deployment.delete(key(f))
        deployment.deliver_to_watcher()
        deployment.consume(path)
    assert_same_as_local(deployment, local_mode(tmp_path, zru_bin, steps))
    ds = open_s3_dataset(deployment.moto, STORES, PREFIX)
    assert interop.source_keys(ds) == [key(days[0]), key(days[1]), ""]
    ledger = deployment.ledger()["entries"]
    assert set(ledger) == {key(d) for d in days}


def test_keys_no_dataset_takes_are_skipped_by_the_watcher(deployment, samples):
    days, _ = samples
    deployment.upload(days[0], "elsewhere/file.nc")
    deployment.upload(days[0], "sst/dir one/a+b.nc")  # form-encoded by S3
    deployment.deliver_to_watcher()
    batch = deployment.receive_batch()
    keys = [json.loads(m["Body"])["event"]["key"] for m in batch]
    assert keys == ["sst/dir one/a+b.nc"], keys
    # The group is the store: one writer per store, whichever dataset names it.
    assert batch[0]["Attributes"]["MessageGroupId"] == f"s3://{STORES}/{PREFIX}"
    assert "elsewhere/file.nc" in deployment.watcher.log()


def apply_with_poison(deployment: Deployment, days: list[Path], tmp_path: Path) -> list[dict]:
    """Days 0 and 2 uploaded, and under day 1's key a truncated file; the watcher and
    the event source run. Returns the updater's responses."""
    poison = tmp_path / "poison.nc"
    poison.write_bytes(days[1].read_bytes()[:4000])
    deployment.upload(days[0], key(days[0]))
    deployment.upload(poison, key(days[1]))
    deployment.upload(days[2], key(days[2]))
    deployment.deliver_to_watcher()
    return deployment.event_source()


def test_poison_file_goes_to_the_dlq_with_its_reason_and_its_group_goes_on(
        deployment, samples, tmp_path):
    days, _ = samples
    apply_with_poison(deployment, days, tmp_path)

    dead = deployment.sqs.receive_message(QueueUrl=deployment.dlq_url, MaxNumberOfMessages=10,
                                          MessageAttributeNames=["All"]).get("Messages", [])
    assert len(dead) == 1, dead
    assert json.loads(dead[0]["Body"])["event"]["key"] == key(days[1])
    reason = dead[0]["MessageAttributes"]["zru_reason"]["StringValue"]
    assert key(days[1]) in reason and "netCDF" in reason, reason
    ds = open_s3_dataset(deployment.moto, STORES, PREFIX)
    assert interop.source_keys(ds) == [key(days[0]), "", key(days[2])]


def test_redelivery_and_duplicate_events_change_nothing(deployment, samples):
    days, _ = samples
    for d in days[:2]:
        deployment.upload(d, key(d))
    notifications = deployment.deliver_to_watcher()
    batch = deployment.receive_batch()
    assert len(batch) == 2
    response = deployment.invoke_ok(deployment.updater, deployment.sqs_event(batch))
    assert response.get("batchItemFailures") == []
    before, ledger = deployment.store_objects(), deployment.ledger()

    # The event source delivers the same batch again (e.g. a lost delete).
    response = deployment.invoke_ok(deployment.updater, deployment.sqs_event(batch))
    assert response.get("batchItemFailures") == []
    # S3 sends the same notifications again: deduplicated or skipped as duplicates.
    for n in notifications:
        deployment.invoke_ok(deployment.watcher, n)
    deployment.event_source()
    assert deployment.store_objects() == before
    assert deployment.ledger() == ledger


def test_two_updaters_racing_on_one_store_serialise_on_the_lock(
        deployment, samples, tmp_path, zru_bin):
    days, revised = samples
    for d in days:
        deployment.upload(d, key(d))
    deployment.deliver_to_watcher()
    deployment.event_source()
    # Two revisions of one store, each handed to its own updater at the same moment
    # (as when a visibility timeout expires while the first updater still works).
    second = deployment.new_updater("updater-2")
    deployment.upload(revised[0], key(days[0]))
    deployment.upload(revised[2], key(days[2]))
    deployment.deliver_to_watcher()
    both = deployment.receive_batch()
    assert len(both) == 2, both
    batch_a, batch_b = both[:1], both[1:]
    results = {}

    def run(name, fn, batch):
        results[name] = fn.invoke(deployment.sqs_event(batch), timeout_s=180)

    threads = [threading.Thread(target=run, args=("a", deployment.updater, batch_a)),
               threading.Thread(target=run, args=("b", second, batch_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, inv in results.items():
        assert inv.ok and inv.payload["batchItemFailures"] == [], (name, inv.payload)
    for batch in (batch_a, batch_b):
        deployment.sqs.delete_message(QueueUrl=deployment.queue_url,
                                      ReceiptHandle=batch[0]["ReceiptHandle"])
    # Both revisions are in the store and in the ledger: neither commit was lost.
    steps = [("ingest", days), ("ingest", [revised[0]]), ("ingest", [revised[2]])]
    assert_same_as_local(deployment, local_mode(tmp_path, zru_bin, steps))
    etags = {k: v.get("etag") for k, v in deployment.ledger()["entries"].items()}
    head = {k: deployment.s3.head_object(Bucket=RAW, Key=k)["ETag"].strip('"')
            for k in (key(days[0]), key(days[2]))}
    for k, etag in head.items():
        assert etags[k] == etag, (k, etags[k], etag)


def test_the_drain_stops_cleanly_before_the_deadline(deployment, samples):
    days, _ = samples
    deployment.upload(days[0], key(days[0]))
    deployment.deliver_to_watcher()
    # Less time left than the safety margin (ZRU_DRAIN_SAFETY_SECONDS=5): nothing is
    # received, nothing deleted; the function answers in time.
    summary = deployment.scheduled_drain(budget_s=3)
    assert summary["stopped_for_deadline"] and summary["batches"] == 0, summary
    assert deployment.store_objects() == {}
    summary = deployment.scheduled_drain()
    assert summary == {"batches": 1, "received": 1, "deleted": 1, "failed": 0,
                       "dead_lettered": 0, "stopped_for_deadline": False}, summary
    assert interop.source_keys(open_s3_dataset(deployment.moto, STORES, PREFIX)) == [
        key(days[0])]
