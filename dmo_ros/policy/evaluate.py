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
from dmo_ros.dataset.images import ASPECTS, resize
from dmo_ros.policy.api import Policy, PolicyError, RandomPolicy, load_policy
from dmo_ros.sims.pusht import SUCCESS_COVERAGE, PushTConfig, PushTSim

ROBOTS = ("pusht",)
"""Robots whose stand-in can score a policy (Push Cube has no success measure here yet)."""

MODES = ("direct", "ros", "both")
"""How ``dmo-eval-policy`` runs the policy: in-process on the simulator, through the deploy graph, or both."""

CAMERA_SIZE = (96, 96)
"""(H, W) of the stand-in camera's render, as in the recorded datasets (resized to the policy's size)."""


@dataclass
class EvalConfig:
    """What an evaluation runs: how many stand-in episodes, how long, from which seed."""

    episodes: int = 10
    """Stand-in episodes to run (each from a new start pose)."""

    max_steps: int = 100
    """Control steps per episode at most (100 = 20 s at 5 Hz); an episode ends earlier at success."""

    seed: int = 10_000
    """Base seed of the stand-in's start poses (episode e from (seed, e)); distinct from the data seeds 0 and 1."""

    robot: str = "pusht"
    """The stand-in to evaluate on; only ``pusht`` so far."""

    aspect: str = "crop"
    """How the camera frame is fitted to the policy's image size (as the dataset converter did): crop, pad, stretch."""

    control_period_s: float = 0.2
    """Seconds each action (a velocity) is held: the stand-in's control period (5 Hz)."""

    def __post_init__(self) -> None:
        if self.robot not in ROBOTS:
            raise ValueError(f"evaluation of robot {self.robot!r} is not implemented yet (Push Cube has no stand-in "
                             f"success measure); evaluate on one of: {', '.join(ROBOTS)}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
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


EVAL_PRESETS: dict[str, EvalConfig] = {
    # Tests: a second or two.
    "tiny": EvalConfig(episodes=2, max_steps=10),
    # The laptop demo and periodic evaluations during training: 10 episodes of 20 s.
    "cpu": EvalConfig(episodes=10, max_steps=100),
    # Final numbers: more episodes for a tighter success-rate estimate (+-7 % at 50 episodes).
    "gpu": EvalConfig(episodes=50, max_steps=100),
}
"""Evaluation presets; ``EvalConfig.preset(name)`` returns a copy."""


@dataclass
class EpisodeResult:
    """One stand-in episode."""

    success: bool
    """The coverage exceeded the success threshold (0.95) before ``max_steps``."""
    max_coverage: float
    """Largest coverage of the goal T in the episode, in [0, 1]."""
    steps: int
    """Control steps run (fewer than ``max_steps`` only at success)."""
    final_coverage: float = 0.0
    """Coverage of the goal T at the end of the episode, in [0, 1]."""


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able numbers; ``episodes`` is the count (as in ``eval.jsonl``), ``per_episode`` the details."""
        return {"success_rate": self.success_rate, "mean_max_coverage": self.mean_max_coverage,
                "successes": self.successes, "episodes": len(self.episodes), "seconds": self.seconds,
                "per_episode": [asdict(episode) for episode in self.episodes]}


ProgressCallback = Callable[[int, EpisodeResult], None]
"""Called after each episode with its index and result."""


def run_episode(policy: Policy, sim: PushTSim, config: EvalConfig) -> EpisodeResult:
    """One episode from the simulator's current start pose (the caller resets the simulator)."""
    height, width = policy.image_size
    policy.reset()
    coverage = sim.state().coverage
    max_coverage, steps = coverage, 0
    success = coverage > SUCCESS_COVERAGE
    while not success and steps < config.max_steps:
        frame = resize(sim.render(), height, width, config.aspect)
        action = np.asarray(policy.act(frame), dtype=np.float64)
        policy.observe_action(action)  # executed as proposed (the policy clamped it to its limits)
        sim.step(action * config.control_period_s)  # a velocity held for one control period -> metres
        steps += 1
        state = sim.state()
        coverage = state.coverage
        max_coverage = max(max_coverage, coverage)
        success = state.success
    return EpisodeResult(success=bool(success), max_coverage=float(max_coverage), steps=steps,
                         final_coverage=float(coverage))


def evaluate_policy(policy: Policy, config: EvalConfig | None = None,
                    progress: ProgressCallback | None = None) -> EvalResult:
    """Run ``config.episodes`` stand-in episodes with ``policy`` (see the module doc)."""
    config = config or EvalConfig()
    started = time.perf_counter()
    sim = PushTSim(PushTConfig(seed=config.seed, width=CAMERA_SIZE[1], height=CAMERA_SIZE[0],
                               control_period_s=config.control_period_s))
    episodes: list[EpisodeResult] = []
    try:
        for index in range(config.episodes):
            if index:
                sim.reset()  # the next episode: seeded from (seed, episode), so reproducible
            episodes.append(run_episode(policy, sim, config))
            if progress is not None:
                progress(index, episodes[-1])
    finally:
        sim.close()
    return summarize_episodes(episodes, time.perf_counter() - started)


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
    """``policy runs/x: success 3/10 (30%), mean max coverage 0.412 over 10 episodes (100 steps max)``."""
    count = len(result.episodes)
    return (f"{label}: success {result.successes}/{count} ({100 * result.success_rate:.0f}%), "
            f"mean max coverage {result.mean_max_coverage:.3f} over {count} episodes ({config.max_steps} steps max)")


def format_table(rows: list[tuple[str, EvalResult]], config: EvalConfig) -> str:
    """The evaluation table: one row per policy and mode (success, mean max and mean final coverage)."""
    header = f"{'':44} {'episodes':>8} {'success':>14} {'mean max cov.':>14} {'mean final cov.':>16}"
    lines = [f"evaluation on the Push-T stand-in (seed {config.seed}, {config.max_steps} steps max)", header]
    for label, result in rows:
        final = float(np.mean([episode.final_coverage for episode in result.episodes]))
        success = f"{result.successes}/{len(result.episodes)} ({100 * result.success_rate:.0f}%)"
        lines.append(f"{label:44} {len(result.episodes):>8} {success:>14} {result.mean_max_coverage:>14.3f} "
                     f"{final:>16.3f}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-eval-policy",
        description="Evaluate a trained policy on the simulated Push-T stand-in: success rate (coverage > 0.95) "
                    "and mean max coverage of the goal T, over seeded episodes.",
        epilog="Examples: dmo-eval-policy runs/demo/dmo; dmo-eval-policy --random --dataset datasets/play; "
               "dmo-eval-policy runs/demo/dmo --compare-random --dataset datasets/play. "
               "Exit code: 0 done, 2 bad arguments or unreadable inputs.",
    )
    defaults = EvalConfig()
    parser.add_argument("run_dir", type=Path, nargs="?", help="policy run folder of dmo-train-policy")
    parser.add_argument("--random", action="store_true", help="evaluate the random policy instead (needs --dataset)")
    parser.add_argument("--compare-random", action="store_true",
                        help="also evaluate the random policy on the same episodes (needs --dataset)")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="dataset folder giving the random policy's action limits and image size")
    parser.add_argument("--episodes", type=int, default=defaults.episodes, help="stand-in episodes")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps,
                        help="control steps per episode at most (5 Hz)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed of the start poses")
    parser.add_argument("--robot", default=defaults.robot, help="stand-in robot (only pusht so far)")
    parser.add_argument("--aspect", default=defaults.aspect, choices=ASPECTS,
                        help="how camera frames are fitted to the policy's size (as the dataset converter did)")
    parser.add_argument("--checkpoint", default="last", help="checkpoint of the run to load (default last)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:1, auto (default cpu: one frame at a time gains little on a GPU)")
    parser.add_argument("--mode", choices=MODES, default="direct",
                        help="direct: the policy API on the simulator in-process; ros: through the deploy_pusht graph "
                             "(policy node and stand-in over DDS, real time: max-steps / 5 s per episode); both: "
                             "both, with the per-episode differences")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no per-episode progress on stderr")
    options = parser.parse_args(argv)
    if options.random and options.run_dir is not None:
        parser.error("give either RUN_DIR or --random, not both")
    if not options.random and options.run_dir is None:
        parser.error("give a policy RUN_DIR, or --random --dataset DATASET_DIR")
    if (options.random or options.compare_random) and options.dataset is None:
        parser.error("--random and --compare-random need --dataset DATASET_DIR (for the action limits)")

    try:
        config = EvalConfig(episodes=options.episodes, max_steps=options.max_steps, seed=options.seed,
                            robot=options.robot, aspect=options.aspect)
    except ValueError as error:
        parser.error(str(error))

    def progress(index: int, episode: EpisodeResult) -> None:
        if not options.quiet:
            outcome = "success" if episode.success else "no success"
            print(f"  episode {index + 1}/{config.episodes}: {outcome}, max coverage {episode.max_coverage:.3f}, "
                  f"{episode.steps} steps", file=sys.stderr, flush=True)

    report: dict[str, Any] = {"config": asdict(config)}
    lines = []
    rows: list[tuple[str, EvalResult]] = []
    try:
        if not options.random and options.mode in ("direct", "both"):
            policy = _load_policy(options.run_dir, options.device, options.checkpoint)
            result = evaluate_policy(policy, config, progress)
            report.update(run_dir=str(options.run_dir), policy=result.to_dict())
            lines.append(format_summary(f"policy {options.run_dir}", result, config))
            rows.append(("policy, direct (policy API on the simulator)", result))
        if not options.random and options.mode in ("ros", "both"):
            out_dir = options.out.parent if options.out is not None else Path(tempfile.mkdtemp(prefix="dmo_eval_"))
            through_ros = evaluate_through_ros(options.run_dir, config, out_dir, options.quiet)
            report.update(run_dir=str(options.run_dir), policy_ros=through_ros.to_dict())
            lines.append(format_summary(f"policy {options.run_dir} through ROS", through_ros, config))
            rows.append(("policy, through ROS (deploy_pusht graph)", through_ros))
            if options.mode == "both":
                lines.append(format_differences(result, through_ros))
        if options.random or options.compare_random:
            result = evaluate_policy(random_policy_for(options.dataset, config.seed), config, progress)
            report.update(dataset=str(options.dataset), random=result.to_dict())
            lines.append(format_summary("random policy", result, config))
            rows.append(("random policy, direct", result))
    except (PolicyError, DatasetError) as error:  # PolicyError: a missing, damaged or non-policy run
        print(f"dmo-eval-policy: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    if len(rows) > 1:
        print(format_table(rows, config))
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
