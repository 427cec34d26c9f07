"""What every job entry point shares: the common flags, logging, and building the session from them."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Iterator

from pipelines.errors import TigertwinError
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import (
    ENV_ARTIFACTS_ROOT,
    ENV_LAKEHOUSE_ROOT,
    ENV_SPARK_LOG_DIR,
    ENV_SPARK_MASTER,
    LakehouseConfig,
    SparkConfig,
)


def job_parser(command: str, doc: str | None,
               parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """`tigertwin <command>`'s parser (or the CLI's subparser when given), its help the job's docstring."""
    parser = parser or argparse.ArgumentParser(prog=f"tigertwin {command}")
    parser.description = doc
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def add_common_args(parser: argparse.ArgumentParser, *, run_date: bool = True, spark: bool = True,
                    torch: bool = False) -> None:
    """The flags every job shares; `torch`: the job runs torch in this process (adds --threads)."""
    group = parser.add_argument_group("lakehouse, artifacts and Spark")
    group.add_argument(
        "--lakehouse", default=os.environ.get(ENV_LAKEHOUSE_ROOT, LakehouseConfig.root),
        help=f"Delta root: a path or URI (env {ENV_LAKEHOUSE_ROOT}; default %(default)s)",
    )
    group.add_argument(
        "--artifacts", default=os.environ.get(ENV_ARTIFACTS_ROOT, ArtifactStore.root),
        help=f"model artifacts root (env {ENV_ARTIFACTS_ROOT}; default %(default)s)",
    )
    if spark:
        group.add_argument(
            "--master", default=os.environ.get(ENV_SPARK_MASTER),
            help=f"Spark master URL (env {ENV_SPARK_MASTER}); default local[*], or spark-submit's",
        )
    group.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    if torch:
        group.add_argument("--threads", type=int, default=None,
                           help="torch CPU threads (default: the cores this process may run on)")
    if run_date:
        group.add_argument(
            "--run-date", type=dt.date.fromisoformat, default=dt.date.today(),
            help="logical date of the run, YYYY-MM-DD (Airflow passes {{ ds }}); default today",
        )


def add_tables_arg(parser: argparse.ArgumentParser, verb: str) -> None:
    """--tables for the table-upkeep jobs: catalog names, every table by default."""
    from pipelines.lakehouse.catalog import TABLES

    parser.add_argument("--tables", nargs="*", default=sorted(TABLES), choices=sorted(TABLES), metavar="TABLE",
                        help=f"catalog tables to {verb} (default: all)")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "matplotlib", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def set_torch_threads(args: argparse.Namespace) -> None:
    """For jobs that run torch in this process: threads from --threads or the cores it is given."""
    from models.device import set_cpu_threads

    logging.getLogger("jobs").info("torch uses %d CPU thread(s)", set_cpu_threads(args.threads))


def add_distributed_arg(parser: argparse.ArgumentParser) -> None:
    """--distributed N for the trainers (pipelines/training_processes.py)."""
    parser.add_argument("--distributed", type=_processes, default=1, metavar="N",
                        help="train in N data-parallel processes on this machine through Spark's TorchDistributor "
                             "(DDP: gloo on CPU, NCCL with one GPU per process); rank 0 validates and writes the "
                             "checkpoints, weights and card (default 1: in this process)")


def _processes(text: str) -> int:
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"a number of processes >= 1, not {text}")
    return count


@contextlib.contextmanager
def training_processes(args: argparse.Namespace, app_name: str) -> Iterator[int]:
    """The processes --distributed asks for; above 1, a Spark session hosts TorchDistributor while the job runs."""
    if args.distributed == 1:
        yield 1
        return
    spark = spark_from(args, app_name)
    try:
        yield args.distributed
    finally:
        spark.stop()


def catalog_from(args: argparse.Namespace) -> Catalog:
    return Catalog(LakehouseConfig(root=args.lakehouse))


def artifacts_from(args: argparse.Namespace) -> ArtifactStore:
    return ArtifactStore(root=args.artifacts)


def jvm_log_path(app_name: str) -> str:
    """Where a job's JVM writes (env TIGERTWIN_SPARK_LOG_DIR, default the temp dir), one file per run."""
    import tempfile

    folder = os.environ.get(ENV_SPARK_LOG_DIR) or os.path.join(tempfile.gettempdir(), "tigertwin-spark")
    return os.path.join(folder, f"{app_name}-{dt.datetime.now():%Y%m%dT%H%M%S}-{os.getpid()}.log")


def spark_from(args: argparse.Namespace, app_name: str):
    """The job's session; below DEBUG the JVM's banner, WARN lines and stack traces go to a file."""
    from pipelines.lakehouse.spark import build_spark_session

    quiet = getattr(args, "log_level", "INFO") != "DEBUG"
    return build_spark_session(SparkConfig(app_name=app_name, master=getattr(args, "master", None),
                                           jvm_log=jvm_log_path(app_name) if quiet else None))


def run_job(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, command: str) -> int:
    """Run a job; a project error (or a missing file) becomes one line on stderr and exit 2.

    The traceback is logged only under --log-level DEBUG: a user needs the message, a developer the stack.
    """
    for name in [k for k, v in os.environ.items() if k.startswith("AWS_") and v == ""]:
        del os.environ[name]  # an Airflow connection without an endpoint renders AWS_ENDPOINT_URL as "": unset
    try:
        return run(args)
    except (TigertwinError, FileNotFoundError) as exc:
        if getattr(args, "log_level", "INFO") == "DEBUG":
            logging.getLogger("jobs").exception("%s failed", command)
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"tigertwin {command}: {type(exc).__name__}: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
