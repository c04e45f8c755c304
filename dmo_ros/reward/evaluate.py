"""How good is a trained temporal-distance energy as a reward? ``dmo-reward-eval``.

Three measurements:

1. **Pairwise ranking accuracy** on held-out pairs: the fraction of validation-split
   (start, goal, earlier, later) items (drawn as in training, fixed by the seed) where
   f(later) > f(earlier). Chance is 0.5.
2. **Reward vs time on validation video**: for held-out segments (contiguous intent=1 runs
   when the dataset has any, else whole episodes; cut into chunks of at most max_span + 1
   samples, the horizon the model was trained on) the reward of every frame with o_start =
   the segment's first frame and o_goal = its last; Spearman(reward, time) per segment.
3. **Goal-reaching episodes on the Push-T stand-in** (evaluation only, never training data):
   an oracle moves the T block from its random start pose to the goal pose — the pose
   (x, y, angle) is interpolated linearly in ``steps`` steps, the shortest way round in angle,
   while the agent sits behind the block on the side away from the goal, as if pushing it.
   The scripted expert succeeds too rarely to give such episodes, and setting the pymunk
   bodies directly is exact: every episode really ends with coverage ~1. Each frame is the
   stand-in camera's 96 x 96 render resized like the dataset converter does, with the sim's
   coverage of the goal. Reward per frame: normalised f(o | o_first, o_goal) with o_goal the
   stand-in's goal picture (or ``--goal-image``); Spearman(reward, coverage) and
   Spearman(reward, time) per episode, and their means.

   On **Push Cube** (a reward trained on Go2 data: its datasets' ``robot``, or ``--robot go2``) the
   episodes are the stand-in's scripted expert (:class:`~dmo_ros.teleop.push_cube_expert.PushCubeExpert`,
   privileged) walking behind the cube and pushing it into the goal disc, up to ``steps`` steps or its
   success; each frame's ground truth is the task's progress (1 - cube-to-goal distance / the distance at
   the start) and the reward's goal picture is ``--goal-image`` (required: the stand-in has no goal
   picture of its own). Spearman(reward, progress) replaces Spearman(reward, coverage).

Outputs in ``--out``: ``reward_eval.json`` (all numbers), ``reward_vs_time.png`` (reward, and
coverage on a twin axis, against time for a few episodes), and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.dataset.format import DatasetError, open_arrays, read_meta
from dmo_ros.dataset.images import resize
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder
from dmo_ros.reward.energy import EnergyNet, GoalReward
from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
from dmo_ros.reward.intent import IntentReward, IntentRewardNet
from dmo_ros.reward.pairs import PairDataset, RankingPairs, true_runs
from dmo_ros.training.checkpoint import CheckpointError
from dmo_ros.training.distributed import World, resolve_device

# -- rank statistics ---------------------------------------------------------------------------


def average_ranks(values: np.ndarray | list[float]) -> np.ndarray:
    """1-based ranks of a 1-D array; tied values share the average of the ranks they span."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if np.isnan(x).any():
        raise ValueError("cannot rank NaN values")
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    new_group = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    group = np.cumsum(new_group) - 1  # group id of each sorted position
    first = np.flatnonzero(new_group)  # 0-based first position of each group
    last = np.append(first[1:], len(x)) - 1
    ranks = np.empty(len(x))
    ranks[order] = ((first + last) / 2.0 + 1.0)[group]
    return ranks


