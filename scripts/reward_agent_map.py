"""Where the learned reward puts the agent: its reward over a grid of agent positions, the T held still.

The map of the reach reward gate (``dmo-gate reward RUN --goal G --task reach_fixed``,
:func:`dmo_ros.gates.reward.measure_reach_reward`), for looking at: the learned reward's map and, with
``--local-model``, the same map of a local model's reward head (what DMO differentiates) side by side.

    .venv/bin/python scripts/reward_agent_map.py --reward-run runs/reward --goal goal_reach.png \\
        --task reach_fixed --out reports/reward_agent_map.png

Prints per map the Spearman correlation of the reward with minus the agent's distance to the target, the best
grid spot against the target, the mean reward near the target (< 60 u) and far from it (> 200 u), and the
ascent share (from how many spots a hill-climb on the map ends at the target; see the gate), and with
``--local-model`` a table by distance to the target (each map's mean reward, the local gradient's norm and cosine
per band: how steep the reward is where a reach is won or lost). The PNG
shows the goal picture beside the map. ``--local-model RUN`` adds the same map of the local model's own reward
head (what DMO differentiates), on the posterior of each frame (the frame held for a few filter steps
with a zero action, so the deterministic state has seen it), and the gradient DMO hands the actor there: the
local model's ``d r̂ / d a`` at a = 0 through ``--gradient-steps`` prior steps with the action held (1: the
local gate's one-step gradient; the cpu preset's horizon: 16), printed as its mean cosine with the direction
to the target and drawn as arrows into ``OUT``'s ``*_gradient.png``. Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dmo_ros.gates.reward import ReachRewardGateConfig, measure_reach_reward, reach_grid, reach_reward_map_plot
from dmo_ros.local_model.frame_reward import cosine_toward, local_reward_gradients, local_reward_of_frames

DISTANCE_BINS = ((0, 12), (12, 24), (24, 36), (36, 48), (48, 64), (64, 90), (90, 150), (150, 800))
"""Distance bands (arena units) of the printed table near the target (strict reach success: < 20 u)."""

def gradient_field_plot(points, gradients, target, title: str, path: Path) -> Path:
    """Unit arrows of ``gradients`` (N, 2) at ``points`` (arena units), coloured by their cosine with the
    direction to ``target`` (green: toward it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cosine = cosine_toward(points, gradients, target)
    unit = gradients / (np.linalg.norm(gradients, axis=1, keepdims=True) + 1e-12)
    figure, axis = plt.subplots(figsize=(5.5, 5))
    arrows = axis.quiver(points[:, 0], points[:, 1], unit[:, 0], unit[:, 1], cosine, cmap="RdYlGn", clim=(-1, 1),
                         angles="xy", pivot="middle", scale=20)  # fixed: autoscale divides by 0 on all-zero arrows
    axis.plot(*target, "rx", ms=12, mew=2)
    axis.set(xlim=(0, 512), ylim=(512, 0), aspect="equal", title=title, xlabel="agent x (arena units)",
             ylabel="agent y")
    figure.colorbar(arrows, ax=axis, label="cosine with the direction to the target")
    figure.tight_layout()
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
                        help="also map this local model's reward head (trained toward the same goal picture); a DMO "
                             "policy run: the local model as its fine-tuning left it")
    parser.add_argument("--gradient-steps", type=int, default=1,
                        help="prior steps with the action held for the local model's reward gradient (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="PNG to draw the map into")
    options = parser.parse_args(argv)

    from dmo_ros.local_model.train import goal_reward_function
    from dmo_ros.policy.api import load_run_local_model
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
    from dmo_ros.training.checkpoint import CheckpointError

    try:
        size = load_reward_model(options.reward_run, "cpu").config.image_size
        rewards = {"learned reward": goal_reward_function(options.reward_run, options.goal, size, torch.device("cpu"))}
        local = None
        if options.local_model is not None:
            local = load_run_local_model(options.local_model)
            rewards["local model's reward head"] = local_reward_of_frames(local)
        if options.gradient_steps < 1:
            raise ValueError(f"--gradient-steps must be >= 1, got {options.gradient_steps}")
        config = ReachRewardGateConfig(task=options.task, step=options.step, image_size=size)
        results = {name: measure_reach_reward(reward, config) for name, reward in rewards.items()}
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
        print(f"wrote {reach_reward_map_plot(results, goal, options.out)}")
    if local is not None:
        import numpy as np

        points, frames, target = reach_grid(ReachRewardGateConfig(task=options.task, step=options.step,
                                                                  image_size=local.config.image_size))
        gradients = local_reward_gradients(local, frames, options.gradient_steps).numpy()
        cosine = cosine_toward(points, gradients, target)
        away = np.linalg.norm(target - points, axis=1) > 40  # at the target itself any direction is as good
        print(f"local model's reward gradient ({options.gradient_steps} prior steps, action held): mean cosine with "
              f"the direction to the target {cosine[away].mean():.3f}, toward it at {np.mean(cosine[away] > 0):.0%} "
              f"of {away.sum()} spots > 40 u from it")
        # Near the target, where a reach is won or lost: how steep each reward is and where the gradient points.
        distance = np.linalg.norm(target - points, axis=1)
        near = {name: result["reward"] for name, result in results.items()}
        magnitude = np.linalg.norm(gradients, axis=1)
        print(f"by distance to the target (u): spots | {' | '.join(f'{name}' for name in near)} | local gradient: "
              "norm, cosine")
        for low, high in DISTANCE_BINS:
            inside = (distance >= low) & (distance < high)
            if inside.any():
                print(f"  {low:3d}-{high:<3d}: {inside.sum():4d} | "
                      + " | ".join(f"{values[inside].mean():+.3f}" for values in near.values())
                      + f" | {magnitude[inside].mean():.3f}, {cosine[inside].mean():+.2f}")
        if options.out is not None:
            path = options.out.with_name(options.out.stem + "_gradient.png")
            title = f"local d r̂/d a ({options.gradient_steps} steps): cosine {cosine[away].mean():.2f}"
            print(f"wrote {gradient_field_plot(points, gradients, target, title, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
