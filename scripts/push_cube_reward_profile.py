"""Push Cube reward probe: does the learned reward pay more for the cube at the goal disc's centre than at its edge?

Rung-0 policies trained on the intent reward push the cube onto the disc's edge and stop there (docs/push_cube.md).
This places, per stand-in episode, the cube on the straight line from its reset position through the goal's centre at
``--distances`` from that centre (negative: past it) with the robot lined up behind it at ``--standoffs`` (touching
it, the expert's pushing standoff, a step back), renders the camera frame, and scores it with the learned reward. It
prints per distance and standoff the mean reward with its spread over episodes, and per standoff

- **home gain**: reward with the cube on the centre minus with it on the edge (the disc's radius), per episode (NaN
  unless 0 and the radius are among the distances);
- **approach gain**: reward on the edge minus at the farthest distance, per episode (what the policy climbs first);
- the fraction of episodes whose reward at the centre beats the edge's;
- Spearman of reward with minus the distance over the distances >= 0;
- for an intent reward, its heads per distance (P(intent), the milestone, the demonstration progress): which term
  moves where.

and draws the curves (``reward_profile.png``) with one episode's frames beneath, a row per standoff.
Evaluation-side (places the simulator's bodies); training never does::

    python scripts/push_cube_reward_profile.py --reward-run runs/go2aw/intent_p1 --out reports/go2_reward_profile
"""

from __future__ import annotations

import argparse
import json
from math import nan
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dmo_ros.dataset.images import resize  # noqa: E402
from dmo_ros.ladder.cube_state_env import CONTACT_M  # noqa: E402
from dmo_ros.policy.push_cube_eval import PushCubeEvalConfig  # noqa: E402
from dmo_ros.reward.energy import frame_reward, load_reward_model, to_model_images  # noqa: E402
from dmo_ros.reward.evaluate import spearman  # noqa: E402
from dmo_ros.reward.goal_image import load_goal_image  # noqa: E402
from dmo_ros.reward.intent import IntentRewardNet  # noqa: E402
from dmo_ros.sims.push_cube import PushCubeSim  # noqa: E402
from dmo_ros.teleop.push_cube_expert import PushCubeGeometry, reachable  # noqa: E402
from dmo_ros.training import CheckpointError  # noqa: E402

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


STANDOFFS = (CONTACT_M, PushCubeGeometry().standoff_m, 0.75)
"""Robot centre to cube centre (m): touching it (the front on the cube's back), the expert's pushing standoff, a step
back from it."""


HEADS = ("P(intent)", "milestone", "progress")
"""The intent reward's outputs, r = P(intent) (1 + w progress) + milestone (progress only with a progress head)."""


def head_outputs(model: IntentRewardNet, frames: np.ndarray) -> np.ndarray:
    """(N, 2 or 3) the intent reward's heads (:data:`HEADS`; the progress only with its head) on frames (N, H, W, 3)
    uint8."""
    out = model.outputs(to_model_images(frames))
    return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:2], torch.sigmoid(out[:, 2:])], 1).numpy()


def measure(reward, size: int, distances: np.ndarray, standoff: float, episodes: int, seed: int,
            model: IntentRewardNet | None = None) -> tuple[np.ndarray, list[np.ndarray], float, np.ndarray | None]:
    """Rewards (episodes, distances) (NaN where the robot would stand in a wall), the first measured episode's frames
    (one per distance; black where none), the goal's radius (m), and with an intent reward's ``model`` its heads
    (episodes, distances, 2 or 3) (:func:`head_outputs`; else None)."""
    geometry = PushCubeGeometry()
    rewards = np.full((episodes, len(distances)), np.nan)
    heads = None if model is None else np.full((episodes, len(distances), 2 + (model.config.progress_weight > 0)),
                                               np.nan)
    strip: list[np.ndarray] = []
    with PushCubeSim(PushCubeEvalConfig(seed=seed).sim_config()) as sim:
        radius = float(sim.config.goal_radius)
        for episode in range(episodes):
            if episode:
                sim.reset()
            frames, kept = [], []
            for k, (robot, cube) in enumerate(placements(sim, distances, standoff)):
                if np.any(reachable(robot[:2], geometry) != robot[:2]):
                    continue  # the robot would stand in a wall: no such frame
                sim.set_poses(robot=robot, cube=cube)
                frames.append(resize(sim.render(), size, size, "crop"))
                kept.append(k)
            if not frames:
                continue  # every placement of this episode would put the robot in a wall
            with torch.no_grad():
                rewards[episode, kept] = reward(np.stack(frames)[None], np.stack(frames)[:1]).numpy()[0]
                if heads is not None:
                    heads[episode, kept] = head_outputs(model, np.stack(frames))
            if not strip:
                blank = np.zeros_like(frames[0])
                strip = [frames[kept.index(k)] if k in kept else blank for k in range(len(distances))]
    return rewards, strip, radius, heads