def spearman(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties handled).

    NaN when undefined: fewer than two values, or either input constant.
    """
    ra, rb = average_ranks(a), average_ranks(b)
    if len(ra) != len(rb):
        raise ValueError(f"spearman needs equal lengths, got {len(ra)} and {len(rb)}")
    if len(ra) < 2:
        return math.nan
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else math.nan


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# -- pairwise accuracy -----------------------------------------------------------------------


@torch.no_grad()
def pairwise_accuracy(model: EnergyNet, pairs: PairDataset, max_pairs: int = 2000, batch_size: int = 256,
                      seed: int = 0) -> tuple[float, int]:
    """(accuracy, pairs ranked): fraction of items with f(later) > f(earlier), over up to ``max_pairs`` items; tie
    items (pairs drawn with ``tie_changed_share``) are not ranked, so they count in neither number."""
    if len(pairs) == 0:
        return math.nan, 0
    device = next(model.parameters()).device
    indices = np.arange(len(pairs))
    if len(indices) > max_pairs:
        indices = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
    was_training = model.training
    model.eval()
    correct = counted = 0
    try:
        for begin in range(0, len(indices), batch_size):
            batch = RankingPairs.collate([pairs[int(k)] for k in indices[begin: begin + batch_size]]).to(device)
            _, logs = model(batch)
            accuracy, ordered = logs["accuracy"]  # over the ordered pairs (ties, if any, are not ranked)
            correct += round(accuracy * ordered)
            counted += round(ordered)
    finally:
        model.train(was_training)
    return (correct / counted if counted else math.nan), counted


# -- validation video --------------------------------------------------------------------------


def validation_segments(folder: Path | str, max_length: int, limit: int, split: str = "val",
                        min_length: int = 4) -> tuple[list[dict[str, int]], str]:
    """Held-out segments (episode, start, length) to score, and their kind ("intent" runs or "episode")."""
    meta = read_meta(folder)
    arrays = open_arrays(folder)
    episodes = [ep for ep in meta["episodes"] if split == "all" or ep["split"] == split]
    intent = np.asarray(arrays["intent"])
    use_intent = any(intent[ep["start"]: ep["start"] + ep["length"]].any() for ep in episodes)
    segments = []
    for ep in episodes:
        first, length = int(ep["start"]), int(ep["length"])
        runs = true_runs(intent[first: first + length]) if use_intent else [(0, length)]
        for a, b in runs:
            for chunk in range(a, b, max_length):
                end = min(chunk + max_length, b)
                if end - chunk >= min_length:
                    segments.append({"episode": int(ep["index"]), "start": first + chunk, "length": end - chunk})
    return segments[:limit], "intent" if use_intent else "episode"


# -- goal-reaching oracle (Push-T stand-in, evaluation only) -----------------------------------


@dataclass
class OracleEpisode:
    """A stand-in episode in which the block truly goes from its start pose to the goal pose."""

    frames: np.ndarray
    """(T, H, W, 3) uint8: the camera frames, resized to the model's size."""
    coverage: np.ndarray
    """(T,) float: the sim's coverage of the goal T at each frame (ground truth, evaluation only); on Push Cube
    the task's progress (see ``measure``)."""
    goal_image: np.ndarray
    """(H, W, 3) uint8: the stand-in's goal picture for this episode (block on the goal, agent at its reset place)."""
    episode: int
    """Stand-in episode number (the sim is seeded per episode)."""
    measure: str = "coverage"
    """What ``coverage`` holds: ``coverage`` (Push-T) or ``progress`` (Push Cube)."""


def push_cube_expert_episodes(count: int, steps: int = 200, seed: int = 0, size: tuple[int, int] = (64, 64),
                              goal_image: np.ndarray | None = None) -> list[OracleEpisode]:
    """``count`` Push Cube stand-in episodes of the privileged scripted expert, each until success or ``steps``
    steps: the ego camera's frames resized like the dataset converter, and the progress at each frame."""
    from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim
    from dmo_ros.teleop.operator import Observation
    from dmo_ros.teleop.push_cube_expert import PushCubeExpert

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if goal_image is None:  # kept with the episode for a goal-picture reward; an intent reward reads none
        goal_image = np.zeros((*size, 3), np.uint8)
    def observation(state) -> Observation:
        return Observation(state.episode, state.step, state.robot, state.cube, state.goal, state.progress,
                           state.success, state.cube_in_view)

    sim = PushCubeSim(PushCubeConfig(seed=seed))  # the recorded camera's 96 x 96
    expert = PushCubeExpert()
    episodes = []
    try:
        for e in range(count):
            if e:
                sim.reset()
            expert.begin(observation(sim.state()), np.random.default_rng([seed, e]))
            frames, progress = [], []
            for _ in range(steps + 1):
                frames.append(resize(sim.render(), size[0], size[1], "crop"))
                state = sim.state()
                progress.append(state.progress)
                if state.success or len(frames) > steps:
                    break
                sim.step(np.asarray(expert.act(observation(state)), dtype=np.float64))
            episodes.append(OracleEpisode(np.stack(frames), np.array(progress), goal_image, sim.episode, "progress"))
    finally:
        sim.close()
    return episodes


