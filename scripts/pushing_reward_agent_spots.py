"""Where a pushing task's learned reward pays the agent to wait: the reward over the agent's whole reachable range.

A pushing task's reward should pay for the T's pose; whatever it pays for the agent's place away from the T decides
where a policy that has not yet learned to push parks the agent (docs/ladder.md "A reward with slope far from the goal
does not make the learned-reward rung learn push_t"). This places the stand-in's agent on a grid over its reachable
range, walls included, with the T still at each of ``--episodes`` reset poses of ``--task``, and prints per episode the
reward's range over the agent's places, its best spot, and the mean at the walls minus the mean inside. The reward
gate's agent-only spread (:func:`dmo_ros.gates.reward.measure_reward_shape`) samples 16 spots away from the walls;
this covers them all.

``--rung0-run RUN``: a ``dmo-train-rung0 --reward learned`` run; its state-reward regressor r̂(s) (what SAPO
differentiates on rung 0) is evaluated at the same states and compared with the frame reward it regresses:
correlation, r̂'s best spot, and how much higher r̂ puts its best spot than the frame reward's best spot.

    python scripts/pushing_reward_agent_spots.py --reward-run runs/pt/reward --goal runs/pt/goal.png \\
        --rung0-run runs/r0/pt_learned_s0

``--local-model RUN``: a local model (``dmo-train-local-model``, or a DMO run: its local model as fine-tuned there);
its reward head (what DMO differentiates on rungs 1-2) is read on the same frames
(:func:`dmo_ros.local_model.frame_reward.local_reward_of_frames`) and compared with the frame reward the same way.

``--gradient-steps N`` (with ``--local-model``): also the gradient that head hands DMO's actor at each spot
(:func:`~dmo_ros.local_model.frame_reward.local_reward_gradients`, N prior steps with the action held): its *drift*
(the length of the mean unit arrow: 1 = one direction everywhere, which drives a policy into a wall whatever it sees),
that mean direction and its cosine with the T's way to its goal (near 1: the model moves the T with the action
wherever the agent is, without contact), and the share of spots more than 80 u from the T's centre where it points
toward the T (a policy that has not learned to push should at least come to the T). With ``--rung0-run`` too, the
same for rung 0's gradient (its r̂ through its learned state model, N steps with the action held): the oracle that
knows where the agent is.

``--through-decoder`` (with ``--local-model`` and ``--gradient-steps``): also the gradient of the global reward of the
frames the local model's decoder draws along the same held prior steps
(:func:`~dmo_ros.local_model.frame_reward.decoded_reward_gradients`): the reward head taken out, so a drift left there
is the latent's dynamics'.

The simulator places bodies here: evaluation only. Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def load_rung0_models(run: Path):
    """``(r̂, f)``: rung 0's state-reward regressor and learned state model f(s, a) of a ``--reward learned`` run's
    last checkpoint (weights only), in eval mode."""
    from dmo_ros.ladder.rung0 import StateModel, StateRewardModel
    from dmo_ros.training import read_run_config
    from dmo_ros.training.checkpoint import load_model_weights

    saved = read_run_config(run).get("rung0", {})
    if saved.get("reward") != "learned":
        raise ValueError(f"{run}: not a dmo-train-rung0 run with --reward learned (no state-reward regressor)")
    weights = load_model_weights(run)
    reward = StateRewardModel(int(saved.get("reward_hidden", 256)))
    reward.load_state_dict({k[len("reward_model."):]: v for k, v in weights.items() if k.startswith("reward_model.")})
    model = StateModel(int(saved.get("model_hidden", 256)), int(saved.get("model_layers", 2)))
    model_weights = {k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}
    if model_weights:  # runs saved before the state model was kept have none
        model.load_state_dict(model_weights)
    return reward.eval(), (model.eval() if model_weights else None)


def rung0_reward_gradients(reward, model, observations: np.ndarray, steps: int) -> np.ndarray:
    """(N, 2) ``d/da sum_k r̂(s_k)`` at a = 0, ``s_{k+1} = f(s_k, a)`` with the action held from each observation:
    what SAPO differentiates on rung 0, at the same places as the local model's gradient."""
    state = torch.from_numpy(observations)
    action = torch.zeros(len(state), 2, requires_grad=True)
    total = torch.zeros(())
    for _ in range(steps):
        state = model(state, action)
        total = total + reward(state).sum()
    (gradient,) = torch.autograd.grad(total, action)
    return gradient.numpy()


