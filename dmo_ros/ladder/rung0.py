"""Rung 0 of the ladder: SAPO on the stand-in's true low-dimensional state with a learned state model, and PPO.

``dmo-train-rung0 --task reach --method sapo --preset cpu RUN_DIR`` (see :mod:`.state_env` for the
observation and the rewards). Both methods act in B stand-ins at once and count the real transitions
they generate (``samples``), so they compare at equal samples:

- **sapo** (the DMO recipe with the simulator as the forward model, on states): per epoch the actor
  rolls out H steps in the true simulator; each next state is swapped in as
  ``s' = f(s, a) + stopgrad(s_true' - f(s, a))`` (:func:`dmo_ros.dmo.decoupled.rollout_decoupled`), so
  values are the simulator's and gradients the learned state model ``f``'s; SAPO's actor, twin critics
  and temperature update on that trajectory (:class:`dmo_ros.dmo.sapo.SAPOLearner`). ``f`` is an MLP
  predicting the state change, pretrained on ``warmup_samples`` random-action transitions and trained on
  a replay of every real transition (``model_updates`` minibatches per epoch, DMO_code's model buffer).
  The terminal value counts in the actor's objective only after ``critic_warmup`` epochs (before it, the
  critics are still untrained and their gradient is noise).
- **ppo**: CleanRL's clipped PPO with an MLP actor-critic on the same observations and rewards.

``--reward learned --reward-run R --goal G`` swaps the known reward for the learned one (the rung between
0 and 1: true state, learned reward): every real state's camera frame (the stand-in's render, resized as the
dataset converter does) is scored by the goal-conditioned energy of ``R`` toward the goal picture ``G``, as
rung 1 scores its frames. PPO takes those labels as its rewards. SAPO needs a reward differentiable in the
state: a :class:`StateRewardModel` MLP regresses the labels of the replayed states, and the actor's reward
is ``r_hat(s') + stopgrad(label - r_hat(s'))`` (the label's value, the regressor's gradient; DMO's local
reward head plays this part on rung 1). The state and the success rule stay the simulator's.
``--reward regressed`` (SAPO, a diagnostic) keeps that regressor but fits it to the true reward's values, so
what the regressor alone costs is measured apart from the learned reward.

Training runs through :func:`dmo_ros.dmo.runner.train_policy`: TensorBoard scalars, periodic
evaluation on the task (``eval.jsonl``: success rates with intervals, max coverage, final distance),
atomic checkpoints and resume. At the end the final policy is evaluated on ``final_eval_episodes``
fixed-seed episodes of gym-pusht's standard 30 s and printed beside the random, zero-action and expert
ceilings; ``--video DIR`` writes those episodes as GIFs and a contact sheet (re-running the command on a finished
run evaluates it again, so a finished run's episodes can be watched after the fact; with another
``--final-eval-episodes`` that evaluation goes to ``final_eval_reevaluated.*``, the run's own is kept).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dmo_ros.dataset.images import resize
from dmo_ros.dmo.decoupled import rollout_decoupled
from dmo_ros.dmo.ppo import compute_gae, ppo_losses
from dmo_ros.dmo.runner import PolicyTrainConfig, train_policy
from dmo_ros.dmo.sapo import SAPOConfig, SAPOLearner, Trajectory, check_schedule_budget
from dmo_ros.ladder import cube_state_env
from dmo_ros.ladder.state_env import ACTION_SIZE, OBSERVATION_SIZE, StateEnvs, observe, state_reward
from dmo_ros.policy.actor import mlp
from dmo_ros.sims.pusht import PushTSim
from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS, TaskConfig
from dmo_ros.training.checkpoint import CheckpointError
from dmo_ros.training.loop import INTERRUPTED_EXIT_CODE, exit_on_interrupt
from dmo_ros.training.options import changed_settings, field_value

METHODS = ("sapo", "ppo")
REWARDS = ("true", "learned", "regressed")
RUN_KIND = "rung0"
RUNG0_TASKS = (*TASKS, cube_state_env.TASK)
"""The Push-T stand-in's tasks and the Go2 stand-in's Push Cube (:mod:`.cube_state_env`)."""


def task_sizes(task: str, observation: str = "full") -> tuple[int, int]:
    """(observation size, action size) of a rung-0 task: (8, 2) on Push-T, (8, 3) on Push Cube ((10, 3) with
    ``observation="in_view"``, (12, 3) with ``"memory"``)."""
    if task == cube_state_env.TASK:
        return cube_state_env.observation_size(observation), cube_state_env.ACTION_SIZE
    return OBSERVATION_SIZE, ACTION_SIZE


@dataclass
class Rung0Config:
    """What a rung-0 run learns and how (the SAPO actor-critic's own knobs are in ``sapo``)."""

    task: str = "reach"
    """The Push-T task (reach, reach_fixed, push_region, push_near or push_t) or the Go2's push_cube."""
    method: str = "sapo"
    """sapo (first-order, through the learned state model) or ppo (zeroth-order)."""
    num_envs: int = 32
    """B, stand-ins stepped together (each step is B samples)."""
    episode_steps: int = 150
    """Control steps per training episode (gym-pusht's 30 s); an episode restarts at the first update boundary
    after it (a time limit: bootstrapped, not terminal)."""
    approach: float = 0.1
    """Pushing tasks: weight of the agent-to-T distance (push_cube: the robot-to-cube distance) in the reward."""
    approach_target: str = "cube"
    """push_cube: where the approach term pulls the robot — the cube, or the pushing spot behind it on the line from
    the goal (``behind``, a shaped reward; :data:`~dmo_ros.ladder.cube_state_env.APPROACH_TARGETS`). push_region
    takes ``behind`` too: the spot ``approach_radius`` behind the T's centre on the line from the goal
    (:func:`~dmo_ros.ladder.state_env.state_reward`); "cube" there means the task's own pull toward the T."""
    observation: str = "full"
    """push_cube: what the actor reads of the cube and the goal — always (``full``), or only while each is in the
    camera's view, with a flag each (``in_view``, a diagnostic between rungs 0 and 1: what a policy without memory
    could read off the current frame), or where each was last seen, carried by odometry, with two more flags
    (``memory``, :class:`~dmo_ros.ladder.cube_state_env.LastSeen`: what a policy that remembers could know). Both need
    ``reward=learned``, as the true reward reads the positions (:data:`~dmo_ros.ladder.cube_state_env.OBSERVATIONS`)."""
    approach_radius: float = 70.0
    """Pushing tasks: arena units from the T's centre within which the approach term stops pulling."""
    agent_lure: float = 0.0
    """Pushing tasks, a diagnostic: weight of a made-up reward for the agent's closeness to the arena's top-right
    corner, an agent-only term like the learned reward's (``state_reward``); 0: none (the task's reward)."""
    agent_anywhere: float = 0.0
    """push_region's training episodes: the fraction that start with the agent anywhere clear of the T instead of
    behind it (:attr:`~dmo_ros.sims.pusht_tasks.TaskConfig.region_agent_anywhere`; evaluation keeps the task's
    starts). A diagnostic of where a missed first shove leaves the agent: 0.2 and 0.5 scored below 0 (docs/ladder.md,
    "Rung 0's own ceiling")."""
    model_hidden: int = 256
    """sapo: width of the state model's MLP."""
    model_layers: int = 2
    """sapo: hidden layers of the state model."""
    model_lr: float = 1e-3
    """sapo: Adam learning rate of the state model."""
    model_batch: int = 256
    """sapo: transitions per state-model minibatch."""
    model_updates: int = 16
    """sapo: state-model minibatches per epoch."""
    warmup_samples: int = 2048
    """sapo: random-action transitions collected before the first actor update (counted as samples)."""
    warmup_updates: int = 500
    """sapo: state-model minibatches on the warm-up data before the first actor update."""
    replay_size: int = 200_000
    """sapo: transitions the state model's replay keeps (the oldest go first)."""
    critic_warmup: int = 10
    """sapo: epochs before the terminal value counts in the actor's objective."""
    ppo_rollout_steps: int = 32
    """ppo: steps of every stand-in per iteration."""
    ppo_update_epochs: int = 5
    """ppo: passes over an iteration's transitions."""
    ppo_minibatches: int = 4
    """ppo: minibatches per pass."""
    ppo_lr: float = 3e-4
    """ppo: Adam learning rate."""
    ppo_hidden: int = 128
    """ppo: width of the actor's and the critic's MLPs (two hidden layers each, tanh as CleanRL)."""
    ppo_ent_coef: float = 0.0
    """ppo: entropy bonus weight."""
    reward: str = "true"
    """true: the task's reward of the state (:func:`~dmo_ros.ladder.state_env.state_reward`); learned: the
    learned goal-conditioned reward of the state's camera frame (needs ``reward_run`` and ``goal``); regressed
    (sapo, a diagnostic between the two): the true reward's values as labels and the state reward regressor fitted
    to them for the gradient, as with the learned reward, so the regressor is tested without the learned reward."""
    reward_run: str = ""
    """reward=learned: the ``dmo-train-reward`` run folder whose energy scores the frames."""
    goal: str = ""
    """reward=learned: the goal picture (``dmo-goal-image``) the energy scores toward."""
    reward_hidden: int = 256
    """reward=learned, sapo: width of the state reward regressor's MLP (two hidden layers)."""
    policy_ema: float = 0.0
    """sapo: decay of an exponential moving average of the actor's weights (Polyak averaging, torch's
    ``AveragedModel``; DMO's ``--policy-ema``), updated after every update; the evaluations and the final policy use
    the average, training goes on from the latest weights. 0: off."""
    sapo: SAPOConfig = field(default_factory=SAPOConfig)
    """The SAPO actor-critic (horizon, learning rates, networks)."""

    def __post_init__(self) -> None:
        if isinstance(self.sapo, dict):
            self.sapo = SAPOConfig.from_dict(self.sapo)
        if self.task not in RUNG0_TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {', '.join(RUNG0_TASKS)}")
        if self.approach_target not in cube_state_env.APPROACH_TARGETS:
            raise ValueError(f"unknown approach_target {self.approach_target!r}; choose one of "
                             f"{', '.join(cube_state_env.APPROACH_TARGETS)}")
        if self.approach_target != "cube" and self.task != cube_state_env.TASK \
                and not (self.approach_target == "behind" and self.task == "push_region"):
            raise ValueError("approach_target=behind is push_cube's and push_region's; the other Push-T tasks' "
                             "approach term pulls toward the T")
        cube_state_env.observation_size(self.observation)  # refuses an unknown name
        if self.observation != "full" and self.task != cube_state_env.TASK:
            raise ValueError(f"observation={self.observation} is push_cube's (the camera's view); Push-T's rung 0 "
                             "sees everything")
        if self.observation != "full" and self.reward != "learned":
            raise ValueError(f"observation={self.observation} needs reward=learned: the true reward reads the cube's "
                             "and the goal's positions, which this observation hides while they are out of view")
        if self.task == cube_state_env.TASK and self.agent_lure:
            raise ValueError("agent_lure is the Push-T tasks' diagnostic; push_cube has none")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}; choose one of {', '.join(REWARDS)}")
        if self.reward == "learned" and not self.reward_run:
            raise ValueError("reward=learned needs a reward run (--reward-run R) and, for a goal-picture reward, a "
                             "goal picture (--goal G)")
        for name in ("num_envs", "episode_steps", "model_hidden", "model_batch", "replay_size", "reward_hidden",
                     "ppo_rollout_steps", "ppo_update_epochs", "ppo_minibatches", "ppo_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("model_updates", "warmup_samples", "warmup_updates", "critic_warmup", "model_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.policy_ema) and 0.0 <= self.policy_ema < 1.0):
            raise ValueError(f"policy_ema must be in [0, 1) (0: off), got {self.policy_ema}")
        if not (math.isfinite(self.agent_lure) and self.agent_lure >= 0.0):
            raise ValueError(f"agent_lure must be a finite weight >= 0 (0: off), got {self.agent_lure}")
        if self.reward == "regressed" and (self.reward_run or self.goal):
            raise ValueError("reward=regressed takes the true reward's values; --reward-run and --goal are for learned")
        if self.reward == "regressed" and self.method != "sapo":
            raise ValueError("reward=regressed tests SAPO's reward regressor; PPO takes the reward's values only")
        if not 0.0 <= self.agent_anywhere <= 1.0:
            raise ValueError(f"agent_anywhere must be a fraction in [0, 1], got {self.agent_anywhere}")
        if self.agent_anywhere and self.task != "push_region":
            raise ValueError("agent_anywhere varies push_region's training starts; other tasks have their own")
        if self.agent_lure and self.reward == "learned":
            raise ValueError("agent_lure adds to the task's true reward; the learned reward has its own agent term")
        if self.policy_ema > 0 and self.method != "sapo":
            raise ValueError("policy_ema averages SAPO's actor; PPO keeps its latest weights (policy_ema=0)")

    def true_reward(self, observation: Tensor) -> Tensor:
        """(...) the task's reward of observations (..., 8) with this config's terms (``state_reward``; push_cube:
        :func:`~dmo_ros.ladder.cube_state_env.cube_state_reward`)."""
        if self.task == cube_state_env.TASK:
            return cube_state_env.cube_state_reward(observation, self.approach, target=self.approach_target)
        return state_reward(observation, self.task, self.approach, self.approach_radius, self.agent_lure,
                            approach_target="behind" if self.approach_target == "behind" else "t")

    def make_envs(self, seed: int) -> StateEnvs | cube_state_env.CubeStateEnvs:
        """The task's ``num_envs`` stand-ins, seeded from ``seed``."""
        if self.task == cube_state_env.TASK:
            return cube_state_env.CubeStateEnvs(self.num_envs, seed, self.episode_steps,
                                                observation=self.observation)
        return StateEnvs(self.task, self.num_envs, seed, self.episode_steps,
                         task_config=TaskConfig(region_agent_anywhere=self.agent_anywhere))


