#!/usr/bin/env python3
"""Executes the notebooks in notebooks/ headless (nbclient, kernel `python3`).

    .venv/bin/python scripts/run_notebooks.py            # run every notebook, save nothing
    .venv/bin/python scripts/run_notebooks.py --write    # run and save outputs into the .ipynb
    .venv/bin/python scripts/run_notebooks.py notebooks/gridded.ipynb

Exit status 1 if a cell fails (an error or a failed assert), naming the notebook and
cell. Notebooks run with notebooks/ as working directory and find the zru binary in
$ZRU_BIN (default <repo>/target/release/zru). With --write, the PNG of each cell tagged
`export:PATH` is also written to PATH (relative to the repository), for the README.
Run with the venv's python: the kernel is that python (`python3` kernelspec).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(path: Path, timeout: int = 300) -> nbformat.NotebookNode:
    """Runs every cell of `path` in a fresh `python3` kernel; returns the notebook with
    outputs. Raises CellExecutionError on the first failing cell (DeadKernelError if the
    kernel dies, TimeoutError if a cell runs longer than `timeout` seconds)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def strip_volatile(nb: nbformat.NotebookNode) -> None:
    """Drops per-run metadata (timings) so that re-running changes only real outputs."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def export_images(nb: nbformat.NotebookNode) -> list[Path]:
    written = []
    for cell in nb.cells:
        for tag in cell.metadata.get("tags", []):
            if not tag.startswith("export:"):
                continue
            pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                    if "image/png" in o.get("data", {})]
            if len(pngs) != 1:
                raise SystemExit(f"cell tagged {tag} has {len(pngs)} PNG outputs, expected 1")
            target = ROOT / tag[len("export:"):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(pngs[0]))
            written.append(target)
    return written


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--write", action="store_true",
                        help="save the outputs back into each .ipynb (and export tagged images)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {NOTEBOOKS}", file=sys.stderr)
        return 1
    failed = []
    for path in paths:
        started = time.monotonic()
        try:
            nb = execute(path, args.timeout)
        except (CellExecutionError, DeadKernelError, TimeoutError) as error:
            print(f"FAIL  {shown(path)}\n{error}", file=sys.stderr)
            failed.append(path)
            continue
        took = time.monotonic() - started
        if args.write:
            strip_volatile(nb)
            nbformat.write(nb, path)
            for image in export_images(nb):
                print(f"      wrote {image.relative_to(ROOT)}")
        size = path.stat().st_size / 1e6
        print(f"ok    {shown(path)}  {took:.1f} s"
              + (f"  saved ({size:.2f} MB)" if args.write else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
