"""`zru config check` on directories of broken configurations: each exits non-zero
and names the file, the key and a fix (docs/config.md, "Validation rules"); the
commands that load the catalog refuse the same directories."""

import json
from pathlib import Path

import pytest

from conftest import run_zru

GOOD = {
    "name": "sst", "handler": "gridded", "key_patterns": ["^sst/.*\\.nc$"],
    "store": "data/zarr/sst.zarr", "append_dim": "time",
    "chunks": {"time": 1, "lat": 50, "lon": 60}, "time_step": "1 day",
}


def other(name: str, **changes) -> dict:
    """A second, valid dataset with its own directory and store."""
    cfg = {**GOOD, "name": name, "key_patterns": [f"^{name}/.*\\.nc$"],
           "store": f"data/zarr/{name}.zarr"}
    cfg.update(changes)
    return cfg


# (case id, {file name: config (dict) or raw text}, bad file, key, text in the message)
CASES = [
    ("tolerance-vs-step", {"sst.json": {**GOOD, "time_step": "2 milliseconds"}},
     "sst.json", "time_tolerance", "half of time_step"),
    ("tiny-step", {"sst.json": {**GOOD, "time_step": "1e-6 seconds"}},
     "sst.json", "time_step", "below 1 millisecond"),
    ("negative-tolerance", {"sst.json": {**GOOD, "time_tolerance": "-1 second"}},
     "sst.json", "time_tolerance", "negative"),
    ("absurd-chunk", {"sst.json": {**GOOD, "chunks": {"time": 10**12}}},
     "sst.json", "chunks.time", "maximum"),
    ("zero-chunk", {"sst.json": {**GOOD, "chunks": {"time": 0}}},
     "sst.json", "chunks.time", "minimum"),
    ("chunk-product", {"sst.json": {**GOOD, "chunks": {"time": 64, "lat": 4096, "lon": 4096}}},
     "sst.json", "chunks", "2^28"),
    ("empty-provenance", {"sst.json": {**GOOD, "provenance_variable": ""}},
     "sst.json", "provenance_variable", ""),
    ("provenance-is-append-dim", {"sst.json": {**GOOD, "provenance_variable": "time"}},
     "sst.json", "provenance_variable", "append_dim"),
    ("overlapping-patterns",
     {"a.json": GOOD, "b.json": other("b", key_patterns=["^sst/.*L3S.*\\.nc$"])},
     "b.json", "key_patterns", "a.json"),
    ("same-store-alias",
     {"a.json": GOOD, "b.json": other("b", store="data/zarr/../zarr/sst.zarr")},
     "b.json", "store", "a.json"),
    ("store-dot", {"sst.json": {**GOOD, "store": "."}},
     "sst.json", "store", "working directory"),
    ("store-escapes", {"sst.json": {**GOOD, "store": "../sst.zarr"}},
     "sst.json", "store", ".."),
    ("store-in-raw-root", {"sst.json": {**GOOD, "store": "data/raw/sst.zarr"}},
     "sst.json", "store", "raw root"),
    ("s3-one-slash", {"sst.json": {**GOOD, "store": "s3:/bucket/sst.zarr"}},
     "sst.json", "store", "mistyped URL"),
    ("s3-no-colon", {"sst.json": {**GOOD, "store": "s3//bucket/sst.zarr"}},
     "sst.json", "store", "//"),
    ("gs-url", {"sst.json": {**GOOD, "store": "gs://bucket/sst.zarr"}},
     "sst.json", "store", "only local paths"),
    ("zstd-level", {"sst.json": {**GOOD, "compressor": {"name": "zstd", "level": 99}}},
     "sst.json", "compressor.level", "22"),
    ("unknown-compressor", {"sst.json": {**GOOD, "compressor": {"name": "lzma"}}},
     "sst.json", "compressor.name", "lzma"),
    ("duplicate-name", {"a.json": GOOD, "b.json": other("sst")},
     "b.json", "name", "a.json"),
    ("unknown-key", {"sst.json": {**GOOD, "time_stepp": "1 day"}},
     "sst.json", "time_stepp", "unknown key"),
]


