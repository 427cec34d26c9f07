"""Shared fixtures: one local SparkSession for the whole run, a fresh lakehouse per test."""

from __future__ import annotations

import os
import pathlib

import pytest

from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig, SparkConfig

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def spark():
    from pipelines.lakehouse.spark import build_spark_session

    session = build_spark_session(
        SparkConfig(app_name="tigertwin-tests", master="local[2]", shuffle_partitions=2, driver_memory="2g")
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 server (SeaweedFS on 127.0.0.1:8333) with bucket `lake`; the AWS_* variables set for the
    module that uses it, restored after; the server stopped even when a test fails."""
    from pipelines.lakehouse.local_s3 import local_s3

    with local_s3(tmp_path_factory.mktemp("s3")) as server:
        server.create_bucket("lake")
        saved = {k: os.environ.get(k) for k in server.env}
        os.environ.update(server.env)
        try:
            yield server
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    return Catalog(LakehouseConfig(root=str(tmp_path / "lakehouse")))


@pytest.fixture
def shared_data() -> pathlib.Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config):
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


REPO = pathlib.Path(__file__).resolve().parents[1]


def job_command(job: str, *args: str) -> list[str]:
    """`python -m jobs.<job> ...` on this interpreter."""
    import sys

    return [sys.executable, "-m", f"jobs.{job}", *args]


def job_env() -> dict[str, str]:
    """The environment a job subprocess needs: this interpreter for Spark's Python workers, the repo importable."""
    import sys

    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO),
            "TIGERTWIN_SPARK_MASTER": "local[1]"}
