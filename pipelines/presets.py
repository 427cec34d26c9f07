"""Named run sizes, in one place: the paper's models, the CPU benchmark, the demo and the DAG tests.

`train-tiger --size <name>` takes its model and training schedule from here, the
nightly DAG's Param defaults come from "paper", `make demo` runs "demo" and the
DAG tests run "test". No heavy imports: DAG files read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.config import (
    RQVAETrainConfig,
    SASRecConfig,
    TigerConfig,
    TigerTrainConfig,
    TwinTrainConfig,
)
from pipelines.ranking.config import RerankConfig


@dataclass(frozen=True)
class RunPreset:
    tiger: TigerConfig = field(default_factory=TigerConfig)
    tiger_train: TigerTrainConfig = field(default_factory=TigerTrainConfig)
    rqvae_epochs: int = RQVAETrainConfig.epochs
    twin_epochs: int = TwinTrainConfig.epochs
    rerank: RerankConfig = field(default_factory=RerankConfig)
    sasrec_max_epochs: int = SASRecConfig.max_epochs
    sasrec_max_minutes: float | None = SASRecConfig.max_minutes

    def dag_conf(self, name: str) -> dict[str, object]:
        """The DAG Params that select this preset (what `dag.test(run_conf=...)` takes)."""
        return {"tiger_size": name, "tiger_epochs": self.tiger_train.epochs,
                "tiger_max_minutes": self.tiger_train.max_minutes, "twin_epochs": self.twin_epochs,
                "rerank_depth": self.rerank.depth, "final_k": self.rerank.final_k, "rqvae_epochs": self.rqvae_epochs,
                "sasrec_max_epochs": self.sasrec_max_epochs, "sasrec_max_minutes": self.sasrec_max_minutes}


# TIGER's dense head (LIGER-style; models/tiger.py), on in the full-size presets: chosen on validation NDCG@10
# with the same budget per model (benchmarks/bench_tiger_dense.py): Beauty 0.0507 / 0.0491 vs 0.0457 / 0.0445
# without it (2 seeds), ml-100k 0.0854 vs 0.0897 (3 seeds, mean): on for the sparse Amazon-like catalogs it
# wins clearly on, at a small loss on the dense MovieLens one.
DENSE_HEAD = {"dense_head": True, "dense_item_buckets": 32_768}

PRESETS: dict[str, RunPreset] = {
    # The TIGER paper's model; a 2-hour nightly budget (the best epoch by validation NDCG@10 is kept).
    "paper": RunPreset(tiger=TigerConfig(**DENSE_HEAD),  # type: ignore[arg-type]
                       tiger_train=TigerTrainConfig(max_minutes=120)),
    # What bench_tiger.py trains on 2 CPU cores: half the layers and heads, a higher learning rate, and the
    # causal encoder (one pass trains a window's 20 targets: 6x the targets per second). Model selection on
    # 5,000 validation users, so more of the budget trains. Chosen on validation; figures in results/tiger.json.
    "cpu-bench": RunPreset(
        tiger=TigerConfig(encoder_layers=2, decoder_layers=2, heads=4, head_dim=32, mlp_dim=512,
                          causal_encoder=True, **DENSE_HEAD),  # type: ignore[arg-type]
        tiger_train=TigerTrainConfig(epochs=50, lr=2e-3, warmup_steps=300, max_minutes=25, eval_users=5_000),
        rqvae_epochs=150),
    # `make demo`: every DAG end to end in under 5 minutes on 2 cores. The causal encoder trains a window's
    # targets in one pass: 6 epochs in 42 s reach the validation NDCG@10 3 prefix epochs reached in 132 s.
    "demo": RunPreset(tiger=TigerConfig.debug(causal_encoder=True), tiger_train=TigerTrainConfig(epochs=6, max_minutes=10),
                      rqvae_epochs=100, twin_epochs=2, rerank=RerankConfig(depth=20, final_k=10),
                      sasrec_max_epochs=5, sasrec_max_minutes=2),
    # The DAG tests: the smallest run that still exercises every task.
    "test": RunPreset(tiger=TigerConfig.debug(), tiger_train=TigerTrainConfig(epochs=1, max_minutes=5),
                      rqvae_epochs=5, twin_epochs=1, rerank=RerankConfig(depth=5, final_k=3),
                      sasrec_max_epochs=1, sasrec_max_minutes=1),
}
