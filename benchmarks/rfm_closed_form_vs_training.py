"""Benchmark: the closed-form learning curve against real training of the same RF model.

Both produce the train loss, test loss, score error and gap from τ = 0 to a few times
tau_mem on one instance. The closed form costs one eigendecomposition and one matrix
product per τ. Real training costs τ_end d² / lr gradient steps. Its accuracy (its distance
to the exact curve, from the step size and the fresh-noise fluctuations) improves only as
the rate falls. Each training run is timed with its accuracy, so the closed form is
compared with training at the accuracy training actually reaches. Times are CPU seconds of
this process (time.process_time, all threads), which other load on the machine changes
less than wall time; wall seconds are printed beside them.

Run: python benchmarks/rfm_closed_form_vs_training.py [--d 20 --psi-p 8 --psi-n 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import gaussian_equivalent_matrices
from genwindow.rfm.timescales import formula_timescales
from genwindow.rfm.training import log_spaced_steps, max_stable_lr, train_rf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--psi-p", type=float, default=8.0)
    parser.add_argument("--psi-n", type=float, default=4.0)
    parser.add_argument("--t", type=float, default=0.1)
    parser.add_argument("--fractions", default="0.3,0.1,0.03",
                        help="training rates as fractions of the largest stable rate")
    parser.add_argument("--tau-mem-multiple", type=float, default=3.0)
    args = parser.parse_args()

    inst = sample_instance(args.d, args.psi_p, args.psi_n, args.t, seed=0)
    tau_end = args.tau_mem_multiple * formula_timescales(
        inst.constants, inst.psi_p, inst.psi_n)["tau_mem_formula"]
    m = gaussian_equivalent_matrices(inst)

    start, wall = time.process_time(), time.perf_counter()
    cf = ClosedForm.from_matrices(m)
    tau_grid = np.concatenate([[0.0], np.logspace(-2, np.log10(tau_end), 400)])
    cf.curves(tau_grid)
    closed_seconds = time.process_time() - start
    closed_wall = time.perf_counter() - wall

    records = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        lr = fraction * max_stable_lr(m)
        steps = int(np.ceil(tau_end * inst.d**2 / lr))
        start, wall = time.process_time(), time.perf_counter()
        run = train_rf(inst, lr, steps, features="gaussian-equivalent", matrices=m,
                       record_steps=log_spaced_steps(steps, 60))
        seconds = time.process_time() - start
        wall = time.perf_counter() - wall
        exact = cf.curves(run["tau"].to_numpy())
        scale = np.abs(exact["test_loss"] - 1).max()
        deviation = float(np.max(np.abs(run["test_loss"] - exact["test_loss"])) / scale)
        records.append({"lr_fraction": fraction, "steps": steps, "cpu_seconds": seconds,
                        "wall_seconds": wall, "max_relative_test_deviation": deviation})
        print(f"training lr = {fraction:g} × max: {steps} steps, {seconds:.1f} CPU s "
              f"({wall:.1f} wall s), "
              f"max |test − exact| / max|test − 1| = {deviation:.3g}")
    print(f"closed form: {closed_seconds:.3f} CPU s ({closed_wall:.3f} wall s) for the "
          f"whole curve (400 τ values, exact)")
    result = {"d": inst.d, "p": inst.p, "n": inst.n, "t": inst.t, "tau_end": tau_end,
              "closed_form_cpu_seconds": closed_seconds, "closed_form_wall_seconds":
              closed_wall, "training": records,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                         f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
