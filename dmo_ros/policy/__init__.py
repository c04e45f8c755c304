"""Trained policies as plain objects: ``reset()`` then ``act(frame) -> action`` (no ROS, no simulator).

The deployable layer: the trainers (:mod:`dmo_ros.dmo`) import the networks from here, never the reverse.

- :mod:`.base` — the :class:`Policy` protocol, :class:`PolicyError`, :class:`RandomPolicy`, the frame check
  and the action clamp.
- :mod:`.actor` — the squashed-Gaussian actor on latent features (DMO-SAPO, No Diffusion).
- :mod:`.ppo_agent` — the PPO agent (CNN on the frame) and :class:`PPOPolicy`.
- :mod:`.act` — the ACT baseline (CVAE + transformer action chunks, temporal ensembling) and :class:`ACTPolicy`;
  its trainer is :mod:`dmo_ros.baselines.act_train` (``dmo-train-act``).
- :mod:`.api` — :class:`LatentActorPolicy` (the local model's encoder and RSSM filter + the actor's mean action)
  and :func:`load_policy` (a run folder → a policy; safetensors + JSON, no code runs).
- :mod:`.controller` — what the policy node runs each control period: camera staleness, enable/e-stop,
  limits, NaN guard, inference watchdog, command streaming and latency statistics (no ROS).
- :mod:`.evaluate` — success rate and mean max coverage on the simulated stand-in (evaluation only:
  it reads the simulator's ground truth, training never does); ``dmo-eval-policy``.
- :mod:`.push_cube_eval` and :mod:`.trajectory_metrics` — the Go2's Push Cube evaluation (success, steps, the
  paper's Table II straightness and curvature, the cube out of view); ``dmo-eval-policy --robot go2``.
"""

from dmo_ros.policy.api import LatentActorPolicy, load_policy
from dmo_ros.policy.base import Policy, PolicyError, RandomPolicy

__all__ = ["LatentActorPolicy", "Policy", "PolicyError", "RandomPolicy", "load_policy"]
