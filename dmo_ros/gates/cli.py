"""``dmo-gate``: measure a trained model's gate, print it and write ``gate.json`` into its run folder.

    dmo-gate world-model runs/wm --dataset datasets/play
    dmo-gate local-model runs/local --dataset datasets/play --reward-run runs/reward --goal goal.png
    dmo-gate reward runs/reward --goal goal.png          # also writes runs/reward/gate/reward_shape.png
    dmo-gate reward runs/reward --goal goal_reach.png --task reach_fixed   # the reach gate (+ its map PNG)
    dmo-gate world-model-paths runs/wm --policy runs/dmo --task reach_fixed   # the world model where the policy goes

The trainers run the same measurement at the end of training; ``dmo-train-policy`` refuses a model
whose gate failed (or was never measured) unless ``--force-gates``, and measures the reward's gate toward its own
goal picture when the reward run has none toward it (:func:`reward_gate_toward`). ``world-model-paths`` measures a
world model along a trained policy's own paths (walls, contact with the T) and writes ``world_model_paths.json``
and ``.png`` into the policy's run (or ``--out``); no trainer reads it. The gates use the Push-T stand-in simulator
for *evaluation* (reference displacements, finite differences, ground-truth coverage); the models never see it.
Exit code: 0 passed, 1 below the gate, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from dmo_ros.dataset.format import DatasetError
from dmo_ros.gates.report import GateReport, goal_picture_digest, record_goal, write_gate_report
from dmo_ros.help_text import plain_text
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.policy.api import PolicyError
from dmo_ros.training.checkpoint import CheckpointError
from dmo_ros.training.options import ConfigError, add_dataclass_options, given_options


def world_model_run_gate(run_dir: Path, dataset: Path, device: torch.device | str = "cpu",
                         change_threshold: float | None = None, bf16: bool = False,
                         **config: object) -> GateReport:
    """The world-model gate of a run folder on a dataset, written to ``run_dir/gate.json``, with the
    held-command rollouts drawn in ``run_dir/action_response.png``; ``change_threshold`` (uint8 levels) samples
    with that soft threshold on each frame's change instead of the model's own, ``bf16`` under bfloat16 autocast
    (both recorded in the report)."""
    from dmo_ros.gates.world_model import WorldModelGateConfig, world_model_gate
    from dmo_ros.world_model.denoiser import load_world_model

    denoiser = load_world_model(run_dir, device)
    report = world_model_gate(denoiser, dataset, WorldModelGateConfig(**config),
                              sampler_config=denoiser.sampler_with(change_threshold, bf16=bf16),
                              picture=Path(run_dir) / "action_response.png")
    write_gate_report(run_dir, report)
    return report


def local_model_run_gate(run_dir: Path, dataset: Path, reward_run: Path, goal: Path | None,
                         device: torch.device | str = "cpu", labels: dict | None = None,
                         **config: object) -> GateReport:
    """The local-model gate of a run folder (validation sequences of ``dataset``, probes rewarded by the
    global reward of ``reward_run`` toward ``goal``; None for an intent reward), written to ``run_dir/gate.json``.

    The probes run on the stand-in of the dataset's robot: Push-T's (the state probe too), or the Go2's Push Cube
    stand-in (no state probe; the task option is not read)."""
    from dmo_ros.dataset.format import read_meta
    from dmo_ros.dataset.loaders import collate
    from dmo_ros.gates.local_model import (
        LocalModelGateConfig,
        agent_only_ranges,
        local_model_gate,
        simulator_probes,
        state_probe,
    )
    from dmo_ros.local_model.model import SequenceDataset, load_local_model
    from dmo_ros.local_model.train import ensure_labels, frame_labeller, goal_reward_function
    from dmo_ros.sims.pusht_tasks import REACH_TASKS
    from dmo_ros.training.checkpoint import read_run_config

    begin = time.perf_counter()
    gate_config = LocalModelGateConfig(**config)
    digest = None if goal is None else goal_picture_digest(goal)  # the bytes measured with, read before the probes
    model = load_local_model(run_dir, device)
    size = model.config.image_size
    reward = goal_reward_function(reward_run, goal, size, torch.device(device))
    labels = labels or ensure_labels([dataset], run_dir, lambda: frame_labeller(reward))
    length = int(read_run_config(run_dir).get("sequence_length", 8))
    sequences = SequenceDataset([dataset], length, "val", labels)
    if len(sequences) == 0:
        sequences = SequenceDataset([dataset], length, "train", labels)
    if len(sequences) == 0:
        raise DatasetError(f"{dataset}: no sequence of {length} samples")
    picks = torch.linspace(0, len(sequences) - 1, min(gate_config.sequences, len(sequences))).round().long().unique()
    batch = collate([sequences[int(i)] for i in picks])
    robot = str(read_meta(dataset).get("robot", "pusht"))
    if robot == "go2":
        gate_config = replace(gate_config, task="push_cube")
    probes = simulator_probes(reward, gate_config.probes, length, size, gate_config.epsilon, gate_config.seed,
                              task=gate_config.task, robot=robot)
    probe_task = "push_region" if gate_config.task == "push_t" else gate_config.task
    positions = state_probe(model.cpu(), gate_config.state_probe_episodes, seed=gate_config.seed,
                            task=probe_task) if gate_config.state_probe_episodes and robot == "pusht" else None
    agent_only = (agent_only_ranges(model.cpu(), reward, gate_config.agent_only_episodes, gate_config.agent_only_step,
                                    gate_config.task, drift_steps=gate_config.drift_steps)
                  if gate_config.agent_only_episodes and robot == "pusht" and gate_config.task not in REACH_TASKS
                  else None)
    report = local_model_gate(model.cpu(), batch, probes, gate_config, positions, agent_only)
    report.seconds = time.perf_counter() - begin  # the probes' simulator episodes included
    given = {"reward_run": str(Path(reward_run).resolve()), "goal": None if goal is None else str(Path(goal).resolve())}
    report.metrics.update(dataset=str(dataset), reward_run=str(reward_run), robot=robot)
    record_goal(report, goal, digest)  # compared with a policy's --goal from wherever it runs (report.goal_mismatch)
    trained_on = _label_source(run_dir, dataset)
    if trained_on is not None and trained_on != given:
        report.notes.append(f"the reward-head error is measured against the labels the model was trained on "
                            f"({trained_on['reward_run']}, goal {trained_on['goal']}), the gradient probes against "
                            f"--reward-run {reward_run} (goal {goal}): they are different rewards")
    write_gate_report(run_dir, report)
    return report


def _label_source(run_dir: Path, dataset: Path) -> dict | None:
    """The reward run and goal (resolved paths, or None) that labelled ``dataset`` for the local model in
    ``run_dir`` (its ``rewards.json``), or None when not recorded."""
    import json

    from dmo_ros.local_model.train import LABELS_INDEX

    index_path = run_dir / LABELS_INDEX
    if not index_path.is_file():
        return None
    source = json.loads(index_path.read_text()).get(str(dataset.resolve()), {}).get("source")
    if not isinstance(source, dict) or not source.get("reward_run"):
        return None
    goal = source.get("goal")
    return {"reward_run": str(Path(source["reward_run"]).resolve()),
            "goal": None if goal is None else str(Path(goal).resolve())}


def reward_run_gate(run_dir: Path, goal: Path, device: torch.device | str = "cpu", plot: bool = True,
                    out_dir: Path | None = None, **config: object) -> GateReport:
    """The reward gate of a run folder with a goal picture, written to ``gate.json`` (+ the plot) in ``out_dir``
    (default ``run_dir``)."""
    from dmo_ros.gates.reward import RewardGateConfig, reward_gate, reward_shape_plots
    from dmo_ros.local_model.train import goal_reward_function
    from dmo_ros.reward.energy import load_reward_model

    out_dir = Path(run_dir) if out_dir is None else Path(out_dir)
    digest = goal_picture_digest(goal)  # the bytes measured with, read before the measurement
    size = load_reward_model(run_dir, "cpu").config.image_size
    reward = goal_reward_function(run_dir, goal, size, torch.device(device))
    report = reward_gate(reward, RewardGateConfig(**{"image_size": size, **config}))
    record_goal(report, goal, digest)  # compared with a policy's --goal (report.goal_mismatch)
    if plot:
        png = reward_shape_plots(report, out_dir / "gate" / "reward_shape.png")
        report.metrics["plot"] = str(png)
    del report.metrics["curves"]  # in the plot; the JSON keeps the summary numbers
    write_gate_report(out_dir, report)
    return report


def reach_reward_run_gate(run_dir: Path, goal: Path, device: torch.device | str = "cpu", plot: bool = True,
                          out_dir: Path | None = None, **config: object) -> GateReport:
    """The reach reward gate of a run folder with a goal picture of that reach task, written to ``gate.json`` in
    ``out_dir`` (default ``run_dir``; ``dmo-gate reward`` picks it with :func:`reward_gate_folder`; its
    ``metrics["task"]`` says which task) and the map to ``out_dir/gate/reward_reach_map.png``."""
    from dmo_ros.gates.reward import ReachRewardGateConfig, reach_reward_gate, reach_reward_map_plot
    from dmo_ros.local_model.train import goal_reward_function
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image

    out_dir = Path(run_dir) if out_dir is None else Path(out_dir)
    digest = goal_picture_digest(goal)  # the bytes measured with, read before the measurement
    size = load_reward_model(run_dir, "cpu").config.image_size
    reward = goal_reward_function(run_dir, goal, size, torch.device(device))
    report = reach_reward_gate(reward, ReachRewardGateConfig(**{"image_size": size, **config}))
    record_goal(report, goal, digest)  # compared with a policy's --goal (report.goal_mismatch)
    values = {check.name: check.value for check in report.checks}
    figure = {**report.metrics["map"], "ascent": values["ascent"], "spearman": values["distance_spearman"]}
    if plot:
        png = reach_reward_map_plot({"learned reward": figure}, load_goal_image(goal, size=(size, size)),
                                    out_dir / "gate" / "reward_reach_map.png")
        report.metrics["plot"] = str(png)
    del report.metrics["map"]  # in the plot; the JSON keeps the summary numbers
    write_gate_report(out_dir, report)
    return report


GOAL_GATES = "gate_goals"
"""Sub-folder of a reward run holding its gates toward goal pictures other than the one in its own ``gate.json``
(one folder per picture and task kind: :func:`reward_gate_toward`)."""


def _vouches(folder: Path, goal: Path, task: str | None) -> bool:
    """Whether ``folder/gate.json`` is a reward gate measured toward ``goal`` (same bytes) on ``task``'s kind."""
    from dmo_ros.gates.report import goal_mismatch, read_gate_report, task_mismatch

    report = read_gate_report(folder)
    return report is not None and report.metrics.get("goal") is not None \
        and task_mismatch("reward", report, task) is None and goal_mismatch(report, goal) is None