def goal_reaching_episodes(count: int, steps: int = 40, seed: int = 0, size: tuple[int, int] = (64, 64),
                           push_distance: float = 75.0) -> list[OracleEpisode]:
    """``count`` oracle episodes of ``steps + 1`` frames each (see the module doc, item 3)."""
    from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    sim = PushTSim(PushTConfig(seed=seed))
    env = sim.env
    episodes = []
    try:
        for e in range(count):
            if e:
                sim.reset()
            goal_picture = resize(sim.goal_image(), size[0], size[1], "crop")
            block = env.block
            start = np.array([*block.position, block.angle], dtype=np.float64)
            goal = np.array(env.goal_pose, dtype=np.float64)
            turn = (goal[2] - start[2] + np.pi) % (2 * np.pi) - np.pi  # shortest way round
            travel = goal[:2] - start[:2]
            direction = travel / max(np.linalg.norm(travel), 1e-9) if np.linalg.norm(travel) > 1 else np.array([0, 1.0])
            frames, coverage = [], []
            for t in range(steps + 1):
                s = t / steps
                pose = np.array([*(start[:2] + s * travel), start[2] + s * turn])
                # Angle first, then position: pymunk turns a body about its centre of gravity,
                # while the position is the body's origin (the point the goal pose refers to).
                block.velocity, block.angular_velocity = (0.0, 0.0), 0.0
                block.angle = float(pose[2])
                block.position = (float(pose[0]), float(pose[1]))
                centre = np.array(block.local_to_world(block.center_of_gravity))
                margin = sim.config.arena_margin
                agent = np.clip(centre - push_distance * direction, margin, ARENA_UNITS - margin)
                env.agent.velocity = (0.0, 0.0)
                env.agent.position = (float(agent[0]), float(agent[1]))
                env.space.reindex_shapes_for_body(block)
                env.space.reindex_shapes_for_body(env.agent)
                frames.append(resize(sim.render_shapes(), size[0], size[1], "crop"))
                coverage.append(float(env._get_coverage()))
            episodes.append(OracleEpisode(np.stack(frames), np.array(coverage), goal_picture, sim.episode))
    finally:
        sim.close()
    return episodes


# -- the evaluation ----------------------------------------------------------------------------


