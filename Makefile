# tigertwin: the README's commands. Everything installs into .venv from this repo's own files.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAKEHOUSE ?= lakehouse
export PYSPARK_PYTHON := $(abspath $(PY))

.PHONY: venv test test-all lint demo airflow bench bench-delta results clean s3 cluster

# Reinstall when the dependency files change; constraints.txt pins every package.
$(STAMP): pyproject.toml constraints.txt
	@command -v java >/dev/null || { echo "Spark needs Java 17+: apt-get install -y openjdk-17-jre-headless"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,airflow]'
	touch $(STAMP)

venv: $(STAMP)

test: venv  ## unit, Spark and DAG tests (the slow marker is excluded)
	$(PY) -m pytest

test-all: venv
	$(PY) -m pytest -m ''

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Airflow's environment for the demo and the UI: this repo's DAGs, SQLite, spark_default = local[*].
AIRFLOW_ENV = AIRFLOW__CORE__DAGS_FOLDER=$(abspath dags) AIRFLOW__CORE__LOAD_EXAMPLES=False \
	TIGERTWIN_LAKEHOUSE_ROOT=$(abspath $(LAKEHOUSE)) TIGERTWIN_ARTIFACTS_ROOT=$(abspath artifacts) \
	AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}' \
	PATH=$(abspath $(VENV))/bin:$$PATH PYTHONPATH=$(abspath .)

demo: venv  ## the three DAGs with dag.test() on synthetic data, then tonight's candidates and the evaluation
	mkdir -p airflow_home
	AIRFLOW_HOME=$(abspath airflow_home) $(AIRFLOW_ENV) $(PY) -m jobs.demo --date 2026-01-01 --path data/synthetic
	@echo "Query the tables: .venv/bin/tigertwin sql --lakehouse $(LAKEHOUSE) 'SELECT * FROM gold_candidates LIMIT 5'  (more in README.md)"

# The Airflow UI on http://localhost:8080 (SQLite, this repo's DAGs, spark_default = local[*]).
# The admin password is printed at start and saved in airflow_home/.
airflow: venv
	mkdir -p airflow_home
	AIRFLOW_HOME=$(abspath airflow_home) $(AIRFLOW_ENV) $(VENV)/bin/airflow db migrate
	AIRFLOW_HOME=$(abspath airflow_home) $(AIRFLOW_ENV) $(VENV)/bin/airflow pools set gpu 1 "GPU jobs (queue gpu)"
	AIRFLOW_HOME=$(abspath airflow_home) $(AIRFLOW_ENV) $(VENV)/bin/airflow standalone

results: venv  ## the README's results table from benchmarks/results/*.json
	$(PY) -m benchmarks.results_table

bench-delta: venv
	$(PY) -m benchmarks.bench_delta_io

bench: venv  ## every benchmark (about 3 hours on 2 cores); figures in benchmarks/results/
	$(PY) -m benchmarks.bench_delta_io
	$(PY) -m benchmarks.bench_reliability
	$(PY) -m benchmarks.bench_clustering
	$(PY) -m benchmarks.bench_semantic_ids
	$(PY) -m benchmarks.bench_tiger --size cpu-bench --minutes 25
	$(PY) -m benchmarks.bench_tiger_training --size paper
	$(PY) -m benchmarks.bench_candidates --run benchmarks/.work/amazon-beauty
	$(PY) -m benchmarks.bench_nightly --datasets ml-100k --seeds 0,1,2 --minutes 5
	$(PY) -m benchmarks.bench_twin --tiger-run benchmarks/.work/ml-100k
	$(PY) -m benchmarks.bench_pipeline
	$(PY) -m benchmarks.bench_first_look
	$(PY) -m benchmarks.bench_scale

clean:
	rm -rf $(LAKEHOUSE) data artifacts plots airflow_home spark-warehouse .pytest_cache benchmarks/.work s3-data spark-cluster

s3: venv  ## a local S3 server (SeaweedFS, 127.0.0.1:8333) with bucket `lake`; prints the AWS_* variables to export
	$(PY) -m pipelines.lakehouse.local_s3 --dir s3-data --bucket lake

cluster: venv  ## a Spark standalone master and two workers on 127.0.0.1 (spark://127.0.0.1:7077); Ctrl-C stops them
	$(PY) -m pipelines.lakehouse.local_cluster --dir spark-cluster --workers 2
