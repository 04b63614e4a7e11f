"""How fast the DAG file parses and serialises many specs, against the same DAGs written by hand.

Writes ``--specs`` spec files (100; the bike spec under other names) to a temporary folder and times,
each the best of ``--repeat`` runs (5) in this one process, the cases taking turns (imports done, so only
the parse counts), in CPU time and wall time:

- ``template``: parsing ``dags/mlc_dags.py`` with those specs and serialising every DAG as the DAG
  processor does (a ``DagBag`` of the file, then ``DagSerialization.to_dict`` and ``LazyDeserializedDAG``
  per DAG);
- ``hand-written``: the same for one generated DAG file that builds the same DAGs with ``EmptyOperator``:
  the same dag ids, tasks and dependencies, params (same defaults, descriptions and schemas), schedules,
  descriptions, docs and tags;
- ``one spec``: the template with one spec only;
- ``parsing context``: parsing the template DAG file (no serialisation) as a task process does, asked for
  one DAG of the ``--specs`` specs (``_AIRFLOW_PARSING_CONTEXT_DAG_ID``), against parsing all of them.

Goals: the template at most 1.0x the hand-written DAGs, and under 2 s for 100 specs.
Run: ``python benchmarks/parse_specs.py [--specs 100] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "mlc_dags.py"
SPEC = ROOT / "dags" / "specs" / "bikes.yaml"
GOAL_RATIO = 1.0
GOAL_SECONDS = 2.0

# A throwaway Airflow home, set before Airflow is imported.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="mlc-bench-parse-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def write_specs(folder: Path, count: int) -> list[str]:
    """``count`` variants of the bike spec in ``folder``, named ``bikes_000``, ``bikes_001``…; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    text = SPEC.read_text().replace("../data/", f"{ROOT / 'dags' / 'data'}/")
    names = [f"bikes_{number:03d}" for number in range(count)]
    for name in names:
        (folder / f"{name}.yaml").write_text(re.sub(r"(?m)^name: bikes$", f"name: {name}", text))
    return names


def schedule_code(timetable: Any) -> str:
    """The ``schedule`` argument, as code, that gives ``timetable``."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    if isinstance(timetable, AssetOrTimeSchedule):
        uris = [asset.uri for asset in timetable.asset_condition.objects]
        assets = ", ".join(f"Asset({uri!r})" for uri in uris)
        return f"AssetOrTimeSchedule(timetable={schedule_code(timetable.timetable)}, assets=[{assets}])"
    if isinstance(timetable, CronTriggerTimetable):
        return f"CronTriggerTimetable({timetable.expression!r}, timezone='UTC')"
    if type(timetable).__name__ == "NullTimetable":
        return "None"
    raise TypeError(f"no code for the timetable {timetable!r}")


def hand_written_code(dags: dict[str, Any]) -> str:
    """A DAG file that builds the same DAGs as ``dags`` with ``EmptyOperator`` tasks, spelled out one by one."""
    lines = [
        '"""The template DAGs, written by hand with plain operators."""',
        "from airflow.providers.standard.operators.empty import EmptyOperator",
        "from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param",
        "",
    ]
    for dag in dags.values():
        params = "".join(
            f"        {name!r}: Param({param.value!r}, description={param.description!r}, schema={param.schema!r}),\n"
            for name, param in ((name, dag.params.get_param(name)) for name in dag.params)
        )
        lines += [
            "with DAG(",
            f"    dag_id={dag.dag_id!r},",
            f"    description={dag.description!r},",
            f"    schedule={schedule_code(dag.timetable)},",
            f"    params={{\n{params}    }},",
            f"    render_template_as_native_obj={dag.render_template_as_native_obj!r},",
            f"    max_active_runs={dag.max_active_runs!r},",
            f"    tags={sorted(dag.tags)!r},",
            f"    doc_md={dag.doc_md!r},",
            "):",
        ]
        lines += [f"    {task.task_id} = EmptyOperator(task_id={task.task_id!r})" for task in dag.tasks]
        lines += [
            f"    {upstream} >> {task.task_id}" for task in dag.tasks for upstream in sorted(task.upstream_task_ids)
        ]
        lines.append("")
    return "\n".join(lines)


def parse_and_serialise(dag_file: Path, serialise: bool = True) -> int:
    """Parse ``dag_file`` as the DAG processor does and, if asked, serialise every DAG; the number of DAGs."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    bag = DagBag(dag_folder=dag_file, bundle_path=dag_file.parent, load_op_links=False)
    if bag.import_errors:
        raise RuntimeError(f"{dag_file} did not import: {bag.import_errors}")
    if serialise:
        for dag in bag.dags.values():
            LazyDeserializedDAG(data=DagSerialization.to_dict(dag), last_loaded=dag.last_loaded)
    return len(bag.dags)