PRESETS: dict[str, tuple[Rung0Config, PolicyTrainConfig]] = {
    # Tests: seconds.
    "tiny": (Rung0Config(num_envs=4, model_hidden=32, model_batch=32, model_updates=2, warmup_samples=32,
                         warmup_updates=4, critic_warmup=1, ppo_rollout_steps=4, ppo_update_epochs=1, ppo_minibatches=2,
                         ppo_hidden=16, sapo=SAPOConfig.preset("tiny", horizon=4)),
             PolicyTrainConfig(max_samples=96, eval_every=2, eval_episodes=2, eval_max_steps=6, checkpoint_every=2,
                               device="cpu")),
    # Two CPU cores, minutes: 8 stand-ins, H = 16, DMO's 48-step training episodes. Few stand-ins per update make
    # many updates (469 in 60 k samples; 64 stand-ins made 57, and SAPO learned push_region 7/50 instead of 34/50;
    # reach 50/50 either way: docs/ladder.md "The same starts fail on every rung").
    "cpu": (Rung0Config(num_envs=8, episode_steps=48, sapo=SAPOConfig.preset("cpu", horizon=16)),
            PolicyTrainConfig(max_samples=150_000, eval_every=20, eval_episodes=10, checkpoint_every=20,
                              device="cpu")),
    # More samples and the SAPO anchor's horizon.
    "gpu": (Rung0Config(num_envs=128, sapo=SAPOConfig.preset("gpu", horizon=32)),
            PolicyTrainConfig(max_samples=2_000_000, eval_every=25, eval_episodes=20, checkpoint_every=25,
                              device="cpu")),
}
"""Presets: (what is learned, how long); the stand-ins run on the CPU whatever the preset."""


