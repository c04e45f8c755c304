"""SAPO (soft analytic policy optimisation) on a differentiable imagined trajectory.

The actor maximises the entropy-regularised return over a horizon H (DESIGN.md §6, the paper's eq. 4)::

    J = sum_{h<H} gamma^h (r_h + alpha H_h) + gamma^H V(s_H)

by backpropagating through the trajectory itself (for DMO: forward-model values, local-model
gradients, :mod:`dmo_ros.dmo.decoupled`). ``r_h = r(s_{h+1}, a_h)``, ``H_h = -log pi(a_h | s_h)``
(a one-sample entropy estimate) and ``V`` is the mean of two critics' *target* copies. The critics
regress TD-lambda targets whose rewards include the entropy term (soft values). The temperature
alpha is learned toward a target entropy (-0.5 |A|, the SAPO anchor). Optimisers: AdamW with
betas (0.7, 0.95), gradient-norm clipping (SHAC / SAPO).

SAPO needs three optimisers and fresh on-policy rollouts per step, so it does not use the
single-optimiser ``forward(batch) -> (loss, logs)`` loop: :class:`SAPOLearner` owns its update.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor, nn

from dmo_ros.dmo.critics import TwinCritics
from dmo_ros.policy.actor import SquashedGaussianActor

LR_SCHEDULES = ("constant", "linear")
"""Values of :attr:`SAPOConfig.lr_schedule`."""

LINEAR_FINAL_LR = 1e-5
"""Where a linear schedule ends (SHAC's ``lr_schedule: linear`` decays every rate to 1e-5 at the last epoch)."""


def scheduled_lr(initial: float, schedule: str, progress: float) -> float:
    """The learning rate at ``progress`` (fraction of the sample budget spent, clipped to [0, 1]) of a schedule that
    starts at ``initial``: constant, or linear to :data:`LINEAR_FINAL_LR` (never above ``initial``)."""
    if schedule == "constant":
        return initial
    if schedule != "linear":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
    progress = min(max(float(progress), 0.0), 1.0)
    final = min(LINEAR_FINAL_LR, initial)
    return initial + (final - initial) * progress


def check_schedule_budget(schedule: str, max_samples: int | None) -> None:
    """Raise ValueError when ``schedule`` paces itself by a budget and ``max_samples`` gives none (> 0)."""
    if schedule != "constant" and not (max_samples and max_samples > 0):
        raise ValueError(f"lr_schedule {schedule!r} needs the run's sample budget (max_samples)")


@dataclass
class SAPOConfig:
    """Hyper-parameters of the SAPO actor-critic (the rollout itself belongs to the caller)."""

    horizon: int = 32
    """H, imagined steps per update (the paper: 32-64; SHAC: 32). Longer horizons see further but the
    gradient through the product of Jacobians grows noisier."""

    gamma: float = 0.99
    """Discount per step (5 Hz: 0.99 is a ~20 s effective horizon)."""

    lam: float = 0.95
    """TD-lambda's lambda for the critic targets (0: one-step targets; 1: Monte Carlo with bootstrap)."""

    actor_lr: float = 2e-3
    """AdamW learning rate of the actor (SHAC's ant config: 2e-3)."""

    critic_lr: float = 2e-3
    """AdamW learning rate of both critics (SHAC's ant config: 2e-3)."""

    alpha_init: float = 0.1
    """Initial entropy temperature alpha; learned afterwards. Small enough that rewards of order 1 per
    step are not drowned by the entropy bonus at the start."""

    alpha_lr: float = 5e-3
    """AdamW learning rate of log(alpha) (no weight decay on it)."""

    target_entropy: float | None = None
    """Entropy (nats, summed over action components) that alpha steers the policy toward; None: -0.5 x |A|,
    the SAPO anchor (about std 0.15 per component before the tanh)."""

    adam_betas: tuple[float, float] = (0.7, 0.95)
    """AdamW betas of all three optimisers (SHAC / SAPO: a short memory suits fresh on-policy gradients)."""

    weight_decay: float = 0.0
    """AdamW weight decay of the actor and the critics."""

    max_grad_norm: float = 1.0
    """Gradient-norm clip of the actor and the critics (SHAC: 1.0); 0 disables clipping."""

    critic_iterations: int = 16
    """Passes over the epoch's H x B (features, target) pairs per update (SHAC: 16)."""

    critic_minibatches: int = 4
    """Minibatches each pass is split into (SHAC's num_batch: 4)."""

    target_ema: float = 0.2
    """Target critics follow the online ones once per update: target <- ema target + (1 - ema) online
    (SHAC's target_critic_alpha; 0.2 in its ant config). 0: copy."""

    actor_hidden: int = 256
    """Width of the actor's MLP."""

    actor_layers: int = 2
    """Hidden layers of the actor's MLP."""

    critic_hidden: int = 256
    """Width of each critic's MLP."""

    critic_layers: int = 2
    """Hidden layers of each critic's MLP."""

    init_std: float = 0.5
    """The actor's initial standard deviation before the tanh (everywhere)."""

    lr_schedule: str = "constant"
    """How the actor's and critics' learning rates move over the run's sample budget: "constant", or "linear" from
    ``actor_lr`` / ``critic_lr`` at the first sample to :data:`LINEAR_FINAL_LR` at the last (SHAC's
    ``lr_schedule: linear``): late updates refine the policy instead of moving it as far as the first
    ones. Measured on rung 2 reach (docs/ladder.md, "a decaying learning rate"): it stops the late swing of the
    evaluations and settles the policy short of the target (2/100 against 48/100 constant), so it is off by default. The
    trainer passes the budget's progress to :meth:`SAPOLearner.set_progress`."""

    def __post_init__(self) -> None:
        self.adam_betas = tuple(float(b) for b in self.adam_betas)
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "alpha_init", "init_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.target_entropy is not None and not math.isfinite(self.target_entropy):
            raise ValueError(f"target_entropy must be finite or None (-0.5 x |A|), got {self.target_entropy}")
        if len(self.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError("weight_decay and max_grad_norm must be >= 0 (max_grad_norm 0: no clipping)")
        for name in ("critic_iterations", "critic_minibatches", "actor_hidden", "critic_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.actor_layers < 0 or self.critic_layers < 0:
            raise ValueError("actor_layers and critic_layers must be >= 0")
        if not 0.0 <= self.target_ema < 1.0:
            raise ValueError(f"target_ema must be in [0, 1), got {self.target_ema}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")

    def resolved_target_entropy(self, action_size: int) -> float:
        """The target entropy for an action space: the configured one, else -0.5 x |A|."""
        return -0.5 * action_size if self.target_entropy is None else self.target_entropy

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SAPOConfig:
        """The ``tiny`` / ``cpu`` / ``gpu`` configuration with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown SAPO preset {name!r}; valid presets: {', '.join(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            valid = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown SAPOConfig fields {unknown}; valid fields: {valid}")
        return replace(PRESETS[name], **overrides)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SAPOConfig:
        """A config saved as JSON (no code is run; unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SAPOConfig keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, SAPOConfig] = {
    # Tests: a few milliseconds per update on one core.
    "tiny": SAPOConfig(horizon=8, actor_hidden=32, actor_layers=1, critic_hidden=32, critic_layers=1,
                       critic_iterations=2, critic_minibatches=2),
    # The laptop demo: a shorter horizon (each step is a world-model sample) and smaller networks.
    "cpu": SAPOConfig(horizon=16, actor_hidden=128, critic_hidden=128, critic_iterations=8),
    # One GPU: SHAC/SAPO's settings, the paper's horizon.
    "gpu": SAPOConfig(horizon=32, actor_hidden=256, critic_hidden=256, critic_iterations=16),
}
"""Size presets of :class:`SAPOConfig`."""


def _alive_mask(dones: Tensor | None, rewards: Tensor) -> Tensor:
    """(H + 1, B): 1 while no earlier step has ended the episode (step h ends it when dones[h])."""
    horizon, batch = rewards.shape
    if dones is None:
        return rewards.new_ones(horizon + 1, batch)
    not_done = 1.0 - dones.to(rewards.dtype)
    return torch.cat([rewards.new_ones(1, batch), torch.cumprod(not_done, dim=0)])


def actor_objective(rewards: Tensor, entropies: Tensor, terminal_values: Tensor, alpha: float | Tensor,
                    gamma: float, dones: Tensor | None = None) -> Tensor:
    """SAPO's actor loss: ``-mean_B [sum_{h<H} gamma^h (r_h + alpha H_h) + gamma^H V(s_H)] / H``.

    Args:
        rewards: (H, B) ``r(s_{h+1}, a_h)``, differentiable through the imagined trajectory.
        entropies: (H, B) entropy estimates of pi(. | s_h), differentiable w.r.t. the actor.
        terminal_values: (B) ``V(s_H)``, differentiable w.r.t. ``s_H``.
        alpha: the temperature (a constant here: detach it).
        gamma: discount.
        dones: optional (H, B) bool, ``dones[h]``: ``s_{h+1}`` ends the episode; later rewards, entropies
            and the bootstrap are dropped (world-model rollouts normally have none).

    Returns:
        The scalar loss. Divided by H, as SHAC divides by its horizon: the gradient's scale (and so the
        learning rate) does not depend on the horizon.
    """
    horizon = rewards.shape[0]
    if entropies.shape != rewards.shape or terminal_values.shape != rewards.shape[1:]:
        raise ValueError(f"need rewards and entropies (H, B) and terminal_values (B), got {tuple(rewards.shape)}, "
                         f"{tuple(entropies.shape)}, {tuple(terminal_values.shape)}")
    discounts = gamma ** torch.arange(horizon + 1, dtype=rewards.dtype, device=rewards.device)
    weights = discounts[:, None] * _alive_mask(dones, rewards)
    soft_rewards = rewards + alpha * entropies
    returns = (weights[:horizon] * soft_rewards).sum(0) + weights[horizon] * terminal_values
    return -returns.mean() / horizon


def actor_gradient_parts(rewards: Tensor, entropies: Tensor, terminal_values: Tensor, alpha: float | Tensor,
                         gamma: float, action: Tensor) -> dict[str, Tensor]:
    """The gradient of each part of the soft return :func:`actor_objective` maximises, with respect to ``action``
    (a diagnostic: which part points the actor where).

    Args:
        rewards, entropies: (H, B), differentiable through the imagined trajectory.
        terminal_values: (B) ``V(s_H)`` as the objective weighs it (times the terminal weight).
        alpha, gamma: temperature (constant) and discount.
        action: a tensor of the graph, e.g. the first action a_0 (B, A).

    Returns:
        ``{"reward_first", "reward_later", "value", "entropy", "total"}`` -> gradients shaped as ``action``: of
        ``r_0``, of ``sum_{1<=h<H} gamma^h r_h``, of ``gamma^H V(s_H)``, of ``alpha sum_h gamma^h H_h``, and their
        sum, summed over the episodes (so ``total`` is ``-B H`` times the gradient of :func:`actor_objective`
        without dones). A part the action does not reach has zeros.
    """
    horizon = rewards.shape[0]
    discounts = gamma ** torch.arange(horizon + 1, dtype=rewards.dtype, device=rewards.device)
    parts = {"reward_first": rewards[0].sum(),
             "reward_later": (discounts[1:horizon, None] * rewards[1:]).sum(),
             "value": discounts[horizon] * terminal_values.sum(),
             "entropy": alpha * (discounts[:horizon, None] * entropies).sum()}
    gradients = {}
    for name, part in parts.items():
        found = torch.autograd.grad(part, action, retain_graph=True, allow_unused=True)[0] \
            if part.requires_grad else None
        gradients[name] = torch.zeros_like(action) if found is None else found
    gradients["total"] = sum(gradients.values())
    return gradients


def td_lambda_targets(rewards: Tensor, entropies: Tensor, values: Tensor, alpha: float | Tensor, gamma: float,
                      lam: float, dones: Tensor | None = None) -> Tensor:
    """Soft TD-lambda targets (H, B) for V(s_0) ... V(s_{H-1}).

    With the soft reward ``q_h = r_h + alpha H_h`` (SAPO's entropy term):
    ``G_h = q_h + gamma (1 - d_h) [(1 - lam) V(s_{h+1}) + lam G_{h+1}]`` and ``G_H = V(s_H)``.
    lam = 0 gives one-step targets ``q_h + gamma V(s_{h+1})``; lam = 1 the discounted soft return with
    the bootstrap ``gamma^(H-h) V(s_H)``; in between the (1 - lam)-weighted mix of n-step returns (eq. 6).

    Args:
        rewards, entropies: (H, B).
        values: (H + 1, B) values of s_0 ... s_H (from the target critics).
        alpha, gamma, lam: temperature, discount, lambda.
        dones: optional (H, B) bool: no bootstrap past a terminal ``s_{h+1}``.
    """
    horizon = rewards.shape[0]
    if values.shape[0] != horizon + 1 or values.shape[1:] != rewards.shape[1:]:
        raise ValueError(f"values must be (H + 1, B) = ({horizon + 1}, {rewards.shape[1]}), got {tuple(values.shape)}")
    soft_rewards = rewards + alpha * entropies
    not_done = torch.ones_like(rewards) if dones is None else 1.0 - dones.to(rewards.dtype)
    targets = torch.empty_like(rewards)
    following = values[horizon]
    for h in reversed(range(horizon)):
        following = soft_rewards[h] + gamma * not_done[h] * ((1.0 - lam) * values[h + 1] + lam * following)
        targets[h] = following
    return targets


def alpha_loss(log_alpha: Tensor, entropies: Tensor, target_entropy: float) -> Tensor:
    """``mean(log_alpha * (H - H_target))``: descending it raises alpha when the entropy is below target and
    lowers it when above (SAC's temperature loss in log space; the entropies are detached)."""
    return (log_alpha * (entropies.detach() - target_entropy)).mean()


@dataclass
class Trajectory:
    """One imagined batch for :meth:`SAPOLearner.update` (time first)."""

    features: Tensor
    """(H + 1, B, F) features of s_0 ... s_H; gradient attached through the actor's actions."""
    rewards: Tensor
    """(H, B) ``r(s_{h+1}, a_h)``, differentiable (e.g. the local reward head on the swapped states)."""
    entropies: Tensor
    """(H, B) ``-log pi(a_h | s_h)`` of the sampled actions, differentiable w.r.t. the actor."""
    dones: Tensor | None = field(default=None)
    """Optional (H, B) bool: ``s_{h+1}`` ends the episode."""
    value_rewards: Tensor | None = field(default=None)
    """Optional (H, B) rewards the critics' targets are built from instead of ``rewards``. DMO-SAPO passes the
    global reward model's labels here (Algorithm 1: the global reward trains the critics and the local reward
    head; the actor's return uses the local head, the only one with a gradient)."""


def _grad_norm(parameters: Iterable[nn.Parameter]) -> Tensor:
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class SAPOLearner(nn.Module):
    """Actor, twin critics, log(alpha) and their AdamW optimisers; :meth:`update` is one SAPO step.

    ``skipped_steps`` counts optimiser steps skipped because their gradients were not finite (a NaN in a
    rollout must not poison the weights; the mineral/SHAC anchor guards the same way).
    """

    def __init__(self, feature_size: int, action_size: int, config: SAPOConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SAPOConfig()
        self.action_size = action_size
        self.target_entropy = config.resolved_target_entropy(action_size)
        self.actor = SquashedGaussianActor(feature_size, action_size, config.actor_hidden, config.actor_layers,
                                           init_std=config.init_std)
        self.critics = TwinCritics(feature_size, config.critic_hidden, config.critic_layers)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(config.alpha_init)))
        betas = config.adam_betas
        self.actor_optimizer = torch.optim.AdamW(self.actor.parameters(), lr=config.actor_lr, betas=betas,
                                                 weight_decay=config.weight_decay)
        self.critic_optimizer = torch.optim.AdamW(self.critics.online.parameters(), lr=config.critic_lr,
                                                  betas=betas, weight_decay=config.weight_decay)
        self.alpha_optimizer = torch.optim.AdamW([self.log_alpha], lr=config.alpha_lr, betas=betas, weight_decay=0.0)
        self.skipped_steps = 0

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    def set_progress(self, progress: float) -> float:
        """Set the actor's and critics' learning rates for ``progress`` in [0, 1] (fraction of the sample budget
        spent) by :attr:`SAPOConfig.lr_schedule`; returns the actor's rate. A constant schedule ignores it."""
        config = self.config
        actor_lr = scheduled_lr(config.actor_lr, config.lr_schedule, progress)
        for optimizer, lr in ((self.actor_optimizer, actor_lr),
                              (self.critic_optimizer, scheduled_lr(config.critic_lr, config.lr_schedule, progress))):
            for group in optimizer.param_groups:
                group["lr"] = lr
        return actor_lr

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The three optimisers by name (for checkpoints: save and load their state dicts)."""
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer, "alpha": self.alpha_optimizer}

    def _step(self, optimizer: torch.optim.Optimizer, loss: Tensor, parameters: list[nn.Parameter]) -> Tensor:
        """Gradients of ``loss`` for ``parameters`` only (no .grad left on the models the trajectory went
        through: local model, reward head), clipped; the step is skipped when they are not finite."""
        grads = torch.autograd.grad(loss, parameters, allow_unused=True)
        for parameter, grad in zip(parameters, grads, strict=True):
            parameter.grad = grad
        norm = _grad_norm(parameters)
        if torch.isfinite(norm):
            if self.config.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
            optimizer.step()
        else:
            self.skipped_steps += 1
        optimizer.zero_grad(set_to_none=True)
        return norm

    def update(self, trajectory: Trajectory, terminal_weight: float = 1.0) -> dict[str, float]:
        """One SAPO step: actor (through the trajectory), alpha, then the critics on detached features.

        ``terminal_weight`` scales the terminal value in the actor's objective (0 while the critics warm up:
        an untrained critic's gradient is noise; the critics' own targets always bootstrap)."""
        config = self.config
        features, rewards, entropies, dones = (trajectory.features, trajectory.rewards, trajectory.entropies,
                                               trajectory.dones)
        horizon, batch = rewards.shape
        if features.shape[:2] != (horizon + 1, batch) or entropies.shape != rewards.shape:
            raise ValueError(f"need features (H + 1, B, F), rewards and entropies (H, B); got "
                             f"{tuple(features.shape)}, {tuple(rewards.shape)}, {tuple(entropies.shape)}")
        alpha = self.alpha.detach()

        # Actor: backprop the soft return through the imagined trajectory into the actor only.
        terminal_values = self.critics.target(features[horizon])
        actor_loss = actor_objective(rewards, entropies, terminal_weight * terminal_values, alpha, config.gamma, dones)
        actor_grad_norm = self._step(self.actor_optimizer, actor_loss, list(self.actor.parameters()))

        temperature_loss = alpha_loss(self.log_alpha, entropies, self.target_entropy)
        self._step(self.alpha_optimizer, temperature_loss, [self.log_alpha])

        # Critics: regress soft TD-lambda targets bootstrapped from the target critics.
        with torch.no_grad():
            detached = features.detach()
            values = self.critics.target(detached)
            critic_rewards = rewards if trajectory.value_rewards is None else trajectory.value_rewards
            if critic_rewards.shape != rewards.shape:
                raise ValueError(f"value_rewards {tuple(critic_rewards.shape)} must match rewards "
                                 f"{tuple(rewards.shape)}")
            targets = td_lambda_targets(critic_rewards.detach(), entropies.detach(), values, alpha, config.gamma,
                                        config.lam, dones)
        inputs = detached[:horizon].reshape(horizon * batch, -1)
        targets = targets.reshape(horizon * batch)
        critic_parameters = list(self.critics.online.parameters())
        size = math.ceil(inputs.shape[0] / config.critic_minibatches)
        critic_losses = []
        for _ in range(config.critic_iterations):
            order = torch.randperm(inputs.shape[0], device=inputs.device)
            for indices in order.split(size):
                loss = (self.critics.values(inputs[indices]) - targets[indices]).pow(2).mean(-1).sum()
                self._step(self.critic_optimizer, loss, critic_parameters)
                critic_losses.append(loss.detach() / len(self.critics.online))
        self.critics.update_targets(config.target_ema)

        return {
            "actor_loss": actor_loss.item(),
            "actor_grad_norm": actor_grad_norm.item(),
            "critic_loss": torch.stack(critic_losses[-config.critic_minibatches:]).mean().item(),
            "alpha": alpha.item(),
            "alpha_loss": temperature_loss.item(),
            "entropy": entropies.detach().mean().item(),
            "return": rewards.detach().sum(0).mean().item(),
            "terminal_value": terminal_values.detach().mean().item(),
            "skipped_steps": float(self.skipped_steps),
        }


__all__ = ["LINEAR_FINAL_LR", "LR_SCHEDULES", "PRESETS", "SAPOConfig", "SAPOLearner", "Trajectory",
           "actor_gradient_parts", "actor_objective", "alpha_loss", "check_schedule_budget", "scheduled_lr",
           "td_lambda_targets"]
