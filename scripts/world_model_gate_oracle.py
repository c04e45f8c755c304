"""The world-model gate's action-response measurement on the true Push-T stand-in: the ladder's oracle rung
for that gate.

The gate (:mod:`dmo_ros.gates.world_model`) holds each command of ``COMMANDS`` for ``horizon`` steps from
real validation windows and asks that the imagined agent stay visible (>= 95 %) and move the right way. This
holds the same commands on the simulator itself, from states the scripted operator reaches (half expert, half
explorer, 6-60 steps in, as the local-model gate's probes), renders the frames the camera would see at the
model's size and locates the agent by the same rule. It answers whether the gate's bounds are reachable at
all: if the real frames lost the agent against a wall, no model could pass.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/world_model_gate_oracle.py --episodes 64
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from dmo_ros.dataset.images import resize
from dmo_ros.gates.world_model import COMMANDS, WorldModelGateConfig, simulator_displacement
from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_frames import locate_agent
from dmo_ros.teleop.scripted import make_operator, pusht_observation


def simulator_action_response(episodes: int, config: WorldModelGateConfig, image_size: int = 64,
                              seed: int = 0) -> dict:
    """Visibility per command and step, and the right-direction fraction, of held commands on the simulator."""
    rng = np.random.default_rng(seed)
    sim = PushTSim(PushTConfig(seed=seed + 10_000))
    operator = make_operator("pusht")
    reference = simulator_displacement(config.speed, config.horizon, image_size)
    k = min(config.direction_step, config.horizon) - 1
    visible = {name: [] for name in COMMANDS}
    right = judged = 0

    def camera() -> np.ndarray:
        return resize(sim.render(), image_size, image_size, "crop")

    period = sim.config.control_period_s
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            policy = operator.expert if rng.random() < 0.5 else operator.explorer
            policy.begin(pusht_observation(sim.state()), rng)
            for _ in range(int(rng.integers(6, 61))):
                sim.step(np.asarray(policy.act(pusht_observation(sim.state())), dtype=np.float64) * period)
            snapshot = sim.snapshot()
            start, _ = locate_agent(camera())
            for name, direction in COMMANDS.items():
                sim.restore(snapshot)
                frames = []
                for _ in range(config.horizon):
                    sim.step(np.asarray(direction) * config.speed * period)
                    frames.append(camera())
                position, seen = locate_agent(np.stack(frames))
                visible[name].append(seen)
                if name != "zero":
                    along = (position[k] - start) @ np.asarray(direction)
                    right += int(np.nan_to_num(along, nan=-np.inf) >= 0.25 * reference[k])
                    judged += 1
    finally:
        sim.close()
    per_step = {name: np.mean(v, axis=0).round(3).tolist() for name, v in visible.items()}
    return {"episodes": episodes, "agent_visible": float(np.mean([np.mean(v) for v in visible.values()])),
            "right_direction_all_rollouts": right / judged, "visible_per_step": per_step}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=64, help="simulator states the commands are held from")
    parser.add_argument("--image-size", type=int, default=64, help="frame side the model sees (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the numbers here")
    options = parser.parse_args(argv)
    if options.episodes < 1:
        parser.error("--episodes must be at least 1")
    result = simulator_action_response(options.episodes, WorldModelGateConfig(), options.image_size, options.seed)
    print(f"true simulator, {options.episodes} states: agent visible {result['agent_visible']:.3f}; moved the "
          f"right way (all rollouts, walls included) {result['right_direction_all_rollouts']:.3f}")
    for name, steps in result["visible_per_step"].items():
        print(f"  {name:>4}: visible per step {steps}")
    if options.json:
        with open(options.json, "w") as stream:
            json.dump(result, stream, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
