"""Which way a Push-T policy drives first: toward the T, or the way the T must go (as if it moved without contact).

A pushing policy must first walk to the T's far side; a policy trained on a local model whose reward gradient
points "the T's way" wherever the agent stands drives that way from the start, past the T into a wall
(docs/ladder.md, "The local model moves the T without touching it"). This runs a policy run (or random actions)
from the evaluation's seeded starts (``dmo-eval-policy``'s: ``--seed``, ``--task``) for ``--steps`` steps and prints
the mean cosine of the agent's displacement with the T's way from its start pose to the goal and with the direction
from the agent to the T's centre, and how far the agent moved.

    python scripts/policy_heading.py runs/pt/r1pt_ties_s0 --episodes 20 --steps 15
    python scripts/policy_heading.py random --episodes 20 --steps 15

The simulator's state is read here: evaluation only. Exit code 2 on bad inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def headings(controller, task: str, seed: int, episodes: int, steps: int) -> dict[str, np.ndarray]:
    """Per episode from the evaluation's seeded starts: ``"way"`` and ``"to_t"`` (cosines of the agent's displacement
    over ``steps`` control steps with the T's way to its goal and with the direction from the agent to the T's
    centre of gravity, both at the start) and ``"moved"`` (arena units)."""
    from dmo_ros.policy.evaluate import EvalConfig
    from dmo_ros.sims.pusht import PushTSim

    config = EvalConfig.preset("cpu", task=task, seed=seed)
    sim = PushTSim(config.sim_config())
    way_cosine, to_t_cosine, moved = [], [], []
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            controller.reset(sim)
            start = sim.state()
            way = start.goal[:2] - start.block[:2]
            to_t = np.asarray(sim.env.block.local_to_world(sim.env.block.center_of_gravity)) - start.agent
            for _ in range(steps):
                sim.step(np.asarray(controller.act(sim), dtype=np.float64) * config.control_period_s)
            shift = sim.state().agent - start.agent
            length = float(np.linalg.norm(shift))
            moved.append(length)
            way_cosine.append(float(shift @ way) / (length * np.linalg.norm(way) + 1e-12))
            to_t_cosine.append(float(shift @ to_t) / (length * np.linalg.norm(to_t) + 1e-12))
    finally:
        sim.close()
    return {"way": np.array(way_cosine), "to_t": np.array(to_t_cosine), "moved": np.array(moved)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a dmo-train-policy run folder, or 'random' (uniform actions)")
    parser.add_argument("--task", default="push_t", help="a pushing task of the stand-in (default push_t)")
    parser.add_argument("--episodes", type=int, default=20, help="evaluation starts (default 20)")
    parser.add_argument("--steps", type=int, default=15, help="control steps from each start (default 15)")
    parser.add_argument("--seed", type=int, default=10_000, help="evaluation seed (default 10000, the ladder's)")
    options = parser.parse_args(argv)

    from dmo_ros.policy.api import PolicyError, load_policy
    from dmo_ros.policy.episodes import PolicyController
    from dmo_ros.policy.evaluate import RandomController
    from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS
    from dmo_ros.training.checkpoint import CheckpointError

    try:
        if options.task not in TASKS or options.task in REACH_TASKS:
            raise ValueError(f"--task {options.task!r}: choose a pushing task")
        if options.episodes < 1 or options.steps < 1:
            raise ValueError("--episodes and --steps must be >= 1")
        if options.policy == "random":
            controller = RandomController(seed=options.seed)
        else:
            controller = PolicyController(load_policy(Path(options.policy)), "crop")
    except (CheckpointError, PolicyError, OSError, ValueError) as error:
        print(f"policy_heading: error: {error}", file=sys.stderr)
        return 2
    result = headings(controller, options.task, options.seed, options.episodes, options.steps)
    way, to_t = result["way"], result["to_t"]
    print(f"{options.policy}: {options.episodes} starts of {options.task}, first {options.steps} steps: the agent "
          f"moved {result['moved'].mean():.0f} u; cosine with the T's way to its goal {way.mean():+.2f} (> 0.5 in "
          f"{np.mean(way > 0.5):.0%}), with the direction to the T {to_t.mean():+.2f} (> 0.5 in "
          f"{np.mean(to_t > 0.5):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
