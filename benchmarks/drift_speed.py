"""How fast, and in how much memory, the drift verdict and the quality check run on large windows.

Builds a reference and a current window of ``--rows`` rows (default 1M) and 12 feature columns (8 numeric,
4 categorical; 3 numeric and 1 categorical shifted) and a target ``y`` (noisier in the current window) as
Parquet snapshots in a temporary folder, then runs, each in its own child process so that peak memory is
its own:

- ``product``: the drift task's computation (``airflow_mlc.core.drift.drift_verdict``): the window read a
  column at a time from its snapshot against the reference's stored profile (built once before timing,
  as the first run against a champion builds it; that build is timed too);
- ``scipy``: plain SciPy doing the same tests (normed Wasserstein, Jensen-Shannon) on in-memory arrays;
- ``report``: Evidently's report of the bounded sample (``REPORT_SAMPLE_ROWS`` per side);
- ``evidently`` (with ``--evidently``): Evidently's ``DataDriftPreset`` on the whole frames, as before;
- ``quality``: the quality task's computation (``airflow_mlc.core.drift.quality_check``) of a linear model
  fitted on 20,000 reference rows, on every labelled row of the current snapshot read in chunks
  (``prediction.chunk_rows``), with its bootstrap intervals (the m-out-of-n bootstrap beyond
  ``MAX_RESAMPLE_ROWS`` rows) against 5,000 evaluation rows, and Evidently's report of its sample.

Peak memory is the child's peak resident size (``VmHWM``, reset through ``/proc/self/clear_refs`` after
the imports) minus its resident size then, before any data is read, compared with the data size: both
frames in memory as pandas holds them. With ``--rows 10000000`` (``--no-baseline`` skips SciPy and
Evidently) it shows the peak of the chunked path.
Run with ``.venv/bin/python benchmarks/drift_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from airflow_mlc.core.drift import compare_with_profile, drift_kinds, drift_verdict, reference_profile
from airflow_mlc.core.storage import ParquetColumns, Storage
from airflow_mlc.spec import ModelLifecycleSpec, parse_spec

NUMERIC = [f"n{i}" for i in range(8)]
CATEGORICAL = [f"c{i}" for i in range(4)]
MB = 1024 * 1024


def spec() -> ModelLifecycleSpec:
    return parse_spec(
        {
            "name": "bench",
            "task": "regression",
            "source": {"path": "x.parquet"},
            "target": "y",
            "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
            "model": {"estimator": "sklearn.linear_model.LinearRegression"},
            "gates": {"metric": "rmse"},
        }
    )


def window(rows: int, seed: int, shifted: bool) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    frame = pd.DataFrame({c: g.normal(0.5 * shifted * (i < 3), 1, rows) for i, c in enumerate(NUMERIC)})
    for i, c in enumerate(CATEGORICAL):
        names = np.array([f"{c}_{k}" for k in range(8)])
        weights = np.linspace(1, 2 if shifted and i == 0 else 1, 8)
        frame[c] = names[g.choice(8, rows, p=weights / weights.sum())]
    frame["y"] = frame["n0"] + frame["n1"] - frame["n2"] + 0.5 * frame["n3"] + g.normal(0, 1.5 if shifted else 1, rows)
    return frame


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
    return int(line.split()[1])


def start_peak() -> int:
    """Reset the process's peak resident size (Linux ``clear_refs``) and return the resident size now (KB)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS:")


def peak_mb(baseline_kb: int) -> float:
    """The peak resident size since :func:`start_peak`, above its baseline (VmHWM, else getrusage maxrss)."""
    peak = _status_kb("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - baseline_kb) / 1024


def run_product(folder: Path) -> dict:
    baseline = start_peak()
    artifacts, model = Storage(str(folder / "artifacts")), spec()
    started = time.perf_counter()
    profile = reference_profile(str(folder / "reference.parquet"), model, artifacts)
    built = time.perf_counter() - started
    started = time.perf_counter()
    profile = reference_profile(str(folder / "reference.parquet"), model, artifacts)  # read back, as later runs do
    with ParquetColumns(str(folder / "current.parquet")) as current:
        result, _ = drift_verdict(profile, current, model)
    seconds = time.perf_counter() - started
    scores = {c.column: c.score for c in result.columns}
    return {"seconds": seconds, "profile_seconds": built, "peak_mb": peak_mb(baseline), "scores": scores}


def run_report(folder: Path) -> dict:
    baseline = start_peak()
    artifacts, model = Storage(str(folder / "artifacts")), spec()
    profile = reference_profile(str(folder / "reference.parquet"), model, artifacts)
    started = time.perf_counter()
    with ParquetColumns(str(folder / "current.parquet")) as current:
        _, snapshot = compare_with_profile(profile, current, model)
    rendered = time.perf_counter()
    html = snapshot.get_html_str(as_iframe=False)
    return {
        "seconds": rendered - started,
        "render_seconds": time.perf_counter() - rendered,
        "html_mb": len(html) / MB,
        "peak_mb": peak_mb(baseline),
    }


def run_scipy(folder: Path) -> dict:
    from scipy import stats
    from scipy.spatial import distance

    baseline = start_peak()
    reference, current = pd.read_parquet(folder / "reference.parquet"), pd.read_parquet(folder / "current.parquet")
    started = time.perf_counter()
    scores = {}
    for c in NUMERIC:
        ref, cur = reference[c].to_numpy(), current[c].to_numpy()
        scores[c] = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    for c in CATEGORICAL:
        both = pd.concat([reference[c].value_counts(), current[c].value_counts()], axis=1).fillna(0).to_numpy()
        scores[c] = float(distance.jensenshannon(both[:, 0] / len(reference), both[:, 1] / len(current)))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mb": peak_mb(baseline), "scores": scores}


def run_evidently(folder: Path) -> dict:
    from airflow_mlc.core.drift import _definition

    baseline = start_peak()
    reference, current = pd.read_parquet(folder / "reference.parquet"), pd.read_parquet(folder / "current.parquet")
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    model = spec()
    definition = _definition(model, model.drift_columns)
    started = time.perf_counter()
    Report([DataDriftPreset(columns=model.drift_columns)], include_tests=True).run(
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
        current_data=Dataset.from_pandas(current, data_definition=definition),
    )
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_mb(baseline)}


