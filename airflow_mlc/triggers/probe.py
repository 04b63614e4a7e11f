"""ProbeTrigger: repeat one of the sensors' probes in the triggerer until its condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mlc.errors import BadInputError
from airflow_mlc.triggers.probes import PROBES, run_probe


class ProbeTrigger(BaseTrigger):
    """Run a probe every ``poke_interval`` seconds and fire once it reports done.

    The probe (blocking I/O: a query, a file read, MLflow calls) runs in a worker thread, so the
    triggerer's event loop never waits on it.

    :param probe: the name of a probe in ``airflow_mlc.triggers.probes.PROBES``.
    :param arguments: the probe's keyword arguments (JSON-serializable).
    :param poke_interval: seconds between two probes.
    :return: one event: ``{"status": "success", **detail}`` when the probe is done, or
        ``{"status": "error", "message"}`` when it found bad input or failed ``max_failures`` times in a
        row (a server that is briefly unreachable does not end the wait).
    """

    #: Consecutive probe failures (other than bad input) after which the trigger gives up.
    max_failures = 3

    def __init__(self, probe: str, arguments: dict[str, Any], poke_interval: float = 60.0) -> None:
        super().__init__()
        if probe not in PROBES:
            raise ValueError(f"unknown probe {probe!r} (known: {', '.join(sorted(PROBES))})")
        self.probe = probe
        self.arguments = dict(arguments)
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"probe": self.probe, "arguments": self.arguments, "poke_interval": self.poke_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        failures = 0
        while True:
            try:
                done, detail = await asyncio.to_thread(run_probe, self.probe, self.arguments)
                failures = 0
            except Exception as exc:
                failures += 1
                if isinstance(exc, BadInputError) or failures >= self.max_failures:
                    self.log.exception("Probe %s failed", self.probe)
                    yield TriggerEvent({"status": "error", "message": str(exc) or type(exc).__name__})
                    return
                self.log.warning("Probe %s failed (%s), trying again in %s s", self.probe, exc, self.poke_interval)
                await asyncio.sleep(self.poke_interval)
                continue
            if done:
                yield TriggerEvent({"status": "success", **detail})
                return
            self.log.info("Probe %s not done yet (%s); next try in %s s", self.probe, detail, self.poke_interval)
            await asyncio.sleep(self.poke_interval)
