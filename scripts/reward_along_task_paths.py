"""How the learned reward grades a pushing task's own T paths, by the T's distance to its goal.

The reward gate (``dmo-gate reward``) follows push_t's long path from a reset pose and asks for monotonicity and a
gain over the agent-only spread on the whole path. A shorter task lives on a piece of it: on ``push_region`` the T
starts 60-120 u from the goal and succeeds inside 30 u, so what the actor can learn from is the reward's *rise
between about 60 u and 30 u* next to how much the agent alone moves it. This places the stand-in's T along the
straight path from each of the task's start poses to the goal pose (the agent parked in a corner), scores the
frames, and prints the mean reward per distance band; then the agent-only spread (the T at its start pose, the
agent at 16 random spots clear of it; max - min per episode), and the ratio of the 45-60 u -> 20-30 u rise to
that spread. The simulator is used for evaluation only.

``--goal`` takes one picture (.png) or a goal set (.npy, the reward the best of its pictures; ``dmo-goal-image
--agent-spots K``).

    python scripts/reward_along_task_paths.py --reward-run runs/reward --goal goal.png --task push_region
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dataset.images import resize
from dmo_ros.gates.reward import _block_centre, _frames, _place
from dmo_ros.local_model.train import goal_reward_function
from dmo_ros.reward.energy import load_reward_model
from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim

BANDS = (0, 10, 20, 30, 45, 60, 90, 130)
"""Distance bands (arena units) of the T's centre from the goal T's; push_region succeeds below 30 u."""
PUSHING_TASKS = ("push_region", "push_near", "push_t")


@torch.no_grad()
def measure(reward_run: Path, goal: Path, task: str, episodes: int, seed: int) -> dict:
    """Rewards along the task's T-only paths (distance, reward) and the agent-only spread per episode."""
    size = load_reward_model(reward_run, "cpu").config.image_size
    reward = goal_reward_function(reward_run, goal, size, torch.device("cpu"))
    sim = PushTSim(PushTConfig(seed=seed, task=task))
    rng = np.random.default_rng(seed)
    margin = sim.config.arena_margin + 10
    park = np.array([margin, margin])
    camera = lambda: resize(sim.render_shapes(), size, size, "crop")  # noqa: E731
    path, spreads = [], []
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            start, goal_pose = np.array([*sim.env.block.position, sim.env.block.angle]), np.array(sim.env.goal_pose)
            _place(sim, goal_pose, park)
            goal_centre = _block_centre(sim)
            _place(sim, start, park)
            start_centre = _block_centre(sim)
            images, distances = [], []
            for s in np.linspace(0.0, 1.0, 25):
                _place(sim, start + s * (goal_pose - start), park)
                distances.append(float(np.linalg.norm(_block_centre(sim) - goal_centre)))
                images.append(camera())
            frames = _frames(images)
            path += zip(distances, reward(frames, frames[0]).float().numpy().tolist(), strict=True)
            placed = []
            while len(placed) < 16:
                spot = rng.uniform(margin, ARENA_UNITS - margin, 2)
                if np.linalg.norm(spot - start_centre) > 110.0:
                    _place(sim, start, spot)
                    placed.append(camera())
            values = reward(_frames(placed), frames[0]).float().numpy()
            spreads.append(float(values.max() - values.min()))
    finally:
        sim.close()
    return {"path": np.array(path), "agent_spread": np.array(spreads)}


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
    parser.add_argument("--seed", type=int, default=10_000, help="the starts' seed (default: the evaluation's)")
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
