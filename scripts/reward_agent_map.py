"""Where the learned reward puts the agent: its reward over a grid of agent positions, the T held still.

The reward gate (``dmo-gate reward``) checks the reward of the pushing tasks: rising as the T nears its goal
pose and indifferent to the agent. A reach task needs the opposite: with the T still, the reward must rise as
the agent nears the target the goal picture shows. This places the Push-T stand-in's agent on a grid (every
``--step`` arena units, clear of the T) with the T on the task's start pose (reach_fixed: its goal pose), takes
the camera's frame of each, and scores them with the reward model toward the goal picture (evaluation only:
the stand-in is used to draw the frames).

    .venv/bin/python scripts/reward_agent_map.py --reward-run runs/reward --goal goal_reach.png \\
        --task reach_fixed --out reports/reward_agent_map.png

Prints the Spearman correlation of the reward with minus the agent's distance to the target, the best grid
spot against the target, the mean reward near the target (< 60 u) and far from it (> 200 u), and the *ascent*
share: from how many spots a hill-climb on the map (to the best of the 8 neighbouring spots while it improves)
ends within 1.5 grid steps of the target, i.e. what a policy that follows the reward's slope reaches. The
grid spans the agent's whole reachable range (``PushTConfig.arena_margin`` from each wall), walls and
corners included (a learned reward can be higher there than in the open, which a policy finds). The PNG
shows the goal picture beside the map. ``--local-model RUN`` adds the same map of the local model's own reward
head (what DMO differentiates), on the posterior of each frame (the frame held for ``HOLD_STEPS`` filter steps
with a zero action, so the deterministic state has seen it). Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from dmo_ros.gates.reward import _place, sim_frame
from dmo_ros.reward.evaluate import spearman

HOLD_STEPS = 4
"""Filter steps of the local model on each held frame before its reward head is read."""


def local_reward_of_frames(model):
    """The local model's reward head as a frame reward: ``(frames (N, 3, H, W) uint8, start) -> (N,)``, on the
    posterior after ``HOLD_STEPS`` filter steps of each frame with a zero action (``start`` is not used)."""

    @torch.no_grad()
    def reward(frames: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        model.eval()
        state = model.rssm.initial(len(frames), "cpu")
        zero = torch.zeros(len(frames), model.config.action_size)
        embed = model.encode(frames)
        for _ in range(HOLD_STEPS):
            state = model.rssm.posterior(model.rssm.prior_step(state, zero, sample=False), embed, sample=False)
        return model.reward(state)

    return reward


def reward_agent_map(reward, task: str = "reach_fixed", step: float = 24.0, image_size: int = 64,
                     seed: int = 0) -> dict:
    """The reward (``reward(frames (N, 3, H, W) uint8, start (3, H, W) uint8) -> (N,)``) of the agent on a grid
    (arena units; the T where the task's first episode starts it), with the target of that episode.

    Returns ``{"points": (N, 2), "reward": (N,), "target": (2,), "spearman": float, "best": (2,),
    "near": float, "far": float, "ascent": float, "ends": (N, 2)}``; ``near`` / ``far``: mean reward within 60 u
    / beyond 200 u of the target; ``ascent``: the share of spots whose hill-climb ends within 1.5 steps of the
    target, ``ends`` where each climb ends."""
    from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim
    from dmo_ros.sims.pusht_tasks import REACH_TASKS, disc_clears_t

    if task not in REACH_TASKS:
        raise ValueError(f"task {task!r} has no agent target; choose one of {', '.join(REACH_TASKS)}")
    sim = PushTSim(PushTConfig(task=task, seed=seed))
    try:
        state = sim.state()
        target, block = state.target, state.block
        margin = sim.config.arena_margin  # the agent's centre reaches [margin, ARENA_UNITS - margin]
        grid = np.unique(np.append(np.arange(margin, ARENA_UNITS - margin, step), ARENA_UNITS - margin))
        points, images = [], []
        for y in grid:
            for x in grid:
                point = np.array([x, y])
                if disc_clears_t(point, block, radius=25.0):
                    _place(sim, block, point)
                    points.append(point)
                    images.append(sim_frame(sim, image_size))
    finally:
        sim.close()
    frames = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    with torch.no_grad():
        values = reward(frames, frames[0]).float().cpu().numpy()
    points = np.array(points)
    distance = np.linalg.norm(points - target, axis=1)
    ends = hill_climb_ends(points, values, step)
    return {"points": points, "reward": values, "target": target,
            "spearman": float(spearman(values, -distance)), "best": points[int(np.argmax(values))],
            "near": float(values[distance < 60].mean()) if (distance < 60).any() else float("nan"),
            "far": float(values[distance > 200].mean()) if (distance > 200).any() else float("nan"),
            "ascent": float((np.linalg.norm(ends - target, axis=1) <= 1.5 * step).mean()), "ends": ends}


def hill_climb_ends(points: np.ndarray, values: np.ndarray, step: float) -> np.ndarray:
    """(N, 2): where a climb from each grid spot ends, moving to the best of its (up to 8) neighbouring spots
    (within 1.5 ``step``; spots inside the T are missing) while that improves the reward."""
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    neighbours = [np.flatnonzero((row > 0) & (row <= 1.5 * step)) for row in gaps]
    ends = np.empty_like(points)
    for start in range(len(points)):
        here = start
        while len(neighbours[here]):
            best = neighbours[here][np.argmax(values[neighbours[here]])]
            if values[best] <= values[here]:
                break
            here = best
        ends[start] = points[here]
    return ends


def plot_map(results: dict[str, dict], goal: np.ndarray, path: Path) -> Path:
    """The goal picture, then one map per entry of ``results`` (title: its key)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 1 + len(results), figsize=(4.6 * (1 + len(results)), 4.2), squeeze=False)
    axes = axes[0]
    axes[0].imshow(goal)
    axes[0].set(title="goal picture", xticks=[], yticks=[])
    for axis, (name, result) in zip(axes[1:], results.items(), strict=True):
        points = result["points"]
        dots = axis.scatter(points[:, 0], points[:, 1], c=result["reward"], s=40, cmap="viridis")
        axis.plot(*result["target"], "rx", ms=12, mew=2)
        ends = np.unique(result["ends"], axis=0)  # where following the reward's slope stops
        axis.scatter(ends[:, 0], ends[:, 1], s=90, facecolors="none", edgecolors="r")
        axis.invert_yaxis()
        axis.set_aspect("equal")
        axis.set(title=f"{name}: Spearman {result['spearman']:.2f}, ascent {result['ascent']:.0%}",
                 xlabel="agent x (arena units)",
                 ylabel="agent y")
        figure.colorbar(dots, ax=axis)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", type=Path, required=True, help="the reward model's run folder")
    parser.add_argument("--goal", type=Path, required=True, help="the goal picture (dmo-goal-image --task TASK)")
    parser.add_argument("--task", default="reach_fixed", help="a reach task (default reach_fixed)")
    parser.add_argument("--step", type=float, default=24.0, help="grid spacing in arena units (default 24)")
    parser.add_argument("--local-model", type=Path, default=None, metavar="RUN",
                        help="also map this local model's reward head (trained toward the same goal picture)")
    parser.add_argument("--out", type=Path, default=None, help="PNG to draw the map into")
    options = parser.parse_args(argv)

    from dmo_ros.local_model.train import goal_reward_function
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
    from dmo_ros.training.checkpoint import CheckpointError

    try:
        size = load_reward_model(options.reward_run, "cpu").config.image_size
        rewards = {"learned reward": goal_reward_function(options.reward_run, options.goal, size, torch.device("cpu"))}
        if options.local_model is not None:
            from dmo_ros.local_model.model import load_local_model

            rewards["local model's reward head"] = local_reward_of_frames(load_local_model(options.local_model, "cpu"))
        results = {name: reward_agent_map(reward, options.task, options.step, size) for name, reward in rewards.items()}
    except (CheckpointError, GoalImageError, OSError, ValueError) as error:
        print(f"reward_agent_map: error: {error}", file=sys.stderr)
        return 2
    for name, result in results.items():
        print(f"{name}: Spearman(reward, -distance to the target) {result['spearman']:.3f} over "
              f"{len(result['points'])} spots; best spot {result['best'].round().tolist()} (target "
              f"{result['target'].round().tolist()}); mean reward within 60 u {result['near']:.3f}, beyond 200 u "
              f"{result['far']:.3f}; ascent: {result['ascent']:.0%} of the spots climb to the target")
    if options.out is not None:
        goal = load_goal_image(options.goal, size=(size, size))
        print(f"wrote {plot_map(results, goal, options.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
