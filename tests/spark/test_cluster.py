"""The jobs on a real multi-process Spark cluster (a standalone master and two workers, each its own JVM,
started with spark-class on 127.0.0.1) against the S3 server: ingest -> semantic IDs -> clusters ->
candidates, each job its own process as Airflow would launch it; every table equals a local[*] run of the
same inputs. benchmarks/bench_cluster.py holds the flow and the comparison, and times it on more data."""

import os

import pytest

from benchmarks.bench_cluster import FlowInputs, compare_tables, run_locally, run_on_cluster
from pipelines.lakehouse.local_cluster import local_cluster
from tests.conftest import job_env

pytestmark = pytest.mark.integration


def test_the_flow_on_a_standalone_cluster_writes_the_rows_a_local_run_writes(spark, s3, tmp_path):
    from pipelines.lakehouse.artifacts import ArtifactStore
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.config import LakehouseConfig

    inputs = FlowInputs.synthetic(tmp_path / "raw", users=16, items=60)
    remote = Catalog(LakehouseConfig(root="s3://lake/cluster/lakehouse"))
    store = ArtifactStore(root="s3://lake/cluster/models")
    with local_cluster(tmp_path / "cluster", workers=2) as cluster:
        assert cluster.alive_workers() == 2
        env = {**job_env(), "TIGERTWIN_SPARK_MASTER": cluster.master_url, "SPARK_LOCAL_IP": "127.0.0.1",
               "TIGERTWIN_ARTIFACT_CACHE": str(tmp_path / "driver-cache")}
        run_on_cluster(spark, inputs, remote, store, env)

    # the same inputs on local[*] in this process, with the models the cluster run trained
    local = Catalog(LakehouseConfig(root=str(tmp_path / "lakehouse")))
    run_locally(spark, inputs, local, store)
    assert {table: why for table, why in compare_tables(remote, local).items() if why is not None} == {}
    assert not os.path.exists("s3:")
