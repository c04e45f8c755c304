"""How well does a policy push the T? Success rate and mean max coverage on the simulated stand-in.

The policy is driven through the policy API directly (no ROS, no node timing): each control step
the stand-in camera's 96 x 96 render is resized as the dataset converter resized the training
frames, ``policy.act(frame)`` gives an end-effector velocity (m/s), and the simulator moves by it
held for one control period (0.2 s at 5 Hz, as ``pusht_standin`` does). Evaluation only: it reads
the simulator's ground truth (the goal coverage), which training never sees.

Per episode: ``max_coverage`` is the largest coverage of the goal T seen (at the start and after
every step); the episode is a success, and ends, once the coverage exceeds 0.95 (gym-pusht's
threshold), else it ends after ``max_steps`` control steps. The simulator is seeded from
``(seed, episode)``, so the same seed gives the same start poses whatever the policy; the default
seed (10 000) is distinct from the data-collection seeds (0, 1).

    result = evaluate_policy(load_policy("runs/demo/dmo"), EvalConfig(episodes=10))
    result.success_rate, result.mean_max_coverage

``dmo-eval-policy RUN_DIR`` (or ``--random --dataset D`` for the random floor, ``--compare-random
--dataset D`` for both) prints a one-line summary per policy and can write the numbers as JSON.

``--mode ros`` runs the same seeded episodes through the real ``deploy_pusht`` graph instead — the policy node
and the stand-in over DDS, in real time (:mod:`dmo_ros.nodes.ros_evaluation`, in its own process: this module
imports no ROS); ``--mode both`` runs both and prints how much the episodes differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dmo_ros.dataset.format import DatasetError, read_meta
from dmo_ros.dataset.images import ASPECTS
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_file
from dmo_ros.policy.api import Policy, PolicyError, RandomPolicy, load_policy
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
from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_tasks import LOOSE_COVERAGE, REACH_TASKS, TASKS
from dmo_ros.teleop.operator import Observation

ROBOTS = ("pusht",)
"""Robots this module's :class:`EvalConfig` scores (the Go2's Push Cube: :mod:`dmo_ros.policy.push_cube_eval`)."""

MODES = ("direct", "ros", "both")
"""How ``dmo-eval-policy`` runs the policy: in-process on the simulator, through the deploy graph, or both."""

CAMERA_SIZE = (96, 96)
"""(H, W) of the stand-in camera's render, as in the recorded datasets (resized to the policy's size)."""

STANDARD_EPISODE_STEPS = 150
"""gym-pusht's standard episode: its ``PushT-v0`` is registered with ``max_episode_steps=300`` env steps at its
``render_fps`` = control rate of 10 Hz, i.e. 30 s; at the stand-in's 5 Hz that is 150 control steps."""

LONG_EPISODE_STEPS = 300
"""The longer option (``--long``): 60 s at 5 Hz."""



