"""Native threads on a shared worker: concurrent training fits with and without the tasks' thread limit.

A worker runs as many tasks at once as it has slots. Without a limit, each fit of an OpenMP estimator (scikit-learn's
histogram gradient boosting) starts one thread per core, so the tasks' threads outnumber the cores and wait on each
other. This runs ``--tasks`` fits at once (default: one per core), each in its own process as task processes are,
twice in one run: unlimited, and inside ``native_thread_limit(1)`` as every airflow-mlc task runs its phase (one pool
slot). It prints each side's wall time and the ratio.

    .venv/bin/python benchmarks/native_threads.py [--tasks N] [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def fit(rows: int, limited: bool) -> None:
    """One task's fit: a histogram gradient boosting regressor on ``rows`` synthetic rows."""
    import contextlib

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    from airflow_mlc.operators.base import native_thread_limit

    generator = np.random.default_rng(0)
    x = generator.normal(size=(rows, 20))
    y = x[:, 0] * 3 + np.sin(x[:, 1]) + generator.normal(size=rows)
    limit = native_thread_limit(1) if limited else contextlib.nullcontext()
    with limit:
        HistGradientBoostingRegressor(max_iter=200, early_stopping=False, random_state=0).fit(x, y)


def concurrent_fits(tasks: int, rows: int, limited: bool) -> float:
    """Seconds until ``tasks`` fits started together have all ended."""
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    argv = [sys.executable, __file__, "--fit", str(rows), "limited" if limited else "unlimited"]
    started = time.perf_counter()
    processes = [subprocess.Popen(argv, env=env, cwd=ROOT) for _ in range(tasks)]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a fit failed (exit code {process.returncode})")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=os.cpu_count() or 2, help="fits at once (default: the cores)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of each fit")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, taking turns; the best counts")
    parser.add_argument("--fit", nargs=2, metavar=("ROWS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        fit(int(args.fit[0]), args.fit[1] == "limited")
        return
    print(f"{args.tasks} fits at once on {os.cpu_count()} cores, {args.rows} rows each, best of {args.repeat}")
    best = {"unlimited": float("inf"), "limited": float("inf")}
    for _ in range(args.repeat):
        for mode in best:
            best[mode] = min(best[mode], concurrent_fits(args.tasks, args.rows, mode == "limited"))
    print(f"  no limit (one OpenMP thread per core in every task): {best['unlimited']:7.2f} s")
    print(f"  each task limited to its one pool slot:              {best['limited']:7.2f} s")
    print(f"  no limit / limited: {best['unlimited'] / best['limited']:.2f}x")


if __name__ == "__main__":
    main()