def goal_gate_folder(reward_run: Path, goal: Path, task: str | None = None) -> Path:
    """``reward_run/gate_goals/<sha256 of the picture's bytes, 12 hex>_<push|reach task>/``: where the reward's
    gate toward ``goal`` on ``task`` (None or a pushing task: ``push``) lives when the run's own ``gate.json`` holds
    another picture's or task's. Raises ``OSError`` for a picture that cannot be read."""
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    digest = goal_picture_digest(goal)[:12]
    return Path(reward_run) / GOAL_GATES / f"{digest}_{task if task in REACH_TASKS else 'push'}"


def reward_gate_folder(reward_run: Path, goal: Path, task: str | None = None) -> Path:
    """Where ``dmo-gate reward`` writes a measurement toward ``goal`` on ``task``: the run folder itself when it has
    no gate yet or its ``gate.json`` was measured toward the same picture and kind of task (a re-measurement),
    else :func:`goal_gate_folder` — the run's own gate (its trainer's, toward its ``--goal``) is never replaced by
    a gate toward another picture or task."""
    from dmo_ros.gates.report import read_gate_report

    reward_run = Path(reward_run)
    if read_gate_report(reward_run) is None or _vouches(reward_run, Path(goal), task):
        return reward_run
    return goal_gate_folder(reward_run, goal, task)


