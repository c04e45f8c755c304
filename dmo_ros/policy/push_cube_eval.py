"""How well does a policy push the cube? Success, steps and the paper's Table II metrics on the Go2 stand-in.

The policy is driven through the policy API directly (no ROS, no node timing): each control step the stand-in's
96 x 96 ego-camera render is resized as the dataset converter resized the training frames, ``policy.act(frame)``
gives a body-velocity command [vx (m/s), vy (m/s), yaw rate (rad/s)], and the MuJoCo scene
(:class:`~dmo_ros.sims.push_cube.PushCubeSim`) holds it for one control period (0.2 s at 5 Hz), as
``go2_standin`` does. Evaluation only: it reads the simulator's ground truth (poses, goal, whether the cube is in
the camera's view), which training never sees.

Per episode (:class:`PushCubeEpisode`): **success** once the cube's centre is inside the goal region (the episode
then ends), else after ``max_steps`` control steps; **steps to success**; the robot's **straightness index** and
**curvature** (the seed paper's Table II, :mod:`dmo_ros.policy.trajectory_metrics`) over the poses of the episode;
how often and how long the cube was **out of view**; the cube's final distance to the goal. The stand-in is seeded
from ``(seed, episode)``, so the same seed gives the same placements whatever the policy; the default seed
(10 000) is distinct from the data-collection seeds.

    result = evaluate_policy(load_policy("runs/go2/act"), PushCubeEvalConfig(episodes=50))
    print(format_table([("ACT", result)], config))

``dmo-eval-policy --robot go2 RUN_DIR`` runs this (``--mode ros``: through the ``deploy_go2`` graph, the policy
node and the stand-in over DDS in real time; ``--mode both``: both, with the per-episode differences), beside the
random, zero-action and scripted-expert ceilings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.images import ASPECTS
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_file
from dmo_ros.policy.base import Policy, PolicyError
from dmo_ros.policy.episode_video import (
    EpisodeVideos,
    add_video_options,
    check_video_options,
    recorded_episode,
    videos,
)
from dmo_ros.policy.episodes import (
    CEILINGS,
    Controller,
    PolicyController,
    StillController,
    cached_ceilings,
    run_seeded_episodes,
    write_final_files,
)
from dmo_ros.policy.trajectory_metrics import trajectory_metrics, visibility_stats

CAMERA_SIZE = (96, 96)
"""(H, W) of the stand-in camera's render, as in the recorded datasets (resized to the policy's size)."""

EPISODE_STEPS = 200
"""Control steps per episode at most: 40 s at 5 Hz (the paper's DMO needs 91 steps on average, PPO 134)."""

MODES = ("direct", "ros", "both")
"""How an evaluation runs the policy: in-process on the simulator, through the deploy graph, or both."""


TASK = "push_cube"
"""The task name runs and tables use for Push Cube."""


@dataclass
class PushCubeEvalConfig:
    """What a Push Cube evaluation runs: how many stand-in episodes, how long, from which seed."""

    episodes: int = 50
    """Stand-in episodes (each from new placements; 50 gives a success rate to about +-14 % (95 %))."""
    max_steps: int = EPISODE_STEPS
    """Control steps per episode at most (200 = 40 s at 5 Hz); an episode ends earlier at success."""
    seed: int = 10_000
    """Base seed of the placements (episode e from (seed, e)); distinct from the data-collection seeds."""
    aspect: str = "crop"
    """How the camera frame is fitted to the policy's image size (as the dataset converter did): crop, pad, stretch."""
    control_period_s: float = 0.2
    """Seconds each command is held: the stand-in's control period (5 Hz)."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.seed < 0:  # numpy seeds the placements; it takes no negative seed
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")
        if self.control_period_s <= 0:
            raise ValueError(f"control_period_s must be positive, got {self.control_period_s}")

    def sim_config(self):  # -> PushCubeConfig (imported lazily: mujoco picks its GL backend at import)
        """The stand-in these episodes run on."""
        from dmo_ros.sims.push_cube import PushCubeConfig

        return PushCubeConfig(seed=self.seed, width=CAMERA_SIZE[1], height=CAMERA_SIZE[0],
                              control_period=self.control_period_s)


@dataclass
class PushCubeEpisode:
    """One Push Cube episode, measured on the ground truth."""

    success: bool
    """The cube's centre entered the goal region within ``max_steps``."""
    steps: int
    """Control steps run (fewer than ``max_steps`` only at success)."""
    steps_to_success: int | None
    """Control steps until success; None without success."""
    start_distance_m: float
    """Cube-to-goal distance at the start (m)."""
    final_distance_m: float
    """Cube-to-goal distance at the end (m)."""
    min_distance_m: float
    """Smallest cube-to-goal distance of the episode (m)."""
    path_length_m: float
    """Length of the robot's path (m)."""
    straightness: float | None
    """Robot's net displacement / path length (Table II; 1 = straight); None when it barely moved."""
    curvature_rad_m: float | None
    """Robot's total absolute yaw change per metre walked (Table II, rad/m); None when it barely moved."""
    total_turn_rad: float
    """Robot's total absolute yaw change (rad)."""
    out_of_view_fraction: float
    """Fraction of the observed steps (start included) with the cube's centre outside the camera's view."""
    out_of_view_spells: int
    """Separate runs of steps with the cube out of view."""
    longest_out_of_view: int
    """Steps of the longest such run."""
    start_in_view: bool
    """Whether the cube was in view at the start."""


def episode_from_trace(robot_poses: np.ndarray, in_view: list[bool] | np.ndarray, distances: list[float] | np.ndarray,
                       successes: list[bool] | np.ndarray) -> PushCubeEpisode:
    """A :class:`PushCubeEpisode` from its per-step ground truth (start included, then after every step).

    Args:
        robot_poses: (T + 1, 3) robot [x (m), y (m), yaw (rad)].
        in_view: (T + 1,) whether the cube's centre was inside the camera's view.
        distances: (T + 1,) cube-to-goal distance (m).
        successes: (T + 1,) whether the cube's centre was inside the goal region.
    """
    poses = np.asarray(robot_poses, dtype=np.float64)
    in_view, distances, successes = (np.asarray(v) for v in (in_view, distances, successes))
    if not (len(poses) == len(in_view) == len(distances) == len(successes)) or len(poses) == 0:
        raise ValueError(f"a trace needs equally many (>= 1) poses, view flags, distances and success flags; got "
                         f"{len(poses)}, {len(in_view)}, {len(distances)}, {len(successes)}")
    hits = np.flatnonzero(successes.astype(bool))
    success = bool(len(hits))
    metrics, view = trajectory_metrics(poses), visibility_stats(in_view.astype(bool))
    return PushCubeEpisode(
        success=success, steps=len(poses) - 1, steps_to_success=int(hits[0]) if success else None,
        start_distance_m=float(distances[0]), final_distance_m=float(distances[-1]),
        min_distance_m=float(distances.min()), path_length_m=metrics.path_length_m, straightness=metrics.straightness,
        curvature_rad_m=metrics.curvature_rad_m, total_turn_rad=metrics.total_turn_rad,
        out_of_view_fraction=view.out_of_view_fraction, out_of_view_spells=view.out_of_view_spells,
        longest_out_of_view=view.longest_out_of_view, start_in_view=bool(in_view[0]))


def mean_spread(values: list[float | None]) -> dict[str, float]:
    """Mean, sample std, 95 % CI half-width and count of the values that are not None."""
    from dmo_ros.policy.evaluate import mean_spread as spread

    kept = [v for v in values if v is not None]
    return {**spread(kept), "n": len(kept)}


@dataclass
class PushCubeResult:
    """All episodes of a Push Cube evaluation and their summary."""

    episodes: list[PushCubeEpisode] = field(default_factory=list)
    """Every episode, in order."""
    seconds: float = 0.0
    """Wall-clock seconds the evaluation took."""

    @property
    def successes(self) -> int:
        return sum(episode.success for episode in self.episodes)

    @property
    def success_rate(self) -> float:
        return self.successes / max(len(self.episodes), 1)

    def summary(self) -> dict[str, Any]:
        """The reported numbers: success k/N with Wilson's 95 % interval; per metric mean, std, CI half-width and
        the number of episodes it is defined on (steps to success: successful episodes only)."""
        from dmo_ros.policy.evaluate import rate_interval

        e = self.episodes
        numbers: dict[str, Any] = {"success_rate": self.success_rate, "successes": self.successes,
                                   "success_ci95": list(rate_interval(self.successes, len(e)))}
        for key in ("steps_to_success", "straightness", "curvature_rad_m", "out_of_view_fraction",
                    "out_of_view_spells", "longest_out_of_view", "final_distance_m", "path_length_m"):
            numbers[key] = mean_spread([getattr(episode, key) for episode in e])
        return numbers

    def record(self) -> dict[str, Any]:
        """What a training run logs per evaluation (``eval.jsonl``): flat numbers ``dmo-compare`` reads."""
        numbers = self.summary()
        flat = {"success_rate": numbers["success_rate"], "success_ci95": numbers["success_ci95"],
                "episodes": len(self.episodes),
                # dmo-compare plots mean_max_coverage for Push-T; for Push Cube the analogue is the best progress
                "mean_max_coverage": float(np.mean([1.0 - min(1.0, ep.min_distance_m / max(ep.start_distance_m, 1e-6))
                                                    for ep in self.episodes])) if self.episodes else 0.0}
        for key in ("steps_to_success", "straightness", "curvature_rad_m", "out_of_view_fraction"):
            flat[key] = numbers[key]["mean"]
        return flat

    def to_dict(self) -> dict[str, Any]:
        """JSON-able numbers: the summary, the count and every episode."""
        return {**self.summary(), "episodes": len(self.episodes), "seconds": self.seconds,
                "per_episode": [asdict(episode) for episode in self.episodes]}


def result_from_dict(numbers: dict[str, Any]) -> PushCubeResult:
    """The inverse of :meth:`PushCubeResult.to_dict`."""
    names = {f.name for f in fields(PushCubeEpisode)}
    episodes = [PushCubeEpisode(**{k: v for k, v in episode.items() if k in names})
                for episode in numbers["per_episode"]]
    return PushCubeResult(episodes, float(numbers.get("seconds", 0.0)))


# -- controllers -----------------------------------------------------------------------------------


class ZeroController(StillController):
    """The zero-action ceiling: the robot stands still."""

    def __init__(self) -> None:
        super().__init__(3)


class RandomController:
    """The random floor: each command component uniform within the stand-in's limits."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, sim: Any) -> None:
        pass

    def act(self, sim: Any) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, size=3) * sim.limits


class ExpertController:
    """The scripted expert (:class:`~dmo_ros.teleop.push_cube_expert.PushCubeExpert`) on the ground truth: the
    privileged ceiling (it always knows where the cube is)."""

    def __init__(self, seed: int = 0) -> None:
        from dmo_ros.teleop.push_cube_expert import PushCubeExpert

        self.expert, self.seed, self.episode = PushCubeExpert(), seed, 0

    def _observation(self, sim: Any):
        from dmo_ros.teleop.operator import Observation

        s = sim.state()
        return Observation(s.episode, s.step, s.robot, s.cube, s.goal, s.progress, s.success, s.cube_in_view)

    def reset(self, sim: Any) -> None:
        self.expert.begin(self._observation(sim), np.random.default_rng([self.seed, self.episode]))
        self.episode += 1

    def act(self, sim: Any) -> np.ndarray:
        return np.asarray(self.expert.act(self._observation(sim)), dtype=np.float64)


def make_ceiling(name: str, seed: int = 0) -> Controller:
    """The ceiling controller called ``name`` (one of :data:`CEILINGS`)."""
    if name == "random":
        return RandomController(seed)
    if name == "zero":
        return ZeroController()
    if name == "expert":
        return ExpertController(seed)
    raise ValueError(f"unknown ceiling {name!r}; choose from {', '.join(CEILINGS)}")


# -- episodes --------------------------------------------------------------------------------------


def run_episode(controller: Controller, sim: Any, config: PushCubeEvalConfig) -> PushCubeEpisode:
    """One episode from the simulator's current placements (the caller resets the simulator)."""
    controller.reset(sim)
    poses, in_view, distances, successes = [], [], [], []

    def observe() -> bool:
        state = sim.state()
        poses.append(state.robot)
        in_view.append(state.cube_in_view)
        distances.append(float(np.linalg.norm(state.cube[:2] - state.goal[:2])))
        successes.append(state.success)
        return state.success

    done = observe()
    while not done and len(poses) <= config.max_steps:
        sim.step(np.asarray(controller.act(sim), dtype=np.float64))
        done = observe()
    return episode_from_trace(np.array(poses), in_view, distances, successes)


ProgressCallback = Callable[[int, PushCubeEpisode], None]
"""Called after each episode with its index and result."""


def evaluate_controller(controller: Controller, config: PushCubeEvalConfig | None = None,
                        progress: ProgressCallback | None = None,
                        videos: EpisodeVideos | None = None) -> PushCubeResult:
    """Run ``config.episodes`` seeded Push Cube episodes with ``controller``; given ``videos``, each episode's
    camera frames are written as a GIF and all of them as a contact sheet."""
    from dmo_ros.sims.push_cube import PushCubeSim

    config = config or PushCubeEvalConfig()
    started = time.perf_counter()

    def describe(result: PushCubeEpisode) -> tuple[bool, str]:
        outcome = f"success in {result.steps_to_success} steps" if result.success else f"fail ({result.steps} steps)"
        return result.success, (f"{outcome}, cube-goal {result.start_distance_m:.2f} -> {result.final_distance_m:.2f}"
                                f" m, cube out of view {100 * result.out_of_view_fraction:.0f}%")

    episode = recorded_episode(videos, controller, lambda c, sim: run_episode(c, sim, config), describe)
    try:
        with PushCubeSim(config.sim_config()) as sim:
            results = run_seeded_episodes(sim, config.episodes, episode, progress)
    finally:
        if videos is not None:
            videos.write_contact_sheet()
    return PushCubeResult(results, time.perf_counter() - started)


def evaluate_policy(policy: Policy, config: PushCubeEvalConfig | None = None,
                    progress: ProgressCallback | None = None,
                    videos: EpisodeVideos | None = None) -> PushCubeResult:
    """Run ``config.episodes`` Push Cube episodes with an image ``policy`` (see the module doc)."""
    config = config or PushCubeEvalConfig()
    return evaluate_controller(PolicyController(policy, config.aspect), config, progress, videos)


_CEILING_CACHE: dict[str, PushCubeResult] = {}


def evaluate_ceilings(config: PushCubeEvalConfig, names: tuple[str, ...] = CEILINGS,
                      cache: Path | str | None = None) -> list[tuple[str, PushCubeResult]]:
    """The ceilings' results on exactly ``config``'s episodes; remembered in this process and, given ``cache``, in
    that JSON file (keyed by the configuration)."""
    return cached_ceilings(config, names, lambda name: evaluate_controller(make_ceiling(name, config.seed),
                                                                                   config),
                                    result_from_dict, _CEILING_CACHE, cache, {"task": TASK})


# -- reports ---------------------------------------------------------------------------------------


def _mean(numbers: dict[str, float], digits: int) -> str:
    if numbers["n"] == 0:
        return "-"
    return f"{numbers['mean']:.{digits}f} +- {numbers['std']:.{digits}f} (n={numbers['n']})"


TABLE_COLUMNS = ("N", "success (cube in goal)", "steps to success", "straightness", "curvature (rad/m)",
                 "cube out of view", "longest out of view (steps)")


def format_table(rows: list[tuple[str, PushCubeResult]], config: PushCubeEvalConfig) -> str:
    """The Push Cube table: one row per policy / ceiling; rates k/N [Wilson 95 % CI], means +- std (n = episodes the
    number is defined on: steps to success on successes, straightness and curvature where the robot moved)."""
    head = (f"Push Cube on the Go2 stand-in: seed {config.seed}, {config.episodes} episodes of at most "
            f"{config.max_steps} steps ({config.max_steps * config.control_period_s:g} s at "
            f"{1 / config.control_period_s:g} Hz); rates k/N [Wilson 95% CI], means +- std (n episodes); the paper's "
            "Table II (DMO, N=3): 91.3 steps, straightness 0.881, curvature 0.565 rad/m")
    lines = [head, "| policy | " + " | ".join(TABLE_COLUMNS) + " |", "|---|" + "---:|" * len(TABLE_COLUMNS)]
    for label, result in rows:
        n, s = len(result.episodes), result.summary()
        low, high = s["success_ci95"]
        cells = [str(n), f"{result.successes}/{n} {100 * result.success_rate:.0f}% [{100 * low:.0f}-{100 * high:.0f}%]",
                 _mean(s["steps_to_success"], 1), _mean(s["straightness"], 3), _mean(s["curvature_rad_m"], 3),
                 f"{100 * s['out_of_view_fraction']['mean']:.0f}% of steps, {s['out_of_view_spells']['mean']:.1f} "
                 "spells", _mean(s["longest_out_of_view"], 1)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(label: str, result: PushCubeResult) -> str:
    """``policy runs/x: success 22/50 (44%, 95% CI 31-58%), 61.2 steps to success, straightness 0.71, ...``."""
    n, s = len(result.episodes), result.summary()
    low, high = s["success_ci95"]

    def value(key: str, digits: int) -> str:
        return "n/a" if s[key]["n"] == 0 else f"{s[key]['mean']:.{digits}f}"

    return (f"{label}: success {result.successes}/{n} ({100 * result.success_rate:.0f}%, 95% CI {100 * low:.0f}-"
            f"{100 * high:.0f}%), steps to success {value('steps_to_success', 1)}, straightness "
            f"{value('straightness', 3)}, curvature {value('curvature_rad_m', 3)} rad/m, cube out of view "
            f"{100 * s['out_of_view_fraction']['mean']:.0f}% of steps")


def format_differences(direct: PushCubeResult, through_ros: PushCubeResult) -> str:
    """``per episode, ROS vs direct: same outcome 9/10, final distance differs by at most 0.12 m (mean 0.03)``."""
    pairs = list(zip(direct.episodes, through_ros.episodes, strict=True))
    same = sum(a.success == b.success for a, b in pairs)
    gaps = [abs(a.final_distance_m - b.final_distance_m) for a, b in pairs]
    return (f"per episode, ROS vs direct: same outcome {same}/{len(pairs)}, final cube-goal distance differs by at "
            f"most {max(gaps):.2f} m (mean {float(np.mean(gaps)):.2f} m)")


def write_final_evaluation(controller: Controller, label: str, run_dir: Path | str, samples: int, wall_s: float,
                           config: PushCubeEvalConfig, cache: Path | str | None = None,
                           videos: EpisodeVideos | None = None) -> str:
    """Evaluate a trained run's ``controller`` beside the ceilings; write ``final_eval.json`` (``"task":
    "push_cube"``; what ``dmo-compare`` reads) and ``final_eval.md`` into ``run_dir``; return the table. Given
    ``videos``, the controller's episodes are recorded from the stand-in's camera (a state policy's too)."""
    rows = [(label, evaluate_controller(controller, config, videos=videos)),
            *evaluate_ceilings(config, cache=cache or Path(run_dir).parent / "ceilings_push_cube.json")]
    return write_final_files(run_dir, rows, format_table(rows, config), config, samples, wall_s,
                                      {"task": TASK})


# -- through ROS -----------------------------------------------------------------------------------


def evaluate_through_ros(run_dir: Path | str, config: PushCubeEvalConfig, out_dir: Path | str,
                         quiet: bool = False) -> PushCubeResult:
    """The same evaluation through the real ``deploy_go2`` graph (policy node and stand-in over DDS): runs
    ``dmo_ros.nodes.ros_evaluation --robot go2`` in its own process (the core imports no ROS) and reads its JSON.

    Raises :class:`PolicyError` when the graph fails (the message names its log)."""
    import subprocess

    out = Path(out_dir) / "ros_evaluation_go2.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dmo_ros.nodes.ros_evaluation", str(run_dir), "--robot", "go2", "--config",
               json.dumps(asdict(config)), "--out", str(out), *(["--quiet"] if quiet else [])]
    finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True)
    if finished.returncode != 0 or not out.is_file():
        raise PolicyError(f"the Push Cube evaluation through ROS failed (exit code {finished.returncode}); "
                          f"see {out.with_suffix('.graph.log')}")
    return result_from_dict(json.loads(out.read_text()))


