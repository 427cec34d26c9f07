# tigertwin: the README's commands. Everything installs into .venv from this repo's own files.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAKEHOUSE ?= lakehouse
export PYSPARK_PYTHON := $(abspath $(PY))

.PHONY: venv test test-all lint demo airflow bench-delta clean

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

demo: venv  ## synthetic data -> ingest -> a query, on local[*] and a local Delta root
	$(VENV)/bin/tigertwin synth --out data/synthetic
	$(VENV)/bin/tigertwin ingest --format synthetic --path data/synthetic --lakehouse $(LAKEHOUSE) --run-date 2026-01-01
	$(VENV)/bin/tigertwin sql --lakehouse $(LAKEHOUSE) \
	  "SELECT i.categories[0] AS category, count(*) AS plays, round(avg(e.completion), 3) AS avg_completion \
	   FROM silver_events e JOIN silver_items i USING (item_id) GROUP BY 1 ORDER BY plays DESC"
	$(VENV)/bin/tigertwin embed-items --lakehouse $(LAKEHOUSE) --run-date 2026-01-01
	$(VENV)/bin/tigertwin cluster-behaviors --lakehouse $(LAKEHOUSE) --run-date 2026-01-01
	$(VENV)/bin/tigertwin sql --lakehouse $(LAKEHOUSE) \
	  "SELECT c.cluster_id, c.size, round(c.completion_mean, 2) AS completion, i.title AS representative \
	   FROM gold_user_clusters c JOIN silver_items i ON i.item_id = c.representative_item_id \
	   WHERE c.user_id = 'U000001' ORDER BY c.size DESC" --limit 8
	@echo "Tables under $(LAKEHOUSE)/: silver/{items,events}, gold/{item_embeddings,user_clusters,user_cluster_members}, ops/{quarantine,metrics}."
	@echo "Plots under plots/."
	@echo "Query them: .venv/bin/tigertwin sql --lakehouse $(LAKEHOUSE) 'SELECT * FROM silver_items LIMIT 5'  (more in README.md)"

# The Airflow UI on http://localhost:8080 (SQLite, this repo's DAGs, spark_default = local[*]).
# The admin password is printed at start and saved in airflow_home/.
airflow: venv
	mkdir -p airflow_home
	AIRFLOW_HOME=$(abspath airflow_home) AIRFLOW__CORE__DAGS_FOLDER=$(abspath dags) \
	AIRFLOW__CORE__LOAD_EXAMPLES=False TIGERTWIN_LAKEHOUSE_ROOT=$(abspath $(LAKEHOUSE)) \
	AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}' \
	PATH=$(abspath $(VENV))/bin:$$PATH PYTHONPATH=$(abspath .) \
	$(VENV)/bin/airflow standalone

bench-delta: venv
	$(PY) benchmarks/bench_delta_io.py

clean:
	rm -rf $(LAKEHOUSE) data spark-warehouse .pytest_cache
