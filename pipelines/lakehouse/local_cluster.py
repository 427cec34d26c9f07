"""A Spark standalone cluster on this machine: one master and N workers, each its own JVM, bound to
127.0.0.1, for tests, benchmarks and trying the jobs on executors that share nothing with the driver
but the object store:

    python -m pipelines.lakehouse.local_cluster --workers 2      # prints the master URL; Ctrl-C stops all

pyspark's wheel ships `bin/spark-class` and the Master and Worker classes but not
`sbin/start-master.sh`, so the daemons are started with spark-class directly.
Jobs then take `--master spark://127.0.0.1:7077` (or TIGERTWIN_SPARK_MASTER; in
Airflow, the `spark_default` connection's host).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

MASTER_PORT = 7077


@dataclass(frozen=True)
class LocalCluster:
    master_url: str
    web_ui: str
    workers: int
    processes: tuple[subprocess.Popen, ...]

    def alive_workers(self) -> int:
        """Workers the master counts as ALIVE (its JSON status page)."""
        import json

        with urllib.request.urlopen(f"{self.web_ui}/json/", timeout=5) as response:  # noqa: S310 (loopback)
            status = json.loads(response.read())
        return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


def spark_home() -> pathlib.Path:
    import pyspark

    return pathlib.Path(pyspark.__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], log: pathlib.Path, env: dict[str, str]) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=handle,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def local_cluster(directory: str | os.PathLike, workers: int = 2, cores: int = 1, memory: str = "1g",
                  timeout_s: float = 120.0) -> Iterator[LocalCluster]:
    """Master + `workers` workers (each `cores` cores, `memory`), logs and scratch under `directory`;
    stopped on exit, even when the body fails."""
    folder = pathlib.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(spark_home()),
           "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_LOG_DIR": str(folder / "logs"),
           "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    ui_port = _free_port()
    master_url = f"spark://127.0.0.1:{MASTER_PORT}"
    processes = [_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(MASTER_PORT),
                         "--webui-port", str(ui_port)], folder / "master.log", env)]
    try:
        cluster = LocalCluster(master_url, f"http://127.0.0.1:{ui_port}", workers, tuple(processes))
        _wait(lambda: _answers(cluster), timeout_s, folder / "master.log", processes)
        for i in range(workers):
            processes.append(_start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                     "--cores", str(cores), "--memory", memory, "--webui-port", str(_free_port()),
                                     "--work-dir", str(folder / f"work-{i}"), master_url],
                                    folder / f"worker-{i}.log", env))
        cluster = LocalCluster(master_url, cluster.web_ui, workers, tuple(processes))
        _wait(lambda: cluster.alive_workers() >= workers, timeout_s, folder / "worker-0.log", processes)
        yield cluster
    finally:
        _stop(processes)


def _answers(cluster: LocalCluster) -> bool:
    try:
        cluster.alive_workers()
        return True
    except OSError:
        return False


def _wait(ready, timeout_s: float, log: pathlib.Path, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            raise RuntimeError(f"the local Spark cluster did not come up; see {log}")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.lakehouse.local_cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="spark-cluster", help="logs and scratch (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="cores per worker (default %(default)s)")
    parser.add_argument("--memory", default="1g", help="memory per worker (default %(default)s)")
    args = parser.parse_args(argv)
    with local_cluster(args.dir, args.workers, args.cores, args.memory) as cluster:
        print(f"Spark master {cluster.master_url} with {cluster.workers} workers (UI {cluster.web_ui}).")
        print(f"  export TIGERTWIN_SPARK_MASTER={cluster.master_url}    # the jobs' --master default")
        print(f"  export AIRFLOW_CONN_SPARK_DEFAULT='{{\"conn_type\": \"spark\", \"host\": \"{cluster.master_url}\"}}'")
        print("Ctrl-C stops the master and the workers.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            cluster.processes[0].wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
