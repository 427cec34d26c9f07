"""Delta layer vs plain Parquet, same session, same data: write and full-scan read of N rows.

    python -m benchmarks.bench_delta_io [--rows 10000000] [--repeats 3]

Target: the Delta layer within 1.2x of `df.write.parquet` / `spark.read.parquet`
(key `ratio_vs_parquet`, the worse of write and read, on the fastest run of each;
the medians are recorded beside). Run it alone: a ratio whose baseline was slowed
by other load means nothing. The two paths alternate, so drift hits both alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import timings, write_results
from pipelines.lakehouse.config import SparkConfig
from pipelines.lakehouse.delta import read_delta, write_delta
from pipelines.lakehouse.spark import build_spark_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
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

    print(f"{args.rows:,} rows, {args.repeats} repeats, paths alternating")
    write_parquet(), write_delta_layer()  # warm up both paths (JIT, Python workers)
    runs: dict[str, list[float]] = {k: [] for k in ("write_parquet", "write_delta", "read_parquet", "read_delta")}
    for _ in range(args.repeats):
        runs["write_parquet"] += timings(write_parquet, 1)
        runs["write_delta"] += timings(write_delta_layer, 1)
        runs["read_parquet"] += timings(lambda: scan(spark.read.parquet(parquet_path)), 1)
        runs["read_delta"] += timings(lambda: scan(read_delta(spark, delta_path)), 1)
    t = {f"{k}_s": min(v) for k, v in runs.items()}
    medians = {f"{k}_median_s": statistics.median(v) for k, v in runs.items()}
    write_ratio = t["write_delta_s"] / t["write_parquet_s"]
    read_ratio = t["read_delta_s"] / t["read_parquet_s"]
    write_ratio_median = medians["write_delta_median_s"] / medians["write_parquet_median_s"]
    read_ratio_median = medians["read_delta_median_s"] / medians["read_parquet_median_s"]
    for key, values in runs.items():
        print(f"  {key:>14}: min {min(values):6.2f} s, median {statistics.median(values):6.2f} s")
    print(f"  write ratio delta/parquet: {write_ratio:.2f}x (medians {write_ratio_median:.2f}x)")
    print(f"  read  ratio delta/parquet: {read_ratio:.2f}x (medians {read_ratio_median:.2f}x)")
    write_results("delta_io", {
        "rows": args.rows, "repeats": args.repeats, **t, **medians, "runs_s": runs,
        "write_ratio_vs_parquet": round(write_ratio, 3),
        "read_ratio_vs_parquet": round(read_ratio, 3),
        "write_ratio_vs_parquet_median": round(write_ratio_median, 3),
        "read_ratio_vs_parquet_median": round(read_ratio_median, 3),
        "ratio_vs_parquet": round(max(write_ratio, read_ratio), 3),
        "target_ratio": 1.2,
    })
    shutil.rmtree(work, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