def reward_gate_toward(reward_run: Path, goal: Path, task: str | None = None, device: torch.device | str = "cpu",
                       notify=print, measure: bool = True) -> Path:
    """The folder whose ``gate.json`` gates the reward of ``reward_run`` toward the goal picture ``goal`` on
    ``task`` (None or a pushing task: the pushing gate; ``reach``/``reach_fixed``: that reach gate), measuring it
    first when no such gate exists.

    The reward run's own ``gate.json`` serves when it was measured toward the same picture (same bytes) on the same
    kind of task. Otherwise the gate is looked up, or measured now (about 10 s on a CPU; the plot beside it), in
    :func:`goal_gate_folder`, so that one reward run serves several pictures and policies started side by side
    toward different pictures do not overwrite each other's gate (toward the same picture, a lock in the folder
    lets one measure and the others wait and reuse it).
    ``notify`` gets one line when a gate is measured. With ``measure`` False nothing is measured: a gate not found
    returns ``reward_run`` itself (whose mismatch :func:`~dmo_ros.gates.report.require_gates` then names). Raises
    what :func:`reward_run_gate` raises (``OSError`` for a missing picture, ``CheckpointError`` for a damaged run)."""
    import fcntl

    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    reward_run, goal = Path(reward_run), Path(goal)
    reach = task if task in REACH_TASKS else None
    if _vouches(reward_run, goal, task):
        return reward_run
    folder = goal_gate_folder(reward_run, goal, task)
    if _vouches(folder, goal, task):
        return folder
    if not measure:
        return reward_run
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # policies started side by side (or torchrun's ranks) measure once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _vouches(folder, goal, task):  # another process measured it while this one waited
            return folder
        notify(f"the reward's gate toward {goal}{f' on {reach}' if reach else ''} was never measured; measuring it "
               f"into {folder}")
        if reach:
            reach_reward_run_gate(reward_run, goal, device, out_dir=folder, task=reach)
        else:
            reward_run_gate(reward_run, goal, device, out_dir=folder)
    return folder