class Timing(NamedTuple):
    """The best times of a case, in seconds, and how many DAGs it parsed."""

    wall: float
    cpu: float
    dags: int


def best_of(repeat: int, cases: dict[str, Callable[[], int]]) -> dict[str, Timing]:
    """Per case, the best wall and CPU times of ``repeat`` runs, and the DAGs it parsed.

    The cases take turns, so that a load on the machine that comes and goes weighs on all of them alike,
    after an untimed round that does the imports and fills Airflow's caches.
    """
    for run in cases.values():
        run()
    best: dict[str, Timing] = {}
    for _ in range(repeat):
        for name, run in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            dags = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if name in best:
                wall, cpu = min(wall, best[name].wall), min(cpu, best[name].cpu)
            best[name] = Timing(wall, cpu, dags)
    return best


def with_env(values: dict[str, str], run: Callable[[], int]) -> Callable[[], int]:
    """``run`` with the environment variables ``values`` set while it runs."""

    def wrapped() -> int:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            return run()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    return wrapped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from airflow_mlc.dag_factory import build_dags

    work = Path(tempfile.mkdtemp(prefix="mlc-bench-specs-"))
    many, one = work / "specs", work / "one"
    names = write_specs(many, args.specs)
    write_specs(one, 1)
    hand_written = work / "hand_written_dags.py"
    hand_written.write_text(hand_written_code(build_dags(many)))

    def template(folder: Path, serialise: bool = True) -> Callable[[], int]:
        return with_env({"MLC_SPECS_DIR": str(folder)}, lambda: parse_and_serialise(DAG_FILE, serialise))

    asked = f"mlc_{names[len(names) // 2]}_train"
    context = with_env({"_AIRFLOW_PARSING_CONTEXT_DAG_ID": asked}, template(many, serialise=False))
    cases = {
        "template": template(many),
        "hand-written": lambda: parse_and_serialise(hand_written),
        "one spec": template(one),
        "parse only, all DAGs": template(many, serialise=False),
        "parsing context": context,
    }
    best = best_of(args.repeat, cases)
    cpu = {name: timing.cpu for name, timing in best.items()}

    print(f"{args.specs} specs, best of {args.repeat}; parse and serialise unless marked 'parse only'")
    print(f"{'case':<24}{'DAGs':>6}{'CPU s':>10}{'wall s':>10}")
    for name, timing in best.items():
        print(f"{name:<24}{timing.dags:>6}{timing.cpu:>10.3f}{timing.wall:>10.3f}")
    print("Ratios and goals use the CPU time, which a busy machine inflates less than the wall time.")
    ratio = cpu["template"] / cpu["hand-written"]
    print(f"template / hand-written: {ratio:.2f}x (goal: <= {GOAL_RATIO:.1f}x)")
    print(f"template, {args.specs} specs: {cpu['template']:.2f} s (goal for 100 specs: < {GOAL_SECONDS:.0f} s)")
    share = cpu["parsing context"] / cpu["parse only, all DAGs"]
    print(f"parsing context ({asked}) / parsing all DAGs: {share:.2f}x")


if __name__ == "__main__":
    main()
