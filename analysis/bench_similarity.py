"""Speed of repsim's similarity measures next to the peers that install from PyPI.

Usage: ``python analysis/bench_similarity.py [--threads 2] [--repeats 5] [--quick]``
and, against the reference code itself, ``python analysis/bench_similarity.py --anchors DIR
--threads 1`` (see :func:`anchors_table`).

For each (n, d) in {(2000, 64), (5000, 256), (10000, 512)} and each input dtype (float32,
float64) it times repsim and every peer where the measure applies, on the same inputs (x random,
y a noisy linear map of x), and prints markdown tables: repsim's median time, the flop-bound
time at this machine's measured float64 matmul rate (repsim computes in float64 by default), and
each peer's median time as a ratio to repsim (> 1: repsim is faster). The "agrees" check
compares each peer's value with repsim's.

Peers (``pip install ckatorch torch-cka cca-zoo rsatoolbox`` and ``pip install --no-deps
cka-pytorch``; see ``[project.optional-dependencies] bench``):

* ckatorch ``cka_base`` -- Gram-space linear / unbiased / RBF CKA (float64).
* torch-cka ``CKA._HSIC`` -- unbiased HSIC on Gram matrices, as its ``compare`` loop does it.
* cka-pytorch ``hsic.hsic1`` -- batched unbiased HSIC (its package ``__init__`` needs
  ``lightning``, so the ``hsic`` module is loaded from its file).
* cca-zoo ``CCA(n_components=min(d)).fit(...).score(...)`` -- mean canonical correlation.
* numpy references written here: google/svcca-style CCA (covariance, pinv square roots, SVD) and
  Kornblith-style feature-space linear CKA.
* rsatoolbox installs but offers neither CKA nor CCA (it compares RDMs), so it has no column.

A peer is skipped (said so in the table) where one call would take more than ``--max-peer-s``
seconds: estimated from its flop count at the measured matmul rate (the O(n^3) Gram-space
HSICs), or extrapolated from its time at the previous size (cca-zoo).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from repsim import similarity as sim

SIZES = [(2000, 64), (5000, 256), (10000, 512)]


# ---------------------------------------------------------------------------------------------
# Reference implementations written plainly (numpy)
# ---------------------------------------------------------------------------------------------


def numpy_svcca_style_cca(x: np.ndarray, y: np.ndarray) -> float:
    """google/svcca cca_core style: covariances, pinv + matrix square roots, SVD; mean rho."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    n = x.shape[0]
    sxx, syy, sxy = x.T @ x / (n - 1), y.T @ y / (n - 1), x.T @ y / (n - 1)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(np.linalg.pinv(s))
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    m = inv_sqrt(sxx) @ sxy @ inv_sqrt(syy)
    return float(np.linalg.svd(m, compute_uv=False).mean())


def numpy_feature_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s feature-space linear CKA in numpy (float64)."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


# ---------------------------------------------------------------------------------------------
# The reference code itself (google/svcca, Kornblith et al.), loaded from --anchors DIR
# ---------------------------------------------------------------------------------------------

ANCHOR_FILES = {
    "cca_core.py": "google/svcca cca_core.py (github.com/google/svcca)",
    "pwcca.py": "google/svcca pwcca.py",
    "kornblith_cka.py": "Kornblith et al.'s gram_rbf, center_gram, cka, feature_space_linear_cka "
    "(google-research representation_similarity/Demo.ipynb), saved as a module",
}


def load_anchors(folder: str):
    """The reference modules from ``folder`` (kept outside the repository: nothing of their code
    is committed here). Returns ``(cca_core, pwcca, kornblith)``."""
    import sys

    missing = [f for f in ANCHOR_FILES if not os.path.exists(os.path.join(folder, f))]
    if missing:
        raise SystemExit(
            f"--anchors {folder}: missing {', '.join(missing)}; put there: "
            + "; ".join(f"{f} = {what}" for f, what in ANCHOR_FILES.items())
        )
    sys.path.insert(0, folder)  # pwcca.py does `import cca_core`
    import cca_core
    import kornblith_cka
    import pwcca

    return cca_core, pwcca, kornblith_cka


