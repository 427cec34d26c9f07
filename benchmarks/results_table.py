"""The README's results table, generated from benchmarks/results/*.json (`make results`).

    python -m benchmarks.results_table           # rewrite the table between the README's markers
    python -m benchmarks.results_table --check   # exit 1 when the README's table is not what the files say

One row per headline figure: the benchmark, what is measured, the value, the device and the date of the
results file (written by the benchmark). A figure whose file or key is missing is left
out, so a partial run never breaks the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Figure:
    file: str
    what: str
    value: Callable[[dict[str, Any]], str]
    # where a file merges parts run on different days: the key holding this part's date
    written_key: str = "written"


def _methods(dataset: str) -> Callable[[dict[str, Any]], str]:
    def value(d: dict[str, Any]) -> str:
        run = d["datasets"][dataset]
        scores = ", ".join(f"{m} {r['ndcg@10']:.4f}" for m, r in run["methods"].items())
        return f"{scores} ({run['seeds']} seed(s) x {run['minutes_per_model']:g} min a model)"
    return value


def _lift(dataset: str) -> Callable[[dict[str, Any]], str]:
    def value(d: dict[str, Any]) -> str:
        lift = d["datasets"][dataset]["nightly_minus_best_single"]
        return f"{lift['ndcg@10']:+.4f} +- {lift['ndcg@10_se']:.4f} vs {lift['best_single']}"
    return value


def _dense(dataset: str) -> Callable[[dict[str, Any]], str]:
    def value(d: dict[str, Any]) -> str:
        run = d["datasets"][dataset]
        diff = run["tiger_dense_minus_tiger"]
        return (f"{diff['ndcg@10']:+.4f} +- {diff['ndcg@10_se']:.4f} (dense {run['tiger_dense']['ndcg@10']:.4f}, "
                f"TIGER {run['tiger']['ndcg@10']:.4f}, SASRec {run['baselines']['sasrec']['ndcg@10']:.4f}; "
                f"{len(run['seeds'])} seed(s) x {run['minutes_per_model']:g} min)")
    return value


FIGURES = (
    Figure("nightly.json", "ml-100k test NDCG@10 by method (tonight's list = nightly)", _methods("ml-100k")),
    Figure("nightly.json", "ml-100k nightly minus best single retriever, NDCG@10 (paired SE)", _lift("ml-100k")),
    Figure("nightly.json", "Beauty test NDCG@10 by method", _methods("amazon-beauty")),
    Figure("nightly.json", "Beauty nightly minus best single retriever, NDCG@10 (paired SE)", _lift("amazon-beauty")),
    Figure("tiger.json", "Beauty TIGER test Recall@10 / NDCG@10 (cpu-bench)",
           lambda d: f"{d['tiger']['recall@10']:.4f} / {d['tiger']['ndcg@10']:.4f}"),
    Figure("tiger.json", "ml-100k TIGER's dense head minus TIGER, test NDCG@10 (paired SE)", _dense("ml-100k")),
    Figure("tiger.json", "Beauty TIGER's dense head minus TIGER, test NDCG@10 (paired SE)", _dense("amazon-beauty")),
    Figure("cold_start.json", "ml-100k withheld items (cold targets): NDCG@10 by method",
           lambda d: ", ".join(f"{m} {r['cold']['ndcg@10']:.4f}" for m, r in d["methods"].items())
                     + f" ({d['cold_test_users']} users)"),
    Figure("tiger_cuda.json", "Beauty TIGER test Recall@10 / NDCG@10 (paper size)",
           lambda d: f"{d['tiger']['recall@10']:.4f} / {d['tiger']['ndcg@10']:.4f}"),
    Figure("twin.json", "TWIN-V2 clusters vs raw history: speedup, AUC difference (paired SE over ranker seeds)",
           lambda d: f"{d['speedup_vs_raw_history']:.1f}x, {d['auc_clusters_minus_raw']:+.4f}"
                     + (f" (SE {se:.4f}, {len(d['synthetic_1e4']['ranker_seeds'])} seeds)"
                        if (se := d['synthetic_1e4'].get('auc_clusters_minus_raw_se')) is not None else "")),
    Figure("candidates.json", "fast beam search vs reference (same lists)",
           lambda d: f"{d['cpu']['speedup_vs_reference']:.1f}x, identical: {d['identical_to_reference']}"),
    Figure("reliability.json", "concurrent writers + kills: rows lost / duplicated",
           lambda d: f"{d['rows_lost']} / {d['duplicated_rows']}", written_key="writers_written"),
    Figure("reliability.json", "ingest batches with late events: rows lost / duplicated",
           lambda d: f"{d['late_events']['rows_lost']} / {d['late_events']['duplicated_rows']} "
                     f"({d['late_events']['batches']} batches, {d['late_events']['writers']} writers)"),
    Figure("delta_io.json", "Delta write / read time vs plain Parquet (10^7 rows)",
           lambda d: f"{d['write_delta_s'] / d['write_parquet_s']:.2f}x / {d['read_delta_s'] / d['read_parquet_s']:.2f}x"),
    Figure("clustering.json", "TWIN-V2 clustering vs scikit-learn", lambda d: f"{d['speedup_vs_sklearn']:.2f}x"),
    Figure("semantic_ids.json", "semantic IDs: unique 3-code share, min codebook use",
           lambda d: f"{d['unique_3code_fraction']:.4f}, {d['min_level_utilization']:.2f}"),
    Figure("scale.json", "every stage, 10^6 -> 10^7 events: time growth exponent",
           lambda d: f"{d['time_growth_exponent']:.2f}"),
    Figure("object_store.json", "nightly flow on S3 (SeaweedFS) vs local disk: seconds, all stages ok",
           lambda d: f"{sum(v['seconds'] for v in d['s3'].values()):.0f} vs "
                     f"{sum(v['seconds'] for v in d['local'].values()):.0f}, ok: {d['all_ok']} "
                     f"({d['events']:,} events)"),
    Figure("object_store.json", "concurrent writers on S3: rows lost / duplicated / partial writes",
           lambda d: f"{d['concurrent_writers']['rows_lost']} / {d['concurrent_writers']['duplicated_rows']} / "
                     f"{d['concurrent_writers']['partial_writes']} ({d['concurrent_writers']['writers']} writers, "
                     f"{d['concurrent_writers']['kills']} killed)"),
    Figure("cluster.json", "standalone cluster + S3: the same rows as local[*], every table",
           lambda d: f"{all(d['same_rows_as_local'].values())} ({d['executors']} executors, "
                     f"{sum(d['stage_seconds'].values()):.0f} s, {d['events']:,} events)"),
    Figure("distributed.json", "TIGER in 2 processes vs 1: largest loss difference, examples/s ratio",
           lambda d: f"{d['cpu']['max_relative_loss_difference']:.1e}, {d['cpu']['examples_per_s_ratio']:.2f}x "
                     f"({d['cpu']['backend']})"),
    Figure("pipeline.json", "the DAGs on ml-100k, seconds of task time", lambda d: f"{d['total_seconds']:.0f}",
           written_key="dags_written"),
    Figure("pipeline.json", "`make demo` after install, seconds (target <= 300)",
           lambda d: f"{d['demo_seconds_after_install']:.0f}", written_key="demo_written"),
    Figure("pipeline.json", "`tigertwin sql`, fresh process, slowest of 5 questions: DuckDB / Spark (s)",
           lambda d: f"{d['analyst']['sql_cli_seconds_max']['duckdb']:.2f} / "
                     f"{d['analyst']['sql_cli_seconds_max']['spark']:.2f}"),
)


def _device(data: dict[str, Any]) -> str:
    machine = data.get("machine", {})
    return str(machine["gpu"]) if machine.get("gpu") else f"{machine.get('cpus', '?')}-core CPU"


def _date(data: dict[str, Any], path: pathlib.Path, key: str = "written") -> str:
    """The date the benchmark wrote the figure (`written`, set by benchmarks.common.write_results)."""
    return str(data.get(key) or data.get("written") or dt.date.fromtimestamp(path.stat().st_mtime).isoformat())


def table() -> str:
    rows = ["| benchmark | figure | value | device | date |", "| --- | --- | --- | --- | --- |"]
    for figure in FIGURES:
        path = RESULTS / figure.file
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        try:
            value = figure.value(data)
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        rows.append(f"| `{figure.file}` | {figure.what} | {value} | {_device(data)} | {_date(data, path, figure.written_key)} |")
    return "\n".join(rows)


def with_table(readme: str, rendered: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{rendered}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    current = README.read_text()
    updated = with_table(current, table())
    if args.check:
        if updated != current:
            print("README.md's results table differs from benchmarks/results/*.json: run `make results`")
            return 1
        return 0
    README.write_text(updated)
    print("README.md results table regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
