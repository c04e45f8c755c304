"""PPO from pixels in the imagined environment: the DMO paper's model-free baseline.

CleanRL's continuous-action PPO (``ppo_continuous_action.py``) with its Atari image encoder, acting in
the same batched world-model environment as DMO-SAPO (:class:`dmo_ros.dmo.imagined_env.ImaginedEnv`):
the same start states, the same world model, the same reward and sample counter, so the learning curves
compare sample for sample.

    algorithm = PPOAlgorithm(env, PPOConfig.preset("cpu"), action_limit, device="cpu")
    logs = algorithm.train_epoch()        # rollout_steps x B world-model steps, GAE, the clipped update
    policy = algorithm.policy()           # deterministic: the Gaussian's mean, clamped, in robot units

Choices, each as CleanRL makes them unless said otherwise:

- **Observation**: the current frame only, (3, H, W) in [-1, 1], rounded to uint8 levels during training so
  the agent learns on exactly what :meth:`PPOPolicy.act` sees at run time. Push-T's state (pusher and T
  poses) is visible in one frame and the pusher is velocity-commanded, so no frame stack.
- **Actions**: an unsquashed Gaussian, state-independent log-std. The sample ``a`` is stored for the
  log-probabilities; the environment executes ``clamp(a, -1, 1) * action_limit`` (CleanRL's ClipAction).
- **Episodes**: restarted from new real windows once ``episode_steps`` old (``env.reset_some``). That
  is a time limit, not a terminal state: the ended episode is bootstrapped with the value of the last
  frame it reached (not with 0), and GAE does not run across the restart.
- **Update**: GAE(lambda), per-minibatch advantage normalisation, clipped surrogate, clipped value loss,
  one Adam optimiser over the shared encoder and both heads, gradient-norm clipping, optional target-KL
  early stop and linear learning-rate annealing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from dmo_ros.policy.base import with_prefix, without_prefix
from dmo_ros.policy.ppo_agent import PPOAgent, PPOPolicy, frames_to_model_range, quantize_frames

METHOD = "ppo"


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or infinity in what PPO would learn from (the environment's rewards or observations).

    A FloatingPointError as well, so ``dmo-train-policy`` reports it as a failed run (exit 1) like the runner's
    own numerical failures."""