# -- the command line ------------------------------------------------------------------------------


def random_policy_for(dataset: Path | str, seed: int = 0):
    from dmo_ros.policy.evaluate import random_policy_for as random_for

    return random_for(dataset, seed)


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    """``dmo-eval-policy --robot go2 ...``: the Push Cube evaluation's command line."""
    parser = argparse.ArgumentParser(
        prog="dmo-eval-policy --robot go2",
        description="Evaluate a trained policy on the Go2 stand-in's Push Cube task over seeded episodes: success "
                    "(cube centre in the goal region), steps to success, the paper's Table II straightness and "
                    "curvature, and how often / how long the cube was out of view, beside the random, zero-action "
                    "and scripted-expert ceilings.",
        epilog="Examples: dmo-eval-policy --robot go2 runs/go2/act; dmo-eval-policy --robot go2 --ceilings-only; "
               "dmo-eval-policy --robot go2 runs/go2/act --mode both --episodes 10. "
               "Exit code: 0 done, 2 bad arguments or unreadable inputs.")
    defaults = PushCubeEvalConfig()
    parser.add_argument("run_dir", type=Path, nargs="?", help="policy run folder (dmo-train-policy or dmo-train-act)")
    parser.add_argument("--robot", default="go2", choices=["go2"], help="the stand-in (go2: Push Cube)")
    parser.add_argument("--task", default=TASK, choices=[TASK], help="the Go2 task (push_cube)")
    parser.add_argument("--random", action="store_true", help="evaluate the random policy at a dataset's action "
                        "limits instead (needs --dataset)")
    parser.add_argument("--dataset", type=Path, default=None, help="dataset giving the random policy's limits")
    parser.add_argument("--episodes", type=int, default=defaults.episodes, help="stand-in episodes (default 50)")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help=f"control steps per episode at most (default {EPISODE_STEPS}: 40 s at 5 Hz)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed of the placements")
    parser.add_argument("--aspect", default=defaults.aspect, choices=ASPECTS,
                        help="how camera frames are fitted to the policy's size (as the dataset converter did)")
    parser.add_argument("--no-ceilings", action="store_true", help="leave out the random / zero / expert ceilings")
    parser.add_argument("--ceilings-only", action="store_true", help="evaluate the ceilings alone (no policy)")
    parser.add_argument("--ceilings-cache", type=Path, default=None,
                        help="JSON file remembering the ceilings' results per configuration")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run to load (default last)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto (default cpu)")
    parser.add_argument("--mode", choices=MODES, default="direct",
                        help="direct: the policy API on the simulator in-process; ros: through the deploy_go2 graph "
                             "(policy node and stand-in over DDS, real time: max-steps / 5 s per episode); both: "
                             "both, with the per-episode differences")
    parser.add_argument("--out", type=output_file, default=None, help="write the results as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress on stderr")
    add_video_options(parser)
    options = parser.parse_args(argv)
    check_video_options(parser, options)
    if options.random and options.run_dir is not None:
        parser.error("give either RUN_DIR or --random, not both")
    if not options.random and not options.ceilings_only and options.run_dir is None:
        parser.error("give a policy RUN_DIR, --random --dataset DATASET_DIR, or --ceilings-only")
    if options.random and options.dataset is None:
        parser.error("--random needs --dataset DATASET_DIR (for the action limits)")
    if options.ceilings_only and options.no_ceilings:
        parser.error("--ceilings-only and --no-ceilings contradict each other")
    try:
        config = PushCubeEvalConfig(episodes=options.episodes, max_steps=options.max_steps, seed=options.seed,
                                    aspect=options.aspect)
    except ValueError as error:
        parser.error(str(error))

    def progress(index: int, episode: PushCubeEpisode) -> None:
        if not options.quiet:
            outcome = f"success in {episode.steps_to_success} steps" if episode.success else "no success"
            print(f"  episode {index + 1}/{config.episodes}: {outcome}, final distance {episode.final_distance_m:.2f} "
                  f"m, straightness {episode.straightness}, cube out of view {100 * episode.out_of_view_fraction:.0f}%",
                  file=sys.stderr, flush=True)

    report: dict[str, Any] = {"task": TASK, "config": asdict(config)}
    lines: list[str] = []
    rows: list[tuple[str, PushCubeResult]] = []
    try:
        direct = None
        if options.run_dir is not None:
            from dmo_ros.policy.evaluate import refuse_other_robot

            refuse_other_robot(options.run_dir, "go2")
        if options.run_dir is not None and options.mode in ("direct", "both"):
            from dmo_ros.policy.evaluate import _load_policy

            direct = evaluate_policy(_load_policy(options.run_dir, options.device, options.checkpoint), config,
                                     progress, videos(options))
            report.update(run_dir=str(options.run_dir), policy=direct.to_dict())
            lines.append(format_summary(f"policy {options.run_dir}", direct))
            rows.append(("policy, direct (policy API on the simulator)", direct))
        if options.run_dir is not None and options.mode in ("ros", "both"):
            out_dir = options.out.parent if options.out is not None else Path(tempfile.mkdtemp(prefix="dmo_eval_"))
            through_ros = evaluate_through_ros(options.run_dir, config, out_dir, options.quiet)
            report.update(run_dir=str(options.run_dir), policy_ros=through_ros.to_dict())
            lines.append(format_summary(f"policy {options.run_dir} through ROS", through_ros))
            rows.append(("policy, through ROS (deploy_go2 graph)", through_ros))
            if direct is not None:
                lines.append(format_differences(direct, through_ros))
        if options.random:
            result = evaluate_policy(random_policy_for(options.dataset, config.seed), config, progress,
                                     videos(options))
            report.update(dataset=str(options.dataset), random=result.to_dict())
            lines.append(format_summary("random policy", result))
            rows.append(("random policy (dataset's limits), direct", result))
    except (PolicyError, DatasetError) as error:
        print(f"dmo-eval-policy: error: {error}", file=sys.stderr)
        return 2
    if not options.no_ceilings:
        ceilings = evaluate_ceilings(config, cache=options.ceilings_cache)
        report["ceilings"] = {label: result.to_dict() for label, result in ceilings}
        rows += ceilings
    if lines:
        print("\n".join(lines))
    if rows:
        print(format_table(rows, config))
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {options.out}")
    if options.video is not None:
        print(f"wrote the episodes' GIFs and their contact sheet episodes.png into {options.video}")
    return 0


__all__ = ["CEILINGS", "EPISODE_STEPS", "PushCubeEpisode", "PushCubeEvalConfig", "PushCubeResult", "episode_from_trace",
           "evaluate_ceilings", "evaluate_controller", "evaluate_policy", "format_differences", "format_summary",
           "format_table", "make_ceiling", "main", "result_from_dict", "run_episode", "write_final_evaluation"]
