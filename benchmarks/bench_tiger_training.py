"""TIGER training throughput: today's training loop against the previous one, same model, same batches.

    python -m benchmarks.bench_tiger_training [--size paper] [--steps 20] [--repeats 2]

The previous loop (kept below as the baseline) read the loss back from the
device twice per step, moved each batch's row indices to the device, trimmed
padding on every device (a host sync per batch) and ran AdamW one tensor at a
time. Today's loop (models/tiger_training.py) sums the loss on the device and
reads it once per epoch, keeps shapes fixed on GPU and uses fused AdamW there.
Both start from the same seeded model and take the same batches of
MovieLens-100K training examples (every prefix of every history; random
semantic IDs: throughput does not depend on them); their losses must match
(same arithmetic, same quality). Reported: examples/s of each, best of
`--repeats` alternating runs, and the ratio. Also measured on CPU, because the
choice was made on them: torch.compile and bf16 autocast (both slower on this
CPU, so training uses neither there). And the causal encoder
(`TigerConfig.causal_encoder`): training targets/s when one encoder pass over a
window trains all of its next-item targets, against the prefix loop's rate in
the same run. Writes benchmarks/results/tiger_training.json (the `cpu` block,
or the device's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from benchmarks.common import RESULTS, write_results
from benchmarks.datasets import DATA_DIR
from models.config import TigerTrainConfig
from models.device import default_device
from models.tiger import encoder_tokens
from models.tiger_training import _autocast, _on_device, _start_run, _train_one_epoch, _TrainingData
from pipelines.presets import PRESETS
from pipelines.retrieval.sequences import ItemIndex, build_sequences


def movielens_examples(levels: int, codebook: int, seed: int = 0):
    """ml-100k's training examples over a random (collision-free) semantic-ID table."""
    index, sequences = movielens_sequences(levels, codebook, seed)
    return index, sequences.train


def movielens_sequences(levels: int, codebook: int, seed: int = 0):
    """ml-100k's leave-one-out sequences over a random (collision-free) semantic-ID table."""
    ratings = pd.read_csv(DATA_DIR / "ml-100k" / "u.data", sep="\t", names=["user_id", "item_id", "rating", "ts"])
    events = pd.DataFrame({"user_id": "u" + ratings["user_id"].astype(str), "item_id": "i" + ratings["item_id"].astype(str),
                           "ts": pd.to_datetime(ratings["ts"], unit="s", utc=True)})
    items = np.sort(events["item_id"].unique())
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, codebook, (len(items), levels - 1)), np.zeros(len(items), np.int64)])
    codes[:, -1] = pd.DataFrame(codes[:, :-1]).groupby(list(range(levels - 1))).cumcount().to_numpy()
    table = pd.DataFrame({"item_id": items, "codes": list(codes), "semantic_id": ["-".join(map(str, c)) for c in codes]})
    index = ItemIndex.from_semantic_ids(table)
    return index, build_sequences(events, index)


def previous_epoch(run, config, train: TigerTrainConfig, codes, examples: _TrainingData, device, epoch: int) -> float:
    """The training loop as it was before this change (the baseline)."""
    buckets, histories, targets = examples.buckets, examples.rows, examples.targets
    n = len(targets)
    run.model.train()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(train.seed * 1_000_003 + epoch))
    total_loss = 0.0
    for start in range(0, n, train.batch_size):
        rows = order[start:start + train.batch_size].to(device)
        tokens = encoder_tokens(config, codes, histories[rows], buckets[rows])
        target_codes = codes[targets[rows]]
        with _autocast(device):
            logits = run.model(tokens, target_codes)
        loss = F.cross_entropy(logits.float().reshape(-1, config.codebook_size), target_codes.reshape(-1))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        run.scheduler.step()
        run.state.step += 1
        total_loss += float(loss.detach()) * len(rows)
        _ = f"{float(loss.detach()):.3f}"  # the progress bar's read of every step
    return total_loss / n


