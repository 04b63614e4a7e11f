"""Executor set-ups that load the life-cycle phases' libraries once, before the processes that run tasks are forked.

- :class:`airflow_mlc.executors.local.PreloadingLocalExecutor`: the LocalExecutor, preloading in the scheduler
  before it forks its workers.
- :data:`airflow_mlc.executors.celery_config.CELERY_CONFIG`: Airflow's Celery configuration, preloading in each
  Celery worker before it forks its pool.

What is loaded is :data:`airflow_mlc.core.preload.PRELOAD_MODULES`. See docs/deployment.md.
"""
