"""`zru doctor` against the emulator: a complete deployment passes every check; each
broken piece fails its own line and the exit code. CloudWatch figures (alarm states,
lag, queue age) are put on moto's CloudWatch by the tests, as the template's alarms and
the updater's EMF metrics would be."""

from __future__ import annotations

import datetime
import json
import subprocess

import pytest

from cloudwatch_cbor import CloudWatchCbor
from conftest import interop, zru_env

RAW, STORES = "raw-bucket", "zarr-stores"
PREFIX = "zru-"
SHIM: list[CloudWatchCbor] = []


@pytest.fixture(scope="module", autouse=True)
def cloudwatch_cbor(moto_session):
    """CloudWatch's CBOR protocol for the Rust SDK, on moto (see cloudwatch_cbor.py)."""
    shim = CloudWatchCbor(moto_session.endpoint).start()
    SHIM.append(shim)
    yield shim
    SHIM.remove(shim)
    shim.stop()


def put_alarm(cloudwatch, name: str) -> None:
    """An alarm as the template defines them (named ``<stack>-<what>``)."""
    cloudwatch.put_metric_alarm(
        AlarmName=PREFIX + name, Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage", Statistic="Maximum", Period=300,
        EvaluationPeriods=1, Threshold=3600, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "QueueName", "Value": "zru-events.fifo"}])


def put_points(cloudwatch, namespace, metric, dimensions, values_ago) -> None:
    """Data points ``(value, minutes ago)`` of one metric."""
    now = datetime.datetime.now(datetime.timezone.utc)
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Dimensions": dimensions, "Value": value,
         "Timestamp": now - datetime.timedelta(minutes=ago)}
        for value, ago in values_ago])


def lag_dimensions(dataset="sst", function="zru-Updater"):
    return [{"Name": "Function", "Value": function}, {"Name": "Dataset", "Value": dataset}]


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
    cloudwatch = moto.client("cloudwatch")
    for name in ("queue-age", "dead-letters", "lag"):
        put_alarm(cloudwatch, name)
    return {
        "AWS_ENDPOINT_URL_CLOUDWATCH": SHIM[-1].endpoint,
        "ZRU_ALARM_PREFIX": PREFIX,
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
    assert code == 0, [c for c in checks.values() if not c["ok"]]
    assert set(checks) == {"config", "queue", "dead-letter queue", "backlog", "raw bucket",
                           "store bucket", "efs file system", "efs access point",
                           "lock directory", "alarms", "queue age", "lag"}
    assert all(c["ok"] for c in checks.values()), checks
    assert "1 dataset(s): sst" in checks["config"]["detail"]
    assert "FIFO" in checks["queue"]["detail"]
    assert "after 3 receives" in checks["dead-letter queue"]["detail"]
    assert f"s3://{STORES}" in checks["store bucket"]["detail"]
    assert "1 mount target" in checks["efs file system"]["detail"]
    assert checks["alarms"]["detail"].startswith(f"3 alarm(s) {PREFIX}*: "), checks["alarms"]
    # No data is said as such, never as a zero.
    assert checks["lag"]["detail"].startswith("sst: no lag data in the last 60 minutes")
    assert checks["queue age"]["detail"] == (
        "zru-events.fifo: no queue-age data in the last 60 minutes")
    # Text output: one line per check.
    proc = subprocess.run([str(zru_bin), "doctor"], capture_output=True, text=True,
                          env=zru_env(moto, **settings), timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 12, proc.stdout
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


def test_an_alarm_in_alarm_state_fails_with_its_reason(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path)
    moto.client("cloudwatch").set_alarm_state(
        AlarmName=PREFIX + "queue-age", StateValue="ALARM",
        StateReason="Threshold Crossed: 1 datapoint [4000.0] > 3600")
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 1 and not checks["alarms"]["ok"], checks
    detail = checks["alarms"]["detail"]
    assert "in ALARM: zru-queue-age (Threshold Crossed: 1 datapoint [4000.0] > 3600)" in detail
    assert "zru-lag" not in detail.split("in ALARM:")[1], detail
    others = [k for k, v in checks.items() if not v["ok"] and k != "alarms"]
    assert not others, checks


def test_alarms_need_the_stack_prefix(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path)
    code, checks = doctor(zru_bin, moto, settings, "--alarm-prefix", "other-stack-")
    assert code == 1 and "no alarm named other-stack-*" in checks["alarms"]["detail"]
    del settings["ZRU_ALARM_PREFIX"]
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 1 and "ZRU_ALARM_PREFIX is not set" in checks["alarms"]["detail"], checks


def test_the_latest_lag_and_queue_age_are_reported(tmp_path, moto, zru_bin):
    settings = deploy(moto, tmp_path)
    cloudwatch = moto.client("cloudwatch")
    # The latest minute's lag is reported (12 s), with the window's largest (95 s);
    # an hour and a half ago is outside a 60-minute window; another dataset's lag and
    # another namespace are not this dataset's.
    put_points(cloudwatch, "zru", "LagMilliseconds", lag_dimensions(),
               [(95_000, 20), (12_000, 2), (500_000, 90)])
    put_points(cloudwatch, "zru", "LagMilliseconds", lag_dimensions("argo"), [(7_000, 1)])
    put_points(cloudwatch, "other", "LagMilliseconds", lag_dimensions(), [(1_000, 1)])
    put_points(cloudwatch, "AWS/SQS", "ApproximateAgeOfOldestMessage",
               [{"Name": "QueueName", "Value": "zru-events.fifo"}], [(42, 3), (7, 30)])
    code, checks = doctor(zru_bin, moto, settings)
    assert code == 0, checks
    lag = checks["lag"]["detail"]
    assert lag.startswith("sst: latest 12.0 s"), lag
    assert "largest 95.0 s in the last 60 minutes" in lag, lag
    age = checks["queue age"]["detail"]
    assert age.startswith("zru-events.fifo: oldest event 42 s old at"), age
    assert "at most 42 s in the last 60 minutes" in age, age
    # Over the dataset's target: a failure that says so.
    code, checks = doctor(zru_bin, moto, {**settings, "ZRU_LAG_TARGETS": "sst=10"})
    assert code == 1 and not checks["lag"]["ok"], checks
    assert checks["lag"]["detail"].endswith("over its target of 10 s"), checks["lag"]
    # A window that ends before the data points: no data, said so.
    code, checks = doctor(zru_bin, moto, settings, "--window-minutes", "1")
    assert code == 0, checks
    assert checks["lag"]["detail"].startswith("sst: no lag data in the last 1 minutes")
