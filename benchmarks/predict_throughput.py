"""Batch inference throughput and peak memory: the whole window at once vs. chunked ``predict_window``.

Builds a Parquet file of a few million rows (row groups of ~100k rows) by resampling the 2011 bike
data with a little noise, trains and logs the bike pipeline to a temporary MLflow store as the train
task does (no search, 50 boosting iterations, so it is quick), then measures, each in a fresh child
process so that one path's memory cannot hide another's:

- ``bare``: ``pd.read_parquet`` of the whole file and one ``model.predict(frame[features])``;
- ``chunked``: ``predict_window(model, read_chunks(...))`` as the prediction task runs it: read by
  row batches, window filter, predict, Parquet output (one row group per chunk) and the stats.

Both with the model loaded by ``mlflow.sklearn.load_model`` and by ``mlflow.pyfunc.load_model``.
Peak memory is the child's peak RSS while the path ran (Linux ``VmHWM``, reset after the imports,
the model load and a warm-up prediction) minus its RSS before: what the path itself added. Each
path runs ``--repeat`` times, the paths taking turns; the table shows the best time (and the median
throughput) and the largest peak. Run with
``python benchmarks/predict_throughput.py [--rows 3000000] [--chunk-rows 100000]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlc.spec import ModelLifecycleSpec, SourceSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "dags" / "specs" / "bikes.yaml"
MB = 1024 * 1024


def quick_spec() -> ModelLifecycleSpec:
    """The bike spec without the search and with 50 boosting iterations."""
    spec = load_spec(SPEC)
    model = spec.model.model_copy(update={"search": None, "params": {"max_iter": 50, "random_state": 0}})
    return spec.model_copy(update={"name": "bikes_bench", "model": model})


def resampled(frame: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows drawn from ``frame``, with noise on the weather columns and times spread over 2011."""
    rng = np.random.default_rng(seed)
    sample = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for column in ("temp", "atemp", "hum", "windspeed"):
        sample[column] = (sample[column] + rng.normal(0, 0.02, rows)).clip(0, 1)
    seconds = rng.integers(0, 365 * 24 * 3600, rows)
    sample["timestamp"] = pd.Timestamp("2011-01-01") + pd.to_timedelta(np.sort(seconds), unit="s")
    return sample


def write_data(frame: pd.DataFrame, path: Path, row_group_rows: int) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_rows)


def train_and_log_model(spec: ModelLifecycleSpec, data: pd.DataFrame, home: Path) -> tuple[str, str]:
    """Train on the original data and log the model as the train task does; returns (tracking URI, model URI)."""
    from airflow_mlc.core import tracking
    from airflow_mlc.core.prepare import clean, split
    from airflow_mlc.core.train import train_and_log

    target = tracking.embedded_target(home)
    train, test = split(clean(data, spec), spec)
    tags = {tracking.TAG_DAG_ID: "bench", tracking.TAG_RUN_ID: "bench", tracking.TAG_TASK_ID: "train"}
    result = train_and_log(spec, train, test, target, tags, ("bench-train", "bench-test"))
    return target.tracking_uri, result.model_uri


def _status_mb(field: str) -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024  # type: ignore[union-attr]