# -- the learned state model ---------------------------------------------------------------------------------


class StateModel(nn.Module):
    """f(s, a) = s + scale * MLP(s, a): the next observation, differentiable in s and a.

    ``held`` trailing components (the flags of Push Cube's ``in_view`` and ``memory`` observations) are carried
    unchanged, not predicted, and a transition where one of them changes (the cube or the goal coming into or going
    out of view) is left out of the loss: such an event moves a position by up to a few metres in one step, and in
    units of ``scale`` (the typical change) 8 % of the transitions gave half the squared error, so fitting them
    starved the smooth motion the actor's gradient is read from."""

    def __init__(self, hidden: int = 256, layers: int = 2, observation_size: int = OBSERVATION_SIZE,
                 action_size: int = ACTION_SIZE, held: int = 0) -> None:
        super().__init__()
        self.trunk = mlp(observation_size + action_size, hidden, layers)
        self.head = nn.Linear(hidden if layers else observation_size + action_size, observation_size)
        self.register_buffer("scale", torch.ones(observation_size))
        self.held = held
        """Trailing components carried unchanged (flags); 0 predicts them all."""

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        change = self.scale * self.head(self.trunk(torch.cat([state, action], dim=-1)))
        if self.held:
            change = torch.cat([change[..., :-self.held], torch.zeros_like(change[..., -self.held:])], dim=-1)
        return state + change

    def loss(self, state: Tensor, action: Tensor, next_state: Tensor) -> Tensor:
        """Mean squared error of the predicted change, per predicted component in units of ``scale``, over the
        transitions where no held component changes (see the class doc)."""
        error = ((self(state, action) - next_state) / self.scale).pow(2)
        if not self.held:
            return error.mean()
        smooth = (next_state[..., -self.held:] == state[..., -self.held:]).all(-1)
        return error[..., :-self.held][smooth].mean() if smooth.any() else error.sum() * 0.0


