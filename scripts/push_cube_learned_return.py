"""Push Cube ladder probe: does the learned reward rank the policies as the task does?

Runs the scripted expert (privileged), the expert parked once behind the cube, a walk to the goal disc that looks at
it, trained policies, random and zero action on the same Push Cube stand-in placements for ``--steps`` control steps
(the training episodes' length), scores every camera frame with the learned reward (a goal reward with one goal
picture or a goal set, or an intent reward), and prints per controller the mean learned reward over the steps taken
(an episode ends at success), its last value (the expert's: at success), its maximum, and the true progress (1 -
cube-to-goal distance / the start's) with the success rate. If a policy collects as much learned reward as the
expert while its true progress stays at zero, the reward is what the policy optimised and the reward is the break;
if its learned return stays far below the expert's, the optimiser (local model, learner) is.

Evaluation-side (reads the simulator's progress); training never does::

    python scripts/push_cube_learned_return.py --reward-run runs/go2/reward --goal runs/go2/goals8.npy \\
        runs/go2/r1gs_dmo_s0 runs/go2/r2gs_dmo_s0 --episodes 16 --steps 48
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dmo_ros.dataset.images import resize
from dmo_ros.policy.api import load_policy
from dmo_ros.policy.episodes import PolicyController
from dmo_ros.policy.push_cube_eval import ExpertController, PushCubeEvalConfig, make_ceiling
from dmo_ros.reward.energy import frame_reward, load_reward_model
from dmo_ros.reward.goal_image import load_goal_image
from dmo_ros.sims.push_cube import PushCubeSim
from dmo_ros.teleop.push_cube_expert import body_command, lined_up, reachable


class ParkBehindController(ExpertController):
    """The expert until it stands at the pushing spot (lined up, within 0.1 m of the standoff), then the zero action:
    does the reward pay for pushing, or as much for parking there?"""

    def reset(self, sim) -> None:
        super().reset(sim)
        self.parked = False

    def act(self, sim) -> np.ndarray:
        action = super().act(sim)
        observation = self._observation(sim)
        near = np.linalg.norm(observation.object[:2] - observation.agent[:2]) < self.expert.geometry.standoff_m + 0.1
        self.parked = self.parked or (near and lined_up(observation))
        return np.zeros_like(action) if self.parked else action


class GoalGazerController(ExpertController):
    """Walks (around the cube) to a spot 0.6 m short of the goal disc's centre and looks at the disc, leaving the cube
    alone: the maximum a frame-only intent reward pays away from the cube (docs/push_cube.md)."""

    def act(self, sim) -> np.ndarray:
        o = self._observation(sim)
        robot, goal, g = o.agent, o.goal[:2], self.expert.geometry
        away = robot[:2] - goal
        spot = reachable(goal + 0.6 * away / max(float(np.linalg.norm(away)), 1e-6), g)
        heading = float(np.arctan2(goal[1] - robot[1], goal[0] - robot[0]))
        return body_command(robot, self.expert.walker.velocity(robot, spot, o.object[:2]), heading, g)


def run(controller, sim: PushCubeSim, steps: int, size: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """One episode from the simulator's current placements: frames (T+1, H, W, 3), progress (T+1,), success."""
    controller.reset(sim)
    frames, progress, success = [resize(sim.render(), size, size, "crop")], [sim.state().progress], False
    for _ in range(steps):
        sim.step(np.asarray(controller.act(sim), dtype=np.float64))
        state = sim.state()
        frames.append(resize(sim.render(), size, size, "crop"))
        progress.append(state.progress)
        if state.success:  # the episode ends here, as in training and evaluation
            success = True
            break
    return np.stack(frames), np.asarray(progress), success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="*", type=Path, help="policy run folders (dmo-train-policy, dmo-train-act)")
    parser.add_argument("--reward-run", type=Path, required=True)
    parser.add_argument("--goal", type=Path, help="goal picture or goal set (.npy); not for an intent reward")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=48, help="control steps per episode (training's episode length)")
    parser.add_argument("--seed", type=int, default=10_000, help="placements' seed (the evaluation's by default)")
    parser.add_argument("--out", type=Path, help="JSON file for the numbers")
    args = parser.parse_args()

    model = load_reward_model(args.reward_run).eval()
    reward = frame_reward(model, None if args.goal is None else load_goal_image(args.goal))
    size = model.config.image_size
    controllers = [(name, make_ceiling(name, args.seed)) for name in ("expert", "random", "zero")]
    controllers.append(("expert, parked behind the cube", ParkBehindController(args.seed)))
    controllers.append(("gazing at the goal disc", GoalGazerController(args.seed)))
    controllers += [(str(run_dir), PolicyController(load_policy(run_dir))) for run_dir in args.policies]
    config = PushCubeEvalConfig(seed=args.seed)
    rows = {}
    print(f"{'controller':<34} {'mean r':>7} {'last r':>7} {'max r':>7} {'progress':>9} {'max prog':>9} success")
    for name, controller in controllers:
        mean_r, last_r, max_r, final_p, max_p, wins = [], [], [], [], [], 0
        with PushCubeSim(config.sim_config()) as sim:
            for episode in range(args.episodes):
                if episode:
                    sim.reset()  # placements from (seed, episode), as the evaluation's
                frames, progress, success = run(controller, sim, args.steps, size)
                with torch.no_grad():
                    r = reward(frames[None], frames[:1]).numpy()[0]
                mean_r.append(r[1:].mean())
                last_r.append(r[-1])
                max_r.append(r.max())
                final_p.append(progress[-1])
                max_p.append(progress.max())
                wins += success
        rows[name] = {key: float(np.mean(value)) for key, value in
                      (("mean_reward", mean_r), ("last_reward", last_r), ("max_reward", max_r),
                       ("final_progress", final_p), ("max_progress", max_p))}
        rows[name]["success"] = wins / args.episodes
        print(f"{name[-34:]:<34} {np.mean(mean_r):7.3f} {np.mean(last_r):7.3f} {np.mean(max_r):7.3f} "
              f"{np.mean(final_p):9.3f} {np.mean(max_p):9.3f} {wins}/{args.episodes}")
    if args.out:
        args.out.write_text(json.dumps({"episodes": args.episodes, "steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
