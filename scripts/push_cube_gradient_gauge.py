"""Push Cube ladder gauge: what does the local-model gate's gradient cosine read for a gradient that works?

The local-model gate compares the local RSSM's d r̂/d a with central differences of the global (learned) reward
through the stand-in, and asks for a cosine of 0.3 (a bound set on Push-T). On Push Cube every local model read
0.07-0.14, while rung 0 (the true state, a learned state model and a reward regressor; ``dmo-train-rung0 --task
push_cube --reward learned``) pushes the cube home with the same learned reward. This script reads the gauge on
that working gradient, on the gate's own probes (same seed, same states):

- ``local``: the local RSSM's one-step gradient (the gate's number), and its two paths apart: through the GRU's h'
  (the action's direct input) and through the categorical z' (straight-through);
- ``rung 0``: the rung-0 SAPO run's reward regressor through its state model, d r̂(f(s, a)) / d a at the probe's true
  state (the gradient SAPO learned to push with);
- ``2 eps``: central differences with twice the step against those with one (how smooth the frame reward is at
  the probes: what any model's one-step gradient could agree with).

``--steps K`` reads the same over K steps (SAPO differentiates through its horizon): the finite difference of the sum
of K rewards with the operator's next K - 1 actions held, and each model's gradient through K of its steps.

Evaluation-side (the probes read the stand-in's state); training never does::

    python scripts/push_cube_gradient_gauge.py --local-model runs/go2aw/local_p1 --reward-run runs/go2aw/intent_p1 \\
        --rung0-run runs/r0cube/sapo_linedwp1_s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dmo_ros.gates.local_model import (
    GradientProbe,
    LocalModelGateConfig,
    cosine_agreement,
    local_reward_gradient,
    simulator_probes,
)
from dmo_ros.ladder import cube_state_env
from dmo_ros.ladder.rung0 import StateModel, StateRewardModel
from dmo_ros.local_model.model import load_local_model
from dmo_ros.local_model.train import goal_reward_function
from dmo_ros.sims.push_cube import PushCubeConfig
from dmo_ros.training.checkpoint import CheckpointError, load_model_weights, read_run_config


def rung0_gradients(run_dir: Path, probes: list[GradientProbe]) -> list[np.ndarray]:
    """(3,) d r̂(f(s, a)) / d a per probe (a in m/s and rad/s) from a rung-0 SAPO run with a learned reward; for
    probes with a continuation, d (r̂(s_1) + ... + r̂(s_K)) / d a_0 through K steps of the state model."""
    config = read_run_config(run_dir)["rung0"]
    if config.get("method") != "sapo" or config.get("reward") not in ("learned", "regressed"):
        raise SystemExit(f"{run_dir}: a rung-0 SAPO run with --reward learned (or regressed) is needed")
    weights = load_model_weights(run_dir)
    model = StateModel(config["model_hidden"], config["model_layers"], cube_state_env.OBSERVATION_SIZE,
                       cube_state_env.ACTION_SIZE)
    model.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")})
    reward = StateRewardModel(config["reward_hidden"], cube_state_env.OBSERVATION_SIZE)
    reward.load_state_dict({k[13:]: v for k, v in weights.items() if k.startswith("reward_model.")})
    defaults = PushCubeConfig()
    limits = torch.tensor([defaults.max_vx, defaults.max_vy, defaults.max_yaw_rate])
    gradients = []
    for probe in probes:
        state = torch.from_numpy(cube_state_env.observe(probe.state))[None]
        action = (probe.actions[-1] / limits)[None].clone().requires_grad_(True)  # rung 0 acts in [-1, 1]
        state = model(state, action)
        total = reward(state)
        for later in probe.later_actions:
            state = model(state, (later / limits)[None])
            total = total + reward(state)
        (gradient,) = torch.autograd.grad(total.sum(), action)
        gradients.append((gradient[0] / limits).double().numpy())  # per m/s and rad/s, as the probes are
    return gradients


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-model", type=Path, required=True, help="dmo-train-local-model run on Go2 data")
    parser.add_argument("--reward-run", type=Path, required=True, help="the global reward (an intent reward run)")
    parser.add_argument("--rung0-run", type=Path, required=True, help="dmo-train-rung0 --task push_cube SAPO run")
    parser.add_argument("--probes", type=int, default=192, help="probe states (the gate's 192)")
    parser.add_argument("--epsilon", type=float, default=LocalModelGateConfig().epsilon,
                        help="central-difference step (m/s, rad/s; default: the gate's, so the first row reads as "
                             "the gate's cosine; the tables of 2026-12-06 used 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="the probes' seed (the gate's 0)")
    parser.add_argument("--steps", type=int, default=1,
                        help="K: the gradient of the sum of K rewards, the operator's next K - 1 actions held (the "
                             "gate's 1; SAPO differentiates through its horizon, 16)")
    parser.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")
    options = parser.parse_args(argv)

    try:  # a folder that is not a local-model run: its message, not a traceback
        local = load_local_model(options.local_model, "cpu")
    except CheckpointError as error:
        parser.error(str(error))
    size = local.config.image_size
    history = int(read_run_config(options.local_model).get("sequence_length", 8))
    reward = goal_reward_function(options.reward_run, None, size, torch.device("cpu"))
    if options.steps < 1:
        parser.error("--steps must be >= 1")
    probes = simulator_probes(reward, options.probes, history, size, options.epsilon, options.seed, robot="go2",
                              steps=options.steps)
    wide = simulator_probes(reward, options.probes, history, size, 2 * options.epsilon, options.seed, robot="go2",
                            steps=options.steps)
    for near, far in zip(probes, wide, strict=True):  # the same states: the same seed and operator draws
        if not np.allclose(near.state.robot, far.state.robot):
            raise SystemExit("the two probe sets reached different states; the stand-in is not deterministic here")
    rows = {"local": cosine_agreement([local_reward_gradient(local, p) for p in probes], probes)}
    if options.steps == 1:
        for path, name in (("deter", "local, h' path only"), ("stoch", "local, z' path only")):
            rows[name] = cosine_agreement([local_reward_gradient(local, p, path) for p in probes], probes)
    rows["rung 0"] = cosine_agreement(rung0_gradients(options.rung0_run, probes), probes)
    rows["2 eps"] = cosine_agreement([p.gradient for p in wide], probes)
    print(f"cosine with the central differences (eps {options.epsilon}, {options.steps} step(s)) of "
          f"{options.reward_run} on "
          f"{options.probes} Push Cube probes (seed {options.seed}); mean over the larger-|FD| half ± standard error")
    print("| gradient | cosine | all probes | positive |")
    print("|---|---:|---:|---:|")
    for name, numbers in rows.items():
        print(f"| {name} | {numbers['gradient_cosine']:.3f} ± {numbers['gradient_cosine_standard_error']:.3f} | "
              f"{numbers['gradient_cosine_all']:.3f} | {numbers['positive_fraction']:.2f} |")
    if options.out is not None:
        options.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