class Replay:
    """A ring buffer of real transitions (s, a, s') and, with a learned or regressed reward, the label of s'."""

    def __init__(self, size: int, observation_size: int = OBSERVATION_SIZE, action_size: int = ACTION_SIZE) -> None:
        self.size = size
        self.observation_size, self.action_size = observation_size, action_size
        self.data = torch.zeros(size, 2 * observation_size + action_size + 1)
        self.count = 0

    def __len__(self) -> int:
        return min(self.count, self.size)

    def add(self, states: Tensor, actions: Tensor, next_states: Tensor, labels: Tensor | None = None) -> None:
        if labels is None:
            labels = next_states.new_zeros(next_states.shape[:-1])
        rows = torch.cat([states, actions, next_states, labels[..., None]], dim=-1)
        rows = rows.reshape(-1, self.data.shape[1]).detach().cpu()
        index = (self.count + torch.arange(len(rows))) % self.size
        self.data[index] = rows
        self.count += len(rows)

    def _rows(self, batch: int, generator: torch.Generator) -> Tensor:
        return self.data[torch.randint(len(self), (batch,), generator=generator)]

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        rows = self._rows(batch, generator)
        a, b = self.observation_size, self.observation_size + self.action_size
        return rows[:, :a], rows[:, a:b], rows[:, b:b + a]

    def sample_labels(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(next states (batch, 8), their reward labels (batch,))."""
        rows = self._rows(batch, generator)
        return rows[:, self.observation_size + self.action_size:-1], rows[:, -1]

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data[: len(self)].clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        data = state["data"]
        self.data[: len(data), : data.shape[1]] = data  # a checkpoint from before the label column: labels 0
        self.count = int(state["count"])


class StateRewardModel(nn.Module):
    """r_hat(s): an MLP (two hidden layers) regressing the reward labels (learned or regressed), (..., 8) -> (...)."""

    def __init__(self, hidden: int = 256, observation_size: int = OBSERVATION_SIZE) -> None:
        super().__init__()
        self.net = nn.Sequential(mlp(observation_size, hidden, 2), nn.Linear(hidden, 1))

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state).squeeze(-1)


class FrameRewards:
    """The learned reward of B stand-ins' current camera frames (rung 1's labels, on rung 0): a goal-conditioned
    energy toward a goal picture, or an intent reward (P(intent | frame), the paper's Push Cube reward; no goal).

    Args:
        reward_run: a ``dmo-train-reward`` run folder; its energy must be Markov (no ``condition_on_start``).
        goal: the goal picture (or goal set), resized to the reward model's size as the dataset converter does;
            "" for an intent reward.

    Raises:
        ValueError: an energy conditioned on each episode's start (rung 0 keeps no start frames), or one without
            a goal picture.
    """

    def __init__(self, reward_run: str | Path, goal: str | Path) -> None:
        from dmo_ros.reward.energy import frame_reward, load_reward_model
        from dmo_ros.reward.goal_image import load_goal_image

        model = load_reward_model(reward_run)
        if getattr(model.config, "condition_on_start", False):
            raise ValueError(f"{reward_run}: its energy is conditioned on the episode's start; rung 0's learned "
                             "reward takes a Markov one (condition_on_start false, the default)")
        self.size = model.config.image_size
        self.reward = frame_reward(model, load_goal_image(goal, size=(self.size, self.size)) if goal else None)

    def __call__(self, sims: list[Any]) -> Tensor:
        """(B,) float32 rewards of the sims' current renders (resized with the dataset's centre crop)."""
        frames = np.stack([resize(sim.render(), self.size, self.size, "crop") for sim in sims])
        with torch.no_grad():
            return self.reward(frames).float().cpu()


# -- the policy as the evaluation drives it ------------------------------------------------------------------


class TrueRewardLabels:
    """The task's true reward of B stand-ins' current states, as labels for the reward regressor (reward=regressed).

    Args:
        envs: the stand-ins whose current states are scored (``observations()``, (B, 8)).
        config: the run's config; its ``true_reward`` (task, approach and lure terms) gives the values.
    """

    def __init__(self, envs: StateEnvs, config: Rung0Config) -> None:
        self.envs, self.config = envs, config

    def __call__(self, sims: list[PushTSim]) -> Tensor:
        """(B,) float32 true rewards of the envs' current states (``sims`` are the envs' own; not looked at)."""
        return self.config.true_reward(torch.from_numpy(self.envs.observations())).float()


class StatePolicy:
    """A rung-0 actor as an evaluation controller: the stand-in's state in, its command out (deterministic): the
    Push-T agent's velocity (m/s), or the Go2's [vx (m/s), vy (m/s), yaw rate (rad/s)] on push_cube.

    Evaluation only reads the state here because rung 0 *is* the privileged-state oracle."""

    def __init__(self, act: nn.Module, task: str = "reach", observation: str = "full") -> None:
        self.net = copy.deepcopy(act).eval()
        self.cube = task == cube_state_env.TASK
        self.observation = observation
        self.memories = cube_state_env.Memories()
        """Each stand-in's memory (``observation="memory"``); :meth:`reset` clears it."""

    def reset(self, sim: Any) -> None:
        self.memories.forget(sim)

    @torch.inference_mode()
    def act(self, sim: Any) -> np.ndarray:
        if self.cube:
            observation = cube_state_env.observe_sim(sim, self.observation, self.memories.of(sim))
            observation = torch.from_numpy(observation)[None]
        else:
            observation = torch.from_numpy(observe(sim.state()))[None]
        action = self.net(observation)[0].clamp(-1.0, 1.0).numpy().astype(np.float64)
        return action * (sim.limits if self.cube else sim.config.max_speed_m_s)


class _Deterministic(nn.Module):
    def __init__(self, actor: nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, observation: Tensor) -> Tensor:
        return self.actor.deterministic(observation)


# -- SAPO through the learned state model --------------------------------------------------------------------