def write_dir(root: Path, files: dict) -> Path:
    config = root / "config"
    config.mkdir(parents=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (config / name).write_text(text, encoding="utf-8")
    (root / "data" / "raw").mkdir(parents=True)
    return config


@pytest.mark.parametrize("case,files,bad,key,needle", CASES, ids=[c[0] for c in CASES])
def test_config_check_rejects(tmp_path, case, files, bad, key, needle):
    config = write_dir(tmp_path, files)
    res = run_zru("config", "check", "--config", "config", cwd=tmp_path, expect_ok=False)
    assert res.returncode == 1, res.describe()
    lines = [line for line in res.stdout.splitlines() if line.startswith("error\t")]
    prefix = f"error\tconfig/{bad}: {key}: "
    assert any(line.startswith(prefix) and needle in line and "; " in line for line in lines), (
        f"{case}: no line starts {prefix!r} and mentions {needle!r}\n" + res.describe())
    # Every command that loads the catalog refuses the directory as well.
    res = run_zru("flush", "--config", "config", "--raw-root", "data/raw",
                  "--state-dir", "data/state", cwd=tmp_path, expect_ok=False)
    assert f"config/{bad}" in res.output, res.describe()
    assert not (tmp_path / "data" / "zarr").exists()
    assert config.is_dir()


def test_config_check_reports_raw_keys_two_datasets_match(tmp_path):
    # A case-insensitive pattern whose samples are upper case: the witnesses miss the
    # overlap, the real key under the raw root shows it.
    upper = other("upper", key_patterns=["(?i)^SST/[0-9]{4}/[^/]+\\.NC$"])
    write_dir(tmp_path, {"a.json": GOOD, "b.json": upper})
    res = run_zru("config", "check", "--config", "config", cwd=tmp_path)
    assert res.returncode == 0, res.describe()
    key = "sst/2024/day.nc"
    (tmp_path / "data" / "raw" / "sst" / "2024").mkdir(parents=True)
    (tmp_path / "data" / "raw" / key).write_bytes(b"")
    res = run_zru("config", "check", "--config", "config", cwd=tmp_path, expect_ok=False)
    assert f"error\tconfig/b.json: key_patterns: " in res.stdout, res.describe()
    assert key in res.stdout, res.describe()


def test_config_with_a_bom_and_schema_key_checks_fine(tmp_path):
    doc = {"$schema": "../docs/config.schema.json", **GOOD}
    write_dir(tmp_path, {"sst.json": "\ufeff" + json.dumps(doc)})
    res = run_zru("config", "check", "--config", "config", cwd=tmp_path, expect_ok=True)
    assert "ok\tconfig/sst.json\tsst" in res.stdout, res.describe()


def test_ingest_rejects_a_file_with_a_variable_named_like_the_provenance(tmp_path):
    # The config cannot know the files' variables: `quality_level` passes the check,
    # and the ingest of a file that has it is rejected with a reason, store untouched.
    from conftest import ingest, place, sample
    gen = sample(tmp_path / "gen", days=1, lat=10, lon=12)
    write_dir(tmp_path, {"sst.json": {**GOOD, "provenance_variable": "quality_level"}})
    run_zru("config", "check", "--config", "config", cwd=tmp_path, expect_ok=True)
    raw = tmp_path / "data" / "raw"
    path = place(gen[0], raw, f"sst/{gen[0].name}")
    res = ingest(tmp_path / "config", raw, [path], cwd=tmp_path, expect_ok=False)
    assert "provenance_variable" in res.output and "quality_level" in res.output, res.describe()
    assert not (tmp_path / "data" / "zarr" / "sst.zarr" / "quality_level").exists()
