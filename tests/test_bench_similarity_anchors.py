"""The reference-code benchmark's plumbing (analysis/bench_similarity.py --anchors), run on
stand-in modules with the reference functions' signatures, written here from their
definitions (the real ones live outside the repository)."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STAND_INS = {
    "cca_core.py": """
        import numpy as np

        def get_cca_similarity(acts1, acts2, epsilon=0.0, threshold=0.98, compute_coefs=True,
                               compute_dirns=False, verbose=True):
            x = acts1 - acts1.mean(1, keepdims=True)
            y = acts2 - acts2.mean(1, keepdims=True)
            def inv_sqrt(c):
                w, v = np.linalg.eigh(c)
                return (v / np.sqrt(w)) @ v.T
            m = inv_sqrt(x @ x.T) @ (x @ y.T) @ inv_sqrt(y @ y.T)
            s = np.linalg.svd(m, compute_uv=False)
            i = next((i for i in range(len(s)) if s[:i].sum() / s.sum() >= threshold), None)
            return {"mean": (s[:i].mean(), s[:i].mean()), "cca_coef1": s, "cca_coef2": s}
    """,
    "pwcca.py": """
        import cca_core

        def compute_pwcca(acts1, acts2, epsilon=0.0):
            s = cca_core.get_cca_similarity(acts1, acts2)["cca_coef1"]
            return s.mean(), None, s
    """,
    "kornblith_cka.py": """
        import numpy as np

        def _hsic_u(k, m):  # Song et al. (2012), on Gram matrices
            n = len(k)
            k, m = k - np.diag(np.diag(k)), m - np.diag(np.diag(m))
            return (np.trace(k @ m) + k.sum() * m.sum() / ((n - 1) * (n - 2))
                    - 2 * k.sum(0) @ m.sum(0) / (n - 2))

        def feature_space_linear_cka(x, y, debiased=False):
            x = (x - x.mean(0)).astype(np.float64)
            y = (y - y.mean(0)).astype(np.float64)
            k, m = x @ x.T, y @ y.T
            if debiased:
                return _hsic_u(k, m) / np.sqrt(_hsic_u(k, k) * _hsic_u(m, m))
            return (k * m).sum() / np.sqrt((k * k).sum() * (m * m).sum())

        def gram_rbf(x, threshold=1.0):
            d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
            return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))

        def cka(gram_x, gram_y, debiased=False):
            h = np.eye(len(gram_x)) - 1.0 / len(gram_x)
            k, m = h @ gram_x @ h, h @ gram_y @ h
            return (k * m).sum() / np.sqrt((k * k).sum() * (m * m).sum())
    """,
}


@pytest.fixture()
def bench(tmp_path, monkeypatch):
    for name, text in STAND_INS.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    for mod in ("cca_core", "pwcca", "kornblith_cka"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location(
        "bench_sim", ROOT / "analysis/bench_similarity.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, tmp_path


def test_anchor_table_times_and_cross_checks_every_measure(bench, capsys):
    module, folder = bench
    rows = module.anchors_table(str(folder), repeats=1, sizes=[(60, 4)])
    measures = {r["measure"] for r in rows}
    assert measures == {
        "mean CCA (0.98)",
        "SVCCA (99 %)",
        "PWCCA",
        "linear CKA",
        "debiased linear CKA",
        "RBF CKA",
    }
    assert {r["input"] for r in rows} == {"float64", "float32"}
    by = {(r["measure"], r["input"]): r for r in rows}
    for (measure, _), row in by.items():
        assert row["ratio"] > 0 and row["floor_s"] > 0
        if measure != "PWCCA":  # the stand-ins compute the same values as repsim
            assert row["check"].startswith("ok"), row
    assert by[("linear CKA", "float32")]["ratio_vs_repsim_float32"] > 0
    assert "| RBF CKA |" in capsys.readouterr().out


def test_a_missing_anchor_file_is_named(bench):
    module, folder = bench
    (folder / "pwcca.py").unlink()
    with pytest.raises(SystemExit, match="pwcca.py"):
        module.load_anchors(str(folder))