class Rung0SAPO:
    """SAPO on true states, gradients through the learned :class:`StateModel` (a ``PolicyAlgorithm``)."""

    method = "sapo"

    def __init__(self, config: Rung0Config, seed: int = 0, max_samples: int | None = None) -> None:
        check_schedule_budget(config.sapo.lr_schedule, max_samples)
        self.config = config
        self.max_samples = max_samples
        torch.manual_seed(seed)
        self.observation_size, self.action_size = task_sizes(config.task, config.observation)
        self.learner = SAPOLearner(self.observation_size, self.action_size, config.sapo)
        flags = self.observation_size - cube_state_env.OBSERVATION_SIZE if config.task == cube_state_env.TASK else 0
        self.model = StateModel(config.model_hidden, config.model_layers, self.observation_size, self.action_size,
                                held=flags)  # in_view's and memory's flags: carried, their events not fitted
        self.model_optimizer = torch.optim.Adam(self.model.parameters(), lr=config.model_lr)
        self.replay = Replay(config.replay_size, self.observation_size, self.action_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.envs = config.make_envs(seed)
        self.reward_labels = FrameRewards(config.reward_run, config.goal) if config.reward == "learned" \
            else TrueRewardLabels(self.envs, config) if config.reward == "regressed" else None
        """The labels the reward regressor is fitted to (learned or regressed reward), else None."""
        self.reward_model = StateRewardModel(config.reward_hidden, self.observation_size)
        self.reward_optimizer = torch.optim.Adam(self.reward_model.parameters(), lr=config.model_lr)
        self.average = AveragedModel(self.learner.actor, multi_avg_fn=get_ema_multi_avg_fn(config.policy_ema)) \
            if config.policy_ema > 0 else None
        """The actor's weights averaged over updates (``policy_ema`` > 0), else None."""
        self.epoch = 0
        self.warmed_up = False
        self._samples_before = 0  # samples of earlier calls (resume): the envs count from 0 again

    @property
    def samples(self) -> int:
        return self._samples_before + self.envs.samples

    def policy(self) -> StatePolicy:
        """The deterministic policy, from the averaged actor when ``policy_ema`` is on."""
        return StatePolicy(_Deterministic(self.learner.actor if self.average is None else self.average.module),
                           self.config.task, self.config.observation)

    def policy_config(self) -> dict[str, Any]:
        return {"observation_size": self.observation_size, "action_size": self.action_size, "task": self.config.task,
                "observation": self.config.observation}

    def state_dict(self) -> dict[str, Tensor]:
        learned = {f"reward_model.{k}": v for k, v in self.reward_model.state_dict().items()} \
            if self.reward_labels is not None else {}
        averaged = {f"average.{k}": v for k, v in self.average.state_dict().items()} if self.average is not None else {}
        return {**{f"learner.{k}": v for k, v in self.learner.state_dict().items()},
                **{f"model.{k}": v for k, v in self.model.state_dict().items()}, **learned, **averaged}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.learner.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("learner.")})
        self.model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
        if self.average is not None:
            self.average.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("average.")})
        if self.reward_labels is not None:
            self.reward_model.load_state_dict({k[13:]: v for k, v in state.items() if k.startswith("reward_model.")})

    def trainer_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "samples": self.samples, "warmed_up": self.warmed_up,
                "optimizers": {k: o.state_dict() for k, o in self.learner.optimizers.items()},
                "model_optimizer": self.model_optimizer.state_dict(), "replay": self.replay.state_dict(),
                "reward_optimizer": self.reward_optimizer.state_dict(),
                "generator": self.generator.get_state(), "skipped_steps": self.learner.skipped_steps}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.warmed_up = int(state["epoch"]), bool(state["warmed_up"])
        self._samples_before = int(state["samples"]) - self.envs.samples
        for key, optimizer in self.learner.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][key])
        self.model_optimizer.load_state_dict(state["model_optimizer"])
        if "reward_optimizer" in state:
            self.reward_optimizer.load_state_dict(state["reward_optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.generator.set_state(state["generator"])
        self.learner.skipped_steps = int(state["skipped_steps"])
        self.envs.reseed(7919 * (self.epoch + 1))  # new episodes, not the ones the first call saw

    def _train_model(self, updates: int) -> tuple[float, float | None]:
        """``updates`` minibatches of the state model (and of the reward regressor, with a learned reward);
        returns their mean losses (the regressor's None with the true reward)."""
        losses, reward_losses = [], []
        self.model.train()
        for _ in range(updates):
            state, action, next_state = self.replay.sample(self.config.model_batch, self.generator)
            loss = self.model.loss(state, action, next_state)
            self.model_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
            self.model_optimizer.step()
            losses.append(loss.item())
            if self.reward_labels is not None:
                reward_losses.append(self._train_reward_model())
        self.model.eval()
        return (float(np.mean(losses)) if losses else float("nan"),
                float(np.mean(reward_losses)) if reward_losses else None)

    def _train_reward_model(self) -> float:
        state, label = self.replay.sample_labels(self.config.model_batch, self.generator)
        loss = (self.reward_model(state) - label).pow(2).mean()
        self.reward_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.reward_model.parameters(), 10.0)
        self.reward_optimizer.step()
        return loss.item()

    def _labels(self) -> Tensor | None:
        """The labels of the stand-ins' current states: learned or regressed reward (None with the true reward)."""
        return self.reward_labels(self.envs.sims) if self.reward_labels is not None else None

    def _warm_up(self) -> dict[str, float]:
        """Random-action transitions, the state model's scale from them, then its pretraining."""
        rng = np.random.default_rng(int(torch.randint(1 << 30, (1,), generator=self.generator)))
        states = torch.from_numpy(self.envs.observations())
        while self.envs.samples < self.config.warmup_samples:
            actions = rng.uniform(-1.0, 1.0, size=(self.envs.batch_size, self.action_size)).astype(np.float32)
            next_states = torch.from_numpy(self.envs.step(actions))
            self.replay.add(states, torch.from_numpy(actions), next_states, self._labels())
            states = next_states
            if self.envs.restart_ended():
                states = torch.from_numpy(self.envs.observations())
        if len(self.replay):
            state, _, next_state = self.replay.sample(min(len(self.replay), 4096), self.generator)
            self.model.scale.copy_((next_state - state).std(0).clamp_min(1e-3))
        loss, _ = self._train_model(self.config.warmup_updates)
        self.warmed_up = True
        return {"model_warmup_loss": loss}

    def train_epoch(self) -> dict[str, float]:
        logs: dict[str, float] = {}
        if not self.warmed_up:
            logs.update(self._warm_up())
        config, envs = self.config, self.envs
        if config.sapo.lr_schedule != "constant":  # this update's rates, by the budget spent before it
            logs["actor_lr"] = self.learner.set_progress(self.samples / self.max_samples)
        restarted = envs.restart_ended()
        start = torch.from_numpy(envs.observations())
        real: list[Tensor] = [start]
        labels: list[Tensor] = []

        def act(state: Tensor) -> tuple[Tensor, Tensor]:
            action, log_prob = self.learner.actor(state)
            return action, log_prob

        def forward_step(state: Tensor, action: Tensor) -> Tensor:
            next_state = torch.from_numpy(envs.step(action.numpy()))
            real.append(next_state)
            if self.reward_labels is not None:
                labels.append(self._labels())
            return next_state

        rollout = rollout_decoupled(start, act, self.model, forward_step, config.sapo.horizon)
        states = torch.stack(rollout.states)  # (H + 1, B, 8): the simulator's values, the model's gradients
        if self.reward_labels is None:
            rewards = config.true_reward(states[1:])
        else:  # the labels' values, the regressor's gradient (as DMO's local reward head on rung 1)
            predicted = self.reward_model(states[1:])
            label = torch.stack(labels)
            rewards = predicted + (label - predicted).detach()
            logs["reward_model_error"] = (predicted - label).pow(2).mean().item()
            logs["label_mean"] = label.mean().item()
        entropies = -torch.stack([extras[0] for extras in rollout.policy_extras])
        actions = torch.stack(rollout.actions).detach()
        terminal_weight = 1.0 if self.epoch >= config.critic_warmup else 0.0
        logs.update(self.learner.update(Trajectory(states, rewards, entropies), terminal_weight=terminal_weight))
        if self.average is not None:
            self.average.update_parameters(self.learner.actor)
        real_states = torch.stack(real)
        self.replay.add(real_states[:-1], actions, real_states[1:], torch.stack(labels) if labels else None)
        with torch.no_grad():  # how far the model's one-step prediction is from the simulator on this rollout
            logs["model_error"] = self.model.loss(real_states[:-1], actions, real_states[1:]).item()
        logs["model_loss"], reward_loss = self._train_model(config.model_updates)
        if reward_loss is not None:
            logs["reward_model_loss"] = reward_loss
        self.epoch += 1
        final = states[-1].detach()
        logs.update({"samples": float(self.samples), "episodes_restarted": float(restarted),
                     "mean_reward": rewards.detach().mean().item(),
                     "final_reward": rewards.detach()[-1].mean().item(),
                     "terminal_weight": terminal_weight,
                     "action_abs_mean": actions.abs().mean().item(),
                     **_task_distance(final, config.task)})
        return logs

    def close(self) -> None:
        self.envs.close()


def _task_distance(observation: Tensor, task: str) -> dict[str, float]:
    """``{"final_distance_u": d}``: the mean task distance in arena units (reach: agent to target; pushing: the T's
    pose error; push_cube: the cube's distance from the goal, in metres; with the in-view and memory observations over
    the rows that see both, and no entry when none does), for logs."""
    from dmo_ros.ladder.state_env import HALF, t_pose_error

    if task == cube_state_env.TASK:
        distance = cube_state_env.cube_goal_distance(observation)
        if observation.shape[-1] > cube_state_env.OBSERVATION_SIZE:  # in_view, memory: where both are seen
            distance = distance[cube_state_env.both_in_view(observation)]
        return {"final_distance_u": distance.mean().item() * cube_state_env.HALF_M} if distance.numel() else {}
    if task in REACH_TASKS:
        return {"final_distance_u": (observation[..., 0:2] - observation[..., 6:8]).norm(dim=-1).mean().item() * HALF}
    return {"final_distance_u": t_pose_error(observation).mean().item() * HALF}


# -- PPO on the same states ----------------------------------------------------------------------------------


class StateActorCritic(nn.Module):
    """CleanRL's continuous-action agent: tanh MLPs for the mean and the value, a state-independent log-std."""

    def __init__(self, hidden: int = 64, observation_size: int = OBSERVATION_SIZE,
                 action_size: int = ACTION_SIZE) -> None:
        super().__init__()

        def net(out: int, std: float) -> nn.Sequential:
            last = nn.Linear(hidden, out)
            nn.init.orthogonal_(last.weight, std)
            nn.init.zeros_(last.bias)
            return nn.Sequential(nn.Linear(observation_size, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 last)

        self.actor_mean = net(action_size, 0.01)
        self.critic = net(1, 1.0)
        self.log_std = nn.Parameter(torch.full((action_size,), -0.5))

    def distribution(self, observation: Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor_mean(observation), self.log_std.exp())

    def value(self, observation: Tensor) -> Tensor:
        return self.critic(observation).squeeze(-1)

    def deterministic(self, observation: Tensor) -> Tensor:
        return self.actor_mean(observation)


class Rung0PPO:
    """PPO on true states with the rung-0 rewards (a ``PolicyAlgorithm``)."""

    method = "ppo"

    def __init__(self, config: Rung0Config, seed: int = 0) -> None:
        self.config = config
        torch.manual_seed(seed)
        self.observation_size, self.action_size = task_sizes(config.task, config.observation)
        self.agent = StateActorCritic(config.ppo_hidden, self.observation_size, self.action_size)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.ppo_lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(seed)
        self.envs = config.make_envs(seed)
        self.frame_rewards = FrameRewards(config.reward_run, config.goal) if config.reward == "learned" else None
        self.observation = torch.from_numpy(self.envs.observations())
        self.iteration = 0
        self._samples_before = 0

    @property
    def samples(self) -> int:
        return self._samples_before + self.envs.samples

    def policy(self) -> StatePolicy:
        return StatePolicy(_PPODeterministic(self.agent), self.config.task, self.config.observation)

    def policy_config(self) -> dict[str, Any]:
        return {"observation_size": self.observation_size, "action_size": self.action_size, "task": self.config.task,
                "observation": self.config.observation}

    def state_dict(self) -> dict[str, Tensor]:
        return {f"agent.{k}": v for k, v in self.agent.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.agent.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("agent.")})

    def trainer_state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "samples": self.samples, "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self._samples_before = int(state["samples"]) - self.envs.samples
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.envs.reseed(7919 * (self.iteration + 1))
        self.observation = torch.from_numpy(self.envs.observations())

    def train_epoch(self) -> dict[str, float]:
        config, envs, agent = self.config, self.envs, self.agent
        steps, batch = config.ppo_rollout_steps, envs.batch_size
        observations = torch.zeros(steps, batch, self.observation_size)
        actions = torch.zeros(steps, batch, self.action_size)
        log_probs, values, rewards, final_values = (torch.zeros(steps, batch) for _ in range(4))
        dones = torch.zeros(steps, batch, dtype=torch.bool)
        with torch.no_grad():
            for t in range(steps):
                observations[t] = self.observation
                distribution = agent.distribution(self.observation)
                noise = torch.randn(batch, self.action_size, generator=self.generator)
                actions[t] = distribution.mean + distribution.stddev * noise
                log_probs[t] = distribution.log_prob(actions[t]).sum(-1)
                values[t] = agent.value(self.observation)
                next_observation = torch.from_numpy(envs.step(actions[t].clamp(-1.0, 1.0).numpy()))
                rewards[t] = config.true_reward(next_observation) if self.frame_rewards is None \
                    else self.frame_rewards(envs.sims)
                ended = torch.from_numpy(envs.steps >= config.episode_steps)
                if ended.any():
                    final_values[t, ended] = agent.value(next_observation[ended])
                    dones[t] = ended
                    envs.restart_ended()
                    next_observation = torch.from_numpy(envs.observations())
                self.observation = next_observation
            next_value = agent.value(self.observation)
        advantages, returns = compute_gae(rewards, values, next_value, 0.99, 0.95, dones, final_values)
        flat = [x.flatten(0, 1) for x in (observations, actions, log_probs, values, advantages, returns)]
        history = []
        for _ in range(config.ppo_update_epochs):
            order = torch.randperm(steps * batch, generator=self.generator)
            for index in order.chunk(config.ppo_minibatches):
                obs, act, old_lp, old_v, adv, ret = (x[index] for x in flat)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                distribution = agent.distribution(obs)
                terms = ppo_losses(distribution.log_prob(act).sum(-1), old_lp, adv, agent.value(obs), old_v, ret,
                                   distribution.entropy().sum(-1), 0.2, 0.5, config.ppo_ent_coef)
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                self.optimizer.step()
                history.append([terms.policy_loss.item(), terms.value_loss.item(), terms.approx_kl.item()])
        self.iteration += 1
        policy_loss, value_loss, approx_kl = np.mean(history, axis=0)
        return {"samples": float(self.samples), "mean_reward": rewards.mean().item(), "policy_loss": policy_loss,
                "value_loss": value_loss, "approx_kl": approx_kl, "action_std": agent.log_std.exp().mean().item(),
                **_task_distance(self.observation, config.task)}

    def close(self) -> None:
        self.envs.close()


class _PPODeterministic(nn.Module):
    def __init__(self, agent: StateActorCritic) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, observation: Tensor) -> Tensor:
        return self.agent.deterministic(observation)


