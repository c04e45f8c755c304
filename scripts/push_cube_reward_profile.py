"""Push Cube reward probe: does the learned reward pay more for the cube at the goal disc's centre than at its edge?

Rung-0 policies trained on the intent reward push the cube onto the disc's edge and stop there (docs/push_cube.md).
This places, per stand-in episode, the cube on the straight line from its reset position through the goal's centre at
``--distances`` from that centre (negative: past it) with the robot lined up behind it at the pushing standoff,
renders the camera frame, and scores it with the learned reward. It prints per distance the mean reward with its
spread over episodes, and

- **home gain**: reward with the cube on the centre minus with it on the edge (the disc's radius), per episode;
- **approach gain**: reward on the edge minus at 1 m, per episode (what the policy already climbs);
- the fraction of episodes whose reward at the centre beats the edge's;
- Spearman of reward with minus the distance over the distances >= 0.

and draws the curves (``reward_profile.png``) with one episode's frames beneath. Evaluation-side (places the
simulator's bodies); training never does::

    python scripts/push_cube_reward_profile.py --reward-run runs/go2aw/intent_p1 --out reports/go2_reward_profile
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dmo_ros.dataset.images import resize  # noqa: E402
from dmo_ros.policy.push_cube_eval import PushCubeEvalConfig  # noqa: E402
from dmo_ros.reward.energy import frame_reward, load_reward_model  # noqa: E402
from dmo_ros.reward.evaluate import spearman  # noqa: E402
from dmo_ros.reward.goal_image import load_goal_image  # noqa: E402
from dmo_ros.sims.push_cube import PushCubeSim  # noqa: E402
from dmo_ros.teleop.push_cube_expert import PushCubeGeometry, reachable  # noqa: E402

DISTANCES = (1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0, -0.1, -0.2, -0.3)
"""Cube-to-goal-centre distances (m) along the line from the cube's reset position; negative: past the centre."""


