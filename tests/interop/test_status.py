"""`zru status`: per dataset, what waits in the local queue (pending, in flight, dead
letters, the oldest pending message's age) and what the store applied (keys, the
ledger's last write, the newest applied event), as text and JSON."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from conftest import place, run_zru, sample, write_config

SST_KEY = "sst/{}"


def status(tmp_path: Path) -> list[dict]:
    res = run_zru("status", "--config", tmp_path / "cfg", "--state-dir", tmp_path / "state",
                  "--json", cwd=tmp_path, expect_ok=True)
    return res.records


def test_status_follows_the_queue_and_the_ledger(tmp_path):
    files = sample(tmp_path / "samples", days=3, lat=12, lon=16)
    raw, cfg, state = tmp_path / "raw", tmp_path / "cfg", tmp_path / "state"
    write_config(cfg, "sst", store=tmp_path / "sst.zarr")
    write_config(cfg, "other", store=tmp_path / "other.zarr", key_patterns=[r"^other/"])
    placed = [place(f, raw, SST_KEY.format(f.name)) for f in files[:2]]
    poison = raw / "sst" / files[2].name
    poison.write_bytes(files[2].read_bytes()[:3000])
    common = ["--config", cfg, "--raw-root", raw, "--state-dir", state]

    # Nothing queued, nothing applied.
    before = status(tmp_path)
    assert [d["dataset"] for d in before] == ["other", "sst"]
    assert all(d["pending"] == 0 and d["oldest_pending_seconds"] is None
               and d["applied_keys"] == 0 and d["last_applied"] is None for d in before)

    run_zru("ingest", *common, "--no-flush", *placed, poison, cwd=tmp_path, expect_ok=True)
    queued = {d["dataset"]: d for d in status(tmp_path)}
    assert (queued["sst"]["pending"], queued["sst"]["in_flight"], queued["sst"]["dead_letters"]) \
        == (3, 0, 0), queued
    assert queued["sst"]["oldest_pending_seconds"] >= 0
    assert queued["sst"]["applied_keys"] == 0 and queued["other"]["pending"] == 0

    started = datetime.now(timezone.utc)
    run_zru("flush", *common, "--max-receives", "1", cwd=tmp_path, expect_ok=False)
    after = {d["dataset"]: d for d in status(tmp_path)}
    sst = after["sst"]
    assert (sst["pending"], sst["in_flight"], sst["dead_letters"]) == (0, 0, 1), sst
    assert sst["oldest_pending_seconds"] is None
    assert sst["applied_keys"] == 2
    last = datetime.fromisoformat(sst["last_applied"].replace("Z", "+00:00"))
    assert (last - started).total_seconds() > -2, (last, started)
    assert sst["newest_event"] is not None
    assert after["other"]["applied_keys"] == 0 and after["other"]["last_applied"] is None

    text = run_zru("status", "--config", cfg, "--state-dir", state, cwd=tmp_path,
                   expect_ok=True).stdout.splitlines()
    assert text[0].split("\t")[:4] == ["dataset", "pending", "in_flight", "dead"]
    sst_line = [line.split("\t") for line in text if line.startswith("sst\t")]
    assert sst_line and sst_line[0][1:4] == ["0", "0", "1"] and sst_line[0][5] == "2", text
