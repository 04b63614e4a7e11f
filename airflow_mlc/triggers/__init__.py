"""Triggers of airflow-mlc: the deferrable sensors wait in the triggerer through ``ProbeTrigger``."""
