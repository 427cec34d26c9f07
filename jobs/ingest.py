"""`tigertwin ingest`: raw files -> silver.items, silver.events and ops.quarantine (Spark + Delta).

Examples:
  tigertwin ingest --format movielens --path ../shared/data/ml-100k
  tigertwin ingest --format sequences --path ../shared/data/amazon-beauty --dataset beauty
  tigertwin ingest --format amazon2014 --events reviews_Beauty_5.json.gz --items meta_Beauty.json.gz
  tigertwin ingest --format tabular --events clicks.csv --events-mapping '{"user_id": "uid", "item_id": "sku", "ts": "time"}'
  tigertwin ingest --format tabular --events clicks-2024-03-02.csv --run-date 2024-03-02 --batch-id clicks.2024-03-02 ...

Each run is one batch (--batch-id, or dataset + run date + input paths): its events replace exactly that
batch's earlier rows, so late events for an earlier day never erase that day's other batches.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys

from jobs.runtime import (
    add_common_args,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
    spark_from,
)
from pipelines.ingest.formats import FORMATS, files_in_dataset_folder
from pipelines.ingest.pipeline import (
    TABULAR_FORMATS,
    IngestConfig,
    already_ingested,
    ingest_fingerprint,
    run_ingest,
)

log = logging.getLogger("jobs.ingest")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("ingest", __doc__, parser)
    parser.add_argument("--format", required=True, choices=sorted([*FORMATS, *TABULAR_FORMATS]))
    parser.add_argument("--path", help="dataset folder in its published layout (movielens, sequences, synthetic)")
    parser.add_argument("--events", nargs="*", default=[], help="event files (reviews, ratings, rows)")
    parser.add_argument("--items", nargs="*", default=[], help="item/metadata files")
    parser.add_argument("--events-mapping", type=json.loads, default={},
                        help='tabular: JSON {silver column: file column} for events')
    parser.add_argument("--items-mapping", type=json.loads, default={},
                        help='tabular: JSON {silver column: file column} for items')
    parser.add_argument("--dataset", help="short dataset name used in run ids (default: from the path)")
    parser.add_argument("--mode", choices=["merge", "replace"], default="merge",
                        help="merge: upsert items, replace this batch's own events (never another batch's, "
                             "whatever their dates); replace: rewrite both tables from this input alone")
    parser.add_argument("--batch-id",
                        help="the delivery this run is; a rerun with the same id replaces exactly its rows "
                             "(default: dataset.run-date.<hash of the input paths>; letters, digits, . _ + -)")
    parser.add_argument("--keep-repeats", action="store_true",
                        help="keep every delivery of an event key (the source truly repeats events); "
                             "default: keep the first delivery and count the rest in ops.metrics")
    parser.add_argument("--k-core", type=int, default=0, help="keep users/items with >= k events (0 = off)")
    parser.add_argument("--max-bad-fraction", type=float, default=0.01,
                        help="fail when more than this share of an input table's rows is quarantined "
                             "(default %(default)s)")
    parser.add_argument("--earliest-event-time", type=_utc_datetime,
                        default=IngestConfig.earliest_event_time.date().isoformat(),
                        help="events before this are implausible and quarantined (default %(default)s)")
    parser.add_argument("--latest-event-days-ahead", type=int, default=IngestConfig.latest_event_days_ahead,
                        help="events after the end of run date + N days are quarantined (default %(default)s)")
    add_common_args(parser)
    return parser


def config_from(args: argparse.Namespace) -> IngestConfig:
    events, items = tuple(args.events), tuple(args.items)
    if args.path:
        found = files_in_dataset_folder(args.format, args.path)
        events, items = events or found["events"], items or found.get("items", ())
    if not events:
        raise SystemExit("ingest: give --path or --events")
    dataset = args.dataset or os.path.basename(os.path.normpath(args.path or events[0])).split(".")[0]
    return IngestConfig(
        format=args.format, dataset=dataset.replace("_", "-"), run_date=args.run_date,
        events_paths=events, items_paths=items,
        events_mapping=tuple(args.events_mapping.items()), items_mapping=tuple(args.items_mapping.items()),
        mode=args.mode, batch_id=args.batch_id, keep_repeats=args.keep_repeats, k_core=args.k_core, max_bad_fraction=args.max_bad_fraction,
        earliest_event_time=args.earliest_event_time, latest_event_days_ahead=args.latest_event_days_ahead,
    )


def _utc_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = config_from(args)
    catalog = catalog_from(args)
    fingerprint = ingest_fingerprint(config)
    delivered = already_ingested(catalog, config, fingerprint)
    if delivered is not None:  # before Spark starts: a second DAG's ingest of tonight's batch costs a second
        print(f"batch {config.batch}: silver.events version {delivered} already holds these exact files; "
              "nothing to do")
        return 0
    spark = spark_from(args, "tigertwin-ingest")
    report = run_ingest(spark, catalog, config, fingerprint)
    for key, value in report.counts.items():
        print(f"{key:>28}: {value:,}")
    for table, version in report.versions.items():
        print(f"wrote {table} -> {catalog.location(table)} (version {version})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "ingest")


if __name__ == "__main__":
    sys.exit(main())
