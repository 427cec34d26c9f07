"""The nightly flow on an S3 server and on local disk, same data; then the concurrent-writer audit on S3.

    python -m benchmarks.bench_object_store [--events 3e5] [--writers 8] [--rounds 3] [--kills 6]

SeaweedFS (`weed mini`, pipelines/lakehouse/local_s3.py) on 127.0.0.1 serves
S3. Synthetic users and items (the generator bench_scale uses) go through
every job, each its own process as Airflow runs it, on Spark local[*]:

  ingest -> embed-items (ALS) -> train-rqvae -> assign-semantic-ids ->
  cluster-behaviors -> train-tiger (test preset, 1 epoch) -> train-popularity
  -> train-sasrec -> train-twin -> generate-candidates for two dates, then the
  first date again -> evaluate -> optimize -> vacuum -> sql (DuckDB)

once with `--lakehouse s3://lake/... --artifacts s3://lake/...` and once
with local paths. Per stage and backend: `ok`, wall `seconds`, and the
objects (files) the stage wrote, counted by listing the roots before and after
(object stores never change an object in place: each new key is one PUT).
The rerun of the first date shows that replacing one partition writes that
partition's files, not the table's: `files_written` against the table's
file count.

Then bench_reliability's writers (separate processes, each appending,
overwriting days and upserting through the Delta bridge) and killed victims
on an s3:// root, and its audit: rows_lost, duplicated_rows, partial_writes.
Writes benchmarks/results/object_store.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import sys
import time

from benchmarks.common import write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "object_store"
DATES = ("2026-01-01", "2026-01-02")  # the synthetic events end in 2025
BUCKET = "lake"


def stages(raw: pathlib.Path) -> list[tuple[str, list[str]]]:
    first, second = (["--run-date", d] for d in DATES)
    candidates = ["generate-candidates", "--retrievers", "tiger", "--no-rerank", "--no-fallback", "--top-k", "10",
                  "--final-k", "10"]
    return [
        ("ingest", ["ingest", "--format", "synthetic", "--path", str(raw), *first]),
        ("embed-items", ["embed-items", "--source", "als", *first]),
        ("train-rqvae", ["train-rqvae", "--epochs", "10", *first]),
        ("assign-semantic-ids", ["assign-semantic-ids", *first]),
        ("cluster-behaviors", ["cluster-behaviors", "--holdout", "valid_test", *first]),
        ("train-tiger", ["train-tiger", "--size", "test", "--epochs", "1", "--eval-users", "500", *first]),
        ("train-popularity", ["train-popularity", *first]),
        ("train-sasrec", ["train-sasrec", "--dropout", "0.2", "--max-epochs", "2", "--eval-users", "500", *first]),
        ("train-twin", ["train-twin", "--epochs", "1", "--retrievers", "tiger", "--rerank-depth", "10", *first]),
        ("generate-candidates", [*candidates, *first]),
        ("generate-candidates-next-date", [*candidates, *second]),
        ("generate-candidates-rerun", [*candidates, *first]),
        ("evaluate", ["evaluate", "--retrievers", "tiger", "--no-knn", "--plot-dir", str(WORK / "plots"), *first]),
        ("optimize", ["optimize", *first]),
        ("vacuum", ["vacuum", *first]),
        ("sql", ["sql", "SELECT run_date, count(*) AS n FROM gold_candidates GROUP BY run_date"]),
    ]


class Listing:
    """Every object (file) under a backend's roots, by key."""

    def __init__(self, roots: list[str], env: dict[str, str]):
        self.roots, self.env = roots, env

    def keys(self) -> set[str]:
        found: set[str] = set()
        for root in self.roots:
            if root.startswith("s3://"):
                import pyarrow.fs as pafs

                from pipelines.lakehouse.local_s3 import ACCESS_KEY, SECRET_KEY

                fs = pafs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1",
                                       endpoint_override=self.env["AWS_ENDPOINT_URL"], scheme="http")
                selector = pafs.FileSelector(root.removeprefix("s3://"), recursive=True, allow_not_found=True)
                found |= {f.path for f in fs.get_file_info(selector) if f.type == pafs.FileType.File}
            else:
                found |= {str(p) for p in pathlib.Path(root).rglob("*") if p.is_file()}
        return found


def table_files(keys: set[str], table_dir: str) -> int:
    """Data files of one table (its parquet files) among `keys`."""
    return sum(1 for k in keys if f"/{table_dir}/" in k and k.endswith(".parquet"))