def add_sampler_options(parser: argparse.ArgumentParser) -> None:
    """How the world model is sampled for a measurement: its change threshold and its precision."""
    parser.add_argument("--change-threshold", type=float, default=None, metavar="LEVELS",
                        help="sample the world model with this soft threshold (uint8 levels) on each frame's change "
                             "(default: the model's own sampler_change_threshold; 0: none)")
    parser.add_argument("--bf16", action="store_true",
                        help="sample under bfloat16 autocast (fast on hardware with bfloat16 matrix units, e.g. a CPU "
                             "with AMX; slow without; SamplerConfig.bf16)")


def build_parser() -> argparse.ArgumentParser:
    from dmo_ros.gates.local_model import LocalModelGateConfig
    from dmo_ros.gates.policy_paths import PolicyPathConfig
    from dmo_ros.gates.reward import ReachRewardGateConfig, RewardGateConfig
    from dmo_ros.gates.world_model import WorldModelGateConfig

    parser = argparse.ArgumentParser(prog="dmo-gate", description=plain_text(__doc__.split("\n\n")[0]),
                                     epilog="Exit code: 0 passed, 1 below the gate, 2 bad arguments or data.")
    parser.add_argument("--device", default="cpu", help="where the models run (default: cpu)")
    parts = parser.add_subparsers(dest="component", required=True)
    for name, config_class, help_text in (
            ("world-model", WorldModelGateConfig, "does the imagined agent follow held commands?"),
            ("local-model", LocalModelGateConfig, "does the RSSM use the action; does d r̂/d a point the true way?"),
            ("reward", RewardGateConfig, "is the reward monotone in the T's progress and indifferent to the agent?")):
        sub = parts.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("run_dir", type=Path, help="the model's run folder")
        if name != "reward":
            sub.add_argument("--dataset", type=Path, required=True, help="dataset folder (its validation episodes)")
        if name == "reward":
            sub.add_argument("--goal", type=Path, required=True, help="goal picture (dmo-goal-image)")
        elif name == "local-model":
            sub.add_argument("--goal", type=Path, default=None,
                             help="goal picture (dmo-goal-image) of the reward; not with an intent reward")
        if name == "local-model":
            sub.add_argument("--reward-run", type=Path, required=True, help="the global reward model's run folder")
        if name == "world-model":
            add_sampler_options(sub)
        # The reward's --task is the reach options' (below): it picks the reach gate; the shape gate keeps push_t's.
        # The local model's --task picks its probes (what require_gates' refusal tells the user to run).
        options = add_dataclass_options(sub, config_class, title="measurement and bounds", presets=False,
                                        skip=["image_size", "task"] if name == "reward" else ["image_size"])
        reach_options = add_dataclass_options(
            sub, ReachRewardGateConfig, title="reach tasks (--task reach_fixed or reach: the agent-to-target map)",
            skip=["image_size", "seed"], presets=False) if name == "reward" else []
        sub.set_defaults(gate_class=config_class, gate_options=options, reach_options=reach_options)
    help_text = "the world model along a policy's own paths: walls, contact with the T (a report, no trainer reads it)"
    sub = parts.add_parser("world-model-paths", help=help_text, description=help_text)
    sub.add_argument("run_dir", type=Path, help="the world model's run folder")
    sub.add_argument("--policy", type=Path, required=True, help="a dmo-train-policy run whose policy drives the paths")
    sub.add_argument("--out", type=Path, default=None,
                     help="where world_model_paths.json and .png go (default: the policy's run folder)")
    add_sampler_options(sub)
    sub.add_argument("--reward-run", type=Path, default=None,
                     help="also report this learned reward (dmo-train-reward) on the real and imagined frames")
    sub.add_argument("--goal", type=Path, default=None, help="the reward's goal picture (with --reward-run)")
    options = add_dataclass_options(sub, PolicyPathConfig, title="paths, step classes and bounds", presets=False)
    sub.set_defaults(gate_class=PolicyPathConfig, gate_options=options, reach_options=[])
    return parser


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = given_options(args, args.gate_options)
    reach = given_options(args, args.reach_options)
    if reach and "task" not in reach:
        parser.error(f"--{next(iter(reach)).replace('_', '-')} measures the reach gate: give --task reach_fixed "
                     "(or reach) too")
    if "task" in reach:  # a pushing task here is the mistake to name, not the shape-gate options beside it
        from dmo_ros.gates.reward import ReachRewardGateConfig

        try:
            ReachRewardGateConfig(task=reach["task"])
        except ValueError as error:
            parser.error(f"--{error}")
    if reach and set(config) - {"seed"}:
        parser.error(f"--{next(iter(set(config) - {'seed'})).replace('_', '-')} belongs to the pushing tasks' "
                     f"reward gate, not the reach gate (--task {reach['task']})")
    try:
        if reach:  # the bounds checked before any run is read (a count of 0 measured nothing and wrote nan)
            from dmo_ros.gates.reward import ReachRewardGateConfig

            ReachRewardGateConfig(**{**config, **reach})
        else:
            args.gate_class(**config)
        if args.component == "world-model-paths":
            from dmo_ros.gates.policy_paths import PolicyPathConfig, world_model_paths_check

            report = world_model_paths_check(args.run_dir, args.policy, args.out, PolicyPathConfig(**config),
                                             args.device, progress=lambda line: print(line, flush=True),
                                             change_threshold=args.change_threshold, bf16=args.bf16,
                                             reward_run=args.reward_run,
                                             goal=args.goal)
        elif args.component == "world-model":
            report = world_model_run_gate(args.run_dir, args.dataset, args.device, args.change_threshold, args.bf16,
                                          **config)
        elif args.component == "local-model":
            report = local_model_run_gate(args.run_dir, args.dataset, args.reward_run, args.goal, args.device, **config)
        else:  # the reward: a gate toward another picture or task than the run's own goes beside it (gate_goals/)
            out_dir = reward_gate_folder(args.run_dir, args.goal, reach.get("task"))
            if out_dir != args.run_dir:
                print(f"the run's own gate.json is toward another picture or task and is kept; this one goes to "
                      f"{out_dir}", flush=True)
            if reach:
                report = reach_reward_run_gate(args.run_dir, args.goal, args.device, out_dir=out_dir, **config,
                                               **reach)
            else:
                report = reward_run_gate(args.run_dir, args.goal, args.device, out_dir=out_dir, **config)
    except (DatasetError, CheckpointError, ConfigError, PolicyError, ValueError, OSError) as error:
        message = str(error)
        for name in (*config, *reach):  # a config's message names its field; say the option as typed
            if message.startswith(f"{name} "):
                message = f"--{name.replace('_', '-')}{message[len(name):]}"
        print(f"dmo-gate: error: {message}", file=sys.stderr)
        return 2
    print(report.format())
    if args.component == "world-model-paths":
        from dmo_ros.gates.policy_paths import REPORT_FILE

        out = args.out or args.policy
        print(f"wrote {out / REPORT_FILE} and {report.metrics['picture']}")
        return 0 if report.passed else 1
    plot = f" and {report.metrics['plot']}" if "plot" in report.metrics else ""
    print(f"wrote {(out_dir if args.component == 'reward' else args.run_dir) / 'gate.json'}{plot}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