def run_quality(folder: Path) -> dict:
    from airflow_mlc.core.drift import quality_check
    from airflow_mlc.core.metrics import compute, predict
    from airflow_mlc.core.storage import iter_parquet
    from airflow_mlc.core.train import build_pipeline

    model_spec = spec()
    known = next(iter_parquet(str(folder / "reference.parquet"), 25_000))
    train, evaluation = known.iloc[:20_000], known.iloc[20_000:]
    model = build_pipeline(model_spec).fit(train[NUMERIC + CATEGORICAL], train["y"])
    evaluated = compute("rmse", predict(model, evaluation, NUMERIC + CATEGORICAL, "y", "regression"))
    baseline = start_peak()
    started = time.perf_counter()
    with ParquetColumns(str(folder / "current.parquet")) as current:
        result, _ = quality_check(model_spec, model, current, evaluated, baseline_rows=evaluation)
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(baseline),
        "rows": result.labelled_rows,
        "degraded": result.degraded,
        "reason": result.reason,
    }


RUNS = {
    "product": run_product,
    "report": run_report,
    "scipy": run_scipy,
    "evidently": run_evidently,
    "quality": run_quality,
}


def in_child(mode: str, folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(folder)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each window")
    parser.add_argument("--evidently", action="store_true", help="also time Evidently's preset on the whole frames")
    parser.add_argument("--no-baseline", action="store_true", help="skip SciPy (and Evidently): the product only")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        mode, folder = arguments.child
        print(json.dumps(RUNS[mode](Path(folder))))
        return

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        reference, current = window(arguments.rows, 1, False), window(arguments.rows, 2, True)
        data_mb = (reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum()) / MB
        numeric_mb = 2 * arguments.rows * len(NUMERIC) * 8 / MB
        window_mb = current.memory_usage(deep=True).sum() / MB
        reference.to_parquet(folder / "reference.parquet", index=False)
        current.to_parquet(folder / "current.parquet", index=False)
        del reference, current
        print(
            f"{arguments.rows:,} rows x {len(NUMERIC) + len(CATEGORICAL)} columns per side; data in memory "
            f"{data_mb:,.0f} MB (numeric part {numeric_mb:,.0f} MB); kinds {sorted(set(drift_kinds(spec()).values()))}"
        )
        modes = ["product", "report", "quality"]
        if not arguments.no_baseline:
            modes.append("scipy")
            if arguments.evidently:
                modes.append("evidently")
        found = {mode: in_child(mode, folder) for mode in modes}
    product = found["product"]
    print("peak memory: the child's peak resident size (VmHWM, reset after imports) minus its resident size then")
    print(f"{'run':<40} {'seconds':>8} {'peak MB':>8} {'peak / data':>12}")
    lines = [
        ("product: reference profile, built once", product["profile_seconds"], None),
        ("product: drift verdict (stored profile)", product["seconds"], product["peak_mb"]),
        ("report: Evidently on the bounded sample", found["report"]["seconds"], found["report"]["peak_mb"]),
        ("report: rendered once (HTML)", found["report"]["render_seconds"], None),
    ]
    if "scipy" in found:
        lines.append(("plain scipy, in-memory arrays", found["scipy"]["seconds"], found["scipy"]["peak_mb"]))
    if "evidently" in found:
        lines.append(
            ("Evidently DataDriftPreset, whole frames", found["evidently"]["seconds"], found["evidently"]["peak_mb"])
        )
    for what, seconds, peak in lines:
        memory = f"{peak:>8.0f} {peak / data_mb:>11.2f}x" if peak is not None else f"{'':>8} {'':>12}"
        print(f"{what:<40} {seconds:>8.2f} {memory}")
    if "scipy" in found:
        ratio = product["seconds"] / found["scipy"]["seconds"]
        worst = max(abs(product["scores"][c] - s) for c, s in found["scipy"]["scores"].items())
        print(f"product / scipy: {ratio:.2f}x (goal <= 1.5x); largest score difference {worst:.1e}")
        if "evidently" in found:
            print(f"Evidently / product: {found['evidently']['seconds'] / product['seconds']:.1f}x")
    print(f"product peak / data size: {product['peak_mb'] / data_mb:.2f}x (goal <= 1.5x)")
    quality = found["quality"]
    print(
        f"quality check: {quality['rows']:,} labelled rows in {quality['seconds']:.2f} s, "
        f"peak {quality['peak_mb']:.0f} MB = {quality['peak_mb'] / window_mb:.2f}x the window's {window_mb:,.0f} MB"
    )
    print(f"quality verdict: degraded {quality['degraded']}: {quality['reason']}")


if __name__ == "__main__":
    main()
