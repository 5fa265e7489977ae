"""The README's main job: `zru demo` runs the whole local pipeline (watcher events,
durable queue, flush with lock and ledger, dead letters and replay) and leaves stores
that read in xarray as their source files do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import (
    GSLA_DIR,
    PROVENANCE,
    assert_dataset_values,
    assert_slot_blank,
    open_sources,
    open_store,
    run_zru,
    zru_path,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of the demo (small grid): its directory and its output."""
    tmp_path = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shared = GSLA_DIR.parent.parent
    res = run_zru("demo", "--shared-data", shared, "--lat", 40, "--lon", 60,
                  cwd=tmp_path, expect_ok=True)
    return tmp_path, res.stdout


def test_demo_runs_the_pipeline_and_leaves_stores_xarray_reads(demo):
    tmp_path, out = demo
    assert "skipped(duplicate)" in out and "-> dead letters" in out, out
    assert "replayed 1 dead letter(s)" in out, out

    # SST: five slots, day 3 removed (blank), the others as their raw files
    # (day 2 as revised); nothing left in the queue.
    raw_sst = sorted((tmp_path / "data/raw/sst").glob("*.nc"))
    assert len(raw_sst) == 4
    sst = open_store(tmp_path / "data/zarr/sst.zarr")
    assert sst.sizes["time"] == 5
    assert_slot_blank(sst, "time", 2)
    kept = sst.drop_vars(PROVENANCE).isel(time=[0, 1, 3, 4])
    assert_dataset_values(kept, open_sources(raw_sst))

    # GSLA: the four real files, the last one applied after its replay.
    gsla = open_store(tmp_path / "data/zarr/gsla.zarr")
    raw_gsla = sorted((tmp_path / "data/raw/IMOS/OceanCurrent/GSLA").glob("*.nc"))
    assert gsla.sizes["TIME"] == len(raw_gsla) == 4
    for slot, path in enumerate(raw_gsla):
        with xr.open_dataset(path) as src:
            np.testing.assert_array_equal(gsla["GSLA"].isel(TIME=slot).values,
                                          src["GSLA"].isel(TIME=0).values)

    # Argo: the float's rows as its revised file, the CTD tag's rows blanked.
    argo = open_store(tmp_path / "data/zarr/argo.zarr")
    with xr.open_dataset(tmp_path / "data/raw/argo/2902093_prof.nc") as src:
        n = src.sizes["N_PROF"]
        levels = src.sizes["N_LEVELS"]
        np.testing.assert_array_equal(argo["TEMP"].values[:n, :levels], src["TEMP"].values)
    assert np.all(np.isnan(argo["TEMP"].values[n:]))

    queue = subprocess.run([zru_path(), "queue", "--state-dir", "data/state/demo", "--json"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(queue.stdout) == {"groups": [], "dead_letters": []}, queue.stdout


def versioned_section(out: str) -> str:
    """The demo's output from the Icechunk dataset's first step on."""
    start = out.index("SST in an Icechunk repository")
    return out[start:out.index("demo finished")]


def test_demo_commits_a_batch_rolls_a_bad_file_back_and_prints_the_history(demo):
    tmp_path, out = demo
    section = versioned_section(out)
    bad = re.search(r"bad file.*?slot 1: (\d+) pixels changed", section, re.S)
    assert bad and int(bad.group(1)) > 0, section
    rolled = re.search(r"rolled back (\S+) -> (\S+)", section)
    assert rolled and rolled.group(1) != rolled.group(2), section
    undone = [l for l in section.splitlines() if l.strip().startswith("undone")]
    assert len(undone) == 1 and "sst-versioned/20240202" in undone[0], section
    assert "slot 1: 0 pixels differ from the first batch" in section, section

    # The history: the first batch's commit (both days) is the tip, the bad file's
    # commit is gone from the branch; the log the demo printed is `zru log`'s.
    log = run_zru("log", "--config", "config", "sst_versioned", "--json",
                  cwd=tmp_path, expect_ok=True).stdout
    commits = [json.loads(line) for line in log.splitlines()]
    assert commits[0]["id"] == rolled.group(2), commits
    assert sorted(e["key"].split("/")[1][:8] for e in commits[0]["events"]) == \
        ["20240201", "20240202"], commits
    assert all(e["kind"] == "created" for e in commits[0]["events"]), commits
    assert not any(c["id"] == rolled.group(1) for c in commits), commits
    text = run_zru("log", "--config", "config", "sst_versioned",
                   cwd=tmp_path, expect_ok=True).stdout
    history = section[section.index("zru log sst_versioned"):]
    for line in text.splitlines():
        assert line in history, (line, history)