@dataclass
class EvalConfig:
    """What an evaluation runs: how many stand-in episodes, how long, from which seed, on which task."""

    episodes: int = 50
    """Stand-in episodes to run (each from a new start pose; 50 gives a success rate to about +-14 % (95 %))."""

    max_steps: int = STANDARD_EPISODE_STEPS
    """Control steps per episode at most (150 = gym-pusht's 30 s at 5 Hz); an episode ends earlier at success."""

    seed: int = 10_000
    """Base seed of the stand-in's start poses (episode e from (seed, e)); distinct from the data seeds 0 and 1."""

    robot: str = "pusht"
    """The stand-in to evaluate on; only ``pusht`` so far."""

    task: str = "push_t"
    """The Push-T task (:mod:`dmo_ros.sims.pusht_tasks`): reach, push_region, push_near or push_t."""

    aspect: str = "crop"
    """How the camera frame is fitted to the policy's image size (as the dataset converter did): crop, pad, stretch."""

    control_period_s: float = 0.2
    """Seconds each action (a velocity) is held: the stand-in's control period (5 Hz)."""

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"EvalConfig scores Push-T (robot pusht), not {self.robot!r}; the Go2's Push Cube task "
                             "is evaluated by dmo_ros.policy.push_cube_eval (dmo-eval-policy --robot go2)")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.seed < 0:  # numpy seeds the stand-in's episodes; it takes no negative seed
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.aspect not in ASPECTS:
            raise ValueError(f"aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}")
        if self.control_period_s <= 0:
            raise ValueError(f"control_period_s must be positive, got {self.control_period_s}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EvalConfig:
        """The named preset (``tiny``, ``cpu``, ``gpu``), with fields replaced by ``overrides``."""
        if name not in EVAL_PRESETS:
            raise ValueError(f"unknown evaluation preset {name!r}; choose one of {', '.join(EVAL_PRESETS)}")
        return replace(EVAL_PRESETS[name], **overrides)

    def sim_config(self) -> PushTConfig:
        """The stand-in these episodes run on."""
        return PushTConfig(seed=self.seed, width=CAMERA_SIZE[1], height=CAMERA_SIZE[0],
                           control_period_s=self.control_period_s, task=self.task)


EVAL_PRESETS: dict[str, EvalConfig] = {
    # Tests: a second or two.
    "tiny": EvalConfig(episodes=2, max_steps=10),
    # Reported numbers: 50 fixed-seed episodes of gym-pusht's standard 30 s.
    "cpu": EvalConfig(episodes=50, max_steps=STANDARD_EPISODE_STEPS),
    # The same episodes, twice as long (60 s).
    "gpu": EvalConfig(episodes=50, max_steps=LONG_EPISODE_STEPS),
}
"""Evaluation presets; ``EvalConfig.preset(name)`` returns a copy."""


@dataclass
class EpisodeResult:
    """One stand-in episode."""

    success: bool
    """The task's success rule held before ``max_steps`` (push_t / push_near: coverage > 0.95)."""
    max_coverage: float
    """Largest coverage of the goal T in the episode, in [0, 1]."""
    steps: int
    """Control steps run (fewer than ``max_steps`` only at success)."""
    final_coverage: float = 0.0
    """Coverage of the goal T at the end of the episode, in [0, 1]."""
    final_distance: float | None = None
    """The task's distance at the end (arena units; reach: agent to target, pushing: the T's corners to the goal
    T's); None where it was not measured (the evaluation through ROS)."""
    start_distance: float | None = None
    """The task's distance at the start (arena units)."""
    loose_success: bool | None = None
    """The looser rule held at some step (pushing: coverage > 0.8; reach: within twice the radius); None: not
    measured, read as max coverage > 0.8."""

    def loose(self) -> bool:
        return self.max_coverage > LOOSE_COVERAGE if self.loose_success is None else bool(self.loose_success)


def mean_spread(values: list[float] | np.ndarray) -> dict[str, float]:
    """Mean, sample standard deviation and the half-width of a normal 95 % confidence interval of the mean."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95": float("nan")}
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "ci95": 1.96 * std / np.sqrt(len(values))}


def rate_interval(successes: int, count: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % interval of a success rate (sound at 0/N and N/N, where the normal one collapses)."""
    if count == 0:
        return 0.0, 1.0
    p = successes / count
    centre = (p + z * z / (2 * count)) / (1 + z * z / count)
    half = z * np.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


@dataclass
class EvalResult:
    """All episodes of an evaluation and their summary."""

    success_rate: float
    """Fraction of episodes that succeeded."""
    mean_max_coverage: float
    """Mean over episodes of each episode's max coverage."""
    episodes: list[EpisodeResult] = field(default_factory=list)
    """Every episode, in order."""
    seconds: float = 0.0
    """Wall-clock seconds the evaluation took."""

    @property
    def successes(self) -> int:
        return sum(episode.success for episode in self.episodes)

    @property
    def loose_successes(self) -> int:
        return sum(episode.loose() for episode in self.episodes)

    @property
    def loose_success_rate(self) -> float:
        return self.loose_successes / max(len(self.episodes), 1)

    def summary(self) -> dict[str, Any]:
        """The reported numbers with their spread: rates with Wilson 95 % intervals, means with std and a
        normal 95 % interval half-width."""
        count = len(self.episodes)
        coverage = mean_spread([e.max_coverage for e in self.episodes])
        distance = mean_spread([e.final_distance for e in self.episodes])
        return {
            "success_rate": self.success_rate, "success_ci95": list(rate_interval(self.successes, count)),
            "loose_success_rate": self.loose_success_rate,
            "loose_success_ci95": list(rate_interval(self.loose_successes, count)),
            "mean_max_coverage": coverage["mean"], "max_coverage_std": coverage["std"],
            "max_coverage_ci95": coverage["ci95"],
            "mean_final_distance": distance["mean"], "final_distance_std": distance["std"],
            "final_distance_ci95": distance["ci95"],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able numbers; ``episodes`` is the count (as in ``eval.jsonl``), ``per_episode`` the details."""
        return {**self.summary(), "successes": self.successes, "episodes": len(self.episodes),
                "seconds": self.seconds, "per_episode": [asdict(episode) for episode in self.episodes]}

    def record(self) -> dict[str, Any]:
        """The numbers a training run logs per evaluation (``eval.jsonl``): the summary and the episode count."""
        return {**self.summary(), "episodes": len(self.episodes)}


ProgressCallback = Callable[[int, EpisodeResult], None]
"""Called after each episode with its index and result."""


class ZeroController(StillController):
    """The zero-action ceiling: the arm holds still (the start's own coverage / distance)."""

    def __init__(self) -> None:
        super().__init__(2)


class RandomController:
    """The random floor: each velocity component uniform in [-limit, limit] (default: the stand-in's speed limit)."""

    def __init__(self, limit: float | np.ndarray | None = None, seed: int = 0) -> None:
        self.limit = limit
        self.rng = np.random.default_rng(seed)

    def reset(self, sim: PushTSim) -> None:
        pass

    def act(self, sim: PushTSim) -> np.ndarray:
        limit = sim.config.max_speed_m_s if self.limit is None else self.limit
        return self.rng.uniform(-1.0, 1.0, size=2) * limit


class ExpertController:
    """The scripted expert on the simulator's ground truth (privileged: the ceiling a policy is compared with).

    Pushing tasks: :class:`~dmo_ros.teleop.pusht_expert.PushTExpert` (plans pushes on a private copy of the
    physics); reach: :class:`~dmo_ros.teleop.pusht_expert.ReachExpert` (walks around the T to the target)."""

    def __init__(self, seed: int = 0) -> None:
        from dmo_ros.teleop.pusht_expert import PushTExpert, ReachExpert

        self.seed = seed
        self.episode = 0
        self.experts = {"push": PushTExpert(), "reach": ReachExpert()}
        self.expert = self.experts["push"]

    def _observation(self, sim: PushTSim) -> Observation:
        s = sim.state()
        return Observation(s.episode, s.step, s.agent, s.block, s.operator_goal, s.coverage, s.success)

    def reset(self, sim: PushTSim) -> None:
        self.expert = self.experts["reach" if sim.task.shows_target else "push"]
        self.expert.begin(self._observation(sim), np.random.default_rng([self.seed, self.episode]))
        self.episode += 1

    def act(self, sim: PushTSim) -> np.ndarray:
        return np.asarray(self.expert.act(self._observation(sim)), dtype=np.float64)


def make_ceiling(name: str, seed: int = 0) -> Controller:
    """The ceiling controller called ``name`` (one of :data:`CEILINGS`)."""
    if name == "random":
        return RandomController(seed=seed)
    if name == "zero":
        return ZeroController()
    if name == "expert":
        return ExpertController(seed)
    raise ValueError(f"unknown ceiling {name!r}; choose from {', '.join(CEILINGS)}")


def run_controlled_episode(controller: Controller, sim: PushTSim, config: EvalConfig) -> EpisodeResult:
    """One episode from the simulator's current start pose (the caller resets the simulator)."""
    controller.reset(sim)
    state = sim.state()
    start_distance = state.status.distance
    max_coverage, steps, loose = state.coverage, 0, state.status.loose_success
    success = state.success
    while not success and steps < config.max_steps:
        velocity = np.asarray(controller.act(sim), dtype=np.float64)
        sim.step(velocity * config.control_period_s)  # a velocity held for one control period -> metres
        steps += 1
        state = sim.state()
        max_coverage = max(max_coverage, state.coverage)
        loose = loose or state.status.loose_success
        success = state.success
    return EpisodeResult(success=bool(success), max_coverage=float(max_coverage), steps=steps,
                         final_coverage=float(state.coverage), final_distance=float(state.status.distance),
                         start_distance=float(start_distance), loose_success=bool(loose))


def run_episode(policy: Policy, sim: PushTSim, config: EvalConfig) -> EpisodeResult:
    """One episode of an image policy from the simulator's current start pose."""
    return run_controlled_episode(PolicyController(policy, config.aspect), sim, config)


def evaluate_controller(controller: Controller, config: EvalConfig | None = None,
                        progress: ProgressCallback | None = None, videos: EpisodeVideos | None = None) -> EvalResult:
    """Run ``config.episodes`` seeded stand-in episodes of ``config.task`` with ``controller``; given ``videos``,
    each episode's camera frames are written as a GIF and all of them as a contact sheet."""
    config = config or EvalConfig()
    started = time.perf_counter()
    sim = PushTSim(config.sim_config())

    def describe(result: EpisodeResult) -> tuple[bool, str]:
        return result.success, (f"{'success' if result.success else 'fail'} after {result.steps} steps, distance "
                                f"{result.start_distance:.0f} -> {result.final_distance:.0f} u, max coverage "
                                f"{result.max_coverage:.2f}")

    episode = recorded_episode(videos, controller, lambda c, sim: run_controlled_episode(c, sim, config), describe)
    try:
        results = run_seeded_episodes(sim, config.episodes, episode, progress)
    finally:
        sim.close()
        if videos is not None:
            videos.write_contact_sheet()
    return summarize_episodes(results, time.perf_counter() - started)


def evaluate_policy(policy: Policy, config: EvalConfig | None = None,
                    progress: ProgressCallback | None = None, videos: EpisodeVideos | None = None) -> EvalResult:
    """Run ``config.episodes`` stand-in episodes with an image ``policy`` (see the module doc)."""
    config = config or EvalConfig()
    return evaluate_controller(PolicyController(policy, config.aspect), config, progress, videos)


_CEILING_CACHE: dict[str, EvalResult] = {}


def evaluate_ceilings(config: EvalConfig, names: tuple[str, ...] = CEILINGS,
                      cache: Path | str | None = None) -> list[tuple[str, EvalResult]]:
    """The ceilings' results on exactly ``config``'s episodes; remembered in this process and, given ``cache``,
    in that JSON file (keyed by the configuration), since the expert takes a minute or two for 50 episodes."""
    return cached_ceilings(config, names, lambda name: evaluate_controller(make_ceiling(name, config.seed),
                                                                                   config),
                                    result_from_dict, _CEILING_CACHE, cache)


def write_final_evaluation(controller: Controller, label: str, run_dir: Path | str, samples: int, wall_s: float,
                           config: EvalConfig, cache: Path | str | None = None,
                           videos: EpisodeVideos | None = None) -> str:
    """Evaluate a trained run's ``controller`` on ``config``'s episodes beside the random, zero-action and expert
    ceilings; write ``final_eval.json`` (what ``dmo-ladder-table`` reads) and ``final_eval.md`` into ``run_dir``
    and return the table. ``cache``: the ceilings' results file (default ``ceilings.json`` beside the run);
    ``videos``: records the controller's episodes (GIFs and a contact sheet), not the ceilings'."""
    rows = [(label, evaluate_controller(controller, config, videos=videos)),
            *evaluate_ceilings(config, cache=cache or Path(run_dir).parent / "ceilings.json")]
    return write_final_files(run_dir, rows, format_table(rows, config), config, samples, wall_s)


def summarize_episodes(episodes: list[EpisodeResult], seconds: float) -> EvalResult:
    """The :class:`EvalResult` of a list of episodes (both evaluation modes)."""
    return EvalResult(
        success_rate=float(np.mean([episode.success for episode in episodes])),
        mean_max_coverage=float(np.mean([episode.max_coverage for episode in episodes])),
        episodes=episodes,
        seconds=seconds,
    )


def result_from_dict(numbers: dict[str, Any]) -> EvalResult:
    """The inverse of :meth:`EvalResult.to_dict`."""
    episodes = [EpisodeResult(**episode) for episode in numbers["per_episode"]]
    return summarize_episodes(episodes, float(numbers.get("seconds", 0.0)))


def evaluate_through_ros(run_dir: Path | str, config: EvalConfig, out_dir: Path | str,
                         quiet: bool = False) -> EvalResult:
    """The same evaluation through the real ``deploy_pusht`` graph (policy node and stand-in over DDS): runs
    ``dmo_ros.nodes.ros_evaluation`` in its own process (the core imports no ROS) and reads its JSON back.

    Raises :class:`PolicyError` when the graph fails (the message names its log)."""
    import subprocess

    out = Path(out_dir) / "ros_evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dmo_ros.nodes.ros_evaluation", str(run_dir), "--config",
               json.dumps(asdict(config)), "--out", str(out), *(["--quiet"] if quiet else [])]
    finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True)
    if finished.returncode != 0 or not out.is_file():
        raise PolicyError(f"the evaluation through ROS failed (exit code {finished.returncode}); "
                          f"see {out.with_suffix('.graph.log')}")
    return result_from_dict(json.loads(out.read_text()))


def format_summary(label: str, result: EvalResult, config: EvalConfig) -> str:
    """``policy runs/x: success 3/50 (6%, 95% CI 2-16%), mean max coverage 0.412 +- 0.210 over 50 episodes ...``."""
    count, numbers = len(result.episodes), result.summary()
    low, high = numbers["success_ci95"]
    coverage = ("" if config.task in REACH_TASKS else  # 1.0 in every reach episode: see format_table
                f" mean max coverage {numbers['mean_max_coverage']:.3f} +- {numbers['max_coverage_std']:.3f},")
    return (f"{label}: success {result.successes}/{count} ({100 * result.success_rate:.0f}%, 95% CI "
            f"{100 * low:.0f}-{100 * high:.0f}%),{coverage} final distance {numbers['mean_final_distance']:.1f} +- "
            f"{numbers['final_distance_std']:.1f} over {count} episodes of {config.task} "
            f"({config.max_steps} steps max)")


SUCCESS_RULES = {
    "reach": ("agent < 20 u from target", "< 40 u"),
    "reach_fixed": ("agent < 20 u from target", "< 40 u"),
    "push_region": ("T centre < 30 u from the goal's", "< 60 u"),
    "push_near": ("coverage > 0.95", "coverage > 0.8"),
    "push_t": ("coverage > 0.95", "coverage > 0.8"),
}
"""(success, loose success) rules per task, as the table headers name them (u: arena units, 512 per side)."""


def format_table(rows: list[tuple[str, EvalResult]], config: EvalConfig) -> str:
    """The evaluation table: one row per policy / ceiling, every number with its spread.

    Rates: k/N and Wilson's 95 % interval; means: +- the sample std, [95 % CI half-width]. A reach task's table
    has no coverage column (its T starts on the goal pose, so the max coverage is 1.0 in every episode)."""
    strict, loose = SUCCESS_RULES.get(config.task, ("success", "loose"))
    covered = config.task not in REACH_TASKS  # a reach task starts with the T on its goal: max coverage is 1 always
    header = (f"| {'':42} | {'N':>3} | {'success (' + strict + ')':>34} | {'success (' + loose + ')':>26} | "
              + (f"{'mean max coverage':>26} | " if covered else "") + f"{'final distance (u)':>24} |")
    lines = [f"evaluation of task {config.task} on the Push-T stand-in: seed {config.seed}, {config.episodes} "
             f"episodes of at most {config.max_steps} steps ({config.max_steps * config.control_period_s:g} s at "
             f"{1 / config.control_period_s:g} Hz); rates k/N [Wilson 95% CI], means +- std [95% CI half-width]",
             header, "|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|"]

    def rate(k: int, n: int, interval: list[float]) -> str:
        return f"{k}/{n} {100 * k / max(n, 1):.0f}% [{100 * interval[0]:.0f}-{100 * interval[1]:.0f}%]"

    for label, result in rows:
        n, numbers = len(result.episodes), result.summary()
        coverage = (f"{numbers['mean_max_coverage']:.3f} +- {numbers['max_coverage_std']:.3f} "
                    f"[{numbers['max_coverage_ci95']:.3f}]")
        distance = (f"{numbers['mean_final_distance']:.1f} +- {numbers['final_distance_std']:.1f} "
                    f"[{numbers['final_distance_ci95']:.1f}]")
        lines.append(f"| {label:42} | {n:>3} | {rate(result.successes, n, numbers['success_ci95']):>34} | "
                     f"{rate(result.loose_successes, n, numbers['loose_success_ci95']):>26} | "
                     + (f"{coverage:>26} | " if covered else "") + f"{distance:>24} |")
    return "\n".join(lines)


def format_differences(direct: EvalResult, through_ros: EvalResult) -> str:
    """``per episode, ROS vs direct: same outcome 10/10, max coverage differs by at most 0.012 (mean 0.004)``."""
    same = sum(a.success == b.success for a, b in zip(direct.episodes, through_ros.episodes, strict=True))
    gaps = [abs(a.max_coverage - b.max_coverage) for a, b in zip(direct.episodes, through_ros.episodes, strict=True)]
    return (f"per episode, ROS vs direct: same outcome {same}/{len(gaps)}, max coverage differs by at most "
            f"{max(gaps):.3f} (mean {float(np.mean(gaps)):.3f})")


def random_policy_for(dataset: Path | str, seed: int = 0) -> RandomPolicy:
    """The random floor for a dataset: uniform actions within its largest |action|, at its image size."""
    from dmo_ros.dataset.loaders import action_statistics

    meta = read_meta(dataset)
    image = meta.get("image") or {}
    if "height" not in image or "width" not in image:
        raise DatasetError(f"{dataset}: meta.json has no image height/width")
    limit = np.asarray(action_statistics([dataset])["max_abs"], dtype=np.float64)
    return RandomPolicy(limit, (int(image["height"]), int(image["width"])), seed=seed)


def _load_policy(run_dir: Path, device_name: str, checkpoint: str) -> Policy:
    from dmo_ros.training.distributed import World, resolve_device

    try:
        device = resolve_device(device_name, World())
    except RuntimeError as error:  # a CUDA device asked for where there is none
        raise PolicyError(str(error)) from error
    return load_policy(run_dir, device, checkpoint)


def refuse_other_robot(run_dir: Path, robot: str) -> None:
    """Refuse to evaluate a policy run on ``robot``'s stand-in (pusht or go2) when it was trained on another robot:
    its actions would not fit the stand-in's commands (the policy node refuses the same, at its start).

    Raises:
        PolicyError: the run records another robot, or its config cannot be read.
    """
    from dmo_ros.training import CheckpointError, read_run_config

    try:
        trained_on = (read_run_config(run_dir).get("deployment") or {}).get("robot")
    except CheckpointError as error:
        raise PolicyError(str(error)) from error
    if trained_on is not None and trained_on != robot:
        raise PolicyError(f"the policy in {run_dir} was trained on robot {trained_on!r}; this evaluation drives the "
                          f"{robot!r} stand-in (give --robot {trained_on})")


def trained_task(run_dir: Path) -> str | None:
    """The Push-T task a policy run records it was trained on (its config.json's ``task``), None when it records
    none (an older run, or a run of a trainer that has no tasks) or one this evaluation does not know.

    Raises:
        PolicyError: the run's config cannot be read.
    """
    from dmo_ros.training import CheckpointError, read_run_config

    try:
        task = read_run_config(run_dir).get("task")
    except CheckpointError as error:
        raise PolicyError(str(error)) from error
    return task if task in TASKS else None


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    robot = argparse.ArgumentParser(add_help=False)
    robot.add_argument("--robot", default="pusht")
    if robot.parse_known_args(argv)[0].robot == "go2":  # Push Cube: its own options and table
        from dmo_ros.policy.push_cube_eval import main as push_cube_main

        return push_cube_main(argv)
    parser = argparse.ArgumentParser(
        prog="dmo-eval-policy",
        description="Evaluate a trained policy on the simulated Push-T stand-in over seeded episodes of a task: "
                    "success rate (push_t: coverage > 0.95, and > 0.8), mean max coverage of the goal T and the "
                    "final distance, each with its spread, beside the random, zero-action and expert ceilings.",
        epilog="Examples: dmo-eval-policy runs/demo/dmo; dmo-eval-policy --ceilings-only --task reach; "
               "dmo-eval-policy runs/demo/dmo --compare-random --dataset datasets/play. The Go2's Push Cube task: "
               "dmo-eval-policy --robot go2 --help (success, steps, straightness, curvature, cube out of view). "
               "Exit code: 0 done, 2 bad arguments or unreadable inputs.",
    )
    defaults = EvalConfig()
    parser.add_argument("run_dir", type=Path, nargs="?", help="policy run folder of dmo-train-policy")
    parser.add_argument("--random", action="store_true",
                        help="evaluate the random policy at a dataset's action limits instead (needs --dataset)")
    parser.add_argument("--compare-random", action="store_true",
                        help="also evaluate the random policy at a dataset's action limits (needs --dataset)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="dataset folder giving the random policy's action limits and image size")
    parser.add_argument("--task", default=None, choices=TASKS,
                        help=f"the Push-T task (default: the one the run was trained on, else {defaults.task})")
    parser.add_argument("--episodes", type=int, default=defaults.episodes, help="stand-in episodes (default 50)")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help=f"control steps per episode at most (default {STANDARD_EPISODE_STEPS}: gym-pusht's 30 s "
                             "at 5 Hz)")
    parser.add_argument("--long", action="store_true",
                        help=f"episodes of {LONG_EPISODE_STEPS} steps (60 s) instead of the standard 30 s")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed of the start poses")
    parser.add_argument("--robot", default=defaults.robot, choices=("pusht", "go2"),
                        help="stand-in robot: pusht (this table), go2 (Push Cube; see dmo-eval-policy --robot go2 "
                             "--help)")
    parser.add_argument("--aspect", default=defaults.aspect, choices=ASPECTS,
                        help="how camera frames are fitted to the policy's size (as the dataset converter did)")
    parser.add_argument("--no-ceilings", action="store_true",
                        help="leave out the random / zero-action / expert ceilings (they are evaluated by default)")
    parser.add_argument("--ceilings-only", action="store_true", help="evaluate the ceilings alone (no policy)")
    parser.add_argument("--ceilings-cache", type=Path, default=None,
                        help="JSON file remembering the ceilings' results per configuration (the expert is slow)")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run to load (default last)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:1, auto (default cpu: one frame at a time gains little on a GPU)")
    parser.add_argument("--mode", choices=MODES, default="direct",
                        help="direct: the policy API on the simulator in-process; ros: through the deploy_pusht graph "
                             "(policy node and stand-in over DDS, real time: max-steps / 5 s per episode; "
                             "any task); both: both, with the per-episode differences")
    parser.add_argument("--out", type=output_file, default=None, help="write the results as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress on stderr")
    add_video_options(parser)
    options = parser.parse_args(argv)
    check_video_options(parser, options)
    if options.random and options.run_dir is not None:
        parser.error("give either RUN_DIR or --random, not both")
    if not options.random and not options.ceilings_only and options.run_dir is None:
        parser.error("give a policy RUN_DIR, --random --dataset DATASET_DIR, or --ceilings-only")
    if (options.random or options.compare_random) and options.dataset is None:
        parser.error("--random and --compare-random need --dataset DATASET_DIR (for the action limits)")
    if options.ceilings_only and options.no_ceilings:
        parser.error("--ceilings-only and --no-ceilings contradict each other")
    if options.mode != "direct" and options.run_dir is None:
        parser.error(f"--mode {options.mode} runs a policy RUN_DIR through the deploy graph; the ceilings and "
                     "--random run directly (leave --mode out)")

    task = options.task
    if options.run_dir is not None and options.run_dir.is_dir():  # a missing run is reported below, with the rest
        try:
            recorded = trained_task(options.run_dir)
        except PolicyError as error:
            print(f"dmo-eval-policy: error: {error}", file=sys.stderr)
            return 2
        if task is None:
            task = recorded
        elif recorded is not None and recorded != task:  # a deliberate transfer test: said, not refused
            print(f"dmo-eval-policy: note: {options.run_dir} was trained on {recorded}; evaluating it on {task} "
                  "(--task)", file=sys.stderr, flush=True)
    try:
        config = EvalConfig(episodes=options.episodes,
                            max_steps=LONG_EPISODE_STEPS if options.long else options.max_steps, seed=options.seed,
                            robot=options.robot, task=task or defaults.task, aspect=options.aspect)
    except ValueError as error:
        parser.error(str(error))

    def progress(index: int, episode: EpisodeResult) -> None:
        if not options.quiet:
            outcome = "success" if episode.success else "no success"
            print(f"  episode {index + 1}/{config.episodes}: {outcome}, max coverage {episode.max_coverage:.3f}, "
                  f"final distance {episode.final_distance if episode.final_distance is not None else float('nan'):.1f}"
                  f", {episode.steps} steps", file=sys.stderr, flush=True)

    report: dict[str, Any] = {"config": asdict(config)}
    lines = []
    rows: list[tuple[str, EvalResult]] = []
    try:
        if options.run_dir is not None:
            refuse_other_robot(options.run_dir, options.robot)
        # The random floor's dataset is read first: a bad one is refused before minutes of the policy's episodes.
        random_policy = random_policy_for(options.dataset, config.seed) \
            if options.random or options.compare_random else None
        if options.run_dir is not None and options.mode in ("direct", "both"):
            policy = _load_policy(options.run_dir, options.device, options.checkpoint)
            result = evaluate_policy(policy, config, progress, videos(options))
            report.update(run_dir=str(options.run_dir), policy=result.to_dict())
            lines.append(format_summary(f"policy {options.run_dir}", result, config))
            rows.append(("policy, direct (policy API on the simulator)", result))
        if options.run_dir is not None and options.mode in ("ros", "both"):
            out_dir = options.out.parent if options.out is not None else Path(tempfile.mkdtemp(prefix="dmo_eval_"))
            through_ros = evaluate_through_ros(options.run_dir, config, out_dir, options.quiet)
            report.update(run_dir=str(options.run_dir), policy_ros=through_ros.to_dict())
            lines.append(format_summary(f"policy {options.run_dir} through ROS", through_ros, config))
            rows.append(("policy, through ROS (deploy_pusht graph)", through_ros))
            if options.mode == "both":
                lines.append(format_differences(result, through_ros))
        if random_policy is not None:
            result = evaluate_policy(random_policy, config, progress, videos(options) if options.random else None)
            report.update(dataset=str(options.dataset), random=result.to_dict())
            lines.append(format_summary("random policy", result, config))
            rows.append(("random policy (dataset's limits), direct", result))
    except (PolicyError, DatasetError) as error:  # PolicyError: a missing, damaged or non-policy run
        print(f"dmo-eval-policy: error: {error}", file=sys.stderr)
        return 2
    if not options.no_ceilings:
        ceilings = evaluate_ceilings(config, cache=options.ceilings_cache)
        report["ceilings"] = {label: result.to_dict() for label, result in ceilings}
        rows += ceilings
    if lines:
        print("\n".join(lines))
    if len(rows) > 1 or options.ceilings_only:
        print(format_table(rows, config))
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {options.out}")
    if options.video is not None:
        print(f"wrote the episodes' GIFs and their contact sheet episodes.png into {options.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