def placements(sim: PushCubeSim, distances: np.ndarray, standoff: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(robot [x, y, yaw], cube [x, y, yaw]) per distance for the stand-in's current episode: the cube ``d`` m short
    of the goal's centre on the line from its reset position, the robot ``standoff`` m behind it facing the goal."""
    state = sim.state()
    goal, start = state.goal[:2], state.cube[:2]
    way = goal - start
    way = way / max(float(np.linalg.norm(way)), 1e-6)
    yaw = float(np.arctan2(way[1], way[0]))
    out = []
    for d in distances:
        cube = goal - d * way
        out.append((np.r_[cube - standoff * way, yaw], np.r_[cube, yaw]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", type=Path, required=True)
    parser.add_argument("--goal", type=Path, help="goal picture or goal set (.npy); not for an intent reward")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=10_000, help="placements' seed (the evaluation's by default)")
    parser.add_argument("--distances", type=float, nargs="+", default=list(DISTANCES), metavar="M")
    parser.add_argument("--standoff", type=float, default=PushCubeGeometry().standoff_m, metavar="M",
                        help="robot centre to cube centre (m; default the expert's pushing standoff, 0.55; the "
                             "robot's front touches the cube at 0.4)")
    parser.add_argument("--out", type=Path, default=None, help="folder for reward_profile.json and .png")
    args = parser.parse_args(argv)

    model = load_reward_model(args.reward_run).eval()
    reward = frame_reward(model, None if args.goal is None else load_goal_image(args.goal))
    size = model.config.image_size
    geometry = PushCubeGeometry()
    distances = np.asarray(args.distances, dtype=np.float64)
    radius = None
    rewards = np.full((args.episodes, len(distances)), np.nan)
    strip: list[np.ndarray] = []
    with PushCubeSim(PushCubeEvalConfig(seed=args.seed).sim_config()) as sim:
        radius = float(sim.config.goal_radius)
        for episode in range(args.episodes):
            if episode:
                sim.reset()
            frames, kept = [], []
            for k, (robot, cube) in enumerate(placements(sim, distances, args.standoff)):
                if np.any(reachable(robot[:2], geometry) != robot[:2]):
                    continue  # the robot would stand in a wall: no such frame
                sim.set_poses(robot=robot, cube=cube)
                frames.append(resize(sim.render(), size, size, "crop"))
                kept.append(k)
            with torch.no_grad():
                r = reward(np.stack(frames)[None], np.stack(frames)[:1]).numpy()[0]
            rewards[episode, kept] = r
            if episode == 0:
                blank = np.zeros_like(frames[0])
                strip = [frames[kept.index(k)] if k in kept else blank for k in range(len(distances))]

    def at(d: float) -> np.ndarray:
        return rewards[:, int(np.argmin(np.abs(distances - d)))]

    home, approach = at(0.0) - at(radius), at(radius) - at(1.0)
    forward = distances >= 0
    rank = [spearman(-distances[forward][np.isfinite(row[forward])], row[forward][np.isfinite(row[forward])])
            for row in rewards]
    summary = {
        "reward_run": str(args.reward_run), "episodes": args.episodes, "seed": args.seed, "goal_radius_m": radius,
        "standoff_m": args.standoff,
        "distances_m": distances.tolist(),
        "mean": np.nanmean(rewards, 0).tolist(), "std": np.nanstd(rewards, 0).tolist(),
        "home_gain": {"mean": float(np.nanmean(home)), "std": float(np.nanstd(home))},
        "approach_gain": {"mean": float(np.nanmean(approach)), "std": float(np.nanstd(approach))},
        "centre_beats_edge": float(np.nanmean(home > 0)),
        "spearman_with_closeness": float(np.nanmean(rank)),
        "best_distance_m": float(distances[int(np.nanargmax(np.nanmean(rewards, 0)))]),
    }
    print(f"{'cube to centre (m)':>18} {'reward':>8} {'± sd':>7} {'episodes':>8}")
    for k, d in enumerate(distances):
        column = rewards[:, k]
        edge = "  <- the disc's edge" if abs(d - radius) < 1e-9 else ""
        count = int(np.isfinite(column).sum())
        print(f"{d:18.2f} {np.nanmean(column):8.3f} {np.nanstd(column):7.3f} {count:8d}{edge}")
    home_gain, approach_gain = summary["home_gain"], summary["approach_gain"]
    print(f"home gain (centre - edge): {home_gain['mean']:.3f} ± {home_gain['std']:.3f}; "
          f"approach gain (edge - 1 m): {approach_gain['mean']:.3f} ± {approach_gain['std']:.3f}; "
          f"centre beats edge in {summary['centre_beats_edge']:.0%} of {args.episodes} episodes; "
          f"Spearman with closeness {summary['spearman_with_closeness']:.3f}; best at {summary['best_distance_m']} m")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "reward_profile.json").write_text(json.dumps(summary, indent=2))
        figure = plt.figure(figsize=(12, 6))
        axis = figure.add_axes((0.07, 0.42, 0.9, 0.53))
        for row in rewards:
            axis.plot(distances, row, color="0.8", lw=0.8)
        axis.errorbar(distances, summary["mean"], yerr=summary["std"], color="C0", lw=2, capsize=3,
                      label=f"mean ± sd over {args.episodes} episodes")
        axis.axvspan(-radius, radius, color="g", alpha=0.12, label="on the goal disc")
        axis.invert_xaxis()
        axis.set_xlabel(f"cube's distance from the goal's centre (m; negative: past it), robot lined up "
                        f"{args.standoff:g} m behind")
        axis.set_ylabel("learned reward")
        axis.set_title(f"{args.reward_run}: home gain {summary['home_gain']['mean']:.3f}, "
                       f"approach gain {summary['approach_gain']['mean']:.3f}")
        axis.legend(loc="upper left")
        width = 0.9 / len(distances)
        for k, frame in enumerate(strip):
            ax = figure.add_axes((0.07 + k * width, 0.03, width * 0.95, 0.25))
            ax.imshow(frame)
            ax.set_axis_off()
            ax.set_title(f"{distances[k]:g}", fontsize=7)
        path = args.out / "reward_profile.png"
        figure.savefig(path, dpi=100)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
