"""deploy/template.yaml: the reconciliation sweep's schedule and function, and the
alarms (queue age, dead letters, errors, throttles, lag over target on the updater's
EMF metric), read from the template. cfn-lint runs over the whole template in
test_template.py."""

from __future__ import annotations

import json
import re

import pytest
from cfnlint.decode import decode_str

from conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "template.yaml"
METRICS_RS = REPO_ROOT / "src" / "aws" / "metrics.rs"


@pytest.fixture(scope="module")
def template() -> dict:
    doc, matches = decode_str(TEMPLATE.read_text())
    assert not matches, matches
    return doc


def alarms(template) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in template["Resources"].items()
            if v["Type"] == "AWS::CloudWatch::Alarm"}


def test_the_sweep_runs_the_watcher_binary_on_its_own_schedule(template):
    sweep = template["Resources"]["SweepFunction"]["Properties"]
    watcher = template["Resources"]["WatcherFunction"]["Properties"]
    assert sweep["CodeUri"] == watcher["CodeUri"]
    event = sweep["Events"]["Sweep"]
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "SweepSchedule"}
    assert json.loads(event["Properties"]["Input"]) == {"zru": "sweep"}
    assert template["Parameters"]["SweepSchedule"]["Default"].startswith("rate(")
    assert sweep["Environment"]["Variables"]["ZRU_RAW_BUCKET"] == {"Ref": "RawBucketName"}
    # It sends to the queue, lists the raw bucket, reads ledgers; it writes nothing.
    role = template["Resources"][sweep["Role"]["Fn::GetAtt"][0]]["Properties"]
    actions = {a for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]
               for a in st["Action"]}
    assert actions == {"sqs:SendMessage", "s3:ListBucket", "s3:GetObject",
                       "logs:CreateLogStream", "logs:PutLogEvents"}, actions
    assert "ReservedConcurrentExecutions" not in sweep


def test_alarms_watch_age_dead_letters_errors_throttles_and_lag(template):
    found = {(a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"][0]["Value"]))
             for a in alarms(template).values()}
    queue = json.dumps({"Fn::GetAtt": ["EventQueue", "QueueName"]})
    dlq = json.dumps({"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]})
    updater, watcher = json.dumps({"Ref": "UpdaterFunction"}), json.dumps({"Ref": "WatcherFunction"})
    for wanted in [("AWS/SQS", "ApproximateAgeOfOldestMessage", queue),
                   ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq),
                   ("AWS/Lambda", "Errors", updater), ("AWS/Lambda", "Errors", watcher),
                   ("AWS/Lambda", "Throttles", updater), ("AWS/Lambda", "Throttles", watcher),
                   ("zru", "LagOverTargetMilliseconds", updater)]:
        assert wanted in found, (wanted, found)
    for name, alarm in alarms(template).items():
        assert alarm["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_the_lag_alarm_uses_the_metric_the_updater_emits(template):
    """Namespace, metric name and dimension as src/aws/metrics.rs writes them."""
    source = METRICS_RS.read_text()
    lag = alarms(template)["LagAlarm"]
    assert re.search(rf'pub const NAMESPACE: &str = "{lag["Namespace"]}";', source)
    assert f'("{lag["MetricName"]}", "Milliseconds")' in source
    assert re.search(rf'FUNCTION_DIMENSION: &str = "{lag["Dimensions"][0]["Name"]}";', source)
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["ZRU_LAG_TARGET_SECONDS"] == {"Ref": "LagTargetSeconds"}
    assert env["ZRU_LAG_TARGETS"] == {"Ref": "LagTargets"}