def google_svcca(cca_core, x: np.ndarray, y: np.ndarray, keep: float = 0.99) -> float:
    """google/svcca's tutorial recipe: centre, SVD of (neurons, datapoints), keep the top
    directions (here: 99 % of the variance, as repsim's ``svcca``), CCA of the projections, mean
    of all coefficients."""

    def reduce(a):
        a = a.T - a.T.mean(axis=1, keepdims=True)
        _, s, v = np.linalg.svd(a, full_matrices=False)
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(frac, keep - 1e-12)) + 1
        return s[:k, None] * v[:k]

    res = cca_core.get_cca_similarity(reduce(x), reduce(y), epsilon=0.0, verbose=False)
    return float(np.mean(res["cca_coef1"]))


def kornblith_median_sigma(x: np.ndarray) -> float:
    """The bandwidth Kornblith's ``gram_rbf(x, 1.0)`` uses: sqrt of the median of all n^2
    squared distances (diagonal zeros included)."""
    x = x.astype(np.float64)
    g = x @ x.T
    sq = np.diag(g)
    return float(np.sqrt(np.median(-2 * g + sq[:, None] + sq[None, :])))


def cpu_time(fn: Callable[[], float], repeats: int, budget_s: float = 30.0):
    """(median CPU seconds of this process, value): robust to other processes on the machine;
    with 1 thread it equals wall time on an idle one."""
    t0 = time.process_time()
    value = fn()
    first = time.process_time() - t0
    if first * repeats > budget_s:
        return first, value
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), value


