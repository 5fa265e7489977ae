"""`zru doctor` against the emulator: a complete deployment passes every check; each
broken piece fails its own line and the exit code."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import interop, zru_env

RAW, STORES = "raw-bucket", "zarr-stores"


def deploy(moto, tmp_path, *, fifo=True, dlq=True) -> dict[str, str]:
    """Buckets, queues, EFS file system + access point + mount target, dataset files
    on S3: what deploy/template.yaml creates. Returns the ZRU_* settings."""
    s3, sqs, efs, ec2 = (moto.client(s) for s in ("s3", "sqs", "efs", "ec2"))
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket=STORES)
    cfg = tmp_path / "cfg"
    interop.write_config(cfg, "sst", store=f"s3://{STORES}/sst.zarr")
    s3.upload_file(str(cfg / "sst.json"), STORES, "zru-config/sst.json")
    suffix = ".fifo" if fifo else ""
    attrs = {"FifoQueue": "true"} if fifo else {}
    dlq_url = sqs.create_queue(QueueName="zru-dlq" + suffix, Attributes=attrs)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    if dlq:
        attrs = {**attrs, "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})}
    url = sqs.create_queue(QueueName="zru-events" + suffix, Attributes=attrs)["QueueUrl"]
    fs = efs.create_file_system(CreationToken="zru-locks")["FileSystemId"]
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.0.0/20")["Subnet"]["SubnetId"]
    efs.create_mount_target(FileSystemId=fs, SubnetId=subnet)
    ap = efs.create_access_point(
        FileSystemId=fs, PosixUser={"Uid": 1000, "Gid": 1000},
        RootDirectory={"Path": "/zru"})["AccessPointId"]
    return {
        "ZRU_CONFIG": f"s3://{STORES}/zru-config",
        "ZRU_QUEUE_URL": url,
        "ZRU_RAW_BUCKET": RAW,
        "ZRU_EFS_FILE_SYSTEM_ID": fs,
        "ZRU_EFS_ACCESS_POINT_ID": ap,
        "ZRU_LOCK_DIR": str(tmp_path / "efs" / "zru-locks"),
    }


def doctor(zru_bin, moto, settings, *args) -> tuple[int, dict[str, dict]]:
    proc = subprocess.run([str(zru_bin), "doctor", "--json", *args], capture_output=True,
                          text=True, env=zru_env(moto, **settings), timeout=120)
    checks = {}
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        checks.setdefault(record["name"], record)
    assert checks, f"no output\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, checks


def test_a_complete_deployment_passes(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path)
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 0, checks
    assert set(checks) == {"config", "queue", "dead-letter queue", "backlog", "raw bucket",
                           "store bucket", "efs file system", "efs access point",
                           "lock directory"}
    assert all(c["ok"] for c in checks.values()), checks
    assert "1 dataset(s): sst" in checks["config"]["detail"]
    assert "FIFO" in checks["queue"]["detail"]
    assert "after 3 receives" in checks["dead-letter queue"]["detail"]
    assert f"s3://{STORES}" in checks["store bucket"]["detail"]
    assert "1 mount target" in checks["efs file system"]["detail"]
    # Text output: one line per check.
    proc = subprocess.run([str(zru_bin), "doctor"], capture_output=True, text=True,
                          env=zru_env(moto, **settings), timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 9, proc.stdout
    assert all(line.startswith("ok  ") for line in proc.stdout.splitlines()), proc.stdout


def test_the_backlog_counts_waiting_events_and_fails_on_dead_letters(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path)
    sqs = moto.client("sqs")
    for i in range(2):
        sqs.send_message(QueueUrl=settings["ZRU_QUEUE_URL"], MessageBody="{}",
                         MessageGroupId="sst", MessageDeduplicationId=f"m{i}")
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 0 and checks["backlog"]["ok"], checks
    assert checks["backlog"]["detail"] == "2 event(s) waiting, 0 in flight, 0 dead letters"
    dlq = sqs.get_queue_url(QueueName="zru-dlq.fifo")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody="{}", MessageGroupId="sst",
                     MessageDeduplicationId="d1")
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 1 and not checks["backlog"]["ok"], checks
    assert "1 in the dead-letter queue" in checks["backlog"]["detail"], checks["backlog"]


def test_a_standard_queue_without_dead_letters_fails(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path, fifo=False, dlq=False)
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 1
    assert not checks["queue"]["ok"] and "not a FIFO queue" in checks["queue"]["detail"]
    assert not checks["dead-letter queue"]["ok"]
    assert checks["config"]["ok"] and checks["raw bucket"]["ok"]


@pytest.mark.parametrize("broken", ["raw bucket", "store bucket", "efs file system",
                                    "efs access point", "lock directory", "config"])
def test_each_missing_piece_fails_its_check(tmp_path, moto, zru_bin, broken):
    settings = deploy(moto, tmp_path)
    if broken == "raw bucket":
        settings["ZRU_RAW_BUCKET"] = "no-such-raw"
    elif broken == "store bucket":
        moto.client("s3").put_object(
            Bucket=STORES, Key="zru-config/sst.json",
            Body=(tmp_path / "cfg" / "sst.json").read_text().replace(STORES, "no-such-store"))
    elif broken == "efs file system":
        settings["ZRU_EFS_FILE_SYSTEM_ID"] = "fs-00000000"
    elif broken == "efs access point":
        settings["ZRU_EFS_ACCESS_POINT_ID"] = "fsap-0000000000000000"
    elif broken == "lock directory":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        settings["ZRU_LOCK_DIR"] = str(blocker / "locks")
    elif broken == "config":
        moto.client("s3").put_object(Bucket=STORES, Key="zru-config/bad.json",
                                     Body=b'{"name": "bad"}')
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 1, checks
    assert not checks[broken]["ok"], checks
    others = {k: v for k, v in checks.items() if k != broken and not v["ok"]}
    if broken == "config":  # no catalog, so no store bucket check line
        others.pop("store bucket", None)
    if broken == "efs file system":  # the access point belongs to the real one
        assert "belongs to file system" in others.pop("efs access point")["detail"]
    assert not others, f"only {broken!r} should fail: {others}"