@torch.no_grad()
def evaluate_reward(model: EnergyNet | IntentRewardNet, dataset: Path | str | None, episodes: int = 8,
                    steps: int = 40, goal_image: np.ndarray | None = None, segments: int = 32, max_pairs: int = 2000,
                    seed: int = 0, robot: str = "pusht") -> dict[str, Any]:
    """All measurements of the module doc as a JSON-able dict (plus ``curves`` for the plot).

    ``robot``: whose stand-in plays the oracle episodes, ``pusht`` or ``go2`` (Push Cube: ``goal_image`` needed by
    a goal-picture reward). An intent reward (:mod:`dmo_ros.reward.intent`) is measured on the dataset by how it
    separates the intent labels (:func:`intent_separation`) instead of by ranking pairs.
    Raises ValueError for another robot; DatasetError for an intent reward on data with one kind of label."""
    if robot not in ("pusht", "go2"):
        raise ValueError(f"no oracle episodes for robot {robot!r}: the stand-ins are pusht and go2 "
                         "(--episodes 0 skips them)")
    model.eval()
    config = model.config
    size = (config.image_size, config.image_size)
    intent = isinstance(model, IntentRewardNet)
    report: dict[str, Any] = {"model": {"image_size": config.image_size, "objective": "intent"} if intent else
                              {"image_size": config.image_size, "max_span": config.max_span,
                               "reward_scale": float(model.reward_scale())}}
    dataset_curves: list[dict[str, Any]] = []
    oracle_curves: list[dict[str, Any]] = []

    def rewards(frames: np.ndarray, goal: np.ndarray | None) -> np.ndarray:
        """The reward of an episode's frames (a goal reward from its first frame)."""
        reward = IntentReward(model) if intent else GoalReward(model, goal, start=frames[0])
        return reward(frames).float().cpu().numpy()

    if dataset is not None and intent:
        report["intent"] = intent_separation(IntentReward(model), dataset)
    if dataset is not None and not intent:
        split = "val"
        pairs = PairDataset(dataset, "val", config.max_span, config.min_span, seed=seed, resample=False,
                            tie_changed_share=config.tie_changed_share)  # ranked as trained: ties left out
        if len(pairs) == 0:  # a dataset without a validation episode: say so, measure on all
            split = "all"
            pairs = PairDataset(dataset, "all", config.max_span, config.min_span, seed=seed, resample=False,
                                tie_changed_share=config.tie_changed_share)
        accuracy, used = pairwise_accuracy(model, pairs, max_pairs, seed=seed)
        report["pairs"] = {"split": split, "accuracy": accuracy, "count": used}
        chunk = (config.max_span or 10**9) + 1
        found, kind = validation_segments(dataset, chunk, segments, split)
        frames_map = open_arrays(dataset)["frames"]
        rows = []
        for segment in found:
            frames = np.array(frames_map[segment["start"]: segment["start"] + segment["length"]])
            reward = GoalReward(model, frames[-1], start=frames[0])(frames).float().cpu().numpy()
            rows.append({**segment, "spearman_time": spearman(reward, np.arange(len(reward))),
                         "first_reward": float(reward[0]), "last_reward": float(reward[-1])})
            dataset_curves.append({"title": f"dataset ep {segment['episode']} @{segment['start']}", "reward": reward})
        report["dataset"] = {"split": split, "kind": kind, "segments": rows,
                             "spearman_time_mean": _mean([r["spearman_time"] for r in rows])}
    if episodes > 0:
        oracle = (push_cube_expert_episodes(episodes, steps, seed, size, goal_image) if robot == "go2"
                  else goal_reaching_episodes(episodes, steps, seed, size))
        measure = "progress" if robot == "go2" else "coverage"
        rows = []
        for episode in oracle:
            goal = episode.goal_image if goal_image is None else goal_image
            reward = rewards(episode.frames, goal)
            rows.append({
                "episode": episode.episode,
                f"spearman_{measure}": spearman(reward, episode.coverage),
                "spearman_time": spearman(reward, np.arange(len(reward))),
                "first_reward": float(reward[0]), "last_reward": float(reward[-1]),
                f"final_{measure}": float(episode.coverage[-1]), "steps": len(reward) - 1,
            })
            oracle_curves.append({"title": f"oracle ep {episode.episode}", "reward": reward, measure: episode.coverage})
        report["oracle"] = {
            "robot": robot, "measure": measure, "steps": steps,
            "goal_image": "none (intent)" if intent else "stand-in" if goal_image is None else "given",
            "episodes": rows,
            f"spearman_{measure}_mean": _mean([r[f"spearman_{measure}"] for r in rows]),
            "spearman_time_mean": _mean([r["spearman_time"] for r in rows]),
        }
    report["curves"] = oracle_curves[:4] + dataset_curves  # plotted: a few of each, the oracle's first
    return report