def timed(loop: str, config, train: TigerTrainConfig, codes, examples: _TrainingData, device) -> tuple[float, float]:
    """(training targets/s, mean loss) of one epoch over `examples` with a freshly seeded model."""
    n = examples.targets_total
    steps = -(-len(examples) // examples.rows_per_batch)
    run = _start_run(config, train, device, steps, None, None)
    if loop == "previous":  # the per-tensor AdamW it used
        run.optimizer = torch.optim.AdamW(run.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        run.scheduler = torch.optim.lr_scheduler.LambdaLR(run.optimizer, run.schedule)
    if loop in ("compiled", "bf16"):
        if loop == "compiled":
            run.model.forward = torch.compile(run.model.forward)  # type: ignore[method-assign]
        _train_one_epoch(run, config, train, codes, examples.first(2 * examples.rows_per_batch), device,
                         0, False)  # warm-up (compilation) outside the clock
        run = _start_run(config, train, device, steps, None, None)
        if loop == "compiled":
            run.model.forward = torch.compile(run.model.forward)  # type: ignore[method-assign]
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    if loop == "previous":
        loss = previous_epoch(run, config, train, codes, examples, device, 0)
    elif loop == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss, _ = _train_one_epoch(run, config, train, codes, examples, device, 0, False)
    else:
        loss, _ = _train_one_epoch(run, config, train, codes, examples, device, 0, False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - started), loss


def causal_encoder_rates(config, train: TigerTrainConfig, index, examples, steps: int, device, repeats: int,
                         prefix_rate: float) -> dict:
    """Training targets/s of the causal encoder's windows (one encoder pass trains every target of a window)
    against prefix training (`prefix_rate`, measured above in the same run): whole users from the first
    until the prefix run's number of targets, since a window needs its user's consecutive prefixes."""
    causal = dataclasses.replace(config, causal_encoder=True)
    want = min(len(examples), steps * train.batch_size)
    user_ends = np.flatnonzero(np.r_[examples.users[1:] != examples.users[:-1], True]) + 1
    upto = int(user_ends[user_ends >= want][0])
    data = _on_device(examples.take(np.arange(upto)), causal, train.batch_size, device)
    codes = torch.as_tensor(index.codes, device=device)
    rates = []
    for _ in range(repeats):
        rate, _ = timed("current", causal, train, codes, data, device)
        rates.append(round(rate, 1))
        print(f"{device.type} causal encoder: {rate:,.0f} targets/s", flush=True)
    return {"causal_encoder_targets_per_s": max(rates), "causal_encoder_runs": rates,
            "causal_encoder_speedup_vs_prefixes": round(max(rates) / prefix_rate, 3),
            "causal_encoder_windows_per_batch": data.rows_per_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["paper", "cpu-bench"], default="paper")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--variants", default="compiled,bf16", help="CPU-only extras to time ('' for none)")
    parser.add_argument("--no-causal", dest="causal", action="store_false",
                        help="skip the causal encoder's window training")
    args = parser.parse_args()
    preset = PRESETS[args.size]
    config, train = preset.tiger, preset.tiger_train
    device = default_device(None)
    index, examples = movielens_examples(config.levels, config.codebook_size)
    take = np.random.default_rng(1).permutation(len(examples))[: args.steps * train.batch_size]
    on_device = _on_device(examples.take(take), config, train.batch_size, device)
    codes = torch.as_tensor(index.codes, device=device)
    runs: dict[str, list[float]] = {"previous": [], "current": []}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for loop in ("previous", "current"):
            rate, losses[loop] = timed(loop, config, train, codes, on_device, device)
            runs[loop].append(round(rate, 1))
            print(f"{device.type} {args.size} {loop}: {rate:,.0f} examples/s, loss {losses[loop]:.5f}", flush=True)
    same_loss = bool(np.isclose(losses["previous"], losses["current"], rtol=1e-5))
    block: dict = {
        "size": args.size, "batch_size": train.batch_size, "steps": args.steps, "threads": torch.get_num_threads(),
        "previous_examples_per_s": max(runs["previous"]), "current_examples_per_s": max(runs["current"]),
        "speedup_vs_previous": round(max(runs["current"]) / max(runs["previous"]), 3),
        "runs": runs, "same_loss": same_loss, "loss": round(losses["current"], 6),
    }
    if device.type == "cpu":
        for variant in filter(None, args.variants.split(",")):
            rate, _ = timed(variant, config, train, codes, on_device, device)
            block[f"{variant}_examples_per_s"] = round(rate, 1)
            print(f"cpu {args.size} {variant}: {rate:,.0f} examples/s", flush=True)
    if args.causal:
        block.update(causal_encoder_rates(config, train, index, examples, args.steps, device, args.repeats,
                                          max(runs["current"])))
    print(json.dumps(block))
    previous = RESULTS / "tiger_training.json"
    payload = json.loads(previous.read_text()) if previous.exists() else {}
    payload.pop("machine", None)
    payload[device.type if device.type == "cpu" else torch.cuda.get_device_name(device)] = block
    write_results("tiger_training", payload)
    if not same_loss:
        raise SystemExit(f"the loops disagree: loss {losses['previous']} vs {losses['current']}")


if __name__ == "__main__":
    main()
