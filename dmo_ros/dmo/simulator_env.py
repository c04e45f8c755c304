"""Rung 1 of the ladder: B stand-in simulators (Push-T, or the Go2's Push Cube) in place of the world model.

DESIGN.md §8: rung 1 runs DMO (and PPO) with **the stand-in simulator as the forward model** — the
original DMO setting and the oracle that isolates the world model. Everything else stays learned:
frames are the simulator's camera render resized exactly as the dataset converter and the
evaluation resize it, rewards come from the learned goal-conditioned energy on those frames, and
DMO's gradients from the local RSSM. It speaks :class:`~dmo_ros.dmo.imagined_env.ImaginedEnv`'s
contract, so the policy trainers take either:

    env = SimulatorEnv(reward_model, goal, batch_size=16, image_size=64, context=4, task="push_near")
    obs = env.reset()                 # (B, 3, H, W) in [-1, 1]: the episodes' first frames
    obs, reward = env.step(actions)   # actions (B, 2) in robot units (m/s, as recorded); reward (B,)

    env = SimulatorEnv(reward_model, goal, 16, 64, 4, task="push_cube")   # the Go2 stand-in (MuJoCo)
    obs, reward = env.step(actions)   # actions (B, 3): body velocities [vx, vy, yaw rate] (m/s, rad/s)

Episodes start from the task's reset distribution (:mod:`dmo_ros.sims.pusht_tasks`; Push Cube: the
stand-in's placements, :meth:`~dmo_ros.sims.push_cube.PushCubeSim.reset`) as evaluation does, on
seeds disjoint from the evaluation's (``seed`` vs ``EvalConfig.seed`` / ``PushCubeEvalConfig.seed``). The context an
episode starts with is its first frame repeated ``context`` times with zero actions (the robot at
rest before the episode). Reading the simulator here is the point of the rung; rungs 2 and above
never do.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from dmo_ros.dataset.images import resize
from dmo_ros.reward.energy import EnergyNet, frame_reward, to_model_images
from dmo_ros.reward.intent import IntentRewardNet
from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_tasks import TASKS

PIXEL_TASKS = (*(task for task in TASKS if task != "reach"), "push_cube")
"""Tasks an image policy can be trained on here: ``reach`` draws a target per episode that only its goal
picture shows, and the policies see the camera, not the goal picture (``reach_fixed`` keeps one target).
``push_cube`` is the Go2 stand-in's one task (its 96 x 96 ego camera, 3-D body-velocity actions)."""


class _TrueReward:
    """The oracle reward of :class:`SimulatorEnv` (``true_reward``): the task's reward of each simulator's state
    now, in the place of a frame reward. Called with the environment's current observation only (the state is what
    it reads); ``set_start`` / ``start`` are kept for the frame rewards' interface (the reward is Markov: it reads no
    start)."""

    def __init__(self, env: SimulatorEnv) -> None:
        self.env = env
        self._start: Tensor | None = None

    def of(self, sim: PushTSim) -> Tensor:
        """() the task's true reward of one simulator's state."""
        from dmo_ros.ladder.state_env import observe, state_reward  # the ladder's oracle, only when asked for

        return state_reward(torch.from_numpy(observe(sim.state())), self.env.task).to(self.env.device)

    def set_start(self, start: Tensor) -> None:
        self._start = start

    @property
    def start(self) -> Tensor:
        """The episodes' first observations, as the environment set them (not used by the reward)."""
        if self._start is None:
            raise RuntimeError("the true reward has no start yet: reset the environment first")
        return self._start

    def __call__(self, frames: Tensor) -> Tensor:
        """(B,) the true rewards of the episodes' current states; ``frames`` must be the current observation.

        Raises:
            ValueError: other frames (the state behind them is not known)."""
        if frames.shape != self.env.observation.shape or not torch.equal(frames, self.env.observation):
            raise ValueError("the true reward reads the simulators' states: it rewards the current observation only")
        return torch.stack([self.of(sim) for sim in self.env.sims])