def plot_curves(curves: list[dict[str, Any]], path: Path, count: int = 6) -> Path:
    """reward vs time (and coverage on a twin axis where known) for the first ``count`` curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = curves[:count] or [{"title": "no episodes", "reward": np.zeros(0)}]
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, curve in zip(axes.flat, shown, strict=False):
        axis.plot(curve["reward"], color="tab:blue", label="reward")
        axis.set_xlabel("step")
        axis.set_ylabel("reward", color="tab:blue")
        axis.set_title(curve["title"], fontsize=9)
        for measure in ("coverage", "progress"):
            if measure in curve:
                twin = axis.twinx()
                twin.plot(curve[measure], color="tab:green", linestyle="--", label=measure)
                twin.set_ylim(-0.02, 1.02)
                twin.set_ylabel(measure, color="tab:green")
    for axis in list(axes.flat)[len(shown):]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(report: dict[str, Any], out_dir: Path | str) -> tuple[Path, Path]:
    """``reward_eval.json`` (without the raw curves) and ``reward_vs_time.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "reward_eval.json"
    numbers = {key: value for key, value in report.items() if key != "curves"}
    json_path.write_text(json.dumps(numbers, indent=1, default=_json_number) + "\n")
    return json_path, plot_curves(report["curves"], out_dir / "reward_vs_time.png")


def _json_number(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value)}")


def intent_separation(reward: IntentReward, dataset: Path, batch_size: int = 256) -> dict[str, Any]:
    """How an intent reward separates the operator's intent labels on a dataset's validation frames (all frames
    where it has no validation episode): ROC AUC of the reward against intent, and its mean with intent on / off."""
    from dmo_ros.reward.intent import IntentFrames, LabelledFrames

    split, frames = "val", IntentFrames(dataset, "val")
    if not len(frames):
        split, frames = "all", IntentFrames(dataset, "all")
    scores, labels = [], []
    for begin in range(0, len(frames), batch_size):
        batch = LabelledFrames.collate([frames[k] for k in range(begin, min(begin + batch_size, len(frames)))])
        scores.append(reward(batch.frame).float().cpu().numpy())
        labels.append(batch.intent.numpy() > 0.5)
    score, label = np.concatenate(scores), np.concatenate(labels)
    if label.all() or not label.any():
        raise DatasetError(f"{dataset}: intent is {'on' if label.all() else 'off'} in every {split} frame; the "
                           "intent reward is measured on data with both")
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="stable")] = np.arange(1, len(score) + 1)
    positives = label.sum()
    auc = (ranks[label].sum() - positives * (positives + 1) / 2) / (positives * (len(label) - positives))
    return {"split": split, "count": int(len(label)), "intent_fraction": float(label.mean()), "auc": float(auc),
            "reward_intent_on": float(score[label].mean()), "reward_intent_off": float(score[~label].mean())}


def format_table(report: dict[str, Any]) -> str:
    """The report as a few aligned lines for the terminal."""
    lines = []
    if "intent" in report:
        i = report["intent"]
        lines.append(f"intent ({i['split']} frames, n={i['count']}, {i['intent_fraction']:.0%} intent on): ROC AUC "
                     f"{i['auc']:.3f}; mean reward {i['reward_intent_on']:.3f} with intent on, "
                     f"{i['reward_intent_off']:.3f} off")
    if "pairs" in report:
        p = report["pairs"]
        lines.append(f"pairwise ranking accuracy ({p['split']} pairs, n={p['count']}): {p['accuracy']:.3f}")
    if "dataset" in report:
        d = report["dataset"]
        lines.append(f"dataset {d['split']} {d['kind']} segments: {len(d['segments'])}, "
                     f"mean Spearman(reward, time) {d['spearman_time_mean']:.3f}")
    if "oracle" in report:
        o = report["oracle"]
        m = o.get("measure", "coverage")
        lines.append(f"{'oracle episode':>14} {'rho(r,' + m[:4] + ')':>10} {'rho(r,t)':>9} {'r first':>8} "
                     f"{'r last':>7} {m:>8} {'steps':>5}")
        for row in o["episodes"]:
            lines.append(f"{row['episode']:>14} {row[f'spearman_{m}']:>10.3f} {row['spearman_time']:>9.3f} "
                         f"{row['first_reward']:>8.2f} {row['last_reward']:>7.2f} {row[f'final_{m}']:>8.3f} "
                         f"{row['steps']:>5}")
        lines.append(f"{'mean':>14} {o[f'spearman_{m}_mean']:>10.3f} {o['spearman_time_mean']:>9.3f}")
    return "\n".join(lines)




