"""tigertwin's batch logic, one subpackage per stage (jobs/ calls it; it never calls jobs/ or dags/).

    lakehouse/   config, table catalog, Delta bridge, Spark session, read-only SQL, ops tables,
                 freshness checks, model artifacts
    ingest/      raw files -> silver.items, silver.events, ops.quarantine
    items/       item vectors (text, ALS), RQ-VAE training, semantic IDs
    behavior/    TWIN-V2 clustering of each user's lifelong history
    retrieval/   TIGER: inputs, training job, serving (top-k by beam search)
    ranking/     TWIN-V2 ranker: inputs, blend, training job, serving (rerank)
    evaluation/  baselines and the offline evaluation
    candidates.py  tonight's lists -> gold.candidates
    splits.py      the leave-one-out split every model shares
    presets.py     named run sizes (paper, cpu-bench, demo, test)
    errors.py      every project exception
    plots.py       the PNGs
"""