@dataclass
class PPOConfig:
    """PPO's hyper-parameters (CleanRL's names)."""

    num_envs: int = 16
    """B, imagined episodes stepped in parallel (the batch size the environment is built with; each step is
    B world-model samples)."""

    rollout_steps: int = 64
    """T, environment steps per iteration: each iteration learns from T x B transitions (CleanRL's num_steps)."""

    episode_steps: int = 128
    """Steps after which an episode restarts from a new real window (a time limit: bootstrapped, not terminal).
    The paper ran PPO with simulation lengths of 64-128."""

    gamma: float = 0.99
    """Discount per step (5 Hz: 0.99 is a ~20 s effective horizon)."""

    gae_lambda: float = 0.95
    """GAE's lambda: 0 gives one-step TD advantages, 1 Monte-Carlo returns minus the value."""

    clip_coef: float = 0.2
    """Surrogate clip epsilon: the probability ratio's gain is cut off outside [1 - eps, 1 + eps]."""

    clip_vloss: bool = True
    """Clip the value update to ``clip_coef`` around the rollout's values as well (CleanRL's default)."""

    ent_coef: float = 0.0
    """Weight of the entropy bonus (CleanRL continuous: 0; the state-independent log-std still adapts)."""

    vf_coef: float = 0.5
    """Weight of the value loss in the one loss of the shared network."""

    max_grad_norm: float = 0.5
    """Global gradient-norm clip per minibatch step; 0 disables clipping."""

    update_epochs: int = 4
    """Passes over the iteration's T x B transitions (CleanRL: 10 continuous, 4 Atari)."""

    minibatches: int = 4
    """Minibatches each pass is split into."""

    learning_rate: float = 3e-4
    """Adam learning rate (eps 1e-5, as CleanRL)."""

    anneal_iterations: int = 0
    """0: constant learning rate. N > 0: anneal it linearly to 0 over N iterations (CleanRL's anneal_lr)
    and hold it at 0 afterwards."""

    normalize_advantages: bool = True
    """Normalise the advantages to zero mean and unit std within every minibatch."""

    target_kl: float | None = None
    """Stop the iteration's remaining update epochs once an epoch's mean approximate KL exceeds this; None: never."""

    encoder_channels: tuple[int, ...] = (16, 32, 32)
    """Output channels of the image encoder's convolutions (4x4, stride 2: each one halves the image)."""

    feature_size: int = 256
    """Width of the shared features after the convolutions (one linear layer), read by both heads."""

    init_log_std: float = -0.5
    """Initial log standard deviation of every action component (in [-1, 1] action units: -0.5 is std 0.61;
    CleanRL's 0 would clamp a third of the actions to the limits)."""

    def __post_init__(self) -> None:
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        for name in ("num_envs", "rollout_steps", "episode_steps", "update_epochs", "minibatches", "feature_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.encoder_channels or min(self.encoder_channels) < 1:
            raise ValueError(f"encoder_channels must be one or more positive channel counts, "
                             f"got {self.encoder_channels}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        for name in ("clip_coef", "learning_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        for name in ("ent_coef", "vf_coef", "max_grad_norm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {value}")
        if self.anneal_iterations < 0:
            raise ValueError(f"anneal_iterations must be >= 0 (0: constant learning rate), "
                             f"got {self.anneal_iterations}")
        if self.target_kl is not None and not (math.isfinite(self.target_kl) and self.target_kl > 0):
            raise ValueError(f"target_kl must be a positive number or None (no early stop), got {self.target_kl}")
        if not math.isfinite(self.init_log_std):
            raise ValueError(f"init_log_std must be finite, got {self.init_log_std}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PPOConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` configuration with optional field overrides."""
        if name not in PPO_PRESETS:
            raise ValueError(f"unknown PPO preset {name!r}; valid presets: {', '.join(PPO_PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            valid = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown PPOConfig fields {unknown}; valid fields: {valid}")
        return replace(PPO_PRESETS[name], **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPOConfig:
        """A config saved as JSON (no code is run; unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PPOConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


PPO_PRESETS: dict[str, PPOConfig] = {
    # Tests and smoke runs: 4 x 8 = 32 transitions per iteration, a few milliseconds per update on one core.
    "tiny": PPOConfig(num_envs=4, rollout_steps=8, episode_steps=8, update_epochs=4, minibatches=2,
                      learning_rate=1e-3, encoder_channels=(8, 16), feature_size=64),
    # The laptop demo at 64 x 64 (an imagined step costs ~25-60 ms at B = 16 on 2 cores, so 32 x 16 = 512
    # transitions are ~20 s of sampling; the update of a 3-conv encoder on them takes a few seconds).
    "cpu": PPOConfig(num_envs=16, rollout_steps=32, episode_steps=64, update_epochs=4, minibatches=4,
                     encoder_channels=(16, 32, 32), feature_size=256),
    # One GPU: 128 x 64 = 8192 transitions per iteration, the paper's longer simulation length, CleanRL Atari's
    # encoder width.
    "gpu": PPOConfig(num_envs=128, rollout_steps=64, episode_steps=128, update_epochs=4, minibatches=8,
                     encoder_channels=(32, 64, 64, 128), feature_size=512),
}
"""Size presets of :class:`PPOConfig`."""


# -- pure functions ------------------------------------------------------------------------------


def compute_gae(rewards: Tensor, values: Tensor, next_value: Tensor, gamma: float, lam: float,
                dones: Tensor | None = None, final_values: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets of a rollout (time first).

    ``delta_t = r_t + gamma V'_t - V(s_t)`` and ``A_t = delta_t + gamma lam (1 - d_t) A_{t+1}``, where the
    next value ``V'_t`` is ``V(s_{t+1})`` (``next_value`` after the last step) within an episode and
    ``final_values[t]`` where step t ended it.

    Args:
        rewards: (T, B) reward of step t.
        values: (T, B) ``V(s_t)`` of the observations the actions were taken at.
        next_value: (B) ``V(s_T)`` of the observation after the last step.
        gamma, lam: discount and GAE lambda.
        dones: optional (T, B) bool: step t ended its episode (the next observation starts a new one, so no
            advantage runs across it).
        final_values: optional (T, B), read where ``dones``: the value the ended episode is bootstrapped
            with — the value of the last observation it reached for a time-limit truncation, 0 for a true
            terminal state. None: every end is terminal.

    Returns:
        (advantages, returns = advantages + values), both (T, B).
    """
    steps = rewards.shape[0]
    if rewards.ndim != 2 or values.shape != rewards.shape or next_value.shape != rewards.shape[1:]:
        raise ValueError(f"need rewards and values (T, B) and next_value (B), got {tuple(rewards.shape)}, "
                         f"{tuple(values.shape)}, {tuple(next_value.shape)}")
    for name, tensor in (("dones", dones), ("final_values", final_values)):
        if tensor is not None and tensor.shape != rewards.shape:
            raise ValueError(f"{name} must be (T, B) like the rewards {tuple(rewards.shape)}, "
                             f"got {tuple(tensor.shape)}")
    ended = torch.zeros_like(rewards) if dones is None else dones.to(rewards.dtype)
    ends = torch.zeros_like(rewards) if final_values is None else final_values.to(rewards.dtype)
    following_values = torch.cat([values[1:], next_value[None]])
    following_values = ended * ends + (1.0 - ended) * following_values
    deltas = rewards + gamma * following_values - values
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(next_value, dtype=rewards.dtype)
    for t in reversed(range(steps)):
        running = deltas[t] + gamma * lam * (1.0 - ended[t]) * running
        advantages[t] = running
    return advantages, advantages + values


@dataclass
class PPOLosses:
    """The terms of one minibatch's PPO loss; ``loss`` is the one to descend, the rest are for logs."""

    loss: Tensor
    """policy_loss - ent_coef * entropy + vf_coef * value_loss."""
    policy_loss: Tensor
    """The clipped surrogate, negated (to descend)."""
    value_loss: Tensor
    """0.5 x mean squared error to the returns (clipped or not)."""
    entropy: Tensor
    """Mean entropy of the current policy at the minibatch's observations."""
    approx_kl: Tensor
    """Estimate of KL(old || new): mean of (ratio - 1) - log(ratio) (Schulman's k3, non-negative); no gradient."""
    clipfrac: Tensor
    """Fraction of samples whose ratio left [1 - clip, 1 + clip]; no gradient."""


def ppo_losses(new_log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, new_values: Tensor,
               old_values: Tensor, returns: Tensor, entropy: Tensor, clip_coef: float, vf_coef: float,
               ent_coef: float, clip_vloss: bool = True) -> PPOLosses:
    """CleanRL's PPO loss of one minibatch (every argument (N,); advantages already normalised if wanted).

    Policy: ``max(-A r, -A clip(r, 1 - eps, 1 + eps))`` with ``r = exp(new - old log-prob)``: where the ratio
    has moved past the clip in the advantage's favour, the term is constant (no gradient pushes it further).
    Value: ``0.5 (V - R)^2``, or with ``clip_vloss`` the larger of that and the error of the value clipped
    to ``old_values +- eps``.
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)
    policy_loss = torch.max(unclipped, clipped).mean()
    if clip_vloss:
        value_clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
        value_loss = 0.5 * torch.max((new_values - returns).pow(2), (value_clipped - returns).pow(2)).mean()
    else:
        value_loss = 0.5 * (new_values - returns).pow(2).mean()
    mean_entropy = entropy.mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean()
    loss = policy_loss - ent_coef * mean_entropy + vf_coef * value_loss
    return PPOLosses(loss, policy_loss, value_loss, mean_entropy, approx_kl, clipfrac)


def explained_variance(predictions: Tensor, targets: Tensor) -> float:
    """1 - Var(targets - predictions) / Var(targets): 1 is a perfect value function, 0 no better than a
    constant; 0 as well when the targets themselves are constant (undefined there)."""
    variance = targets.var()
    if variance.item() == 0.0:
        return 0.0
    return (1.0 - (targets - predictions).var() / variance).item()


# -- the algorithm -----------------------------------------------------------------------------------


class BatchedEnv(Protocol):
    """What PPO needs of its environment (:class:`dmo_ros.dmo.imagined_env.ImaginedEnv` provides it)."""

    batch_size: int
    action_size: int
    samples: int
    steps: Tensor
    device: torch.device

    def reset(self) -> Tensor: ...

    def reset_some(self, done: Tensor) -> Tensor: ...

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]: ...


@dataclass
class Rollout:
    """One iteration's transitions, time first (T, B, ...), on the agent's device."""

    observations: Tensor
    """(T, B, 3, H, W) uint8 frames the actions were taken at."""
    actions: Tensor
    """(T, B, A) the sampled actions, unclamped (their log-probabilities are the ones stored)."""
    log_probs: Tensor
    """(T, B) log pi_old(action | observation)."""
    values: Tensor
    """(T, B) V_old(observation)."""
    rewards: Tensor
    """(T, B) the environment's reward of each step."""
    dones: Tensor
    """(T, B) bool: the step ended its episode (time limit)."""
    final_values: Tensor
    """(T, B) where ``dones``: V_old of the last observation the ended episode reached (its bootstrap)."""
    next_value: Tensor
    """(B) V_old of the observation after the last step."""


def _check_finite(name: str, tensor: Tensor, step: int) -> None:
    if not torch.isfinite(tensor).all():
        raise NonFiniteError(f"the environment returned a non-finite {name} at step {step} of the PPO rollout; "
                             "refusing to train on it (check the world model / reward model checkpoints and "
                             "the actions' scale, action_limit)")


class PPOAlgorithm:
    """PPO in a batched (imagined) environment: the runner's ``PolicyAlgorithm`` for ``method="ppo"``.

    Args:
        env: B episodes stepped together (:class:`ImaginedEnv` or anything with its interface).
        config: PPO's hyper-parameters.
        action_limit: (A,) robot units of action 1.0 (the dataset's largest |action| per component).
        device: where the agent learns (the environment keeps its own device).
        seed: the agent's initialisation, action sampling and minibatch order (global RNGs are untouched).
    """

    method = METHOD

    def __init__(self, env: BatchedEnv, config: PPOConfig, action_limit: np.ndarray,
                 device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.env = env
        self.config = config
        self.device = torch.device(device)
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        if self.action_limit.shape != (env.action_size,) or not (np.isfinite(self.action_limit).all()
                                                                  and (self.action_limit > 0).all()):
            raise ValueError(f"action_limit must be {env.action_size} positive numbers (the environment's action "
                             f"size), got {self.action_limit.tolist()}")
        if env.batch_size != config.num_envs:
            raise ValueError(f"the environment steps {env.batch_size} episodes, the PPO config says num_envs "
                             f"{config.num_envs}; build the environment with batch_size=config.num_envs")
        transitions = config.rollout_steps * env.batch_size
        if config.minibatches > transitions:
            raise ValueError(f"minibatches ({config.minibatches}) exceeds the {transitions} transitions of an "
                             f"iteration (rollout_steps x batch size); use fewer minibatches or more steps")
        self.observation = env.reset()
        self.image_size = (int(self.observation.shape[-2]), int(self.observation.shape[-1]))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.agent = PPOAgent(self.image_size, env.action_size, config.encoder_channels, config.feature_size,
                                  config.init_log_std).to(self.device)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(seed)
        self._limit = torch.as_tensor(self.action_limit, dtype=torch.float32, device=self.device)
        self.iteration = 0
        self.skipped_steps = 0
        self._episode_returns = torch.zeros(env.batch_size, device=self.device)

    # -- the PolicyAlgorithm contract ----------------------------------------------------------------

    @property
    def samples(self) -> int:
        """World-model transitions generated so far (the environment's counter)."""
        return int(self.env.samples)

    def policy(self) -> PPOPolicy:
        """A snapshot of the current deterministic policy (later training does not change it)."""
        return PPOPolicy(copy.deepcopy(self.agent), self.action_limit, self.image_size, self.device)

    def policy_config(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "action_limit": self.action_limit.tolist(),
                "action_size": int(self.env.action_size), "encoder_channels": list(self.config.encoder_channels),
                "feature_size": self.config.feature_size, "ppo": asdict(self.config)}

    def state_dict(self) -> dict[str, Tensor]:
        return with_prefix("agent.", self.agent.state_dict())

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        foreign = sorted(key for key in state if not key.startswith("agent."))
        if foreign:
            raise ValueError(f"PPO weights are all 'agent.*'; got unexpected keys {foreign[:5]}")
        self.agent.load_state_dict(without_prefix("agent.", state))

    def trainer_state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "skipped_steps": self.skipped_steps,
                "env": self.env.state_dict() if hasattr(self.env, "state_dict") else {}}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.skipped_steps = int(state["skipped_steps"])
        if state.get("env") and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
        # The episodes themselves are not saved: start fresh ones.
        self.observation = self.env.reset()
        self._episode_returns.zero_()

    # -- one iteration --------------------------------------------------------------------------------

    def train_epoch(self) -> dict[str, float]:
        """One PPO iteration: ``rollout_steps`` steps of all B episodes, GAE, the clipped update; scalar logs."""
        learning_rate = self._learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        rollout, episode_returns = self.collect()
        config = self.config
        advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.next_value, config.gamma,
                                          config.gae_lambda, rollout.dones, rollout.final_values)
        logs = self.update(rollout, advantages, returns)
        self.iteration += 1
        logs.update({
            "mean_reward": rollout.rewards.mean().item(),
            "explained_variance": explained_variance(rollout.values.flatten(), returns.flatten()),
            "learning_rate": learning_rate,
            "action_std": self.agent.actor_log_std.detach().exp().mean().item(),
            "episodes_ended": float(len(episode_returns)),
            "samples": float(self.samples),
            "skipped_steps": float(self.skipped_steps),
        })
        if episode_returns:
            logs["episode_return"] = float(np.mean(episode_returns))
        return logs

    def _learning_rate(self) -> float:
        if not self.config.anneal_iterations:
            return self.config.learning_rate
        return self.config.learning_rate * max(0.0, 1.0 - self.iteration / self.config.anneal_iterations)

    def _agent_input(self, observation: Tensor) -> Tensor:
        """Environment frames -> the agent's input (uint8 levels, as at run time) and the uint8 frames to store."""
        frames = quantize_frames(observation.to(self.device))
        return frames_to_model_range(frames), frames

    @torch.no_grad()
    def collect(self) -> tuple[Rollout, list[float]]:
        """``rollout_steps`` steps of every episode from the running observation; also the returns (sum of
        rewards) of the episodes that ended on the way."""
        env, config, agent = self.env, self.config, self.agent
        steps, batch = config.rollout_steps, env.batch_size
        observations = torch.empty(steps, batch, 3, *self.image_size, dtype=torch.uint8, device=self.device)
        actions = torch.empty(steps, batch, env.action_size, device=self.device)
        log_probs, values, rewards, final_values = (torch.zeros(steps, batch, device=self.device) for _ in range(4))
        dones = torch.zeros(steps, batch, dtype=torch.bool, device=self.device)
        ended_returns: list[float] = []
        agent.eval()
        _check_finite("observation", self.observation, 0)
        for t in range(steps):
            model_input, observations[t] = self._agent_input(self.observation)
            actions[t], log_probs[t], values[t] = agent.act(model_input, self.generator)
            executed = actions[t].clamp(-1.0, 1.0) * self._limit
            next_observation, reward = env.step(executed.to(env.device))
            _check_finite("reward", reward, t)
            _check_finite("observation", next_observation, t)
            rewards[t] = reward.to(self.device, torch.float32)
            self._episode_returns += rewards[t]
            ended = env.steps.to(self.device) >= config.episode_steps
            if ended.any():
                # Time limit: bootstrap the ended episodes with the value of the frame they reached.
                final_input, _ = self._agent_input(next_observation[ended.to(next_observation.device)])
                final_values[t, ended] = agent.value(final_input)
                dones[t] = ended
                ended_returns += self._episode_returns[ended].tolist()
                self._episode_returns[ended] = 0.0
                next_observation = env.reset_some(ended.to(env.steps.device))
                _check_finite("observation", next_observation, t)
            self.observation = next_observation
        next_value = agent.value(self._agent_input(self.observation)[0])
        rollout = Rollout(observations, actions, log_probs, values, rewards, dones, final_values, next_value)
        return rollout, ended_returns

    def update(self, rollout: Rollout, advantages: Tensor, returns: Tensor) -> dict[str, float]:
        """``update_epochs`` passes of clipped-PPO minibatch steps over the rollout; mean logs."""
        config, agent = self.config, self.agent
        observations = rollout.observations.flatten(0, 1)
        actions = rollout.actions.flatten(0, 1)
        old_log_probs, old_values = rollout.log_probs.flatten(), rollout.values.flatten()
        advantages, returns = advantages.flatten(), returns.flatten()
        agent.train()
        history: list[Tensor] = []
        epochs_run = 0
        for _ in range(config.update_epochs):
            order = torch.randperm(len(actions), generator=self.generator, device=self.device)
            epoch_terms = []
            for indices in order.chunk(config.minibatches):
                new_log_probs, entropy, new_values = agent.evaluate(frames_to_model_range(observations[indices]),
                                                                    actions[indices])
                minibatch_advantages = advantages[indices]
                if config.normalize_advantages and len(indices) > 1:
                    minibatch_advantages = ((minibatch_advantages - minibatch_advantages.mean())
                                            / (minibatch_advantages.std() + 1e-8))
                terms = ppo_losses(new_log_probs, old_log_probs[indices], minibatch_advantages, new_values,
                                   old_values[indices], returns[indices], entropy, config.clip_coef, config.vf_coef,
                                   config.ent_coef, config.clip_vloss)
                self.optimizer.zero_grad(set_to_none=True)
                terms.loss.backward()
                max_norm = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
                grad_norm = nn.utils.clip_grad_norm_(agent.parameters(), max_norm)
                if torch.isfinite(grad_norm):
                    self.optimizer.step()
                else:  # a non-finite gradient must not poison the weights (SAPOLearner guards the same way)
                    self.skipped_steps += 1
                epoch_terms.append(torch.stack([terms.policy_loss.detach(), terms.value_loss.detach(),
                                                terms.entropy.detach(), terms.approx_kl, terms.clipfrac,
                                                grad_norm.detach()]))
            history += epoch_terms
            epochs_run += 1
            epoch_kl = torch.stack(epoch_terms)[:, 3].mean().item()
            if config.target_kl is not None and epoch_kl > config.target_kl:
                break
        agent.eval()
        means = torch.stack(history).mean(0).tolist()
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "grad_norm")
        logs = dict(zip(names, means, strict=True))
        logs["approx_kl"] = epoch_kl  # the last epoch's: the one the target-KL stop looked at
        logs["update_epochs"] = float(epochs_run)
        return logs


__all__ = ["METHOD", "PPO_PRESETS", "BatchedEnv", "NonFiniteError", "PPOAlgorithm", "PPOConfig", "PPOLosses",
           "Rollout", "compute_gae", "explained_variance", "ppo_losses"]