# -- the command ---------------------------------------------------------------------------------------------


def apply_settings(config: Rung0Config, settings: list[str]) -> Rung0Config:
    """``FIELD=VALUE`` overrides (``sapo.FIELD`` for the SAPO config), each value read by its field's type
    (:func:`dmo_ros.training.options.field_value`): an unknown field or a value of the wrong type is a ValueError."""
    for setting in settings:
        key, separator, text = setting.partition("=")
        if not separator:
            raise ValueError(f"--set wants FIELD=VALUE, got {setting!r}")
        if key.startswith("sapo."):
            value = field_value(SAPOConfig, key[5:], text)
            config = replace(config, sapo=replace(config.sapo, **{key[5:]: value}))
        elif key == "sapo":
            raise ValueError("--set sapo.FIELD=VALUE sets one SAPO field (e.g. sapo.alpha_init=0.02)")
        else:
            config = replace(config, **{key: field_value(Rung0Config, key, text)})
    return config


def build(config: Rung0Config, seed: int, max_samples: int | None = None) -> Rung0SAPO | Rung0PPO:
    """The rung's algorithm; ``max_samples`` (the run's budget) paces SAPO's ``lr_schedule`` "linear"."""
    return Rung0SAPO(config, seed, max_samples) if config.method == "sapo" else Rung0PPO(config, seed)


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    from dmo_ros.policy.episode_video import add_video_options, check_video_episodes, videos
    from dmo_ros.policy.evaluate import EvalConfig, evaluate_controller, write_final_evaluation

    parser = argparse.ArgumentParser(
        prog="dmo-train-rung0",
        description="Rung 0 of the ladder: SAPO through a learned state model (or PPO) on the Push-T stand-in's "
                    "(or, --task push_cube, the Go2 Push Cube stand-in's) true low-dimensional state; logs to "
                    "TensorBoard, evaluates periodically, resumes, and ends with a 50-episode evaluation beside the "
                    "random, zero-action and expert ceilings.",
        epilog="Example: dmo-train-rung0 runs/rung0/reach_sapo --task reach --method sapo --preset cpu")
    parser.add_argument("run_dir", type=Path, nargs="?", help="run folder (an existing run is resumed)")
    parser.add_argument("--run-dir", type=Path, dest="run_dir_option", metavar="RUN_DIR",
                        help="the run folder, as the other trainers take it (instead of the positional one)")
    parser.add_argument("--task", choices=RUNG0_TASKS, default=None,
                        help="task (default: the preset's, reach); push_cube: the Go2 stand-in's")
    parser.add_argument("--method", choices=METHODS, default=None, help="sapo or ppo (default sapo)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="cpu", help="size preset (default cpu)")
    parser.add_argument("--reward", choices=REWARDS, default=None,
                        help="true: the task's reward of the state (default); learned: the learned reward of the "
                             "state's camera frame (with --reward-run and --goal), the rung between 0 and 1; "
                             "regressed (sapo): the true reward's values, the gradient of a regressor fitted to "
                             "them (as learned has), a diagnostic")
    parser.add_argument("--reward-run", type=Path, default=None, help="--reward learned: the dmo-train-reward run")
    parser.add_argument("--goal", type=Path, default=None, help="--reward learned: the goal picture (dmo-goal-image)")
    parser.add_argument("--max-samples", type=int, default=None, help="sample budget (real transitions)")
    parser.add_argument("--time-limit", type=float, default=None, help="stop (with a checkpoint) after these seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the networks and the training episodes")
    parser.add_argument("--horizon", type=int, default=None, help="sapo: H, steps per update")
    parser.add_argument("--num-envs", type=int, default=None, help="stand-ins stepped together")
    parser.add_argument("--final-eval-episodes", type=int, default=50,
                        help="episodes of the final evaluation (0: none); fixed seeds, gym-pusht's 30 s")
    parser.add_argument("--eval-seed", type=int, default=10_000, help="base seed of the evaluation episodes")
    parser.add_argument("--ceilings-cache", type=Path, default=None,
                        help="JSON file remembering the ceilings' results (default: beside the run folder)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a Rung0Config field (model_updates=64) or a SAPO one (sapo.alpha_init=0.02); "
                             "VALUE is read by the field's type (lists as JSON, [0.9, 0.99]); repeatable")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_video_options(parser)  # the final evaluation's episodes; re-running a finished run re-evaluates it
    options = parser.parse_args(argv)
    check_video_episodes(parser, options)
    if options.video is not None and not options.final_eval_episodes:
        parser.error("--video records the final evaluation's episodes: give --final-eval-episodes N > 0")
    if options.run_dir is not None and options.run_dir_option is not None and options.run_dir != options.run_dir_option:
        parser.error(f"two run folders given: {options.run_dir} and --run-dir {options.run_dir_option}")
    options.run_dir = options.run_dir or options.run_dir_option
    if options.run_dir is None:
        parser.error("the run folder is required (positional RUN_DIR or --run-dir RUN_DIR)")

    config, run = PRESETS[options.preset]
    saved = options.run_dir / "config.json"
    overrides = {key: value for key, value in (("task", options.task), ("method", options.method),
                                                ("num_envs", options.num_envs), ("reward", options.reward),
                                                ("reward_run", options.reward_run and str(options.reward_run)),
                                                ("goal", options.goal and str(options.goal)))
                 if value is not None}
    try:
        if saved.is_file():  # resume: the saved configuration wins; a contradicting option is an error
            stored = json.loads(saved.read_text())
            known = {f.name for f in fields(Rung0Config)}
            config = Rung0Config(**{k: v for k, v in stored["rung0"].items() if k in known})
            clash = {k: v for k, v in overrides.items() if getattr(config, k) != v}
            if clash:
                held = ", ".join(f"{k}={getattr(config, k)}" for k in clash)
                parser.error(f"{options.run_dir} holds a run with {held}; use another run folder")
            # --set and --horizon are checked the same way: a resume silently kept the saved values.
            asked = config if options.horizon is None else \
                replace(config, sapo=replace(config.sapo, horizon=options.horizon))
            asked = apply_settings(asked, options.set)
            changed = changed_settings(asdict(config), asdict(asked))
            if changed:
                held = ", ".join(f"{name}={value!r}" for name, value, _ in changed)
                wanted = ", ".join(f"{name}={value!r}" for name, _, value in changed)
                parser.error(f"{options.run_dir} holds a run with {held}; resuming it cannot change that to "
                             f"{wanted}: leave the option out to resume, or use another run folder")
        else:
            config = replace(config, **overrides)
            if options.horizon is not None:
                config = replace(config, sapo=replace(config.sapo, horizon=options.horizon))
            config = apply_settings(config, options.set)
        run = replace(run, seed=options.seed, eval_seed=options.eval_seed, progress=not options.no_progress,
                      **({"max_samples": options.max_samples} if options.max_samples else {}),
                      **({"time_limit_s": options.time_limit} if options.time_limit else {}))
    except ValueError as error:
        parser.error(str(error))

    cube = config.task == cube_state_env.TASK
    if cube:  # the Go2's evaluation: success, steps and the Table II metrics (dmo_ros.policy.push_cube_eval)
        from dmo_ros.policy import push_cube_eval

        eval_config = push_cube_eval.PushCubeEvalConfig(episodes=run.eval_episodes, max_steps=run.eval_max_steps,
                                                        seed=run.eval_seed)
    else:
        eval_config = EvalConfig(episodes=run.eval_episodes, max_steps=run.eval_max_steps, seed=run.eval_seed,
                                 task=config.task)

    def evaluate(policy: StatePolicy) -> dict[str, Any]:
        if cube:
            return push_cube_eval.evaluate_controller(policy, eval_config).record()
        return evaluate_controller(policy, eval_config).record()

    try:
        algorithm = build(config, run.seed, run.max_samples)
    except (ValueError, OSError, CheckpointError) as error:  # a missing or unreadable reward run or goal picture
        parser.error(str(error))
    run_config = {"kind": RUN_KIND, "method": config.method, "task": config.task, "preset": options.preset,
                  "rung0": asdict(config), "run": asdict(run)}
    reward = {"true": "the task's true reward", "learned": f"the learned reward of {config.reward_run}",
              "regressed": "the task's true reward through the reward regressor"}[config.reward]
    print(f"rung 0, {config.method} on {config.task} with {reward}: {config.num_envs} stand-ins, budget "
          f"{run.max_samples} samples; run folder {options.run_dir}", flush=True)
    try:
        result = train_policy(algorithm, run, options.run_dir, run_config, evaluate)
    finally:
        algorithm.close()
    print(f"{config.method}: {result.epochs} epochs, {result.samples} samples, {result.wall_s:.0f} s of training"
          + (" (stopped early; re-run to resume)" if result.stopped_early else ""), flush=True)
    if result.interrupted:  # exit as a Ctrl-C does: a script that runs this stops here too
        print("dmo-train-rung0: interrupted; re-run the same command to resume", file=sys.stderr, flush=True)
        return INTERRUPTED_EXIT_CODE
    label = f"rung 0 {config.method}, {result.samples} samples"
    if options.final_eval_episodes and not result.stopped_early and cube:
        final_cube = push_cube_eval.PushCubeEvalConfig(episodes=options.final_eval_episodes, seed=run.eval_seed)
        print(push_cube_eval.write_final_evaluation(algorithm.policy(), label, options.run_dir, result.samples,
                                                    result.wall_s, final_cube, cache=options.ceilings_cache,
                                                    videos=videos(options)))
    elif options.final_eval_episodes and not result.stopped_early:
        final_config = EvalConfig(episodes=options.final_eval_episodes, seed=run.eval_seed, task=config.task)
        print(write_final_evaluation(algorithm.policy(), label, options.run_dir, result.samples, result.wall_s,
                                     final_config, cache=options.ceilings_cache, videos=videos(options)))
    if not math.isfinite(result.logs.get("mean_reward", 0.0)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
