"""``dmo-train-policy {dmo,no-diffusion,ppo}``: train a policy inside the learned world model.

One command, one subcommand per method, the same inputs for all three (the comparison of the
paper's Fig. 3 is fair by construction): the datasets (real start windows), the world-model
run, the reward run and the goal picture. DMO-SAPO and No Diffusion also take the pretrained
local-model run (``dmo-train-local-model``); its weights are copied into the policy run and
fine-tuned there, the pretraining run is never modified.

    dmo-train-policy dmo datasets/play --world-model runs/wm --reward-run runs/reward --goal goal.png \\
        --local-model runs/local --run-dir runs/dmo --preset cpu
    dmo-train-policy ppo datasets/play --world-model runs/wm --reward-run runs/reward --goal goal.png \\
        --run-dir runs/ppo --preset cpu

Every run logs the world-model samples and the training wall-clock with a periodic
evaluation on the simulated stand-in (``eval.jsonl``; ``dmo-compare`` plots them). Re-running
the same command resumes the run. Exit code: 0 trained, 1 training failed, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.dataset.format import DatasetError, read_meta
from dmo_ros.dataset.loaders import action_statistics, dataset_shape, find_datasets
from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
from dmo_ros.dmo.imagined_env import ImaginedEnv, StartWindows
from dmo_ros.dmo.runner import PolicyTrainConfig, set_seed, train_policy
from dmo_ros.dmo.sapo import SAPOConfig
from dmo_ros.dmo.simulator_env import PIXEL_TASKS, SimulatorEnv
from dmo_ros.gates.report import GateError, gate_snapshot, require_gates
from dmo_ros.policy.api import POLICY_KIND
from dmo_ros.training.checkpoint import (
    CheckpointError,
    changed_inputs,
    check_run_dir,
    latest_step,
    read_run_config,
    recorded_path,
)
from dmo_ros.training.distributed import World, resolve_device
from dmo_ros.training.loop import INTERRUPTED_EXIT_CODE, exit_on_interrupt
from dmo_ros.training.options import (
    ConfigError,
    add_dataclass_options,
    apply_options,
    changed_settings,
    config_from_dict,
    describe_changes,
)

METHOD_NAMES = {"dmo": "dmo", "no-diffusion": "no_diffusion", "ppo": "ppo"}
"""Subcommand -> the method name stored in config.json and eval.jsonl."""

SIMULATOR_CONTEXT = 4
"""Frames of context of the start windows when no world model sets it (the simulator environment and No Diffusion
without ``--world-model``; DIAMOND's 4)."""

FORWARDS = ("world-model", "simulator")
"""What steps the episodes (``--forward``): rung 2 and rung 1 of the ladder (DESIGN.md §8)."""

RUNGS = {"world-model": 2, "simulator": 1}
"""The ladder rung of each forward model (``config.json["rung"]``, read by ``dmo-ladder-table``)."""

RUN_PRESETS: dict[str, PolicyTrainConfig] = {
    # Tests: a few epochs in seconds.
    "tiny": PolicyTrainConfig(max_samples=64, eval_every=1, eval_episodes=2, eval_max_steps=8, checkpoint_every=1),
    # The laptop demo: 32 DMO epochs of 16 x 16 imagined steps, about 10 minutes on 2 cores.
    "cpu": PolicyTrainConfig(max_samples=8_192, eval_every=8, eval_episodes=10, eval_max_steps=150,
                             checkpoint_every=8),
    # One GPU: the budget of a paper-scale run is set with --max-samples (the paper: 8 M for DMO on Push-T).
    "gpu": PolicyTrainConfig(max_samples=2_000_000, eval_every=25, eval_episodes=20, eval_max_steps=150,
                             checkpoint_every=25),
}
"""Budgets and evaluation schedules per preset (``--max-samples`` etc. override them)."""


def _ppo():
    from dmo_ros.dmo import ppo  # the PPO module is only needed by its subcommand

    return ppo


def _real_sequences(folders: list[Path], args: argparse.Namespace, length: int, image_size: int, v4: bool,
                    device: torch.device):
    """The datasets' training sequences of ``length`` frames labelled by the global reward (the goal reward, or a
    DreamerV4-style run's reward token), for ``finetune_real_fraction``. Labels are computed once and kept in the
    run folder (``rewards.json``), as ``dmo-train-local-model`` keeps its own. The sequences are chosen as the
    local model's were (its run's ``windows``: all, play or demonstrations)."""
    from dmo_ros.local_model.model import SequenceDataset
    from dmo_ros.local_model.train import ensure_labels, frame_labeller, goal_reward_function, reward_token_labeller

    def make_labeller():
        if v4:
            return reward_token_labeller(args.world_model, device)
        return frame_labeller(goal_reward_function(args.reward_run, args.goal, image_size, device))

    source = {"reward_run": recorded_path(args.world_model if v4 else args.reward_run),
              "goal": None if v4 else recorded_path(args.goal)}
    labels = ensure_labels(folders, args.run_dir, make_labeller, source=source)
    windows = read_run_config(args.local_model).get("windows", "all")
    sequences = SequenceDataset(folders, length, "train", labels, windows)
    if len(sequences) == 0:
        raise DatasetError(f"no training sequence of {length} samples ({windows} windows, as the local model's) in "
                           "the datasets for finetune_real_fraction")
    return sequences


def _check_input_kinds(args: argparse.Namespace, method: str) -> None:
    """Refuse an input run of the wrong kind (a reward run given as ``--local-model``) before its gate is read or
    measured, so the error says what the folder holds instead of advising to gate it as something it is not.

    Raises :class:`~dmo_ros.training.checkpoint.RunKindError` naming what the folder holds, or
    ``CheckpointError`` for a folder that is no run."""
    from dmo_ros.world_model_v4.model import is_world_model_v4

    if args.world_model is not None and not is_world_model_v4(args.world_model):
        read_run_config(args.world_model, kind="world_model")
    if args.reward_run is not None:
        read_run_config(args.reward_run, kind="reward")
    if method != "ppo" and getattr(args, "local_model", None) is not None:
        read_run_config(args.local_model, kind="local_model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmo-train-policy",
        description="Train a policy in the learned world model: DMO-SAPO, the No Diffusion ablation or PPO. "
                    "Re-running the same command resumes the run.",
        epilog="Exit code: 0 trained, 1 training failed, 2 bad arguments or data.")
    methods = parser.add_subparsers(dest="method", required=True, metavar="{dmo,no-diffusion,ppo}")
    helps = {"dmo": "DMO-SAPO: diffusion world model forward, local RSSM gradients (the paper's method)",
             "no-diffusion": "the ablation: the same loop with the local RSSM as its own forward model",
             "ppo": "PPO (CleanRL style) on images, acting in the diffusion world model"}
    for name, help_text in helps.items():
        sub = methods.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("datasets", nargs="+", type=Path,
                         help="dataset folders (dmo-convert): real windows the imagined episodes start from")
        sub.add_argument("--world-model", type=Path, default=None,
                         help="run folder of dmo-train-world-model; optional: No Diffusion never steps it (it "
                              "only sets the start windows' context length, default 4)"
                         if name == "no-diffusion" else
                         "run folder of dmo-train-world-model (required unless --forward simulator)")
        sub.add_argument("--reward-run", type=Path, default=None,
                         help="run folder of dmo-train-reward (required unless --world-model is a DreamerV4-style "
                              "run, whose reward token gives the rewards)")
        sub.add_argument("--goal", type=Path, default=None,
                         help="goal picture (PNG/JPEG/.npy), or a goal set (.npy of K pictures, e.g. dmo-goal-image "
                              "--demonstration-ends K for the Go2's ego camera); required with a goal-picture "
                              "--reward-run, not with an intent reward (dmo-train-reward --objective intent)")
        if name != "ppo":
            sub.add_argument("--local-model", type=Path, required=True,
                             help="run folder of dmo-train-local-model (copied into this run and fine-tuned here)")
        sub.add_argument("--run-dir", type=Path, default=Path(f"runs/{METHOD_NAMES[name]}"),
                         help=f"run folder; an existing run is resumed (default: runs/{METHOD_NAMES[name]})")
        if name != "no-diffusion":
            sub.add_argument("--forward", choices=FORWARDS, default="world-model",
                             help="what steps the episodes: the diffusion world model (rung 2 of the ladder, the "
                                  "paper's setting; default) or the stand-in simulator itself, Push-T's or the Go2's "
                                  "(rung 1: the oracle that isolates the world model; frames rendered and rewarded as "
                                  "recorded)")
        if name != "no-diffusion":
            sub.add_argument("--true-reward", action="store_true",
                             help="oracle (rung 1 only, Push-T): reward the episodes with the task's true reward of "
                                  "the simulator's state (rung 0's) instead of --reward-run's; the swap that tells "
                                  "whether the learned reward is what stops the policy. The critics learn it, and the "
                                  "local model's reward head only through fine-tuning (--finetune-steps)")
        sub.add_argument("--task", choices=PIXEL_TASKS, default="push_t",
                         help="the Push-T task the policy is evaluated on (and, with --forward simulator, whose "
                              "resets start the training episodes); default push_t. Go2 datasets: push_cube (the "
                              "default is taken as it)")
        sub.add_argument("--final-eval-episodes", type=int, default=None, metavar="N",
                         help="episodes of the evaluation at the end (fixed seeds, gym-pusht's 30 s), written with the "
                              "random, zero-action and expert ceilings to final_eval.json for dmo-ladder-table; "
                              "0: none (default: 50; the tiny preset 0)")
        sub.add_argument("--ceilings-cache", type=Path, default=None,
                         help="JSON file remembering the ceilings' results (default: beside the run folder)")
        sub.add_argument("--force-gates", action="store_true",
                         help="train even if a model is below its gate or was never gated (dmo-gate)")
        sub.add_argument("--preset", default="cpu", choices=sorted(RUN_PRESETS),
                         help="budget, evaluation schedule and network sizes (default: cpu)")
        run_options = add_dataclass_options(sub, PolicyTrainConfig, title="budget and evaluation")
        if name == "ppo":
            method_options = {"ppo": add_dataclass_options(sub, _ppo().PPOConfig, title="PPO")}
        else:
            method_options = {"dmo": add_dataclass_options(sub, DMOConfig, title="DMO loop"),
                              "sapo": add_dataclass_options(sub, SAPOConfig, title="SAPO actor-critic")}
        sub.set_defaults(run_options=run_options, method_options=method_options)
    return parser


def _configs(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, Any]:
    """The method's dataclass configs: the saved run's (resume) or the preset's, with the given options applied."""
    classes: dict[str, type] = {"dmo": DMOConfig, "sapo": SAPOConfig}
    presets: dict[str, Any] = {"dmo": DMOConfig.preset(args.preset), "sapo": SAPOConfig.preset(args.preset)}
    if "ppo" in args.method_options:
        classes = {"ppo": _ppo().PPOConfig}
        presets = {"ppo": _ppo().PPOConfig.preset(args.preset)}
    configs = {}
    for key, options in args.method_options.items():
        base = presets[key]
        if saved is not None and key in saved.get("configs", {}):
            base = config_from_dict(classes[key], saved["configs"][key], where=f"{args.run_dir}/config.json {key}")
        configs[key] = apply_options(base, args, options)
    return configs


def deployment_metadata(dataset: Path) -> dict[str, Any]:
    """What the policy node needs of the training data (``config.json["deployment"]``): the robot, control rate,
    how camera frames were fitted (size, aspect, source formats) and the action semantics."""
    meta = read_meta(dataset)
    return {key: meta.get(key) for key in ("robot", "rate_hz", "image", "action")}


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"{parser.prog} {args.method}"
    method = METHOD_NAMES[args.method]
    gates_at_start: dict[str, dict] = {}  # the inputs' gates as they stood (config.json "gates")
    try:
        folders = find_datasets(args.datasets)
        image_size, action_size, robot = dataset_shape(folders, "policy")
        task = args.task
        if robot == "go2":  # the Go2 stand-in plays one task: Push Cube (dmo_ros.policy.push_cube_eval)
            if args.task not in ("push_t", "push_cube"):  # push_t: the default, taken to mean "the robot's task"
                raise ConfigError(f"--task {args.task} is a Push-T task; Go2 runs are evaluated on push_cube")
            task = "push_cube"
        elif args.task == "push_cube":
            raise ConfigError(f"--task push_cube is the Go2 stand-in's task; the datasets are of robot {robot!r}")
        check_run_dir(args.run_dir)
        try:
            saved = read_run_config(args.run_dir)
        except CheckpointError:
            saved = None
        if saved is not None and (saved.get("kind") != POLICY_KIND or saved.get("method") != method):
            raise CheckpointError(f"{args.run_dir} holds a run that is not a {method} policy; choose another --run-dir")
        latest_step(args.run_dir)  # a damaged last checkpoint is refused now, before the models load
        forward = getattr(args, "forward", "world-model")
        true_reward = getattr(args, "true_reward", False)
        if saved is not None:
            held = {"forward": saved.get("forward", "world-model"), "task": saved.get("task", "push_t"),
                    "reward": saved.get("reward", "learned")}
            now = {"forward": forward, "task": task, "reward": "true" if true_reward else "learned"}
            clash = {key: value for key, value in held.items() if value != now[key]}
            if clash:
                raise CheckpointError(f"{args.run_dir} holds a run with " + ", ".join(
                    "--true-reward" if k == "reward" and v == "true" else "the learned reward" if k == "reward"
                    else f"--{k} {v}" for k, v in clash.items()) + "; use another --run-dir")
            given = {"preset": args.preset, "datasets": [recorded_path(folder) for folder in folders],
                     "world_model": recorded_path(args.world_model), "reward_run": recorded_path(args.reward_run),
                     "goal": recorded_path(args.goal),
                     "local_model": recorded_path(getattr(args, "local_model", None))}
            problem = changed_inputs(args.run_dir, given)  # before any model loads or gate is measured
            if problem:
                raise CheckpointError(problem)
        simulated = forward == "simulator"
        if args.world_model is None and not simulated and method != "no_diffusion":
            raise ConfigError("--world-model is required (unless --forward simulator)")
        _check_input_kinds(args, method)  # before any gate is read or measured (their advice assumes the kind)
        run = apply_options(RUN_PRESETS[args.preset], args, args.run_options)
        if saved is not None:  # the imagined frames keep the sampler they started with
            held_threshold = saved.get("run", {}).get("sampler_change_threshold")
            if run.sampler_change_threshold is None:
                run = replace(run, sampler_change_threshold=held_threshold)
            elif run.sampler_change_threshold != held_threshold:
                raise CheckpointError(f"{args.run_dir} holds a run with --sampler-change-threshold "
                                      f"{'none' if held_threshold is None else held_threshold}; use another --run-dir")
        configs = _configs(args, saved)
        config_changes = list((saved or {}).get("config_changes") or [])
        changed = changed_settings(saved.get("configs") or {}, {k: asdict(v) for k, v in configs.items()}) \
            if saved is not None and latest_step(args.run_dir) is not None else []
        if changed:  # a resume may change them (as the model trainers' settings), but says so and keeps the record
            listed, record = describe_changes(changed)
            print(f"note: resuming {args.run_dir} with other settings than it was trained with so far: {listed} "
                  "(recorded in config.json's config_changes)", flush=True)
            config_changes.append({"changed": record})
        device = resolve_device(run.device, World())
        limit = np.maximum(np.asarray(action_statistics(folders)["max_abs"], dtype=np.float64), 1e-3)

        from dmo_ros.reward.energy import load_reward_model, needs_goal
        from dmo_ros.reward.goal_image import load_goal_image
        from dmo_ros.world_model.denoiser import load_world_model

        if simulated and robot not in ("pusht", "go2"):
            raise ConfigError(f"--forward simulator steps the Push-T or the Go2 stand-in; the datasets are of robot "
                              f"{robot!r}")
        world_model = None
        from dmo_ros.world_model_v4.model import is_world_model_v4, load_world_model_v4

        v4 = args.world_model is not None and is_world_model_v4(args.world_model)  # a dmo-train-dynamics run
        if args.world_model is not None:
            world_model = (load_world_model_v4 if v4 else load_world_model)(args.world_model, device)
            if world_model.config.image_size != image_size or world_model.config.action_size != action_size:
                raise DatasetError(f"{args.world_model} was trained on {world_model.config.image_size} px frames and "
                                   f"{world_model.config.action_size}-D actions; the datasets have {image_size} px, "
                                   f"{action_size}-D")
        context = world_model.config.context if world_model is not None else SIMULATOR_CONTEXT
        if v4:  # the DreamerV4-style model starts from L_init real frames prefilled into its KV cache
            context = world_model.config.l_init
        if true_reward and (not simulated or robot != "pusht"):
            raise ConfigError("--true-reward is rung 1's oracle on the Push-T stand-in: it needs --forward simulator "
                              "and a Push-T dataset")
        if true_reward and (args.reward_run is not None or args.goal is not None):
            raise ConfigError("--true-reward replaces the learned reward: leave --reward-run and --goal out")
        if not v4 and args.reward_run is None and not true_reward:
            raise ConfigError("--reward-run is required (unless --world-model is a DreamerV4-style run: its reward "
                              "token gives the rewards, or --true-reward with --forward simulator)")
        if not v4 and not true_reward and args.goal is None and needs_goal(args.reward_run):
            raise ConfigError(f"--goal is required: {args.reward_run} rewards progress toward a goal picture (an "
                              "intent reward, dmo-train-reward --objective intent, needs none)")
        if robot == "pusht":  # the gates measure on the Push-T stand-in
            gated = {"reward": args.reward_run} if args.reward_run is not None else {}
            if args.reward_run is not None and args.goal is not None:  # the gate toward this very picture
                from dmo_ros.gates.cli import reward_gate_toward

                # Forced runs measure nothing new (about 10 s); a gate found toward this picture still counts.
                gated["reward"] = reward_gate_toward(args.reward_run, args.goal, args.task, device,
                                                     notify=lambda line: print(f"gate: {line}", flush=True),
                                                     measure=not args.force_gates)
            if method != "no_diffusion" and not simulated:
                gated["world_model"] = args.world_model
            if method != "ppo":
                gated["local_model"] = args.local_model
            for line in require_gates(gated, force=args.force_gates, task=args.task, goal=args.goal):
                print(f"gate: {line}", flush=True)
            gates_at_start = gate_snapshot(gated)
        reward_model = goal = None  # a DreamerV4-style run rewards with its reward token
        if args.reward_run is not None:
            reward_model = load_reward_model(args.reward_run, device)
        if args.goal is not None:
            goal = load_goal_image(args.goal, size=(image_size, image_size),
                                   notify=lambda text: print(text, flush=True))
        starts = StartWindows(folders, context=context, split="train", seed=run.seed)
    except (DatasetError, ConfigError, CheckpointError, GateError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2

    set_seed(run.seed)
    generator = torch.Generator(device=device).manual_seed(run.seed)

    def make_env(batch_size: int) -> ImaginedEnv | SimulatorEnv:
        if simulated:  # training episodes on seeds of their own, never the evaluation's
            return SimulatorEnv(reward_model, goal, batch_size, image_size, context, task=task,
                                seed=run.seed, device=device, true_reward=true_reward)
        if v4:  # rewards from the model's reward token (the reward run and goal are not used)
            from dmo_ros.dmo.imagined_env_v4 import ImaginedEnvV4

            return ImaginedEnvV4(world_model, starts, batch_size, device=device, generator=generator)
        sampler = world_model.sampler_with(run.sampler_change_threshold,  # the run's settings over the model's
                                           bf16=run.sampler_bf16)
        return ImaginedEnv(world_model, reward_model, goal, starts, batch_size, sampler_config=sampler, device=device,
                           generator=generator)

    try:
        if method == "ppo":
            ppo = _ppo()
            env = make_env(configs["ppo"].num_envs)
            algorithm = ppo.PPOAlgorithm(env, configs["ppo"], limit, device, seed=run.seed)
        else:
            from dmo_ros.local_model.model import load_local_model

            local = load_local_model(args.local_model, device)
            if local.config.image_size != image_size or local.config.action_size != action_size:
                raise DatasetError(f"{args.local_model} was trained on {local.config.image_size} px frames and "
                                   f"{local.config.action_size}-D actions; the datasets have {image_size} px, "
                                   f"{action_size}-D")
            dmo_config = configs["dmo"]
            env = None
            if method == "dmo":
                env = make_env(dmo_config.batch_size)
            real_sequences = None
            if true_reward and dmo_config.finetune_real_fraction > 0:
                raise ValueError("--true-reward cannot label the recording (its states were not recorded): leave "
                                 "--finetune-real-fraction at 0")
            if method == "dmo" and dmo_config.finetune_steps > 0 and dmo_config.finetune_real_fraction > 0:
                real_sequences = _real_sequences(folders, args, dmo_config.finetune_length, image_size, v4, device)
            algorithm = LatentSAPO(method, local, starts, dmo_config, configs["sapo"], limit, env, device, run.seed,
                                   real_sequences=real_sequences, max_samples=run.max_samples)
    except (DatasetError, CheckpointError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2

    evaluate = None
    if robot == "pusht":
        from dmo_ros.policy.evaluate import EvalConfig, evaluate_policy

        eval_config = EvalConfig(episodes=run.eval_episodes, max_steps=run.eval_max_steps, seed=run.eval_seed,
                                 task=args.task)

        def evaluate(policy) -> dict[str, Any]:
            return evaluate_policy(policy, eval_config).record()
    elif robot == "go2":
        from dmo_ros.policy.push_cube_eval import PushCubeEvalConfig
        from dmo_ros.policy.push_cube_eval import evaluate_policy as evaluate_push_cube

        push_cube_config = PushCubeEvalConfig(episodes=run.eval_episodes, max_steps=run.eval_max_steps,
                                              seed=run.eval_seed)

        def evaluate(policy) -> dict[str, Any]:
            return evaluate_push_cube(policy, push_cube_config).record()
    else:
        print(f"note: no stand-in evaluation for robot {robot!r}; training without it", flush=True)

    run_config = {"kind": POLICY_KIND, "method": method, "preset": args.preset, "robot": robot,
                  "forward": forward, "task": task, "rung": RUNGS[forward] if method != "no_diffusion" else 2,
                  "reward": "true" if true_reward else "learned",
                  "datasets": [recorded_path(folder) for folder in folders],
                  "world_model": recorded_path(args.world_model), "reward_run": recorded_path(args.reward_run),
                  "goal": recorded_path(args.goal), "local_model": recorded_path(getattr(args, "local_model", None)),
                  "run": asdict(run), "configs": {key: asdict(value) for key, value in configs.items()},
                  "deployment": deployment_metadata(folders[0]), "gates": gates_at_start,
                  **({"config_changes": config_changes} if config_changes else {})}
    source = "simulator" if simulated else "world-model"
    # The samples done so far are known once train_policy has loaded a checkpoint (its "resuming" line says them).
    print(f"{method} (rung {run_config['rung']}, task {task}): budget {run.max_samples} {source} samples; "
          f"device {device}; action limit {[round(float(v), 4) for v in limit]}; run folder {args.run_dir}", flush=True)
    try:
        result = train_policy(algorithm, replace(run), args.run_dir, run_config, evaluate)
    except (FloatingPointError, RuntimeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    finally:
        if isinstance(env, SimulatorEnv):
            env.close()
    print(f"{method}: {result.epochs} epochs, {result.samples} {source} samples, {result.wall_s:.0f} s of training"
          + (" (stopped early; re-run to resume)" if result.stopped_early else ""), flush=True)
    if result.interrupted:  # exit as a Ctrl-C does: a script that runs this stops here too
        print(f"{prog}: interrupted; re-run the same command to resume", file=sys.stderr, flush=True)
        return INTERRUPTED_EXIT_CODE
    if result.evaluations:
        last = result.evaluations[-1]
        print(f"{method}: stand-in success {last['success_rate']:.0%}, mean max "
              f"{'progress' if robot == 'go2' else 'coverage'} {last['mean_max_coverage']:.3f} over "
              f"{last['episodes']} episodes", flush=True)
    final_episodes = args.final_eval_episodes if args.final_eval_episodes is not None else \
        (0 if args.preset == "tiny" else 50)
    if robot == "pusht" and final_episodes > 0 and not result.stopped_early:
        from dmo_ros.policy.evaluate import STANDARD_EPISODE_STEPS, PolicyController, write_final_evaluation

        oracle = " (true reward)" if true_reward else ""  # rung 1's oracle, as dmo-ladder-table names it
        label = f"rung {run_config['rung']}{oracle} {method}, {result.samples} samples"
        final_config = replace(eval_config, episodes=final_episodes, max_steps=STANDARD_EPISODE_STEPS)
        controller = PolicyController(algorithm.policy(), eval_config.aspect)
        print(write_final_evaluation(controller, label, args.run_dir, result.samples, result.wall_s, final_config,
                                     cache=args.ceilings_cache), flush=True)
    if robot == "go2" and final_episodes > 0 and not result.stopped_early:
        from dmo_ros.policy.push_cube_eval import EPISODE_STEPS
        from dmo_ros.policy.push_cube_eval import PolicyController as CubeController
        from dmo_ros.policy.push_cube_eval import write_final_evaluation as write_push_cube_evaluation

        label = f"{method}, {result.samples} samples"
        final_config = replace(push_cube_config, episodes=final_episodes, max_steps=EPISODE_STEPS)
        controller = CubeController(algorithm.policy(), final_config.aspect)
        print(write_push_cube_evaluation(controller, label, args.run_dir, result.samples, result.wall_s, final_config,
                                         cache=args.ceilings_cache), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
