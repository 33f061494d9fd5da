"""Benchmark: a schedule evaluated on the RF closed form against real training with it.

One instance, two schedules: a cosine shape (open loop) and the gap-threshold controller
(closed loop on noise-free monitored losses, every ``--eval-every`` steps). The closed form
runs the schedule through ``genwindow.rfm.scheduled.run_schedule`` and evaluates the exact
gradient-flow curves; real training runs ``train_rf`` (full batch, fresh noise each step,
Gaussian-equivalent features) with the same schedule object at several rates. Each training
run is timed with its accuracy, the largest relative distance of its score error to the
closed form at the same τ, so the closed form is compared with training at the accuracy that
training reaches. For the controller, the τ at which it stopped is compared too.

Run: python benchmarks/schedules_closed_form_vs_training.py [--d 20 --psi-p 8 --psi-n 4]
Writes benchmarks/schedules_closed_form_vs_training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from genwindow.rfm.closed_form import ClosedForm
from genwindow.rfm.instance import sample_instance
from genwindow.rfm.matrices import gaussian_equivalent_matrices
from genwindow.rfm.scheduled import run_schedule, timescales
from genwindow.rfm.training import max_stable_lr, train_rf
from genwindow.schedules import make_schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--psi-p", type=float, default=8.0)
    parser.add_argument("--psi-n", type=float, default=4.0)
    parser.add_argument("--t", type=float, default=0.1)
    parser.add_argument("--tau-end", type=float, default=60.0)
    parser.add_argument("--fractions", default="0.3,0.1,0.03",
                        help="training rates as fractions of the largest stable rate")
    parser.add_argument("--eval-every-tau", type=float, default=0.5,
                        help="τ between monitor evaluations (the same for every rate)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).with_name("schedules_closed_form_vs_training"
                                                         ".json"))
    args = parser.parse_args()

    inst = sample_instance(args.d, args.psi_p, args.psi_n, args.t, seed=0)
    m = gaussian_equivalent_matrices(inst)
    start = time.perf_counter()
    cf = ClosedForm.from_matrices(m)
    scales = timescales(cf)
    build_seconds = time.perf_counter() - start
    lr_max = max_stable_lr(m)

    records = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        lr = fraction * lr_max
        step_tau = lr / inst.d**2
        steps = int(np.ceil(args.tau_end / step_tau))
        eval_every = max(int(round(args.eval_every_tau / step_tau)), 1)
        record_steps = np.arange(0, steps + 1, eval_every)
        for spec in ("cosine:min_factor=0.05", "gap-threshold"):
            # Closed form: the schedule in closed loop on the exact curves.
            start = time.perf_counter()
            run = run_schedule(cf, make_schedule(spec, total_steps=steps), steps, step_tau,
                               inst.n, eval_every=eval_every)
            predicted = cf.curves(run.tau[record_steps[record_steps <= run.stop_step]])
            closed_seconds = time.perf_counter() - start

            start = time.perf_counter()
            frame = train_rf(inst, lr, steps, features="gaussian-equivalent", matrices=m,
                             record_steps=record_steps,
                             schedule=make_schedule(spec, total_steps=steps))
            train_seconds = time.perf_counter() - start
            exact = cf.curves(frame.tau.to_numpy())
            inner = frame.tau.to_numpy() > 0
            error = np.abs(frame.score_error.to_numpy() - exact["score_error"])[inner] / \
                exact["score_error"][inner]
            records.append({
                "schedule": spec, "lr_fraction": fraction, "steps": steps,
                "closed_form_seconds": closed_seconds,
                "training_seconds": train_seconds,
                "training_max_rel_error": float(error.max()),
                "training_final_rel_error": float(error[-1]),
                "tau_end_closed_form": run.tau_end,
                "tau_end_training": float(frame.tau.iloc[-1]),
                "points_closed_form": int(predicted["score_error"].size),
            })
            r = records[-1]
            print(f"{spec:24s} lr {fraction:5.2f}×max  {steps:6d} steps  closed form "
                  f"{closed_seconds:6.3f} s  training {train_seconds:7.2f} s  max rel error "
                  f"{r['training_max_rel_error']:.3g}  τ_end {r['tau_end_closed_form']:.4g} "
                  f"vs {r['tau_end_training']:.4g}", flush=True)

    result = {
        "instance": {"d": inst.d, "p": inst.p, "n": inst.n, "t": inst.t,
                     "tau_gen": scales.tau_gen, "tau_mem": scales.tau_mem},
        "closed_form_build_seconds": build_seconds,
        "records": records,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"closed form built in {build_seconds:.3f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
