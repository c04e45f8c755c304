"""A rung-0 SAPO policy evaluated with its actions drawn from its own Gaussian instead of its mean.

Rung 0's push_region policies succeed in a first shove of 3-6 steps or park beside the T for the rest of the
episode (docs/ladder.md, "Rung 0's own ceiling"). Whether the parking is a flat spot that noise would leave is read
here: the run's (averaged) actor is evaluated on the same seeded starts with a = tanh(mean + s * std * noise) for
each ``--std-scales`` s (0: the mean, as every evaluation runs it), and the successes of each are printed.

    python scripts/rung0_sampled_eval.py runs/r0x/base_s0 --std-scales 0 0.5 1 2 --episodes 50

The simulator's state is read here: evaluation only (rung 0 is the privileged-state oracle). Exit code 2 on bad
inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch
from torch import Tensor, nn


class SampledActor(nn.Module):
    """``tanh(mean + scale * std * noise)`` of a :class:`~dmo_ros.policy.actor.SquashedGaussianActor` (the mode at
    scale 0), its noise from a seeded generator."""

    def __init__(self, actor: nn.Module, scale: float, seed: int = 0) -> None:
        super().__init__()
        self.actor, self.scale = actor, scale
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, observation: Tensor) -> Tensor:
        distribution = self.actor.distribution(observation)
        noise = torch.randn(distribution.mean.shape, generator=self.generator)
        return torch.tanh(distribution.mean + self.scale * distribution.log_std.exp() * noise)


def sampled_successes(run_dir: Path, scales: list[float], episodes: int, seed: int) -> list[dict[str, float]]:
    """One evaluation record (``success_rate``, ``loose_success_rate``, ``mean_final_distance``, ...) per scale.

    Raises ValueError for a run that is not a rung-0 SAPO run on a Push-T task; CheckpointError for unreadable
    weights."""
    from dmo_ros.ladder.rung0 import Rung0Config, StatePolicy, build
    from dmo_ros.policy.evaluate import EvalConfig, evaluate_controller
    from dmo_ros.training.checkpoint import load_model_weights

    saved = run_dir / "config.json"
    if not saved.is_file():
        raise ValueError(f"{run_dir} holds no run (no config.json)")
    stored = json.loads(saved.read_text())
    if "rung0" not in stored:
        raise ValueError(f"{run_dir} is not a dmo-train-rung0 run")
    known = {f.name for f in fields(Rung0Config)}
    config = Rung0Config(**{key: value for key, value in stored["rung0"].items() if key in known})
    if config.method != "sapo" or config.task == "push_cube":
        raise ValueError(f"{run_dir} is a {config.method} run on {config.task}: this reads SAPO's Gaussian on Push-T")
    algorithm = build(config, 0)
    try:
        algorithm.load_state_dict(load_model_weights(run_dir))
        actor = algorithm.average.module if algorithm.average is not None else algorithm.learner.actor
        evaluation = EvalConfig(episodes=episodes, seed=seed, task=config.task)
        return [evaluate_controller(StatePolicy(SampledActor(actor, scale), config.task), evaluation).record()
                for scale in scales]
    finally:
        algorithm.close()


def main(argv: list[str] | None = None) -> int:
    from dmo_ros.training.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(prog="rung0_sampled_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a dmo-train-rung0 SAPO run on a Push-T task")
    parser.add_argument("--std-scales", type=float, nargs="+", default=[0.0, 1.0],
                        help="multiples of the actor's std to sample with (0: its mean)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per scale")
    parser.add_argument("--seed", type=int, default=10_000, help="base seed of the evaluation's starts")
    options = parser.parse_args(argv)
    if options.episodes < 1 or any(scale < 0 for scale in options.std_scales):
        parser.error("--episodes must be >= 1 and every --std-scales value >= 0")
    try:
        records = sampled_successes(options.run_dir, options.std_scales, options.episodes, options.seed)
    except (ValueError, CheckpointError, OSError) as error:
        parser.error(str(error))
    for scale, record in zip(options.std_scales, records, strict=True):
        successes = round(record["success_rate"] * options.episodes)
        print(f"{options.run_dir}: std x {scale:g}: success {successes}/{options.episodes}, loose "
              f"{record['loose_success_rate']:.0%}, final distance {record['mean_final_distance']:.1f} u", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
