"""Where a pixel policy's missed pushes go: the local model's reward gradient along the policy's own episodes.

A policy trained by DMO follows the gradient d r̂/d a the local model hands it. The local-model gate measures that
gradient's *drift* at reset poses (docs/gates.md, "The gradient's drift"); this measures it where the policy itself
is at given steps of the evaluation's episodes. It runs the policy of ``POLICY_RUN`` on the Push-T stand-in's
episodes of ``--task`` (the evaluation's seeded starts, ``--seed``), and at each of ``--steps`` holds the T where it
then is, places the agent over its whole reachable range (every ``--grid`` units,
:func:`dmo_ros.gates.reward.agent_grid`) and prints the drift of the local model's gradient there (the length of the
mean unit arrow, 1: one direction wherever the agent is; ``--gradient-steps`` held prior steps,
:func:`dmo_ros.local_model.frame_reward.local_reward_gradients`), its direction, the T's way to the goal (unit
vector and distance, from the T's centre of gravity), where the agent stands, and how each episode ends.

    python scripts/drift_along_episodes.py runs/pt/na_s0 --local-model runs/pt/local_cat_na \\
        --task push_region --episodes 0,1,2,6,7,11 --steps 0,6,12,20,40

Arena axes: x to the right, y downward in the camera picture (units of 512 per side). ``--local-model`` defaults
to the policy run's own (its ``config.json``). The simulator is stepped and its bodies placed here: evaluation
only. Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def ints(text: str) -> list[int]:
    """``0,6,12`` -> [0, 6, 12] (non-negative)."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy_run", type=Path, help="a dmo-train-policy run folder (DMO or No Diffusion)")
    parser.add_argument("--local-model", type=Path, default=None,
                        help="local model run whose gradient is measured (default: the policy run's --local-model)")
    parser.add_argument("--task", default="push_region", help="the Push-T pushing task (default push_region)")
    parser.add_argument("--episodes", type=ints, default=[0, 1, 2], help="evaluation episodes, e.g. 0,7,11")
    parser.add_argument("--steps", type=ints, default=[0, 6, 12, 20, 40], help="control steps to measure at")
    parser.add_argument("--seed", type=int, default=10_000, help="the evaluation's base seed (default 10000)")
    parser.add_argument("--max-steps", type=int, default=150, help="episode length (default 150, as evaluated)")
    parser.add_argument("--grid", type=float, default=48.0, help="agent grid spacing in arena units (default 48)")
    parser.add_argument("--gradient-steps", type=int, default=16, help="held prior steps of the gradient (16)")
    args = parser.parse_args(argv)

    from dmo_ros.dataset.images import resize
    from dmo_ros.gates.reward import agent_grid
    from dmo_ros.local_model.frame_reward import gradient_drift, local_reward_gradients
    from dmo_ros.local_model.model import load_local_model
    from dmo_ros.policy.api import PolicyError, load_policy
    from dmo_ros.policy.evaluate import EvalConfig
    from dmo_ros.sims.pusht import PushTSim
    from dmo_ros.sims.pusht_tasks import REACH_TASKS, t_centre
    from dmo_ros.training import read_run_config
    from dmo_ros.training.checkpoint import CheckpointError

    try:
        if args.task in REACH_TASKS:
            raise ValueError(f"--task {args.task}: a reach task has no T to push; choose a pushing task")
        local_run = args.local_model
        if local_run is None:
            recorded = read_run_config(args.policy_run).get("local_model")
            if not recorded:
                raise ValueError(f"{args.policy_run} records no local model; give --local-model")
            local_run = Path(recorded)
        policy = load_policy(args.policy_run)
        model = load_local_model(local_run).eval()
        config = EvalConfig(task=args.task, seed=args.seed, episodes=max(args.episodes) + 1,
                            max_steps=args.max_steps)
    except (CheckpointError, PolicyError, OSError, ValueError) as error:
        print(f"drift_along_episodes: error: {error}", file=sys.stderr)
        return 2

    def fmt(vector: np.ndarray, digits: int = 2) -> str:
        return "(" + ", ".join(f"{v:+.{digits}f}" for v in vector) + ")"

    height, width = policy.image_size
    sim, probe = PushTSim(config.sim_config()), PushTSim(config.sim_config())
    try:
        for episode in range(max(args.episodes) + 1):
            if episode:
                sim.reset()  # the evaluation's episode e: seeded from (seed, e)
            if episode not in args.episodes:
                continue
            policy.reset()
            for step in range(args.max_steps + 1):
                state = sim.state()
                if step in args.steps:
                    _, frames, _ = agent_grid(probe, args.grid, model.config.image_size, block=state.block)
                    length, direction = gradient_drift(
                        local_reward_gradients(model, frames, args.gradient_steps).numpy())
                    way = t_centre(state.goal) - t_centre(state.block)
                    distance = float(np.linalg.norm(way))
                    unit = way / max(distance, 1e-9)
                    print(f"episode {episode} step {step:3d}: T {distance:5.0f} u from the goal, its way {fmt(unit)}; "
                          f"agent at {fmt(state.agent, 0)}; drift {length:.2f} toward {fmt(direction)} (cosine with "
                          f"the way {float(unit @ direction):+.2f})")
                if state.success or step == args.max_steps:
                    print(f"episode {episode}: {'success' if state.success else 'no success'} at step {step}, "
                          f"the agent ends at {fmt(state.agent, 0)}", flush=True)
                    break
                action = np.asarray(policy.act(resize(sim.render(), height, width, "crop")), dtype=np.float64)
                policy.observe_action(action)
                sim.step(action * config.control_period_s)
    finally:
        sim.close()
        probe.close()
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
