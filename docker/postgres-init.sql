-- The databases of the compose stack, created by the postgres image on its first start (an empty data
-- directory): docker/compose.yaml mounts this file into /docker-entrypoint-initdb.d. It runs as POSTGRES_USER,
-- who owns the three databases. tests/dags/test_compose.py checks that every URL of the stack names one of them.
CREATE DATABASE airflow OWNER airflow;  -- Airflow's metadata database, also the Celery result backend
CREATE DATABASE mlflow OWNER airflow;   -- the MLflow server's backend store (runs, registered models)
CREATE DATABASE mlc OWNER airflow;      -- the source table bike_rentals and the prediction table bike_predictions
