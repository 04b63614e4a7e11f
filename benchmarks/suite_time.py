"""How long the whole test suite takes, as ``make test`` runs it, against the 12-minute goal.

Runs ``python -m pytest -n <workers> --dist loadgroup --durations=0`` (every tier, the integration and browser
tiers included: PostgreSQL and Redis must be running, see docs/integration-tests.md), then prints the wall time,
the CPU time of pytest and of every process it waited for (user + sys), the machine's load average before and
after, and the slowest units of work. Two cores are shared by everything the suite starts: a load average above 2
before the run means other work is slowing it down.

    .venv/bin/python benchmarks/suite_time.py                 # every tier, 5 workers
    .venv/bin/python benchmarks/suite_time.py --workers 0     # one process, as before pytest-xdist
    .venv/bin/python benchmarks/suite_time.py -- -m "not integration and not browser"
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 12 * 60


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=5, help="pytest-xdist workers (0: one process)")
    parser.add_argument("--log", type=Path, default=Path("suite-time.log"), help="pytest's output")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()

    argv = [sys.executable, "-m", "pytest", "--durations=0", *args.pytest_args]
    if args.workers:
        argv[3:3] = ["-n", str(args.workers), "--dist", "loadgroup"]
    print(f"cores: {os.cpu_count()}, load average before: {loadavg()}")
    print("running:", " ".join(argv[1:]), f"(output in {args.log})", flush=True)
    started = time.monotonic()
    with args.log.open("w") as log:
        done = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = args.log.read_text(errors="replace")

    summary = next((line for line in reversed(output.splitlines()) if line.startswith("=")), "")
    print(f"pytest: {summary.strip('= ')} (exit {done.returncode})")
    print(f"load average after: {loadavg()}")
    print(f"wall {wall:.0f} s ({wall / 60:.1f} min), CPU {usage.ru_utime + usage.ru_stime:.0f} s "
          f"(user {usage.ru_utime:.0f} s, sys {usage.ru_stime:.0f} s)")  # fmt: skip
    units: dict[str, float] = {}
    for seconds, nodeid in re.findall(r"^([\d.]+)s (?:setup|call|teardown)\s+(\S+)", output, re.MULTILINE):
        path = nodeid.split("::")[0]
        unit = f"{path} [{nodeid.rsplit('[', 1)[-1]}" if "integration" in path else path
        units[unit] = units.get(unit, 0.0) + float(seconds)
    print("slowest modules and deployments (the sum of their tests' durations, seconds):")
    for unit, seconds in sorted(units.items(), key=lambda item: -item[1])[:8]:
        print(f"  {seconds:7.1f}  {unit}")
    verdict = "under" if wall < GOAL_SECONDS else "OVER"
    print(f"{verdict} the goal of {GOAL_SECONDS // 60} min by {abs(GOAL_SECONDS - wall):.0f} s")
    return done.returncode or (0 if wall < GOAL_SECONDS else 1)


if __name__ == "__main__":
    raise SystemExit(main())
