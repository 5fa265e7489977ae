"""What the updater prints on the emulator: JSON log lines with the event's fields,
and per-dataset CloudWatch Embedded Metric Format documents whose counts match what
the batch did (applied, rejected, dead-lettered, lag, files and bytes per second)."""

from __future__ import annotations

import json

from test_lambdas import apply_with_poison, deployment, key, samples  # noqa: F401

UNITS = {"EventsApplied": "Count", "EventsRejected": "Count", "EventsDeadLettered": "Count",
         "EventsSkipped": "Count", "LagMilliseconds": "Milliseconds",
         "LagOverTargetMilliseconds": "Milliseconds", "FilesApplied": "Count",
         "FilesPerSecond": "Count/Second", "BytesPerSecond": "Bytes/Second"}


def records(log: str) -> list[dict]:
    """Every line of a function's output as JSON (each must be one object)."""
    out = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return out


def check_emf(doc: dict) -> None:
    """The embedded metric format's rules, as CloudWatch Logs applies them."""
    aws = doc["_aws"]
    assert isinstance(aws["Timestamp"], int) and aws["Timestamp"] > 1.6e12, aws
    (directive,) = aws["CloudWatchMetrics"]
    assert directive["Namespace"] == "zru"
    assert directive["Dimensions"] == [["Function", "Dataset"], ["Function"]]
    for metric in directive["Metrics"]:
        name = metric["Name"]
        assert UNITS[name] == metric["Unit"], metric
        value = doc[name]
        values = value if isinstance(value, list) else [value]
        assert 1 <= len(values) <= 100 and all(isinstance(v, (int, float)) for v in values)
    assert isinstance(doc["Dataset"], str) and isinstance(doc["Function"], str)


def test_updater_prints_json_logs_and_emf_metrics(deployment, samples, tmp_path):
    days, _ = samples
    # An updater with a lag target of 0 s for sst: every applied event is over it.
    deployment.updater_env = {**deployment.updater_env, "ZRU_LAG_TARGETS": "sst=0"}
    deployment.updater = deployment.new_updater("updater-lag")
    assert apply_with_poison(deployment, days, tmp_path)

    lines = records(deployment.updater.log())
    docs = [r for r in lines if "_aws" in r]
    assert docs, deployment.logs()
    for doc in docs:
        check_emf(doc)
    assert {(d["Function"], d["Dataset"]) for d in docs} == {("zru-updater-lag", "sst")}
    total = {name: sum(d[name] for d in docs) for name in (
        "EventsApplied", "EventsRejected", "EventsDeadLettered", "FilesApplied")}
    assert total["EventsApplied"] == 2 and total["FilesApplied"] == 2, total
    assert total["EventsDeadLettered"] == 1 and total["EventsRejected"] >= 1, total
    lags = [v for d in docs for v in d.get("LagMilliseconds", [])]
    assert len(lags) == 2 and all(0 <= v < 600_000 for v in lags), lags
    for d in docs:
        if d.get("LagMilliseconds"):
            assert d["LagOverTargetMilliseconds"] == max(d["LagMilliseconds"]), d
        else:
            assert "LagOverTargetMilliseconds" not in d, d
    assert any(d["BytesPerSecond"] > 0 and d["FilesPerSecond"] > 0 for d in docs), docs

    # The report of each event as one JSON log line with its fields.
    logs = [r for r in lines if "_aws" not in r]
    applied = [r for r in logs if r.get("key") == key(days[0]) and r.get("action") == "appended"]
    assert len(applied) == 1, logs
    line = applied[0]
    assert line["dataset"] == "sst" and line["level"] == "INFO"
    assert line["region"] == "time[0:1]" and isinstance(line["ms"], int)
    assert line["message_id"] and line["message"].startswith(key(days[0]))
    rejected = [r for r in logs if r.get("key") == key(days[1]) and r.get("action") == "rejected"]
    assert rejected and rejected[-1]["level"] == "WARN" and rejected[-1]["dead_lettered"]
    assert "netCDF" in rejected[-1]["reason"]
