"""Delta layer vs plain Parquet, same session, same data: write and full-scan read of N rows.

    python benchmarks/bench_delta_io.py [--rows 10000000] [--repeats 2]

Target: the Delta layer within 1.2x of `df.write.parquet` / `spark.read.parquet`
(key `ratio_vs_parquet`, the worse of write and read).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of, write_results  # noqa: E402
from pipelines.config import SparkConfig  # noqa: E402
from pipelines.delta import read_delta, write_delta  # noqa: E402
from pipelines.spark import build_spark_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    spark = build_spark_session(SparkConfig(app_name="bench-delta-io", driver_memory="6g"))
    from pyspark.sql import functions as F

    # An events-like table: ids, a string, doubles, a timestamp. Cached so generation is not timed.
    df = spark.range(args.rows).select(
        F.col("id"),
        F.concat(F.lit("user"), (F.col("id") % 100_000).cast("string")).alias("user_id"),
        (F.col("id") % 12_101).alias("item_id"),
        (F.rand(1) * 5).alias("rating"),
        F.rand(2).alias("completion"),
        (F.lit(1_700_000_000) + F.col("id")).cast("timestamp").alias("ts"),
    ).repartition(spark.sparkContext.defaultParallelism).cache()
    df.count()

    work = Path(tempfile.mkdtemp(prefix="bench-delta-"))
    parquet_path, delta_path = str(work / "parquet"), str(work / "delta")

    def write_parquet():
        df.write.mode("overwrite").parquet(parquet_path)

    def write_delta_layer():
        shutil.rmtree(delta_path, ignore_errors=True)
        write_delta(spark, df, delta_path, mode="overwrite")

    def scan(frame):
        frame.agg(F.count("*"), F.sum("rating"), F.countDistinct("user_id")).collect()

    print(f"{args.rows:,} rows, best of {args.repeats}")
    write_parquet(), write_delta_layer()  # warm up both paths (JIT, Python workers)
    t = {
        "write_parquet_s": best_of(write_parquet, args.repeats),
        "write_delta_s": best_of(write_delta_layer, args.repeats),
        "read_parquet_s": best_of(lambda: scan(spark.read.parquet(parquet_path)), args.repeats),
        "read_delta_s": best_of(lambda: scan(read_delta(spark, delta_path)), args.repeats),
    }
    write_ratio = t["write_delta_s"] / t["write_parquet_s"]
    read_ratio = t["read_delta_s"] / t["read_parquet_s"]
    for key, value in t.items():
        print(f"  {key:>16}: {value:7.2f} s")
    print(f"  write ratio delta/parquet: {write_ratio:.2f}x")
    print(f"  read  ratio delta/parquet: {read_ratio:.2f}x")
    write_results("delta_io", {
        "rows": args.rows, "repeats": args.repeats, **t,
        "write_ratio_vs_parquet": round(write_ratio, 3),
        "read_ratio_vs_parquet": round(read_ratio, 3),
        "ratio_vs_parquet": round(max(write_ratio, read_ratio), 3),
        "target_ratio": 1.2,
    })
    shutil.rmtree(work, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
