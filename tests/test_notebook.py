"""notebooks/explore_cube.ipynb runs end to end on a tiny cube (and its rechunked copy)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lst_pipeline.io.rechunk import execute_rechunk, plan_rechunk

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_cube.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.slow
def test_notebook_runs_on_a_tiny_cube(small_cube, client, tmp_path, monkeypatch):
    copy = tmp_path / "cube_timeseries.zarr"
    execute_rechunk(plan_rechunk(small_cube.output.cube, copy, chunks=(-1, 16, 16)), client,
                    progress=False)
    monkeypatch.setenv("LST_CUBE", str(small_cube.output.cube))
    monkeypatch.setenv("LST_TIMESERIES_CUBE", str(copy))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is this interpreter (jupyter_client maps the python3 kernel to sys.executable).
    NotebookClient(nb, kernel_name="python3", timeout=180,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if o.get("output_type") == "stream")
    assert "CRS: EPSG:32755" in text
    assert "time-series copy" in text  # the layout comparison saw both stores
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images >= 6  # day maps, point series, its sigma band, monthly means, flags, region
    assert "error model of reference_change fitted on" in text  # the cube has lst_uncertainty
    assert not any(o.get("output_type") == "error" for o in outputs)
