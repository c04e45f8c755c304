"""How the learned reward grades a pushing task's own T paths, by the T's distance to its goal.

The reward gate (``dmo-gate reward``) follows push_t's long path from a reset pose and asks for monotonicity and a
gain over the agent-only spread on the whole path. A shorter task lives on a piece of it: on ``push_region`` the T
starts 60-120 u from the goal and succeeds inside 30 u, so what the actor can learn from is the reward's *rise
between about 60 u and 30 u* next to how much the agent alone moves it. This runs the reward gate's T-only
paths and agent-only spread (:func:`dmo_ros.gates.reward.measure_reward_shape`) from the task's own resets instead
of push_t's, and prints the mean reward per band of the T's distance from the goal, the agent-only spread, and
the ratio of the 45-60 u -> 20-30 u rise to that spread. The simulator is used for evaluation only.

``--goal`` takes one picture (.png) or a goal set (.npy, the reward the best of its pictures; ``dmo-goal-image
--agent-spots K``).

    python scripts/reward_along_task_paths.py --reward-run runs/reward --goal goal.png --task push_region
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dmo_ros.gates.reward import RewardGateConfig, measure_reward_shape
from dmo_ros.local_model.train import goal_reward_function
from dmo_ros.reward.energy import load_reward_model
from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS

BANDS = (0, 10, 20, 30, 45, 60, 90, 130)
"""Distance bands (arena units) of the T's centre from the goal T's; push_region succeeds below 30 u."""
PUSHING_TASKS = tuple(task for task in TASKS if task not in REACH_TASKS)


def measure(reward_run: Path, goal: Path, task: str, episodes: int, seed: int) -> dict:
    """The (distance, reward) pairs of the task's T-only paths, (N, 2), and the agent-only spread per episode."""
    size = load_reward_model(reward_run, "cpu").config.image_size
    reward = goal_reward_function(reward_run, goal, size, torch.device("cpu"))
    config = RewardGateConfig(task=task, episodes=episodes, steps=24, expert_runs=0, image_size=size, seed=seed)
    shape = measure_reward_shape(reward, config)
    path = np.array([(d, r) for ds, rs in zip(shape["curves"]["path_distance"], shape["curves"]["path"], strict=True)
                     for d, r in zip(ds, rs, strict=True)])
    return {"path": path, "agent_spread": np.array(shape["agent_spread_per_episode"])}


def band_means(path: np.ndarray, bands: tuple[int, ...] = BANDS) -> list[tuple[int, int, int, float, float]]:
    """(low, high, count, mean, std) of the reward per distance band [low, high) in arena units."""
    rows = []
    for low, high in zip(bands, bands[1:], strict=False):
        inside = (path[:, 0] >= low) & (path[:, 0] < high)
        values = path[inside, 1]
        rows.append((low, high, int(inside.sum()), float(values.mean()) if len(values) else float("nan"),
                     float(values.std()) if len(values) else float("nan")))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", type=Path, required=True, help="a dmo-train-reward run folder")
    parser.add_argument("--goal", type=Path, required=True, help="the goal picture (.png) or goal set (.npy)")
    parser.add_argument("--task", default="push_region", help="a pushing task of the stand-in (default push_region)")
    parser.add_argument("--episodes", type=int, default=30, help="task start poses (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the starts and agent spots (as the gate's)")
    args = parser.parse_args(argv)
    if args.task not in PUSHING_TASKS:
        parser.error(f"--task must be a pushing task ({', '.join(PUSHING_TASKS)}), got {args.task!r}")
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    result = measure(args.reward_run, args.goal, args.task, args.episodes, args.seed)
    rows = band_means(result["path"])
    print(f"reward along {args.task}'s T-only paths ({args.episodes} starts), goal {args.goal}:")
    for low, high, count, mean, std in rows:
        print(f"  T {low:3d}-{high:<3d} u from the goal  n={count:4d}  reward {mean:+.3f} +- {std:.3f}")
    spread = float(result["agent_spread"].mean())
    by_band = {(low, high): mean for low, high, _, mean, _ in rows}
    rise = by_band[(20, 30)] - by_band[(45, 60)]
    print(f"agent-only spread {spread:.3f}; rise 45-60 u -> 20-30 u {rise:+.3f} ({rise / spread:.2f} of the spread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