def describe_gradients(label: str, steps: int, gradients: np.ndarray, points: np.ndarray, sim) -> str:
    """One line: the drift of ``gradients`` (N, 2) at the agent's ``points``, its cosine with the T's way to its goal
    and how often it points toward the T from more than 80 u away (see the module doc)."""
    from dmo_ros.gates.reward import cosine_with_t_way
    from dmo_ros.local_model.frame_reward import cosine_toward, gradient_drift

    drift, direction = gradient_drift(gradients)
    centre = np.asarray(sim.env.block.local_to_world(sim.env.block.center_of_gravity))
    far = np.linalg.norm(points - centre, axis=1) > 80.0
    toward = cosine_toward(points[far], gradients[far], centre)
    way_cosine = cosine_with_t_way(sim.state(), direction)
    return (f"  {label} d r̂/d a ({steps} held steps): drift {drift:.2f} toward ({direction[0]:+.2f}, "
            f"{direction[1]:+.2f}) (cosine with the T's way to its goal {way_cosine:+.2f}), "
            f"toward the T at {np.mean(toward > 0):.0%} of {far.sum()} spots > 80 u from it (mean cosine "
            f"{toward.mean():+.2f})")


def labels_reward_run(run: Path) -> Path | None:
    """The reward run whose labels trained the local model of ``run`` (a local-model run's ``labels``; a DMO run's
    pretrained local model's), or None when the run does not record it."""
    from dmo_ros.training import read_run_config

    saved = read_run_config(run)
    if saved.get("kind") == "policy" and saved.get("local_model"):
        saved = read_run_config(Path(saved["local_model"]))
    reward_run = (saved.get("labels") or {}).get("reward_run")
    return None if reward_run is None else Path(reward_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reward-run", type=Path, required=True, help="the reward model's run folder")
    parser.add_argument("--goal", type=Path, required=True, help="the goal picture or goal set (dmo-goal-image)")
    parser.add_argument("--task", default="push_t", help="a pushing task of the stand-in (default push_t)")
    parser.add_argument("--episodes", type=int, default=6, help="reset poses of the T (default 6)")
    parser.add_argument("--step", type=float, default=32.0, help="grid spacing in arena units (default 32)")
    parser.add_argument("--seed", type=int, default=20_000, help="seed of the resets (default 20000, the gate's)")
    parser.add_argument("--rung0-run", type=Path, default=None, metavar="RUN",
                        help="also compare a rung-0 --reward learned run's state-reward regressor r̂(s)")
    parser.add_argument("--local-model", type=Path, default=None, metavar="RUN",
                        help="also compare a local model's reward head (a local-model run, or a DMO run: its "
                             "fine-tuned local model)")
    parser.add_argument("--gradient-steps", type=int, default=0, metavar="N",
                        help="also the reward gradient of --local-model (N held prior steps) and of --rung0-run's "
                             "state model (N held steps) (default 0: no)")
    parser.add_argument("--through-decoder", action="store_true",
                        help="also the gradient of --reward-run's reward of the frames the local model decodes along "
                             "the same held steps (the head taken out)")
    options = parser.parse_args(argv)

    from dmo_ros.gates.reward import agent_grid
    from dmo_ros.ladder.state_env import observe
    from dmo_ros.local_model.frame_reward import (
        decoded_reward_gradients,
        local_reward_gradients,
        local_reward_of_frames,
    )
    from dmo_ros.local_model.train import goal_reward_function
    from dmo_ros.policy.api import load_run_local_model
    from dmo_ros.reward.energy import frame_reward, load_reward_model
    from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
    from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig, PushTSim
    from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS
    from dmo_ros.training.checkpoint import CheckpointError

    try:
        if options.task not in TASKS or options.task in REACH_TASKS:
            raise ValueError(f"--task {options.task!r}: choose a pushing task "
                             f"({', '.join(t for t in TASKS if t not in REACH_TASKS)})")
        if options.episodes < 1 or not options.step > 0 or options.gradient_steps < 0:
            raise ValueError("--episodes must be >= 1, --step > 0 and --gradient-steps >= 0")
        if options.through_decoder and (options.local_model is None or not options.gradient_steps):
            raise ValueError("--through-decoder maps the local model's decoded frames: give --local-model and "
                             "--gradient-steps")
        if options.gradient_steps and options.local_model is None and options.rung0_run is None:
            raise ValueError("--gradient-steps maps a model's reward gradient: give --local-model or --rung0-run")
        reward_model = load_reward_model(options.reward_run, "cpu")
        size = reward_model.config.image_size
        reward = goal_reward_function(options.reward_run, options.goal, size, torch.device("cpu"))
        differentiable = (frame_reward(reward_model, load_goal_image(options.goal, size=(size, size)), grad=True)
                          if options.through_decoder else None)
        state_reward, state_model = (load_rung0_models(options.rung0_run) if options.rung0_run is not None
                                     else (None, None))
        local = load_run_local_model(options.local_model) if options.local_model is not None else None
        if local is not None and local.config.image_size != size:
            raise ValueError(f"--local-model {options.local_model}: frames of {local.config.image_size} px, the "
                             f"reward model's {size} px")
        trained_on = labels_reward_run(options.local_model) if local is not None else None
        if trained_on is not None and trained_on.resolve() != options.reward_run.resolve():
            print(f"note: the local model's head was trained on the labels of {trained_on}, not of --reward-run "
                  f"{options.reward_run}: they are different rewards", flush=True)
    except (CheckpointError, GoalImageError, OSError, ValueError) as error:
        print(f"pushing_reward_agent_spots: error: {error}", file=sys.stderr)
        return 2

    sim = PushTSim(PushTConfig(task=options.task, seed=options.seed))
    try:
        for episode in range(options.episodes):
            if episode:
                sim.reset()
            points, frames, states = agent_grid(sim, options.step, size)
            observations = np.stack([observe(state) for state in states])
            with torch.no_grad():
                values = reward(frames, frames[0]).float().numpy()
            from_wall = np.min(np.c_[points - sim.config.arena_margin, ARENA_UNITS - sim.config.arena_margin - points],
                               axis=1)
            wall, inside = from_wall < 1.0, from_wall >= options.step / 2
            line = (f"episode {episode}: {len(points)} agent spots; reward range {np.ptp(values):.3f}, best spot "
                    f"{points[values.argmax()].round().tolist()}, mean at the walls - mean inside "
                    f"{values[wall].mean() - values[inside].mean():+.3f}")
            fitted = {}
            if state_reward is not None:
                with torch.no_grad():
                    fitted["r̂"] = state_reward(torch.from_numpy(observations)).numpy()
            if local is not None:
                fitted["local r̂"] = local_reward_of_frames(local)(frames, frames[0]).float().numpy()
            for name, other in fitted.items():
                line += (f"; {name}: range {np.ptp(other):.3f}, best spot {points[other.argmax()].round().tolist()}, "
                         f"walls - inside {other[wall].mean() - other[inside].mean():+.3f}, correlation "
                         f"{np.corrcoef(values, other)[0, 1]:.2f}, {name}(its best) - {name}(reward's best) "
                         f"{other.max() - other[values.argmax()]:.3f}")
            print(line, flush=True)
            if options.gradient_steps and local is not None:
                gradients = local_reward_gradients(local, frames, options.gradient_steps).numpy()
                print(describe_gradients("local", options.gradient_steps, gradients, points, sim), flush=True)
                if options.through_decoder:
                    gradients = decoded_reward_gradients(local, differentiable, frames, options.gradient_steps).numpy()
                    print(describe_gradients("local, decoded frames' reward", options.gradient_steps, gradients,
                                             points, sim), flush=True)
            if options.gradient_steps and state_model is not None:
                gradients = rung0_reward_gradients(state_reward, state_model, observations, options.gradient_steps)
                print(describe_gradients("rung-0", options.gradient_steps, gradients, points, sim), flush=True)
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
