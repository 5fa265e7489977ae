"""Small helpers shared by the notebooks in this directory.

They find the repository, the ``zru`` binary (``$ZRU_BIN``, else
``<repo>/target/release/zru``) and the real files (``<repo>/tests/data``), run
zru through ``subprocess`` in a throw-away workspace (raw bucket + config + stores in
a temporary directory), and draw the provenance strips. Everything the notebooks
claim is checked in the notebooks themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def _find_repo() -> Path:
    here = Path(__file__).resolve().parent
    for path in (here, *here.parents):
        if (path / "Cargo.toml").is_file() and (path / "src" / "bin" / "zru.rs").is_file():
            return path
    raise RuntimeError(f"no zru repository above {here}")


REPO = _find_repo()
SHARED_DATA = Path(os.environ.get("ZRU_SHARED_DATA", REPO / "tests" / "data"))
PROVENANCE = "zru_source_key"


def zru_bin() -> Path:
    path = Path(os.environ.get("ZRU_BIN", REPO / "target" / "release" / "zru"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"zru binary not found at {path}: run `cargo build --release --bins` "
            "in the repository or set ZRU_BIN")
    return path


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"real file missing: {path} (see tests/data/README.md)")
    return path


def run_zru(*args, ok_codes=(0,)) -> subprocess.CompletedProcess:
    """Runs zru; an exit code outside ``ok_codes`` raises with its output."""
    argv = [str(zru_bin()), *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"zru exited with {proc.returncode}: {' '.join(argv)}\n"
                           f"{proc.stdout}\n{proc.stderr}")
    return proc


def parse_events(stdout: str) -> list[dict]:
    """The JSON event records of ``zru ingest/remove --json``: every stdout line that
    is a JSON object with an ``action`` (other lines are ignored)."""
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "action" in rec:
            records.append(rec)
    return records


def region_of(rec: dict, dim: str) -> tuple[int, int] | None:
    region = rec.get("region") or {}
    if dim not in region:
        return None
    start, stop = region[dim]
    return int(start), int(stop)


def show_events(records: list[dict]) -> None:
    for rec in records:
        region = rec.get("region") or {}
        where = " ".join(f"{d}[{a}:{b}]" for d, (a, b) in region.items())
        detail = rec.get("reason") or where  # a reason, when given, names the region too
        print(f"{rec.get('key', '?'):<62} {rec.get('action', '?'):<10} {detail}")


class Workspace:
    """A temporary raw bucket, configuration directory and store directory."""

    def __init__(self, name: str):
        self.root = Path(tempfile.mkdtemp(prefix=f"zru-notebook-{name}-"))
        self.raw = self.root / "raw"
        self.config = self.root / "config"
        self.stores = self.root / "zarr"
        self.scratch = self.root / "scratch"
        for d in (self.raw, self.config, self.stores, self.scratch):
            d.mkdir()

    def dataset(self, name: str, **config) -> Path:
        """Writes ``config/<name>.json``; returns the store path."""
        store = self.stores / f"{name}.zarr"
        doc = {"name": name, **config, "store": str(store)}
        (self.config / f"{name}.json").write_text(json.dumps(doc, indent=2))
        return store

    def put(self, source: Path, key: str) -> Path:
        """Copies ``source`` into the raw bucket as object ``key``."""
        target = self.raw / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def delete(self, key: str) -> None:
        (self.raw / key).unlink()

    def _events(self, command: str, items, quiet: bool) -> list[dict]:
        proc = run_zru(command, "--config", self.config, "--raw-root", self.raw, "--json",
                       *items, ok_codes=(0, 1))
        records = parse_events(proc.stdout)
        if not quiet:
            show_events(records)
        if proc.returncode not in (0, 1) or not records:
            raise RuntimeError(f"zru {command}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return records

    def ingest(self, *keys: str, quiet: bool = False) -> list[dict]:
        """``zru ingest`` of raw-bucket objects (created/revised events), in order."""
        return self._events("ingest", [self.raw / k for k in keys], quiet)

    def remove(self, *keys: str, quiet: bool = False) -> list[dict]:
        """``zru remove`` of object keys (removed events)."""
        return self._events("remove", list(keys), quiet)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def inspect(store: Path) -> dict:
    return json.loads(run_zru("inspect", store, "--json").stdout)


def inspect_text(store: Path) -> str:
    """``zru inspect`` text with the temporary directory left out."""
    text = run_zru("inspect", store).stdout
    return text.replace(str(Path(store).parent) + os.sep, "")


# ------------------------------------------------------------------ plots


def short_key(key: str) -> str:
    """A label for an object key: the file name, shortened."""
    if not key:
        return "(blank)"
    name = key.rsplit("/", 1)[-1]
    if name.startswith("IMOS_OceanCurrent_HV_"):
        return "GSLA " + name[len("IMOS_OceanCurrent_HV_"):][:8]
    if "-ZRU-L3S_GHRSST" in name:
        return "SST " + name[:8]
    return name


def plot_provenance(ax, history, title="", dim="slot"):
    """One row per step, one cell per slot (or row) of the append dimension, coloured by
    the object key it came from; blank slots are light grey. ``history`` is a list of
    ``(label, keys)`` with ``keys`` the provenance array after that step."""
    import matplotlib.colors as mcolors
    from matplotlib.patches import Patch

    keys_seen = []
    for _, keys in history:
        for k in keys:
            if k and k not in keys_seen:
                keys_seen.append(k)
    width = max(len(keys) for _, keys in history)
    grid = np.full((len(history), width), np.nan)
    for i, (_, keys) in enumerate(history):
        for j, k in enumerate(keys):
            grid[i, j] = keys_seen.index(k) + 1 if k else 0
    palette = ["#e6e6e6"] + [f"C{i % 10}" for i in range(len(keys_seen))]
    cmap = mcolors.ListedColormap(palette)
    cmap.set_bad("white")
    norm = mcolors.BoundaryNorm(np.arange(-0.5, len(palette)), len(palette))
    ax.pcolormesh(np.arange(width + 1) - 0.5, np.arange(len(history) + 1) - 0.5,
                  np.ma.masked_invalid(grid), cmap=cmap, norm=norm,
                  edgecolors="white" if width <= 40 else "face", linewidth=1.5 if width <= 40 else 0)
    ax.set_yticks(range(len(history)), [label for label, _ in history])
    ax.invert_yaxis()
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_xlabel(f"{dim} index")
    if width <= 40:
        ax.set_xticks(range(width))
    ax.set_title(title)
    handles = [Patch(color=palette[0], label="blank (no source)")] + [
        Patch(color=palette[i + 1], label=short_key(k)) for i, k in enumerate(keys_seen)]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
