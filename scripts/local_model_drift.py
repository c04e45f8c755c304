"""How well a local model fits *real* sequences before and after DMO's fine-tuning on world-model frames.

DMO fine-tunes its copy of the local model on imagined transitions (Algorithm 1); the deployed policy then
encodes real camera frames with that copy. This measures the pretrained local model and each policy run's
copy on the same real validation sequences of a dataset (labelled with the pretrained run's own reward
labels), so a drift away from real frames shows as a rise in the one-step errors.

    .venv/bin/python scripts/local_model_drift.py --local-model runs/local --dataset datasets/play \\
        runs/dmo runs/dmo_real_anchor

Prints one row per model: the local model's loss and its single-step accuracy (the columns of
``dmo-train-local-model``'s summary) averaged over ``--sequences`` random validation sequences (fixed seed).
Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from dmo_ros.local_model.model import LocalModel, SequenceBatch, SequenceDataset, load_local_model
from dmo_ros.policy.api import without_prefix
from dmo_ros.training.checkpoint import load_model_weights

COLUMNS = ("loss", "image_mse", "next_image_mse", "next_latent_error", "next_latent_kl", "reward_error")


def real_fit(model: LocalModel, sequences: SequenceDataset, rows: np.ndarray, batch_size: int = 32) -> dict[str, float]:
    """The local model's loss and logs averaged over ``sequences[rows]`` (eval mode, no gradient, seed 0)."""
    model.eval()
    torch.manual_seed(0)  # the posterior samples inside the loss
    totals: dict[str, float] = {}
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            items = [sequences[int(row)] for row in rows[start : start + batch_size]]
            loss, logs = model(SequenceBatch.collate(items))
            for key, value in {"loss": float(loss), **logs}.items():
                totals[key] = totals.get(key, 0.0) + float(value) * len(items) / len(rows)
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-model", type=Path, required=True, help="the pretrained dmo-train-local-model run")
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset the local model was labelled on")
    parser.add_argument("--sequences", type=int, default=256, help="validation sequences to average over")
    parser.add_argument("policy_runs", nargs="*", type=Path, help="dmo-train-policy dmo runs (their fine-tuned copy)")
    args = parser.parse_args(argv)
    try:
        config = json.loads((args.local_model / "config.json").read_text())
        index = json.loads((args.local_model / "rewards.json").read_text())
        entry = index.get(str(args.dataset.resolve()))
        if entry is None:
            raise ValueError(f"{args.local_model} holds no reward labels for {args.dataset}")
        labels = {str(args.dataset): np.load(args.local_model / entry["file"])}
        sequences = SequenceDataset([args.dataset], config["sequence_length"], "val", labels)
        if len(sequences) == 0:
            raise ValueError(f"{args.dataset} has no validation sequence of {config['sequence_length']} samples")
        rows = np.random.default_rng(0).choice(len(sequences), size=min(args.sequences, len(sequences)),
                                               replace=False)
        models = {"pretrained": load_local_model(args.local_model)}
        for run in args.policy_runs:
            model = load_local_model(args.local_model)
            model.load_state_dict(without_prefix("local.", load_model_weights(run)))
            models[str(run)] = model
    except (OSError, ValueError, KeyError) as error:
        print(f"local_model_drift: error: {error}", file=sys.stderr)
        return 2
    print(f"{len(rows)} real validation sequences of {config['sequence_length']} samples from {args.dataset}")
    width = max(len(name) for name in models)
    print(f"{'model':<{width}}" + "".join(f"{column:>19}" for column in COLUMNS))
    for name, model in models.items():
        fit = real_fit(model, sequences, rows)
        print(f"{name:<{width}}" + "".join(f"{fit.get(column, float('nan')):19.4g}" for column in COLUMNS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
