"""Benchmark: fast spectrum solver against the LM-continuation reference on one λ grid.

Both solve Theorem 3.1 of Bonnaire, Urfin, Biroli, Mézard (2025), arXiv:2505.17638, at
z = λ + 1e-9 i on the same 1,000-point grid (:func:`default_grid`, log-spaced over the whole
support). The fast solver runs on all points (median of several repeats). The reference
(113 Levenberg–Marquardt solves per λ, ε from 100 down to 1e-9) runs on every k-th point
of the grid, and its time for the full grid is that per-point cost times the grid size. Accuracy is
the largest |q_fast − q_ref| / max(1, |q_ref|) over the points where the reference
converged (final residual below 1e-10).

Run: python benchmarks/spectrum_solver.py [--points 1000 --every 20 --repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from genwindow.theory.spectrum import default_grid, solve_stieltjes, spectrum_model
from genwindow.theory.spectrum_reference import solve_reference

CASES = {
    "identity": dict(psi_p=64.0, psi_n=8.0, t=0.01, sigma_levels=(1.0,),
                     sigma_weights=(1.0,)),
    "two-level": dict(psi_p=64.0, psi_n=8.0, t=0.01, sigma_levels=(0.5, 1.5),
                      sigma_weights=(0.5, 0.5)),
    "under-parameterized": dict(psi_p=4.0, psi_n=8.0, t=0.1, sigma_levels=(1.0,),
                                sigma_weights=(1.0,)),
}


def run_case(name: str, params: dict, points: int, every: int, repeats: int) -> dict:
    model = spectrum_model(**params)
    lam = default_grid(model, points)
    epsilon = 1e-9
    z = lam + 1j * epsilon

    solve_stieltjes(model, z)  # warm-up: builds and caches the polynomial
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fast = solve_stieltjes(model, z)
        times.append(time.perf_counter() - start)
    fast_seconds = float(np.median(times))

    subset = np.arange(0, points, every)
    start = time.perf_counter()
    reference = solve_reference(model, lam[subset])
    reference_seconds = time.perf_counter() - start
    assert reference.epsilon == epsilon
    converged = reference.residual < 1e-10
    error = np.abs(fast.q[subset] - reference.q) / np.maximum(1.0, np.abs(reference.q))
    projected = reference_seconds / subset.size * points
    return {
        "case": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "points": points, "fast_seconds": fast_seconds,
        "fast_seconds_per_point": fast_seconds / points,
        "reference_points": int(subset.size), "reference_seconds": reference_seconds,
        "reference_seconds_per_point": reference_seconds / subset.size,
        "reference_projected_seconds": projected, "speedup": projected / fast_seconds,
        "reference_converged": int(converged.sum()),
        "max_relative_q_error": float(error[converged].max()) if converged.any() else None,
        "fast_max_residual": float(fast.residual.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000, help="λ grid size (default 1000)")
    parser.add_argument("--every", type=int, default=20,
                        help="run the reference on every k-th grid point (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="fast-solver repeats")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/spectrum_solver.json"))
    args = parser.parse_args()

    records = [run_case(name, params, args.points, args.every, args.repeats)
               for name, params in CASES.items()]
    header = (f"{'case':>20} {'fast s':>9} {'ref s/pt':>9} {'ref s (proj.)':>13} "
              f"{'speedup':>9} {'conv':>7} {'max err q':>10}")
    print(header)
    for r in records:
        print(f"{r['case']:>20} {r['fast_seconds']:9.4f} {r['reference_seconds_per_point']:9.4f} "
              f"{r['reference_projected_seconds']:13.1f} {r['speedup']:9.0f} "
              f"{r['reference_converged']:>3}/{r['reference_points']:<3} "
              f"{r['max_relative_q_error']:10.2e}")
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpu_count": os.cpu_count(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "records": records}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