def _without_nan(value):
    """``value`` with every NaN float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return None if isinstance(value, float) and value != value else value


def _spread(values: np.ndarray) -> dict:
    """Mean and standard deviation over the finite values; NaN for none."""
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()) if finite.size else nan, "std": float(finite.std()) if finite.size else nan}


def summarise(rewards: np.ndarray, distances: np.ndarray, radius: float) -> dict:
    """Mean and spread per distance, the home and approach gains, how often the centre beats the edge, Spearman with
    closeness (distances >= 0) and the best distance."""

    def at(d: float) -> np.ndarray:
        """The rewards at distance ``d``; NaN when ``d`` is not among the distances (the gain is then not measured)."""
        hits = np.flatnonzero(np.isclose(distances, d))
        return rewards[:, hits[0]] if hits.size else np.full(len(rewards), np.nan)

    farthest = float(distances.max())
    home, approach = at(0.0) - at(radius), at(radius) - at(farthest)
    forward = distances >= 0
    rank = [spearman(-distances[forward][np.isfinite(row[forward])], row[forward][np.isfinite(row[forward])])
            for row in rewards]
    return {"mean": np.nanmean(rewards, 0).tolist(), "std": np.nanstd(rewards, 0).tolist(),
            "episodes_per_distance": np.isfinite(rewards).sum(0).tolist(),
            "home_gain": _spread(home),
            "approach_gain": {**_spread(approach), "from_m": farthest},
            "centre_beats_edge": float(np.mean(home[np.isfinite(home)] > 0)) if np.isfinite(home).any() else nan,
            "spearman_with_closeness": float(np.nanmean(rank)),
            "best_distance_m": float(distances[int(np.nanargmax(np.nanmean(rewards, 0)))])}


def print_table(rows: list[dict], distances: np.ndarray, radius: float) -> None:
    headers = [f"{row['standoff_m']:g} m behind" for row in rows]
    print(f"{'cube to centre (m)':>18} " + " ".join(f"{header:>17}" for header in headers))
    for k, d in enumerate(distances):
        edge = "  <- the disc's edge" if abs(d - radius) < 1e-9 else ""
        print(f"{d:18.2f} " + " ".join(f"{row['mean'][k]:9.3f} ± {row['std'][k]:.3f}" for row in rows) + edge)
    for row in rows:
        if "heads" in row:
            print(f"intent reward's heads, {row['standoff_m']:g} m behind (mean over episodes):")
            print(f"{'cube to centre (m)':>18} " + " ".join(f"{d:6.2f}" for d in distances))
            for name, values in row["heads"].items():
                print(f"{name:>18} " + " ".join(f"{v:6.3f}" for v in values))
    for row in rows:
        home, approach = row["home_gain"], row["approach_gain"]
        print(f"{row['standoff_m']:g} m behind: home gain (centre - edge) {home['mean']:.3f} ± {home['std']:.3f}; "
              f"approach gain (edge - {approach['from_m']:g} m) {approach['mean']:.3f} ± {approach['std']:.3f}; "
              f"centre beats edge in "
              f"{row['centre_beats_edge']:.0%} of the episodes; Spearman with closeness "
              f"{row['spearman_with_closeness']:.3f}; best at {row['best_distance_m']:g} m")


def plot(rows: list[dict], strips: list[list[np.ndarray]], distances: np.ndarray, radius: float, title: str,
         path: Path) -> Path:
    """The mean reward per distance, one curve per standoff (± sd), above one row of frames per standoff."""
    figure = plt.figure(figsize=(12, 5 + 1.3 * len(rows)))
    top = 0.35
    axis = figure.add_axes((0.07, top + 0.05, 0.9, 0.9 - top - 0.05))
    for index, row in enumerate(rows):
        axis.errorbar(distances, row["mean"], yerr=row["std"], color=f"C{index}", lw=2, capsize=3,
                      label=f"robot {row['standoff_m']:g} m behind the cube (home gain {row['home_gain']['mean']:.2f})")
    axis.axvspan(-radius, radius, color="g", alpha=0.12, label="on the goal disc")
    axis.invert_xaxis()
    axis.set_xlabel("cube's distance from the goal's centre (m; negative: past it), robot lined up behind it")
    axis.set_ylabel("learned reward")
    axis.set_title(title)
    axis.legend(loc="lower left", fontsize=8)
    width, height = 0.9 / len(distances), (top - 0.04) / len(rows)
    for index, strip in enumerate(strips):
        for k, frame in enumerate(strip):
            ax = figure.add_axes((0.07 + k * width, top - 0.06 - (index + 1) * height + 0.02, width * 0.95,
                                  height * 0.9))
            ax.imshow(frame)
            ax.set_axis_off()
            if index == 0:
                ax.set_title(f"{distances[k]:g}", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", type=Path, required=True)
    parser.add_argument("--goal", type=Path, help="goal picture or goal set (.npy); not for an intent reward")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=10_000, help="placements' seed (the evaluation's by default)")
    parser.add_argument("--distances", type=float, nargs="+", default=list(DISTANCES), metavar="M")
    parser.add_argument("--standoffs", type=float, nargs="+", default=list(STANDOFFS), metavar="M",
                        help="robot centre to cube centre (m): 0.4 touches the cube, 0.55 is the expert's pushing "
                             "standoff (default: 0.4 0.55 0.75)")
    parser.add_argument("--out", type=Path, default=None, help="folder for reward_profile.json and .png")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if not all(standoff > 0 for standoff in args.standoffs):  # also refuses NaN
        parser.error(f"--standoffs must be > 0 m, got {args.standoffs}")

    try:
        model = load_reward_model(args.reward_run).eval()
        reward = frame_reward(model, None if args.goal is None else load_goal_image(args.goal))
    except (CheckpointError, OSError, ValueError) as error:  # no run, a damaged one, a goal missing or not needed
        parser.error(str(error))
    distances = np.asarray(args.distances, dtype=np.float64)
    rows, strips, radius = [], [], 0.0
    intent = model if isinstance(model, IntentRewardNet) else None
    for standoff in args.standoffs:
        rewards, strip, radius, heads = measure(reward, model.config.image_size, distances, standoff, args.episodes,
                                                args.seed, intent)
        rows.append({"standoff_m": standoff, **summarise(rewards, distances, radius)})
        if heads is not None:  # which of r = P(intent) (1 + w progress) + milestone moves where
            rows[-1]["heads"] = {name: np.nanmean(heads[..., k], 0).tolist()
                                 for k, name in enumerate(HEADS[:heads.shape[-1]])}
        strips.append(strip)
    print_table(rows, distances, radius)
    if args.out:
        summary = {"reward_run": str(args.reward_run), "episodes": args.episodes, "seed": args.seed,
                   "goal_radius_m": radius, "distances_m": distances.tolist(), "standoffs": rows}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "reward_profile.json").write_text(json.dumps(_without_nan(summary), indent=2))
        path = plot(rows, strips, distances, radius, str(args.reward_run), args.out / "reward_profile.png")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