def _trained_robot(run_dir: Path, dataset: Path | None) -> str:
    """The robot of the datasets the reward run trained on (else of ``dataset``, else pusht)."""
    config_file = Path(run_dir) / "config.json"
    folders = json.loads(config_file.read_text()).get("datasets", []) if config_file.is_file() else []
    for folder in [*folders, *([dataset] if dataset is not None else [])]:
        try:
            return str(read_meta(folder).get("robot", "pusht"))
        except (DatasetError, OSError):
            continue  # a dataset moved or deleted since training
    return "pusht"


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-reward-eval",
        description="Evaluate a trained reward: held-out pair accuracy and Spearman(reward, time) on validation "
                    "video (an intent reward: ROC AUC against the intent labels), and Spearman(reward, coverage) on "
                    "goal-reaching Push-T stand-in episodes (Go2: progress along the Push Cube expert).",
        epilog="Exit code: 0 done, 2 bad arguments or unreadable inputs.",
    )
    parser.add_argument("run_dir", type=Path, help="training run folder of dmo-train-reward")
    parser.add_argument("--dataset", type=Path, default=None, help="dataset folder whose val split is scored")
    parser.add_argument("--episodes", type=int, default=8, help="goal-reaching stand-in episodes (0: none)")
    parser.add_argument("--steps", type=int, default=40, help="steps from start to goal per stand-in episode")
    parser.add_argument("--goal-image", type=Path, default=None,
                        help="goal picture for the stand-in episodes (default: the stand-in's own rendering)")
    parser.add_argument("--segments", type=int, default=32, help="most validation segments to score")
    parser.add_argument("--pairs", type=int, default=2000, help="most held-out pairs for the accuracy")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run to load (default last)")
    parser.add_argument("--out", type=output_folder, default=None, help="output folder (default RUN_DIR/reward_eval)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out pairs and the stand-in episodes")
    parser.add_argument("--robot", choices=("pusht", "go2"), default=None,
                        help="whose stand-in plays the oracle episodes (default: the robot of the reward run's "
                             "datasets; go2 needs --goal-image)")
    options = parser.parse_args(argv)
    if options.episodes < 0 or options.steps < 1 or options.segments < 0 or options.pairs < 1 or options.seed < 0:
        parser.error("--episodes, --segments and --seed must be >= 0, --steps and --pairs >= 1")
    from dmo_ros.reward.energy import load_reward_model

    try:
        model = load_reward_model(options.run_dir, resolve_device(options.device, World()), options.checkpoint)
        size = (model.config.image_size, model.config.image_size)
        goal = None if options.goal_image is None else load_goal_image(options.goal_image, size)
        robot = options.robot or _trained_robot(options.run_dir, options.dataset)
        if robot == "go2" and options.episodes and goal is None and not isinstance(model, IntentRewardNet):
            parser.error("a Go2 reward's oracle episodes (Push Cube) need --goal-image (the goal picture the "
                         "policy trains with), or --episodes 0")
        report = evaluate_reward(model, options.dataset, options.episodes, options.steps, goal, options.segments,
                                 options.pairs, options.seed, robot)
    except (CheckpointError, DatasetError, GoalImageError, FileNotFoundError, KeyError, ValueError,
            RuntimeError) as error:  # RuntimeError: a CUDA device asked for where there is none
        print(f"dmo-reward-eval: error: {error}", file=sys.stderr)
        return 2
    json_path, plot_path = write_report(report, options.out or options.run_dir / "reward_eval")
    print(format_table(report))
    print(f"wrote {json_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
