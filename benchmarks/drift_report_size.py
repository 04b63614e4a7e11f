"""How big the drift and quality reports get, and how long they take, as the monitored window grows.

Builds windows of 10k, 100k (and, with ``--rows``, more) rows by resampling the 2011 bike data with
a little noise, the current window warmer than the reference, runs the same Evidently reports the
monitoring DAG runs (``airflow_mlc.core.drift``), writes them as the operators do, and prints the
sizes of the HTML and JSON files (and of the HTML without Evidently's JavaScript bundle, which is
the same in every report) and the time taken. Run with ``make bench-drift``.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from airflow_mlc.core.drift import drift_report, quality_check
from airflow_mlc.core.train import build_pipeline
from airflow_mlc.core.validate import save_report
from airflow_mlc.spec import DriftSpec, ModelLifecycleSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "dags" / "specs" / "bikes.yaml"
MB = 1024 * 1024


def resampled(frame: pd.DataFrame, rows: int, seed: int, warmer: float = 0.0) -> pd.DataFrame:
    """``rows`` rows drawn from ``frame`` with noise on the weather columns; ``warmer`` shifts temperatures."""
    rng = np.random.default_rng(seed)
    sample = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for column in ("temp", "atemp", "hum", "windspeed"):
        noise = rng.normal(0, 0.02, rows)
        sample[column] = (sample[column] + noise + (warmer if column in ("temp", "atemp") else 0)).clip(0, 1)
    return sample


def all_features(spec: ModelLifecycleSpec) -> ModelLifecycleSpec:
    """The bike spec monitoring every feature (the widest report), not only the weather columns."""
    drift = DriftSpec.model_validate({**spec.monitoring.drift.model_dump(), "columns": None})
    return spec.model_copy(update={"monitoring": spec.monitoring.model_copy(update={"drift": drift})})


def measure(spec: ModelLifecycleSpec, model: object, data: pd.DataFrame, rows: int, folder: Path) -> dict:
    reference = resampled(data, rows, seed=1)
    current = resampled(data, rows, seed=2, warmer=0.3)
    started = time.perf_counter()
    drift, drift_snapshot = drift_report(reference, current, spec)
    drift_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _, quality_snapshot = quality_check(spec, model, current, baseline=35.0)
    quality_seconds = time.perf_counter() - started
    result = {
        "rows": rows,
        "drifted": f"{len(drift.drifted_columns)}/{len(drift.columns)}",
        "drift_s": drift_seconds,
        "quality_s": quality_seconds,
    }
    for name, snapshot in (("drift", drift_snapshot), ("quality", quality_snapshot)):
        html = Path(save_report(snapshot, str(folder / f"{name}-{rows}.html")))
        text = html.read_text()
        bundle = max(re.findall(r"<script[^>]*>(.*?)</script>", text, re.S), key=len)
        result[f"{name}_html_mb"] = html.stat().st_size / MB
        result[f"{name}_data_kb"] = (len(text) - len(bundle)) / 1024
        result[f"{name}_json_kb"] = html.with_suffix(".json").stat().st_size / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000], help="window sizes to measure")
    arguments = parser.parse_args()

    spec = all_features(load_spec(SPEC))
    data = pd.read_csv(str(spec.source.path), parse_dates=["timestamp"])
    model = build_pipeline(spec).fit(data[spec.features.columns], data[spec.target])
    print(f"Drift over {len(spec.drift_columns)} columns ({', '.join(spec.drift_columns)}); quality: regression preset")
    print("HTML = Evidently's JavaScript bundle (the same in every report) + the report's own data.")
    print(
        "rows      drifted  drift s  quality s | drift: HTML MB  data KB  JSON KB | quality: HTML MB  data KB  JSON KB"
    )
    with tempfile.TemporaryDirectory() as folder:
        for rows in arguments.rows:
            m = measure(spec, model, data, rows, Path(folder))
            print(
                f"{m['rows']:<9} {m['drifted']:<8} {m['drift_s']:>7.1f}  {m['quality_s']:>9.1f} | "
                f"{m['drift_html_mb']:>14.2f}  {m['drift_data_kb']:>7.0f}  {m['drift_json_kb']:>7.0f} | "
                f"{m['quality_html_mb']:>16.2f}  {m['quality_data_kb']:>7.0f}  {m['quality_json_kb']:>7.0f}"
            )


if __name__ == "__main__":
    main()
