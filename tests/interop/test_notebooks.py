"""The notebooks in notebooks/ run headless and every cell succeeds.

Each notebook checks its own claims with asserts (a failed assert is a cell error).
They are executed in memory from the committed file (outputs are not written back;
the executed copy is saved under the test's tmp_path for inspection) with the
`python3` kernel of the running interpreter, in notebooks/ as working directory.
The zru binary comes from $ZRU_BIN (set by scripts/test.sh).
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"gridded.ipynb", "profiles.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path, zru_bin):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # start from a clean copy: no committed outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except (CellExecutionError, DeadKernelError, TimeoutError) as error:
        pytest.fail(f"{path.name}: {error}", pytrace=False)
    finally:
        nbformat.write(nb, tmp_path / path.name)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.execution_count for c in ran), "some cells did not run"
    errors = [o for c in ran for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