def _reset_peak() -> bool:
    """Reset the peak RSS (``VmHWM``) to the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _run_path(job: dict[str, Any]) -> dict[str, float]:
    """In a fresh child: load the model, warm up, then run one path and measure it."""
    import mlflow

    from airflow_mlc.core.predict import predict_window
    from airflow_mlc.core.sources import read_chunks
    from airflow_mlc.core.window import Window, parse_moment

    mlflow.set_tracking_uri(job["tracking_uri"])
    flavour = mlflow.pyfunc if job["flavour"] == "pyfunc" else mlflow.sklearn
    model = flavour.load_model(job["model_uri"])
    features: list[str] = job["features"]
    warm_up = pq.ParquetFile(job["data"]).read_row_group(0).to_pandas().head(1000)
    model.predict(warm_up[features])

    baseline = _status_mb("VmRSS")
    exact_peak = _reset_peak()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if job["path"] == "bare":
        frame = pd.read_parquet(job["data"])
        predictions = model.predict(frame[features])
        rows = len(predictions)
    else:
        source = SourceSpec(path=job["data"], time_column="timestamp")
        window = Window(parse_moment("2011-01-01"), parse_moment("2012-01-01"))
        chunks = read_chunks(source, window, job["chunk_rows"])
        extras = {"model_version": "1", "run_id": "bench", "window_start": "2011-01-01", "window_end": "2012-01-01"}
        stats = predict_window(model, chunks, features, ["timestamp"], job["out"], None, extras, "regression")
        rows = stats.rows
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    if exact_peak:
        peak = _status_mb("VmHWM") - baseline
    else:  # the peak since the child started, less the peak before the path ran
        peak = (after.ru_maxrss - before.ru_maxrss) / 1024
    return {
        "rows": rows,
        "seconds": seconds,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "peak_mb": peak,
    }


def measure(jobs: dict[tuple[str, str], dict[str, Any]], repeat: int) -> dict[tuple[str, str], dict[str, float]]:
    """Best time and largest peak of each job over ``repeat`` rounds, each run in a fresh child process.

    The rounds interleave the jobs, so a slow spell of a shared machine does not fall on one path only.
    """
    context = multiprocessing.get_context("spawn")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, job in jobs.items():
            with context.Pool(1) as pool:
                runs[name].append(pool.apply(_run_path, (job,)))
    results = {}
    for name, measured in runs.items():
        best = min(measured, key=lambda r: r["seconds"])
        rows, seconds = best["rows"], best["seconds"]
        results[name] = {
            **best,
            "rows_per_s": rows / seconds,
            "median_rows_per_s": rows / statistics.median(r["seconds"] for r in measured),
            "peak_mb": max(r["peak_mb"] for r in measured),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows of the scored window")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows scored at a time by the chunked path")
    parser.add_argument("--row-group-rows", type=int, default=100_000, help="row group size of the input file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path (best time, largest peak)")
    arguments = parser.parse_args()

    spec = quick_spec()
    data = pd.read_csv(str(spec.source.path))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        tracking_uri, model_uri = train_and_log_model(spec, data, tmp / "mlflow-home")
        source = tmp / "window.parquet"
        write_data(resampled(data, arguments.rows), source, arguments.row_group_rows)
        print(
            f"{arguments.rows:,} rows, {source.stat().st_size / MB:.0f} MB of Parquet in row groups of "
            f"{arguments.row_group_rows:,}; chunks of {arguments.chunk_rows:,} rows; {arguments.repeat} runs per path"
        )
        common = {
            "data": str(source),
            "tracking_uri": tracking_uri,
            "model_uri": model_uri,
            "features": spec.features.columns,
            "chunk_rows": arguments.chunk_rows,
        }
        jobs = {
            (path, flavour): {**common, "path": path, "flavour": flavour, "out": str(tmp / f"{path}-{flavour}.parquet")}
            for flavour in ("sklearn", "pyfunc")
            for path in ("bare", "chunked")
        }
        results = measure(jobs, arguments.repeat)

    print("seconds, user and sys CPU seconds of the best run; median rows/s over all runs")
    header = (
        f"{'path':<20} {'rows':>10} {'seconds':>8} {'user':>6} {'sys':>6} {'rows/s':>10} {'median':>10} {'peak MB':>8}"
    )
    print(header)
    for (path, flavour), m in results.items():
        print(
            f"{path + ' (' + flavour + ')':<20} {m['rows']:>10,} {m['seconds']:>8.2f} {m['user_s']:>6.1f} "
            f"{m['sys_s']:>6.1f} {m['rows_per_s']:>10,.0f} {m['median_rows_per_s']:>10,.0f} {m['peak_mb']:>8.0f}"
        )
    for flavour in ("sklearn", "pyfunc"):
        bare, chunked = results["bare", flavour], results["chunked", flavour]
        print(
            f"chunked/bare ({flavour}): throughput {chunked['rows_per_s'] / bare['rows_per_s']:.0%}, "
            f"peak memory {chunked['peak_mb'] / bare['peak_mb']:.1%}"
        )
    sklearn, pyfunc = results["chunked", "sklearn"], results["chunked", "pyfunc"]
    print(f"pyfunc/sklearn (chunked): throughput {pyfunc['rows_per_s'] / sklearn['rows_per_s']:.0%}")


if __name__ == "__main__":
    main()
