"""The tutorial (docs/tutorial.ipynb) runs from top to bottom, on the real Omniglot when it is here
and on the shipped probe set when it is not.

The notebook is executed as a copy in a temporary folder, with its working directory set to
docs/ so that it finds the repository; the stored notebook is left as it is. To refresh the
stored outputs after editing the notebook::

    python tests/test_tutorial.py            # executes docs/tutorial.ipynb in place
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "docs" / "tutorial.ipynb"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "omniglot"
CELL_TIMEOUT_S = 600  # per cell; the whole notebook takes about a minute on one core
KERNEL = "python3"


def _omniglot_dir() -> Path | None:
    env = os.environ.get("REPSIM_DATA")
    for cand in ([Path(env)] if env else []) + [DEFAULT_DATA]:
        if (cand / "images_background.zip").exists() or (cand / "images_background").is_dir():
            return cand
    return None


def execute(nb, workdir: Path):
    """Run every cell of ``nb`` in a fresh kernel whose working directory is ``workdir``.

    Skips the calling test (with the reason) only when the kernel cannot start; an error in a
    cell raises ``nbclient.exceptions.CellExecutionError`` naming the cell and its traceback.
    """
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        record_timing=False,  # no per-cell timestamps in the stored notebook
        coalesce_streams=True,  # one stdout block per cell
        resources={"metadata": {"path": str(workdir)}},
    )
    client.km = client.create_kernel_manager()
    try:
        client.start_new_kernel(cwd=str(workdir))
        client.start_new_kernel_client()
    except Exception as exc:  # no kernelspec, ipykernel missing, kernel died at start, ...
        if client.km.has_kernel:
            client.km.shutdown_kernel(now=True)
        pytest.skip(f"the Jupyter kernel {KERNEL!r} cannot start ({type(exc).__name__}: {exc})")
    return client.execute()


def _kernel_env(monkeypatch, data_dir: Path | None, cache_dir: Path | None = None) -> None:
    """One thread (the tutorial's timing), and the data folder or none, for the kernel."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    if data_dir is None:
        monkeypatch.delenv("REPSIM_DATA", raising=False)
    else:
        monkeypatch.setenv("REPSIM_DATA", str(data_dir))
    if cache_dir is not None:
        monkeypatch.setenv("REPSIM_CACHE", str(cache_dir))


def _read(path: Path = NOTEBOOK):
    nbformat = pytest.importorskip("nbformat", reason="the tutorial test needs nbformat")
    pytest.importorskip("nbclient", reason="the tutorial test needs nbclient (pip install .[test])")
    return nbformat.read(path, as_version=4)


def _errors(nb) -> list[str]:
    return [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def _text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []))


def test_the_tutorial_runs_from_top_to_bottom(tmp_path, monkeypatch):
    import nbformat

    nb = _read()
    _kernel_env(monkeypatch, _omniglot_dir())
    start = time.perf_counter()
    execute(nb, REPO / "docs")
    seconds = time.perf_counter() - start
    nbformat.write(nb, tmp_path / "tutorial.executed.ipynb")  # kept by pytest for a look
    assert not _errors(nb)
    images = sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )
    assert images >= 3, "the similarity, MAML vs ANIL and freezing figures"
    print(f"tutorial executed in {seconds:.0f} s")


def test_without_the_data_the_tutorial_says_why_and_uses_the_probe_set(tmp_path, monkeypatch):
    nb = _read()
    data = [i for i, c in enumerate(nb.cells) if "data" in c.metadata.get("tags", [])]
    assert data, "the cell that loads the tasks is tagged 'data'"
    nb.cells = nb.cells[: data[0] + 1]  # setup, load, tasks: the cells that touch the data
    _kernel_env(monkeypatch, tmp_path / "no-omniglot", cache_dir=tmp_path / "cache")
    execute(nb, REPO / "docs")
    assert not _errors(nb)
    said = _text(nb.cells[-1])
    assert "probe set" in said and "REPSIM_DATA" in said, said


def main() -> None:
    """Execute docs/tutorial.ipynb in place (real data, one thread), for the stored outputs."""
    import nbformat

    data = _omniglot_dir()
    if data is None:
        sys.exit("set REPSIM_DATA to the Omniglot folder: the stored outputs use the real data")
    os.environ["REPSIM_DATA"] = str(data)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    nb = _read()
    start = time.perf_counter()
    execute(nb, NOTEBOOK.parent)
    for cell in nb.cells:  # keep the stored notebook free of run-to-run churn
        cell.metadata.pop("execution", None)
    nbformat.write(nb, NOTEBOOK)
    print(f"executed {NOTEBOOK} in {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
