"""DMO-SAPO's algorithmic core on latent feature vectors (no images, no ROS).

- :mod:`.decoupled` — :func:`decoupled_step` (forward model's values, local model's gradients),
  :func:`rollout_decoupled`, :class:`DecoupledRollout`, :func:`map_state`, :func:`detach_state`.
- :mod:`.actor_critic` — :class:`SquashedGaussianActor`, :class:`SquashedGaussian`, :class:`Critic`,
  :class:`TwinCritics`.
- :mod:`.sapo` — :class:`SAPOConfig` (presets tiny / cpu / gpu), :func:`actor_objective`,
  :func:`td_lambda_targets`, :func:`alpha_loss`, :class:`Trajectory`, :class:`SAPOLearner`.
"""

from dmo_ros.dmo.actor_critic import Critic, SquashedGaussian, SquashedGaussianActor, TwinCritics
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
    "SquashedGaussian",
    "SquashedGaussianActor",
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
