"""Sensors of airflow-mlc: wait for data in a window, a model version, or a drift verdict.

Each sensor repeats one probe from ``airflow_mlc.triggers.probes``; with ``deferrable=True`` the waiting
happens in the triggerer (``airflow_mlc.triggers.probe.ProbeTrigger``) instead of a worker slot.
"""