def run_flow(backend: str, lakehouse: str, artifacts: str, env: dict[str, str], raw: pathlib.Path,
             logs: pathlib.Path) -> dict:
    listing = Listing([lakehouse, artifacts], env)
    env = {**env, "TIGERTWIN_LAKEHOUSE_ROOT": lakehouse, "TIGERTWIN_ARTIFACTS_ROOT": artifacts,
           "PYSPARK_PYTHON": sys.executable, "TIGERTWIN_ARTIFACT_CACHE": str(logs / "artifact-cache")}
    out: dict = {}
    before = listing.keys()
    for name, job in stages(raw):
        started = time.perf_counter()
        with open(logs / f"{backend}-{name}.log", "w") as log:
            code = subprocess.run([sys.executable, "-m", "jobs.cli", *job], env=env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - started
        after = listing.keys()
        written = after - before
        out[name] = {"ok": code == 0, "seconds": round(seconds, 1), "files_written": len(written)}
        if name.startswith("generate-candidates"):
            out[name]["candidates_table_files"] = table_files(after, "candidates")
            out[name]["candidates_files_written"] = table_files(written, "candidates")
        print(f"  {backend:>5} {name:<30} {'ok' if code == 0 else 'FAILED':<6} {seconds:6.1f}s "
              f"{len(written):5d} files written", flush=True)
        if code:
            print((logs / f"{backend}-{name}.log").read_text()[-3000:])
            break
        before = after
    return out


def writers_audit(root: str, writers: int, rounds: int, rows: int, kills: int, work: pathlib.Path) -> dict:
    """bench_reliability's concurrent writers and killed victims against `root` (an s3:// URI), then its audit."""
    from benchmarks.bench_reliability import APPEND_DAYS, audit, execute, victims, writer

    execute(root, {"op": "seed", "kind": "append", "day": APPEND_DAYS[0].isoformat(), "rows": 1})
    execute(root, {"op": "seed", "kind": "upsert", "keys": ["seed"]})
    logs = [str(work / f"writer{w}.jsonl") for w in range(writers)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        pending = pool.starmap_async(writer, [(root, w, rounds, rows, logs[w]) for w in range(writers)])
        killed = victims(root, kills, rows)
        pending.get()
    seconds = time.perf_counter() - started
    acked = [json.loads(line) for path in logs for line in pathlib.Path(path).read_text().splitlines()]
    acked += [{"op": "seed", "kind": "append", "day": APPEND_DAYS[0].isoformat(), "rows": 1},
              {"op": "seed", "kind": "upsert", "keys": ["seed"]}]
    figures = audit(root, acked, killed)
    return {"writers": writers, "rounds": rounds, "kills": kills, "acknowledged_writes": len(acked), **figures,
            "unreadable_tables": unreadable(root), "seconds": round(seconds, 1)}


def unreadable(root: str) -> int:
    """Tables of the audit whose rows the bridge's reader (pyarrow over the snapshot's files) and delta-rs's own
    reader do not both read, alike."""
    from deltalake import DeltaTable

    from pipelines.lakehouse.delta import read_delta_arrow
    from pipelines.lakehouse.delta.files import object_store_options

    failures = 0
    for name in ("events", "items"):
        uri = f"{root}/{name}"
        try:
            ours = read_delta_arrow(uri)[0].num_rows
            theirs = DeltaTable(uri, storage_options=object_store_options()).to_pyarrow_table().num_rows
            failures += int(ours != theirs)
        except Exception as exc:  # any reader failing is what this counts
            print(f"  {name} unreadable: {exc}")
            failures += 1
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=float, default=3e5, help="synthetic events (default %(default)s)")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--kills", type=int, default=6)
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from pipelines.ingest.synthetic import SynthConfig, write_raw
    from pipelines.lakehouse.local_s3 import local_s3

    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    users = int(args.events) // 100
    raw = WORK / "raw"
    write_raw(SynthConfig(n_items=users, n_users=users, median_history=61, max_history=5_000, seed=0), str(raw))
    events = sum(pq.read_metadata(p).num_rows for p in raw.rglob("events*.parquet"))
    print(f"{events:,} synthetic events, {users:,} users and items", flush=True)
    result: dict = {"backend": "seaweedfs", "events": events, "users": users, "items": users, "spark": "local[*]"}
    with local_s3(WORK / "s3") as server:
        server.create_bucket(BUCKET)
        s3_env = {**os.environ, **server.env}
        print("nightly flow on S3 (SeaweedFS on 127.0.0.1)", flush=True)
        result["s3"] = run_flow("s3", f"s3://{BUCKET}/lakehouse", f"s3://{BUCKET}/models", s3_env, raw, WORK / "logs")
        print("nightly flow on local disk", flush=True)
        result["local"] = run_flow("local", str(WORK / "lakehouse"), str(WORK / "models"), dict(os.environ), raw,
                                   WORK / "logs")
        print(f"{args.writers} concurrent writers and {args.kills} killed ones on S3", flush=True)
        os.environ.update(server.env)  # the writer processes and the audit reach the server with these
        (WORK / "writers").mkdir()
        result["concurrent_writers"] = writers_audit(f"s3://{BUCKET}/reliability", args.writers, args.rounds,
                                                     args.rows, args.kills, WORK / "writers")
    s3, local = result["s3"], result["local"]
    result["seconds_s3_over_local"] = {name: round(s3[name]["seconds"] / local[name]["seconds"], 2)
                                       for name in s3 if name in local and local[name]["seconds"] > 0}
    result["all_ok"] = all(stage["ok"] for flow in (s3, local) for stage in flow.values()) and \
        len(s3) == len(local) == len(stages(raw))
    audit = result["concurrent_writers"]
    for key in ("rows_lost", "duplicated_rows", "partial_writes", "unreadable_tables"):
        print(f"  {key:>20}: {audit[key]}")
    print("PASS" if result["all_ok"] and not any(audit[k] for k in ("rows_lost", "duplicated_rows",
                                                                      "partial_writes", "unreadable_tables"))
          else "FAIL")
    write_results("object_store", result)


if __name__ == "__main__":
    main()