def anchors_table(folder: str, repeats: int, sizes, out_json: str | None = None) -> list[dict]:
    """repsim against the reference code, float64 and float32 input, 1 thread: the time ratio
    (reference / repsim, > 1: repsim faster), each time against its product floor, and the
    values cross-checked.

    Floors count only the products at this size's measured rates: a general ``X^T Y`` (2 n dx
    dy flops) and symmetric ``X^T X`` products at half cost (n d^2), i.e. 4 n d^2 for the linear
    CKAs and the CCA family (whose cubic-in-d factorisations are not counted) and 2 n^2 d for
    RBF CKA (two n x n Gram matrices; exponentials, median and sums not counted)."""
    cca_core, pw, kb = load_anchors(folder)
    rows = []
    print("\n### repsim vs the reference code (1 thread, CPU time, median of repeats)\n")
    print(
        "| measure | reference | n x d | input | reference ms | repsim ms | ratio | "
        "repsim / floor | ratio vs repsim dtype=float32 | value check |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, d in sizes:
        x64, y64 = (t.numpy() for t in make_inputs(n, d))
        a, b = torch.from_numpy(x64), torch.from_numpy(y64)
        t_gemm, _ = cpu_time(partial(_product, a.mT, b), 3)
        t_syrk, _ = cpu_time(partial(_product, x64.T, x64), 3)
        floor_lin = 2 * t_syrk + t_gemm
        floor_rbf = 2 * t_syrk * (n / d)  # n^2 d flops per side, at the syrk rate
        sigmas = kornblith_median_sigma(x64), kornblith_median_sigma(y64)
        ref64: dict[str, float] = {}  # the reference's values on float64 input
        for dtype in (np.float64, np.float32):
            x, y = x64.astype(dtype), y64.astype(dtype)
            tol = 1e-6
            cases = [
                (
                    "mean CCA (0.98)",
                    "google get_cca_similarity",
                    partial(_google_cca, cca_core),
                    _cca98,
                    tol,
                ),
                ("SVCCA (99 %)", "google recipe", partial(google_svcca, cca_core), sim.svcca, tol),
                ("PWCCA", "google compute_pwcca", partial(_google_pwcca, pw), sim.pwcca, None),
                (
                    "linear CKA",
                    "Kornblith feature_space_linear_cka",
                    kb.feature_space_linear_cka,
                    sim.linear_cka,
                    tol,
                ),
                (
                    "debiased linear CKA",
                    "Kornblith feature_space_linear_cka(debiased)",
                    partial(kb.feature_space_linear_cka, debiased=True),
                    partial(sim.linear_cka, debiased=True),
                    tol,
                ),
                (
                    "RBF CKA",
                    "Kornblith cka(gram_rbf, gram_rbf)",
                    partial(_kornblith_rbf, kb),
                    sim.rbf_cka,
                    tol,
                ),
            ]
            for measure, ref_name, ref_fn, ours_fn, tol_m in cases:
                r = 1 if measure == "RBF CKA" and n >= 5000 else repeats
                t_ref, v_ref = cpu_time(partial(ref_fn, x, y), r)
                t_us, v_us = cpu_time(partial(ours_fn, x, y), r)
                floor = floor_rbf if measure == "RBF CKA" else floor_lin
                if measure == "RBF CKA":  # check with the reference's own bandwidths
                    v_us = sim.rbf_cka(x, y, sigma=sigmas)
                # float32 input: repsim returns the float64 answer, which is checked against the
                # reference on float64 input (some references compute in float32: 1e-7..6e-4 off)
                ref64.setdefault(measure, v_ref)
                check = _check(ref64[measure], v_us, tol_m)
                like = None
                if dtype == np.float32 and "linear CKA" in measure:  # the reference's precision
                    t32, _ = cpu_time(partial(ours_fn, x, y, dtype=torch.float32), r)
                    like = t_ref / t32
                rows.append(_row(measure, ref_name, n, d, dtype, t_ref, t_us, floor, check, like))
    if out_json:
        import json

        with open(out_json, "w") as fh:
            json.dump(
                {
                    "config": {
                        "repeats": repeats,
                        "sizes": sizes,
                        "threads": torch.get_num_threads(),
                        "torch": torch.__version__,
                        "numpy": np.__version__,
                    },
                    "rows": rows,
                },
                fh,
                indent=1,
            )
    return rows


def _product(a, b) -> float:
    return float((a @ b)[0, 0])


def _google_cca(cca_core, x, y) -> float:
    return float(cca_core.get_cca_similarity(x.T, y.T, verbose=False)["mean"][0])


def _cca98(x, y) -> float:
    return sim.cca(x, y, threshold=0.98)


def _google_pwcca(pw, x, y) -> float:
    return float(pw.compute_pwcca(x.T, y.T, epsilon=0.0)[0])


def _kornblith_rbf(kb, x, y) -> float:
    return float(kb.cka(kb.gram_rbf(x, 1.0), kb.gram_rbf(y, 1.0)))


def _check(v_ref: float, v_us: float, tol: float | None) -> str:
    diff = abs(v_ref - v_us)
    if tol is None:
        return f"differs by {diff:.3g} (its weights are not the canonical variates')"
    return f"ok ({diff:.1e})" if diff <= tol else f"MISMATCH ({diff:.1e})"


def _row(measure, ref_name, n, d, dtype, t_ref, t_us, floor, check, like=None) -> dict:
    row = {
        "measure": measure,
        "reference": ref_name,
        "n": n,
        "d": d,
        "input": np.dtype(dtype).name,
        "reference_s": t_ref,
        "repsim_s": t_us,
        "ratio": t_ref / t_us,
        "floor_s": floor,
        "repsim_over_floor": t_us / floor,
        "check": check,
        "ratio_vs_repsim_float32": like,
    }
    print(
        f"| {measure} | {ref_name} | {n} x {d} | {row['input']} | {t_ref * 1e3:.1f} | "
        f"{t_us * 1e3:.1f} | **{row['ratio']:.2f}** | {row['repsim_over_floor']:.2f} | "
        f"{'' if like is None else f'{like:.2f}'} | {check} |",
        flush=True,
    )
    return row


# ---------------------------------------------------------------------------------------------
# Peers (None when not installed)
# ---------------------------------------------------------------------------------------------


def load_peers() -> tuple[dict[str, dict[str, Callable]], list[str]]:
    """``{measure: {peer: fn(x_tensor, y_tensor) -> float}}`` and notes on missing peers."""
    peers: dict[str, dict[str, Callable]] = {m: {} for m in ("cka", "cka_debiased", "cca")}
    notes = []
    try:
        from ckatorch.core import cka_base

        peers["cka"]["ckatorch"] = lambda x, y: float(cka_base(x, y))
        peers["cka_debiased"]["ckatorch"] = lambda x, y: float(cka_base(x, y, unbiased=True))
        peers.setdefault("rbf_cka", {})["ckatorch"] = lambda x, y: float(
            cka_base(x, y, kernel="rbf")
        )
    except ImportError:
        notes.append("ckatorch: not installed")
    try:
        from torch_cka import CKA as TorchCKA

        class _Dev:
            device = "cpu"

        def torch_cka_debiased(x, y):
            k, l_ = x @ x.T, y @ y.T
            k.fill_diagonal_(0.0)
            l_.fill_diagonal_(0.0)
            h = TorchCKA._HSIC
            return h(_Dev, k, l_) / math.sqrt(h(_Dev, k, k) * h(_Dev, l_, l_))

        peers["cka_debiased"]["torch-cka"] = torch_cka_debiased
    except ImportError:
        notes.append("torch-cka: not installed")
    spec = importlib.util.find_spec("cka_pytorch")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "hsic.py")
        mspec = importlib.util.spec_from_file_location("_cka_pytorch_hsic", path)
        hsic_mod = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(hsic_mod)

        def cka_pytorch_debiased(x, y):
            k, l_ = (x @ x.T)[None], (y @ y.T)[None]
            h = hsic_mod.hsic1
            return float(h(k, l_) / (h(k, k) * h(l_, l_)).sqrt())

        peers["cka_debiased"]["cka-pytorch"] = cka_pytorch_debiased
    else:
        notes.append("cka-pytorch: not installed")
    try:
        from cca_zoo.linear import CCA

        def cca_zoo_mean(x, y):
            xn, yn = x.numpy(), y.numpy()
            k = min(xn.shape[1], yn.shape[1])
            return float(CCA(n_components=k).fit([xn, yn]).score([xn, yn]))

        peers["cca"]["cca-zoo"] = cca_zoo_mean
    except ImportError:
        notes.append("cca-zoo: not installed")
    peers["cca"]["numpy svcca-style"] = lambda x, y: numpy_svcca_style_cca(x.numpy(), y.numpy())
    peers["cka"]["numpy feature-space"] = lambda x, y: numpy_feature_cka(x.numpy(), y.numpy())
    notes.append("rsatoolbox: installs, but has no CKA or CCA (it compares RDMs): no column")
    return peers, notes


