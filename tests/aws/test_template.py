"""deploy/template.yaml: valid for cfn-lint (with the SAM transform), and the
deployment properties issue 5 asks for, read from the template itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

from conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "template.yaml"


def cfn_lint() -> list[str]:
    exe = Path(sys.executable).with_name("cfn-lint")
    if not exe.is_file():
        found = shutil.which("cfn-lint")
        if not found:
            pytest.fail("cfn-lint is not installed (scripts/requirements-aws.txt)", pytrace=False)
        exe = Path(found)
    return [str(exe)]


@pytest.fixture(scope="module")
def template() -> dict:
    doc, matches = decode_str(TEMPLATE.read_text())
    assert not matches, matches
    return doc


def resources(template, kind):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_passes_and_catches_a_broken_copy(tmp_path):
    """One cfn-lint run (it is slow to start) over the template and a broken copy."""
    broken = tmp_path / "broken.yaml"
    text = TEMPLATE.read_text()
    assert "VisibilityTimeout: 5400" in text
    broken.write_text(text.replace("VisibilityTimeout: 5400", "VisibilityTimeout: one"))
    proc = subprocess.run([*cfn_lint(), "--format", "parseable", str(TEMPLATE), str(broken)],
                          capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert not [l for l in lines if l.startswith(str(TEMPLATE))], proc.stdout + proc.stderr
    assert [l for l in lines if l.startswith(str(broken)) and "'one'" in l], (
        "cfn-lint did not report the broken copy\n" + proc.stdout + proc.stderr)


def test_queue_is_fifo_with_a_fifo_dead_letter_queue(template):
    queue = template["Resources"]["EventQueue"]["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False  # the watcher sends its own ids
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    dlq = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert template["Resources"][dlq]["Properties"]["FifoQueue"] is True


def test_updater_has_sqs_batches_schedule_and_efs(template):
    updater = template["Resources"]["UpdaterFunction"]["Properties"]
    events = updater["Events"]
    sqs = events["Queue"]["Properties"]
    assert events["Queue"]["Type"] == "SQS"
    assert sqs["BatchSize"] == 10
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert events["Flush"]["Type"] == "Schedule"
    assert updater["FileSystemConfigs"][0]["LocalMountPath"] == "/mnt/efs"
    assert updater["Environment"]["Variables"]["ZRU_LOCK_DIR"].startswith("/mnt/efs/")
    assert updater["VpcConfig"]["SubnetIds"]
    assert resources(template, "AWS::EFS::AccessPoint")
    assert len(resources(template, "AWS::EFS::MountTarget")) == 2
    # visibility timeout >= 6 x function timeout (default 900 s)
    queue = template["Resources"]["EventQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * template["Parameters"]["UpdaterTimeout"]["Default"]


def test_the_consumers_do_not_throttle_each_other(template):
    """No reserved concurrency of 1 shared by the event source and the drain (a drain
    of ~14 minutes throttled every event-source invocation); the event source is
    capped by MaximumConcurrency instead (2, its minimum), and one writer per store
    comes from the FIFO group (the store) and the EFS lock."""
    updater = template["Resources"]["UpdaterFunction"]["Properties"]
    assert updater.get("ReservedConcurrentExecutions", 3) > 2
    sqs = updater["Events"]["Queue"]["Properties"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == 2
    assert updater["Events"]["Flush"]["Type"] == "Schedule"


def test_raw_bucket_notifies_the_watcher(template):
    watcher = template["Resources"]["WatcherFunction"]["Properties"]
    s3 = watcher["Events"]["RawObjects"]
    assert s3["Type"] == "S3"
    assert s3["Properties"]["Bucket"] == {"Ref": "RawBucket"}
    assert set(s3["Properties"]["Events"]) == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    for name in ("WatcherFunction", "UpdaterFunction"):
        props = template["Resources"][name]["Properties"]
        assert props.get("Runtime", template["Globals"]["Function"]["Runtime"]) == "provided.al2023"


def test_iam_is_least_privilege(template):
    """No wildcard actions anywhere; no managed policy granting more than needed (after
    the SAM transform: test_transformed_template.py)."""
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        for policy in props.get("Policies", []):
            assert isinstance(policy, dict), f"{name}: managed/templated policy {policy!r}"
            # A function's SAM policy is the document; a role's has a name.
            document = policy.get("PolicyDocument", policy)
            for statement in document["Statement"]:
                actions = statement["Action"]
                actions = actions if isinstance(actions, list) else [actions]
                for action in actions:
                    assert "*" not in action, f"{name}: wildcard action {action}"
                if statement["Resource"] == "*":
                    assert all(a.startswith("ec2:") for a in actions), (
                        f"{name}: only the VPC network-interface actions may use Resource '*'")
        assert "ManagedPolicyArns" not in props, name