class SimulatorEnv:
    """B stand-in episodes stepped together; see the module doc.

    Args:
        reward_model: the trained energy (rewards as :class:`GoalReward` gives them, from each episode's first frame),
            or an intent reward model (:mod:`dmo_ros.reward.intent`).
        goal: the goal picture (H, W, 3) or (3, H, W) uint8 at the reward model's size (``dmo-goal-image``), or
            a goal set of K pictures (each frame rewarded by its best goal); None with an intent reward.
        batch_size: B, simulators stepped in lock-step.
        image_size: frames' side in pixels (the dataset's; the 96 x 96 render is resized with ``aspect``).
        context: L, frames kept per episode for :attr:`context` (the world model's / local model's window).
        task: the task whose reset distribution starts the episodes (not ``reach``; see :data:`PIXEL_TASKS`):
            a Push-T task, or ``push_cube`` for the Go2 stand-in.
        seed: base seed of the episodes (simulator ``b`` plays episodes seeded from ``(seed, b)``).
        control_period_s: seconds an action (a velocity) is held per step (the stand-in's 0.2 s at 5 Hz).
        aspect: how the render is fitted to ``image_size`` (the dataset's rule; square renders are unaffected).
        device: where frames and rewards live (the reward model is moved there).
        true_reward: **oracle** (a ladder rung, never a robot's): reward every step with the task's true reward of
            the simulator's state, rung 0's (:func:`dmo_ros.ladder.state_env.state_reward`, approach term 0.1),
            instead of ``reward_model`` (pass None): the swap that tells whether the learned reward is what stops a
            rung-1 policy. Push-T tasks only.

    Raises:
        ValueError: an unknown or image-less task, or a non-positive size; ``true_reward`` on Push Cube or beside a
            reward model.
    """

    def __init__(self, reward_model: EnergyNet | IntentRewardNet | None, goal: Tensor | np.ndarray | None,
                 batch_size: int, image_size: int, context: int, task: str = "push_t", seed: int = 0,
                 control_period_s: float = 0.2, aspect: str = "crop", device: torch.device | str = "cpu",
                 true_reward: bool = False) -> None:
        if true_reward and (task == "push_cube" or reward_model is not None):
            raise ValueError("true_reward replaces the reward model (pass None) and is the Push-T tasks' (rung 0's "
                             "reward); push_cube has none here")
        if not true_reward and reward_model is None:
            raise ValueError("a reward model is needed (or true_reward=True, the oracle)")
        if task not in PIXEL_TASKS:
            raise ValueError(f"task {task!r} cannot be learned from the camera alone (reach shows its per-episode "
                             f"target only in the goal picture); choose one of {', '.join(PIXEL_TASKS)}")
        if batch_size < 1 or image_size < 1 or context < 1:
            raise ValueError(f"batch_size, image_size and context must be >= 1, got {batch_size}, {image_size}, "
                             f"{context}")
        self.device = torch.device(device)
        self.true_reward = bool(true_reward)
        self.reward = _TrueReward(self) if true_reward else frame_reward(reward_model.to(self.device), goal)
        self.batch_size, self.image_size, self.context_length = int(batch_size), int(image_size), int(context)
        self.task, self.aspect, self.control_period_s = task, aspect, float(control_period_s)
        seeds = [int(np.random.SeedSequence([seed, b]).generate_state(1)[0]) for b in range(self.batch_size)]
        if task == "push_cube":
            from dmo_ros.sims.push_cube import PushCubeConfig, PushCubeSim  # MuJoCo: only when asked for

            self.action_size = 3
            self.sims = [PushCubeSim(PushCubeConfig(seed=s, control_period=control_period_s)) for s in seeds]
        else:
            self.action_size = 2
            self.sims = [PushTSim(PushTConfig(seed=s, control_period_s=control_period_s, task=task)) for s in seeds]
        self.samples = 0
        """Simulator transitions so far (one per episode per step): the rung's sample count."""
        self.steps = torch.zeros(self.batch_size, dtype=torch.long)
        """Steps since each episode's start."""
        self._frames: Tensor | None = None  # (B, L, 3, H, W) in [-1, 1]
        self._actions: Tensor | None = None  # (B, L - 1, A)
        self.start_window = None
        """No recorded windows start these episodes (the dream node's hook on :class:`ImaginedEnv`)."""

    def _frame(self, sim) -> Tensor:
        return to_model_images(resize(sim.render(), self.image_size, self.image_size, self.aspect), self.device)

    @property
    def observation(self) -> Tensor:
        """(B, 3, H, W) in [-1, 1]: the latest frame of every episode."""
        if self._frames is None:
            raise RuntimeError("SimulatorEnv has no episodes yet: call reset() first")
        return self._frames[:, -1]

    @property
    def context(self) -> tuple[Tensor, Tensor]:
        """Frames (B, L, 3, H, W) in [-1, 1] and the actions (B, L - 1, A) between them."""
        if self._frames is None or self._actions is None:
            raise RuntimeError("SimulatorEnv has no episodes yet: call reset() first")
        return self._frames, self._actions

    def _restart(self, index: list[int]) -> Tensor:
        """New episodes on the simulators in ``index``; returns their first frames (len(index), 3, H, W)."""
        first = []
        for b in index:
            self.sims[b].reset()
            first.append(self._frame(self.sims[b]))
        return torch.stack(first)

    def reset(self) -> Tensor:
        """Start B new episodes; returns their first frames (B, 3, H, W)."""
        first = self._restart(list(range(self.batch_size)))
        self._frames = first[:, None].repeat(1, self.context_length, 1, 1, 1)
        self._actions = first.new_zeros(self.batch_size, self.context_length - 1, self.action_size)
        self.reward.set_start(first)
        self.steps.zero_()
        return self.observation

    def reset_some(self, done: Tensor) -> Tensor:
        """Restart the episodes where ``done`` (B,) bool is true; returns all observations."""
        done = done.to("cpu", torch.bool)
        if done.shape != (self.batch_size,):
            raise ValueError(f"done must be ({self.batch_size},), got {tuple(done.shape)}")
        if self._frames is None or done.all():
            return self.reset()
        if not done.any():
            return self.observation
        index = done.nonzero().squeeze(1).tolist()
        first = self._restart(index)
        frames, actions = self._frames.clone(), self._actions.clone()
        frames[index] = first[:, None].repeat(1, self.context_length, 1, 1, 1)
        actions[index] = 0.0
        self._frames, self._actions = frames, actions
        start = self.reward.start.clone()
        start[index] = first.to(start.dtype)
        self.reward.set_start(start)
        self.steps[done] = 0
        return self.observation

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``actions`` (B, A) in robot units (Push-T: end-effector velocities [vx, vy], m/s; Push Cube: body
        velocities [vx, vy, yaw rate], m/s and rad/s; clamped by the stand-in as on the robot); returns (next
        observations (B, 3, H, W), rewards (B,))."""
        if self._frames is None or self._actions is None:
            raise RuntimeError("SimulatorEnv has no episodes yet: call reset() first")
        if actions.shape != (self.batch_size, self.action_size):
            raise ValueError(f"actions must be ({self.batch_size}, {self.action_size}), got {tuple(actions.shape)}")
        if not torch.isfinite(actions).all():
            raise ValueError("non-finite action given to the simulator environment")
        commands = actions.detach().to("cpu", torch.float64).numpy()
        with torch.no_grad():
            for sim, command in zip(self.sims, commands, strict=True):
                if self.task == "push_cube":
                    sim.step(command)  # the Go2 stand-in holds the velocity command for its control period
                else:
                    sim.step(command * self.control_period_s)  # a velocity held for one control period -> metres
            observation = torch.stack([self._frame(sim) for sim in self.sims])
            self._frames = torch.cat([self._frames[:, 1:], observation[:, None]], dim=1)
            if self.context_length > 1:
                held = actions.detach().to(self._actions)[:, None]
                self._actions = torch.cat([self._actions[:, 1:], held], dim=1)
            rewards = self.reward(observation)
        self.samples += self.batch_size
        self.steps += 1
        return observation, rewards

    def reward_gradient(self, actions: Tensor, epsilon: float, steps: int = 1) -> Tensor:
        """(B, A) central finite differences of the reward of the next frame with respect to each episode's action:
        ``(r(o'(a + eps e_i)) - r(o'(a - eps e_i))) / (2 eps)``, the 2A next frames rendered from each simulator's
        current state, which is put back afterwards (the episodes go on from where they were). With ``steps`` K > 1,
        of the sum of the rewards of the K frames after a ± eps e_i, each branch then holding the action a.

        ``actions`` (B, A) and ``epsilon`` are in robot units (as :meth:`step`). The 2AKB transitions count in
        :attr:`samples`: they are forward-model samples like any other. What DMO's gradient matching
        (``DMOConfig.gradient_matching_scale``) fits the local model's d r̂ / d a to; with a learned reward it reads
        only rendered frames scored by that reward, never the simulator's state (``true_reward``, the oracle: the
        state's true reward).

        Raises:
            ValueError: ``actions`` of the wrong shape or not finite, ``epsilon`` not positive, ``steps`` < 1.
            RuntimeError: before :meth:`reset`.
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if self._frames is None:
            raise RuntimeError("SimulatorEnv has no episodes yet: call reset() first")
        if actions.shape != (self.batch_size, self.action_size) or not torch.isfinite(actions).all():
            raise ValueError(f"actions must be finite ({self.batch_size}, {self.action_size}), got "
                             f"{tuple(actions.shape)}")
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        shifts = np.concatenate([np.eye(self.action_size), -np.eye(self.action_size)], 1).reshape(-1, self.action_size)
        period = 1.0 if self.task == "push_cube" else self.control_period_s
        frames, true_rewards = [], []
        with torch.no_grad():
            for sim, action in zip(self.sims, actions.detach().to("cpu", torch.float64).numpy(), strict=True):
                snapshot = sim.snapshot()
                for shift in shifts:  # + e_0, - e_0, + e_1, - e_1, ...
                    sim.restore(snapshot)
                    for step in range(steps):
                        sim.step((action + epsilon * shift if step == 0 else action) * period)
                        if self.true_reward:
                            true_rewards.append(self.reward.of(sim))
                        else:
                            frames.append(self._frame(sim))
                sim.restore(snapshot)
            if self.true_reward:
                rewards = torch.stack(true_rewards)
            else:
                rewards = self.reward(torch.stack(frames).reshape(self.batch_size, len(shifts) * steps,
                                                                  *frames[0].shape))
        self.samples += self.batch_size * len(shifts) * steps
        pairs = rewards.reshape(self.batch_size, self.action_size, 2, steps).sum(-1).float()
        return (pairs[..., 0] - pairs[..., 1]) / (2 * epsilon)

    def state_dict(self) -> dict:
        """The sample counter and the episode counters of the simulators (episodes restart on resume)."""
        return {"samples": self.samples, "episodes": [sim.episode for sim in self.sims]}

    def load_state_dict(self, state: dict) -> None:
        self.samples = int(state["samples"])
        for sim, episode in zip(self.sims, state.get("episodes", []), strict=False):
            sim.episode = int(episode)  # the next reset plays the next unseen episode

    def close(self) -> None:
        for sim in self.sims:
            sim.close()


__all__ = ["PIXEL_TASKS", "SimulatorEnv"]