# Flops of one call (float64), for the bound and for skipping O(n^3) peers.
def repsim_flops(measure: str, n: int, d: int) -> float:
    nd2 = n * d * d
    return {
        "cka": 6 * nd2,  # X^T X, Y^T Y, X^T Y
        "cka_debiased": 6 * nd2,
        "cca": 10 * nd2,  # 2 QR with explicit Q (~4nd^2 each) + Qx^T Qy
        "svcca": 10 * nd2,
        "pwcca": 14 * nd2,  # + canonical variates and their projections on x
        "rbf_cka": 4 * n * n * d,  # two Gram matrices
    }[measure]


def peer_flops(peer: str, n: int, d: int) -> float:
    if peer in ("torch-cka", "cka-pytorch"):
        return 6.0 * n**3  # three HSICs, each with a K @ L product
    if peer == "ckatorch":
        return 4.0 * n * n * d
    return 0.0


def timeit(fn: Callable[[], float], repeats: int, budget_s: float = 20.0) -> tuple[float, float]:
    """(median seconds, value) over ``repeats`` calls after a warm-up (fewer if slow)."""
    t0 = time.perf_counter()
    value = fn()
    first = time.perf_counter() - t0
    times = [first]
    if first * repeats < budget_s:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    sec, _ = timeit(lambda: float((a @ b)[0, 0]), repeats)
    return 2 * size**3 / sec / 1e9


