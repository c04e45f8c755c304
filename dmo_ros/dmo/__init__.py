"""DMO-SAPO's algorithmic core on latent feature vectors (no images, no ROS).

- :mod:`.decoupled` — :func:`decoupled_step` (forward model's values, local model's gradients),
  :func:`rollout_decoupled`, :class:`DecoupledRollout`, :func:`map_state`, :func:`detach_state`.
- :mod:`.critics` — :class:`Critic`, :class:`TwinCritics` (the actor they train is
  :class:`dmo_ros.policy.actor.SquashedGaussianActor`: deployable networks live in :mod:`dmo_ros.policy`).
- :mod:`.sapo` — :class:`SAPOConfig` (presets tiny / cpu / gpu), :func:`actor_objective`,
  :func:`td_lambda_targets`, :func:`alpha_loss`, :class:`Trajectory`, :class:`SAPOLearner`.
"""

from dmo_ros.dmo.critics import Critic, TwinCritics
from dmo_ros.dmo.decoupled import DecoupledRollout, decoupled_step, detach_state, map_state, rollout_decoupled
from dmo_ros.dmo.sapo import (
    PRESETS,
    SAPOConfig,
    SAPOLearner,
    Trajectory,
    actor_objective,
    alpha_loss,
    td_lambda_targets,
)

__all__ = [
    "PRESETS",
    "Critic",
    "DecoupledRollout",
    "SAPOConfig",
    "SAPOLearner",
    "Trajectory",
    "TwinCritics",
    "actor_objective",
    "alpha_loss",
    "decoupled_step",
    "detach_state",
    "map_state",
    "rollout_decoupled",
    "td_lambda_targets",
]
