"""The LocalExecutor, with the life-cycle phases' libraries loaded before it forks its workers."""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from airflow_mlc.core.preload import preload


class PreloadingLocalExecutor(LocalExecutor):
    """Airflow's LocalExecutor whose workers, and so every task process they fork, start with the libraries loaded.

    Set ``[core] executor = airflow_mlc.executors.local.PreloadingLocalExecutor``. The scheduler imports
    :data:`~airflow_mlc.core.preload.PRELOAD_MODULES` once as the executor starts (a few seconds, and their
    memory, which the forked workers share); each task then skips those imports. Where worker processes are
    started with ``spawn`` rather than ``fork``, nothing is preloaded and it behaves as the LocalExecutor.
    """

    def start(self) -> None:
        """Load the libraries (when workers are forked), then start the workers."""
        if self.is_mp_using_fork:
            preload()
        super().start()