def make_inputs(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    y = y + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-peer-s", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="only the smallest size")
    parser.add_argument(
        "--anchors",
        metavar="DIR",
        help="folder with the reference code (cca_core.py, pwcca.py, kornblith_cka.py): time "
        "repsim against it instead of the PyPI peers",
    )
    parser.add_argument("--json", metavar="PATH", help="with --anchors: also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:  # the numpy-based peers use numpy's BLAS: give it the same thread count
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    sizes = SIZES[:1] if args.quick else SIZES
    if args.anchors:
        anchors_table(args.anchors, args.repeats, sizes, args.json)
        return

    rate64 = matmul_rate(torch.float64)
    rate32 = matmul_rate(torch.float32)
    print(
        f"threads: torch {torch.get_num_threads()} (numpy BLAS the same), "
        f"cpu_count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"matmul rate (2048^3 GEMM): float32 {rate32:.1f} GFLOP/s, float64 {rate64:.1f} GFLOP/s")
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    peers, notes = load_peers()
    for note in notes:
        print(f"note: {note}")

    measures = ["cka", "cka_debiased", "cca", "svcca", "pwcca", "rbf_cka"]
    per_unit: dict[tuple[str, str], float] = {}  # (measure, peer) -> seconds / (n d^2)
    for measure in measures:
        names = list(peers.get(measure, {}))
        extra = ["repsim dtype=float32"] if measure in ("cka", "cca") else []
        header = ["n", "d", "input", "repsim ms", "flop bound ms", "x bound", *extra, *names]
        print(f"\n### {measure}  (peer time / repsim time; > 1 means repsim is faster)\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for n, d in sizes:
            if measure == "rbf_cka" and n > 5000:
                continue  # n^2 Gram matrices; RBF is timed at the smaller sizes only
            x64, y64 = make_inputs(n, d)
            for dtype in (torch.float32, torch.float64):
                x, y = x64.to(dtype), y64.to(dtype)
                fn = sim.get_measure(measure)
                t_rep, v_rep = timeit(lambda fn=fn, x=x, y=y: fn(x, y), args.repeats)
                bound = repsim_flops(measure, n, d) / (rate64 * 1e9)
                cells = [
                    str(n),
                    str(d),
                    str(dtype).replace("torch.", ""),
                    f"{t_rep * 1e3:.1f}",
                    f"{bound * 1e3:.1f}",
                    f"{t_rep / bound:.2f}",
                ]
                if extra:
                    t32, v32 = timeit(
                        lambda fn=fn, x=x, y=y: fn(x, y, dtype=torch.float32), args.repeats
                    )
                    cells.append(f"{t32 / t_rep:.2f} (Δ{abs(v32 - v_rep):.0e})")
                for peer in names:
                    est = peer_flops(peer, n, d) / (rate64 * 1e9)
                    if est > args.max_peer_s:
                        cells.append(f"skipped (O(n^3), ~{est:.0f} s)")
                        continue
                    # cca-zoo's time grows like n d^2 with a large constant: extrapolate it
                    est = per_unit.get((measure, peer), 0.0) * n * d * d
                    est = est if peer == "cca-zoo" else 0.0
                    if est > args.max_peer_s:
                        cells.append(f"skipped (~{est:.0f} s, extrapolated)")
                        continue
                    pf = peers[measure][peer]
                    try:
                        t_p, v_p = timeit(lambda pf=pf, x=x, y=y: pf(x, y), args.repeats)
                    except Exception as exc:  # a peer failing is a result, not a crash
                        cells.append(f"failed: {type(exc).__name__}")
                        continue
                    per_unit[(measure, peer)] = max(
                        per_unit.get((measure, peer), 0.0), t_p / (n * d * d)
                    )
                    agree = "ok" if abs(v_p - v_rep) < 1e-4 else f"Δ{abs(v_p - v_rep):.1e}"
                    cells.append(f"{t_p / t_rep:.1f}× ({agree})")
                print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
