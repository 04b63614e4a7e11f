"""How often the product's decisions are right on known-answer datasets: false alarms, detections, promotions.

For each dataset of ``tests/decisions/datasets.py`` (the bundled scikit-learn sets and the synthetic
generators) and each trial, the training path trains a champion (clean, split, fit, evaluate), then:

* the monitoring decision runs on a stationary window (rows of the same distribution that no model
  of the trial trained on): retraining requested there is a **false alarm**;
* it runs on a clearly shifted window, alternately a covariate shift (every drift column moved by
  one standard deviation, category mixes flipped) and a concept change (labels shuffled): retraining
  requested there is a **detection**;
* the evaluate task's rule judges challengers trained on the champion's training rows: a worse
  model (the weak features only), one fitted on shuffled labels and a trivial one against the good
  champion (a promotion is **wrong**), and the good model against the weak one as champion (a
  promotion is **right**; its absence a **missed** one). A similar model (90 % of the rows) against
  the good champion is shown for information: it is neither better nor worse.

Goals: false alarms at most 5 %, detection at least 90 %, no wrong promotion. Run with
``make bench-decisions``; ``--windows 6`` gives a quick run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.decisions.datasets import DATASETS, SHIFT_KINDS, Bundled, Dataset  # noqa: E402
from tests.decisions.harness import WRONG_CHALLENGERS, Trained, Verdict, monitor, promoted, train_champion  # noqa: E402

MAX_FALSE_ALARMS = 0.05
MIN_DETECTION = 0.90


@dataclass
class Tally:
    """The decisions counted for one dataset (or all of them)."""

    name: str
    trials: int = 0
    first_passed: int = 0
    stationary: int = 0
    alarms: int = 0
    drift_alarms: int = 0
    quality_alarms: int = 0
    shifted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHIFT_KINDS, 0))
    detected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHIFT_KINDS, 0))
    wrong_trials: int = 0
    wrong: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WRONG_CHALLENGERS, 0))
    right_trials: int = 0
    right: int = 0
    similar: int = 0
    errors: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Add another dataset's counts to these (the notes stay with their dataset)."""
        for name in ("trials", "first_passed", "stationary", "alarms", "drift_alarms", "quality_alarms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("wrong_trials", "right_trials", "right", "similar", "errors", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind in SHIFT_KINDS:
            self.shifted[kind] += other.shifted[kind]
            self.detected[kind] += other.detected[kind]
        for kind in WRONG_CHALLENGERS:
            self.wrong[kind] += other.wrong[kind]

    @property
    def false_alarm_rate(self) -> float:
        return self.alarms / self.stationary if self.stationary else 0.0

    @property
    def detection_rate(self) -> float:
        shifted = sum(self.shifted.values())
        return sum(self.detected.values()) / shifted if shifted else 0.0

    @property
    def wrong_promotions(self) -> int:
        return sum(self.wrong.values())


def _signal_causes(verdict: Verdict) -> str:
    parts = []
    if verdict.drift_detected:
        columns = ", ".join(verdict.drift.get("drifted_columns") or {})
        parts.append(f"drift {verdict.drift['drifted_share']:.0%} ({columns})")
    if verdict.degraded:
        parts.append(f"quality {verdict.quality.get('reason')}")
    return "; ".join(parts) or verdict.describe()


def _monitor_trial(dataset: Dataset, trained: Trained, trial: int, tally: Tally) -> None:
    stationary = dataset.window(trial, 0)
    verdict = monitor(trained, stationary)
    tally.stationary += 1
    if verdict.requested:
        tally.alarms += 1
        tally.drift_alarms += verdict.drift_detected
        tally.quality_alarms += verdict.degraded
        tally.notes.append(f"trial {trial}: false alarm on {len(stationary)} rows: {_signal_causes(verdict)}")
    kind = SHIFT_KINDS[trial % len(SHIFT_KINDS)]
    base = dataset.window(trial, 0 if isinstance(dataset, Bundled) else 1)
    verdict = monitor(trained, dataset.shifted(base, kind, trained.train, seed=trial))
    tally.shifted[kind] += 1
    if verdict.requested:
        tally.detected[kind] += 1
    else:
        tally.notes.append(f"trial {trial}: {kind} shift missed on {len(base)} rows: {verdict.describe()}")


def _promotion_trial(trained: Trained, trial: int, tally: Tally) -> None:
    good = trained.model
    tally.wrong_trials += 1
    for kind in WRONG_CHALLENGERS:
        if promoted(trained, trained.challenger(kind), good):
            tally.wrong[kind] += 1
            tally.notes.append(f"trial {trial}: WRONG promotion of the {kind} challenger over the good champion")
    tally.right_trials += 1
    if promoted(trained, trained.challenger("good"), trained.challenger("worse")):
        tally.right += 1
    else:
        tally.notes.append(f"trial {trial}: missed promotion of the good model over the weak champion")
    tally.similar += promoted(trained, trained.challenger("similar"), good)


def run_dataset(dataset: Dataset, trials: int) -> Tally:
    """Every decision of ``trials`` trials of ``dataset``, counted."""
    tally = Tally(dataset.name)
    started = time.perf_counter()
    for trial in range(trials):
        try:
            trained = train_champion(dataset, trial)
            tally.trials += 1
            tally.first_passed += trained.evaluation.passed
            if not trained.evaluation.passed:
                tally.notes.append(f"trial {trial}: the first model failed its gates: {trained.evaluation.reasons}")
            _monitor_trial(dataset, trained, trial, tally)
            _promotion_trial(trained, trial, tally)
        except Exception as exc:  # a crash is a finding too: count it, keep going
            tally.errors += 1
            tally.notes.append(f"trial {trial}: ERROR {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
        print(
            f"\r  {dataset.name}: trial {trial + 1}/{trials}, {tally.alarms} false alarms, "
            f"{sum(tally.detected.values())}/{sum(tally.shifted.values())} shifts detected, "
            f"{tally.wrong_promotions} wrong promotions",
            end="",
            file=sys.stderr,
            flush=True,
        )
    tally.seconds = time.perf_counter() - started
    print(f" ({tally.seconds:.0f} s)", file=sys.stderr, flush=True)
    return tally


def wilson(count: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a rate of ``count`` in ``total``.

    Args:
        count: Events counted.
        total: Trials.
        z: The normal quantile of the interval's confidence.

    Returns:
        The interval's bounds, as fractions.
    """
    if not total:
        return 0.0, 1.0
    rate = count / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    spread = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - spread), min(1.0, centre + spread)


def _percent(count: int, total: int, interval: bool = False) -> str:
    if not total:
        return "-"
    text = f"{count}/{total} {100 * count / total:3.0f}%"
    if interval:
        low, high = wilson(count, total)
        text += f" [{100 * low:.0f}-{100 * high:.0f}]"
    return text


def _row(tally: Tally) -> list[str]:
    shifted = sum(tally.shifted.values())
    detected = sum(tally.detected.values())
    misses = []
    if tally.false_alarm_rate > MAX_FALSE_ALARMS:
        misses.append("alarms")
    if shifted and tally.detection_rate < MIN_DETECTION:
        misses.append("detection")
    if tally.wrong_promotions:
        misses.append("promotion")
    if tally.errors:
        misses.append("errors")
    return [
        tally.name,
        _percent(tally.first_passed, tally.trials),
        _percent(tally.alarms, tally.stationary, interval=True),
        f"{tally.drift_alarms}/{tally.quality_alarms}",
        _percent(tally.detected["covariate"], tally.shifted["covariate"]),
        _percent(tally.detected["concept"], tally.shifted["concept"]),
        _percent(detected, shifted, interval=True),
        f"{tally.wrong_promotions} ({'/'.join(str(tally.wrong[k]) for k in WRONG_CHALLENGERS)})",
        _percent(tally.right, tally.right_trials),
        str(tally.right_trials - tally.right),
        _percent(tally.similar, tally.wrong_trials),
        "ok" if not misses else "MISSED: " + ", ".join(misses),
    ]


HEADER = [
    "dataset",
    "1st model passed",
    "false alarms [95% CI]",
    "drift/quality",
    "covariate",
    "concept",
    "detection [95% CI]",
    "wrong (worse/shuffled/trivial)",
    "right",
    "missed",
    "similar (info)",
    "goals",
]


def render(tallies: list[Tally], total: Tally) -> str:
    """The results as a plain-text table, one row per dataset and one for all of them, with the goals."""
    rows = [HEADER, *(_row(t) for t in tallies), _row(total)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for number, row in enumerate(rows):
        if number == len(rows) - 1:
            lines.append("  ".join("-" * w for w in widths))
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(
        f"goals: false alarms <= {MAX_FALSE_ALARMS:.0%}, detection >= {MIN_DETECTION:.0%}, zero wrong promotions "
        "(a goal is missed when the measured rate is beyond it; the Wilson interval shows how sure that is)"
    )
    return "\n".join(lines)


def main() -> None:
    """Run the trials and print the table (progress goes to stderr)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--windows",
        type=int,
        default=30,
        help="trials per dataset: as many stationary and as many shifted windows (half covariate, half concept)",
    )
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), help="only these datasets")
    parser.add_argument("--details", action="store_true", help="list every false alarm, miss and wrong promotion")
    arguments = parser.parse_args()

    names = arguments.datasets or list(DATASETS)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one thread per fit: faster on shared cores, and the same results
    print(f"{arguments.windows} trials for each of {len(names)} datasets", file=sys.stderr)
    tallies = [run_dataset(DATASETS[name], arguments.windows) for name in names]
    total = Tally("all")
    for tally in tallies:
        total.add(tally)
    print(render(tallies, total))
    print(f"{total.seconds:.0f} s; {total.errors} errors")
    noted = [(tally.name, note) for tally in tallies for note in tally.notes]
    if noted and arguments.details:
        print("\nDetails:")
        for name, note in noted:
            print(f"  {name}: {note}")
    elif noted:
        print(f"{len(noted)} events behind these figures: run with --details to list them")


if __name__ == "__main__":
    main()
