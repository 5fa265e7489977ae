"""The reconciliation sweep on the emulator: S3 notifications dropped on purpose (an
upload, a revision, a deletion whose notification never reaches the watcher) are
found by the sweep (the watcher bootstrap invoked with ``{"zru": "sweep"}``, as the
template's schedule does), applied by the updater, and the store then equals what
xarray reads from the files; a second sweep sends nothing new.
"""

from __future__ import annotations

import json
import subprocess

from conftest import interop, open_s3_dataset, zru_env
from harness import LambdaFunction
from test_lambdas import (PREFIX, RAW, STORES, assert_same_as_local, deployment, key,  # noqa: F401
                          local_mode, samples)


def sweeper(deployment) -> LambdaFunction:
    """The sweep function: the watcher's bootstrap with the raw bucket named."""
    env = {**deployment.moto.env(), "ZRU_QUEUE_URL": deployment.queue_url, "ZRU_LOG": "info",
           "ZRU_CONFIG": str(deployment.config), "ZRU_RAW_BUCKET": RAW}
    fn = LambdaFunction(deployment.lambda_dir / "watcher" / "bootstrap", "zru-sweep", env,
                        deployment.tmp / "sweep.log")
    deployment.functions.append(fn)
    return fn


def queued_keys(deployment) -> list[tuple[str, str]]:
    """(kind, key) of every message in the FIFO queue, made visible again at once."""
    out, handles = [], []
    while True:
        batch = deployment.receive_batch()
        if not batch:
            break
        for m in batch:
            event = json.loads(m["Body"])["event"]
            out.append((event["kind"], event["key"]))
            handles.append(m["ReceiptHandle"])
    for handle in handles:
        deployment.sqs.change_message_visibility(QueueUrl=deployment.queue_url,
                                                 ReceiptHandle=handle, VisibilityTimeout=0)
    return out


def test_dropped_notifications_are_recovered_by_the_sweep(deployment, samples, tmp_path,
                                                          zru_bin):
    days, revised = samples
    for d in days[:2]:
        deployment.upload(d, key(d))
    deployment.deliver_to_watcher()
    deployment.event_source()
    sweep = sweeper(deployment)
    # Everything applied: the sweep finds nothing.
    summary = deployment.invoke_ok(sweep, {"zru": "sweep"})
    assert (summary["listed"], summary["created"], summary["removed"], summary["sent"]) == (
        2, 0, 0, 0), summary

    # A new file, a revision and a deletion whose notifications are lost.
    deployment.upload(days[2], key(days[2]))
    deployment.upload(revised[1], key(days[1]))
    deployment.delete(key(days[0]))
    assert deployment.drain_notifications(), "moto sent no notification to drop"

    summary = deployment.invoke_ok(sweep, {"zru": "sweep"})
    assert (summary["created"], summary["removed"], summary["sent"]) == (2, 1, 3), summary
    # Sent as the watcher sends: group = the store, same body.
    batch = deployment.receive_batch()
    assert {m["Attributes"]["MessageGroupId"] for m in batch} == {f"s3://{STORES}/{PREFIX}"}
    events = [json.loads(m["Body"])["event"] for m in batch]
    for m in batch:
        deployment.sqs.change_message_visibility(QueueUrl=deployment.queue_url,
                                                 ReceiptHandle=m["ReceiptHandle"],
                                                 VisibilityTimeout=0)
    assert [(e["kind"], e["key"]) for e in events] == [
        ("created", key(days[1])), ("created", key(days[2])), ("removed", key(days[0]))]
    etag = deployment.s3.head_object(Bucket=RAW, Key=key(days[2]))["ETag"].strip('"')
    assert events[1]["etag"] == etag

    # A second sweep before they are applied: the same deduplication ids, dropped by SQS.
    again = deployment.invoke_ok(sweep, {"zru": "sweep"})
    assert again["sent"] == 3, again
    assert sorted(queued_keys(deployment)) == sorted(
        [("created", key(days[1])), ("created", key(days[2])), ("removed", key(days[0]))])

    deployment.event_source()
    ds = open_s3_dataset(deployment.moto, STORES, PREFIX)
    assert interop.source_keys(ds) == ["", key(days[1]), key(days[2])]
    # The oracle: xarray's reading of the files the bucket holds, day 0 blanked.
    expected = interop.open_sources([days[0], revised[1], days[2]])
    expected = interop.blank_slot(expected, "time", 0, like=ds)
    interop.assert_dataset_values(ds.drop_vars(interop.PROVENANCE), expected)
    steps = [("ingest", days[:2]), ("ingest", [revised[1], days[2]]), ("remove", [days[0]])]
    assert_same_as_local(deployment, local_mode(tmp_path, zru_bin, steps))

    # Applied: a sweep now finds nothing to send.
    summary = deployment.invoke_ok(sweep, {"zru": "sweep"})
    assert (summary["created"], summary["removed"], summary["sent"]) == (0, 0, 0), summary
    assert not deployment.receive_batch()


def run_sweep(zru_bin, env, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(zru_bin), "aws", "sweep", *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_zru_aws_sweep_dry_run_reports_without_sending(deployment, samples, zru_bin):
    days, _ = samples
    deployment.upload(days[0], key(days[0]))
    deployment.drain_notifications()  # lost
    env = zru_env(deployment.moto, ZRU_QUEUE_URL=deployment.queue_url,
                  ZRU_CONFIG=deployment.config, ZRU_RAW_BUCKET=RAW)
    summary = json.loads(run_sweep(zru_bin, env, "--dry-run", "--json").stdout)
    assert (summary["created"], summary["sent"]) == (1, 0), summary
    assert summary["events"][0]["key"] == key(days[0])
    assert not deployment.receive_batch()
    res = run_sweep(zru_bin, env)
    assert key(days[0]) in res.stdout and "1 message(s) sent" in res.stderr, res.stderr
    assert [json.loads(m["Body"])["event"]["key"] for m in deployment.receive_batch()] == [
        key(days[0])]
