"""Trained policies as plain objects: ``reset()`` then ``act(frame) -> action`` (no ROS, no simulator).

- :mod:`.api` — the :class:`Policy` protocol, :class:`LatentActorPolicy` (DMO-SAPO and No Diffusion:
  the local model's encoder and RSSM filter + the actor's mean action), :class:`RandomPolicy`,
  :func:`load_policy` (a run folder → a policy; safetensors + JSON, no code runs).
- :mod:`.evaluate` — success rate and mean max coverage on the simulated stand-in (evaluation only:
  it reads the simulator's ground truth, training never does); ``dmo-eval-policy``.
"""

from dmo_ros.policy.api import LatentActorPolicy, Policy, PolicyError, RandomPolicy, load_policy

__all__ = ["LatentActorPolicy", "Policy", "PolicyError", "RandomPolicy", "load_policy"]
