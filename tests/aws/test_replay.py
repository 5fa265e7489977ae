"""`zru aws replay-failed-notifications` on the emulator: the watcher's on-failure
destination holds Lambda invocation records (``requestPayload`` = the S3 notification
that failed); the command re-sends their events to the FIFO queue as the watcher does
and deletes a record only once its events are queued."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import interop, zru_env

RAW, STORES = "raw-bucket", "zarr-stores"


def setup(moto, tmp_path) -> dict[str, str]:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket=STORES)
    cfg = tmp_path / "cfg"
    interop.write_config(cfg, "sst", store=f"s3://{STORES}/zarr/sst.zarr")
    s3.upload_file(str(cfg / "sst.json"), STORES, "zru-config/sst.json")
    queue = sqs.create_queue(QueueName="zru-events.fifo", Attributes={
        "FifoQueue": "true", "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId"})["QueueUrl"]
    failed = sqs.create_queue(QueueName="zru-failed-notifications")["QueueUrl"]
    # A real S3 notification, as moto sends it for an upload.
    notify = sqs.create_queue(QueueName="s3-notifications")["QueueUrl"]
    notify_arn = sqs.get_queue_attributes(QueueUrl=notify, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=RAW, NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": notify_arn, "Events": ["s3:ObjectCreated:*"]}]})
    return {"ZRU_CONFIG": f"s3://{STORES}/zru-config", "ZRU_QUEUE_URL": queue,
            "failed": failed, "notify": notify}


def s3_notification(moto, notify_url: str, key: str) -> dict:
    """Uploads ``key`` and returns the notification S3 sent for it."""
    moto.client("s3").put_object(Bucket=RAW, Key=key, Body=b"not read by the watcher")
    sqs = moto.client("sqs")
    for _ in range(20):
        for m in sqs.receive_message(QueueUrl=notify_url, MaxNumberOfMessages=10,
                                     WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=notify_url, ReceiptHandle=m["ReceiptHandle"])
            body = json.loads(m["Body"])
            if body.get("Records", [{}])[0].get("s3", {}).get("object", {}).get("key"):
                return body
    raise AssertionError(f"no S3 notification for {key}")


def invocation_record(payload: dict, request_id: str) -> str:
    """An on-failure record in Lambda's format (asynchronous invocation, retries
    exhausted)."""
    return json.dumps({
        "version": "1.0", "timestamp": "2026-12-02T01:00:00.000Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:zru-watcher:$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Runtime.ExitError",
                            "errorMessage": "dataset file sst.json: broken"}})


def replay(zru_bin, moto, settings, *args) -> tuple[int, list[dict], str]:
    env = zru_env(moto, ZRU_CONFIG=settings["ZRU_CONFIG"],
                  ZRU_QUEUE_URL=settings["ZRU_QUEUE_URL"])
    proc = subprocess.run([str(zru_bin), "aws", "replay-failed-notifications",
                           "--queue", settings["failed"], "--json", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()], proc.stderr


def queue_counts(moto, url: str) -> tuple[int, int]:
    a = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def wait_until_visible(moto, url: str) -> None:
    for _ in range(100):
        if queue_counts(moto, url) == (1, 0):
            return
        time.sleep(0.1)
    raise AssertionError(f"the record did not become visible: {queue_counts(moto, url)}")


def fifo_messages(moto, url: str) -> list[dict]:
    sqs, out = moto.client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        out += got


def test_failed_notifications_are_replayed_onto_the_fifo_queue(tmp_path, moto, zru_bin):
    settings = setup(moto, tmp_path)
    sqs = moto.client("sqs")
    sst = s3_notification(moto, settings["notify"], "sst/dir one/20240501.nc")
    other = s3_notification(moto, settings["notify"], "other/x.nc")
    sqs.send_message(QueueUrl=settings["failed"], MessageBody=invocation_record(sst, "r1"))
    sqs.send_message(QueueUrl=settings["failed"], MessageBody=invocation_record(other, "r2"))
    sqs.send_message(QueueUrl=settings["failed"], MessageBody="not an invocation record")

    code, records, stderr = replay(zru_bin, moto, settings)
    assert code == 1, (records, stderr)  # one record could not be replayed
    assert len(records) == 3, records
    done = sorted((r["events"], r["condition"]) for r in records if r["error"] is None)
    # The sst key becomes one event; a key no dataset takes is dropped, as the watcher does.
    assert done == [(0, "RetriesExhausted"), (1, "RetriesExhausted")], records
    failed = [r for r in records if r["error"] is not None]
    assert len(failed) == 1 and "not JSON" in failed[0]["error"], failed
    # Replayed records are deleted; the bad one stays (hidden until it is retried).
    assert queue_counts(moto, settings["failed"]) == (0, 1)

    messages = fifo_messages(moto, settings["ZRU_QUEUE_URL"])
    assert len(messages) == 1, messages
    message = messages[0]
    assert message["Attributes"]["MessageGroupId"] == f"s3://{STORES}/zarr/sst.zarr"  # the group is the store
    body = json.loads(message["Body"])
    assert body["event"]["key"] == "sst/dir one/20240501.nc"
    assert body["event"]["bucket"] == RAW
    assert body["event"]["kind"] == "created"


def test_a_record_stays_until_its_events_are_queued(tmp_path, moto, zru_bin):
    """The FIFO queue refuses the send: the record is not deleted, the exit code says so,
    and a later replay (queue fixed) moves it."""
    settings = setup(moto, tmp_path)
    sqs = moto.client("sqs")
    sst = s3_notification(moto, settings["notify"], "sst/20240502.nc")
    sqs.send_message(QueueUrl=settings["failed"], MessageBody=invocation_record(sst, "r1"))
    missing = settings["ZRU_QUEUE_URL"].replace("zru-events", "no-such-queue")
    # A short visibility timeout: the record is visible again during the run, which
    # must still handle it once and end.
    code, records, stderr = replay(zru_bin, moto, settings, "--queue-url", missing,
                                   "--visibility-timeout", "1")
    assert code == 1 and len(records) == 1, (records, stderr)
    assert "no-such-queue" in records[0]["error"], records
    assert sum(queue_counts(moto, settings["failed"])) == 1
    assert not fifo_messages(moto, settings["ZRU_QUEUE_URL"])

    # Once visible again, a replay to the right queue moves it.
    wait_until_visible(moto, settings["failed"])
    code, records, stderr = replay(zru_bin, moto, settings)
    assert code == 0 and [r["events"] for r in records] == [1], (records, stderr)
    assert queue_counts(moto, settings["failed"]) == (0, 0)
    assert len(fifo_messages(moto, settings["ZRU_QUEUE_URL"])) == 1
