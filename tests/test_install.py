"""The newcomer's path: a wheel, installed into a fresh environment, runs the main command from
an unrelated folder with no dataset configured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from repsim.packaged import DEFAULT_CHECKPOINT_NAME, PROBE_SET_NAME

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DATA_LIMIT = 1 << 20  # the default checkpoint (~450 KB) and the probe set (~90 KB)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel of a clean copy of the sources (no build/ or egg-info left in the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "repsim", src / "repsim", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + [str(src), "-w", str(dist)]
    )
    (wheel,) = dist.glob("repsim_maml-*.whl")
    return wheel


def _fresh_env(tmp_path: Path) -> Path:
    """A new virtual environment that sees this one's dependencies (torch, numpy, ...) through a
    ``.pth`` line, but not this checkout's repsim: a line added by a ``.pth`` file is not itself
    scanned for ``.pth`` files, so the editable install's hook stays out."""
    env = tmp_path / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)])
    python = env / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "_repsim_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return python


def test_a_wheel_installed_in_a_fresh_environment_runs_repsim_similarity(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    assets = {n: s for n, s in sizes.items() if n.startswith("repsim/assets/")}
    assert f"repsim/assets/{DEFAULT_CHECKPOINT_NAME}" in assets
    assert f"repsim/assets/{PROBE_SET_NAME}" in assets
    assert sum(assets.values()) < PACKAGE_DATA_LIMIT, f"package data grew: {assets}"

    python = _fresh_env(tmp_path)
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
        + [
            "--no-index",
            str(wheel),
        ]
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REPSIM_DATA", "PYTHONPATH")}
    env.update(REPSIM_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    where = _run(
        [str(python), "-c", "import repsim; print(repsim.__file__)"], cwd=elsewhere, env=env
    )
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "env"), where.stdout

    repsim_cmd = python.parent / "repsim"
    result = _run(
        [str(repsim_cmd), "similarity", "--tasks", "2", "--out", "out"], cwd=elsewhere, env=env
    )
    assert "shipped probe set" in result.stderr
    record = json.loads((elsewhere / "out" / "similarity.json").read_text())
    assert record["meta"]["checkpoint"]["name"] == DEFAULT_CHECKPOINT_NAME
    assert {r["layer"] for r in record["summary"]} >= {"conv1", "head"}
