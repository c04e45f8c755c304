"""The policy API: what the policy node, the stand-in evaluation and the trainers' checks all call.

    policy = load_policy("runs/demo/dmo")      # any method's run folder
    policy.reset()                             # at the start of every episode
    action = policy.act(frame)                 # frame (H, W, 3) uint8 at policy.image_size -> (A,) robot units

``act`` returns the *deterministic* action (the actor's mean), clamped to ``action_limit`` — the
largest |action| per component in the training data, so the policy never commands beyond what the
world model was trained on. Checkpoints are safetensors weights plus the run's ``config.json``:
loading a policy never runs code from the checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo_ros.local_model.model import LocalModel, local_model_from_state
from dmo_ros.local_model.rssm import RSSMState, features
from dmo_ros.policy.actor import SquashedGaussianActor
from dmo_ros.policy.base import (
    POLICY_KIND,
    NonFiniteActionError,
    Policy,
    PolicyError,
    RandomPolicy,
    check_frame,
    clamp_action,
    with_prefix,
    without_prefix,
)
from dmo_ros.policy.ppo_agent import ppo_policy_from_state


class LatentActorPolicy:
    """DMO-SAPO / No Diffusion at run time: the local model filters frames into RSSM states, the actor acts.

    The RSSM posterior of each new frame is taken from the prior of the previous state under the
    previous action (as during training: start states are posteriors of real frames), and the actor's
    deterministic action of that state's features is scaled to robot units. The previous action is the
    one actually executed when the caller reports it with :meth:`observe_action` (the policy node does:
    a clamped or safety-zeroed command), else the one proposed.
    """

    def __init__(self, local_model: LocalModel, actor: SquashedGaussianActor, action_limit: np.ndarray,
                 image_size: tuple[int, int], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.local_model = local_model.to(self.device).eval()
        self.actor = actor.to(self.device).eval()
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        self.image_size = tuple(image_size)
        self._limit = torch.as_tensor(self.action_limit, dtype=torch.float32, device=self.device)
        self.state: RSSMState | None = None
        self.previous_action = torch.zeros(1, len(self.action_limit), device=self.device)

    def reset(self) -> None:
        self.state = None
        self.previous_action.zero_()

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        pixels = torch.from_numpy(check_frame(frame, self.image_size).copy()).permute(2, 0, 1)[None].to(self.device)
        embed = self.local_model.encode(pixels)
        rssm = self.local_model.rssm
        previous = self.state if self.state is not None else rssm.initial(1, self.device)
        prior = rssm.prior_step(previous, self.previous_action, sample=False)
        self.state = rssm.posterior(prior, embed, sample=False)
        action = self.actor.deterministic(features(self.state)) * self._limit
        self.previous_action = action
        return clamp_action(action[0].cpu().numpy(), self.action_limit)

    def observe_action(self, action: np.ndarray) -> None:
        """The next prior steps from the executed action (e.g. zero after a safety stop), not the proposed one."""
        executed = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.device)
        self.previous_action = executed.reshape(1, -1).clone()


def policy_from_state(run_config: dict[str, Any], weights: dict[str, torch.Tensor],
                      device: torch.device | str = "cpu") -> Policy:
    """A policy from a run's ``config.json`` and its weights (``local.*`` + ``actor.*``, PPO's ``agent.*``, or the
    ACT network's own keys). A DMO / No Diffusion run trained with ``policy_ema`` also holds its averaged policy
    (``average.local.*`` + ``average.actor.*``): that one is the policy."""
    policy = run_config.get("policy")
    if run_config.get("kind") != POLICY_KIND or not isinstance(policy, dict):
        raise PolicyError(f"not a policy run (kind {run_config.get('kind')!r}); train one with dmo-train-policy")
    limit = np.asarray(policy["action_limit"], dtype=np.float64)
    image_size = tuple(int(v) for v in policy["image_size"])
    method = run_config.get("method")
    if method in ("dmo", "no_diffusion"):
        if any(key.startswith("average.") for key in weights):  # trained with policy_ema: deploy the average
            weights = without_prefix("average.", weights)
        local = local_model_from_state(policy["local_model"], without_prefix("local.", weights), device)
        actor = SquashedGaussianActor(int(policy["feature_size"]), len(limit), int(policy["actor_hidden"]),
                                      int(policy["actor_layers"]))
        actor.load_state_dict(without_prefix("actor.", weights))
        return LatentActorPolicy(local, actor, limit, image_size, device)
    if method == "ppo":
        return ppo_policy_from_state(policy, without_prefix("agent.", weights), limit, image_size, device)
    if method == "act":
        from dmo_ros.policy.act import act_policy_from_state

        return act_policy_from_state(run_config, weights, device)
    raise PolicyError(f"unknown policy method {method!r} (dmo, no_diffusion, ppo, act)")


def load_policy(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last") -> Policy:
    """The policy of a ``dmo-train-policy`` run folder (safetensors weights + JSON config: no code runs)."""
    from dmo_ros.training import CheckpointError, load_model_weights, read_run_config

    try:
        run_config = read_run_config(run_dir)
        if run_config.get("kind") != POLICY_KIND:
            raise PolicyError(f"{run_dir}: not a policy run (kind {run_config.get('kind')!r}); train one with "
                              "dmo-train-policy")
        weights = load_model_weights(run_dir, checkpoint)
    except CheckpointError as error:
        raise PolicyError(str(error)) from error
    try:
        return policy_from_state(run_config, weights, device)
    except (KeyError, RuntimeError) as error:  # missing keys / shape mismatches in a damaged run
        raise PolicyError(f"{run_dir}: the policy cannot be rebuilt from its checkpoint ({error})") from error


def load_run_local_model(run_dir: Path | str, device: torch.device | str = "cpu") -> LocalModel:
    """The local model of a ``dmo-train-local-model`` run, or of a DMO / No Diffusion policy run as its fine-tuning
    left it (weights + JSON config: no code runs). Raises :class:`PolicyError` for a policy run without one (PPO,
    ACT) and :class:`~dmo_ros.training.CheckpointError` for a folder that holds no readable run."""
    from dmo_ros.local_model.model import load_local_model
    from dmo_ros.training import read_run_config

    if read_run_config(run_dir).get("kind") != POLICY_KIND:
        return load_local_model(run_dir, device)
    policy = load_policy(run_dir, device)
    local = getattr(policy, "local_model", None)
    if not isinstance(local, LocalModel):
        raise PolicyError(f"{run_dir}: a {type(policy).__name__} has no local model")
    return local


@dataclass
class PolicyRun:
    """A loaded policy and what deploying it needs to know of its training data (``config.json["deployment"]``,
    written by ``dmo-train-policy``; runs from before it have none and get the defaults)."""

    policy: Policy
    """The policy, ready to act."""
    robot: str | None = None
    """The robot profile of the training data (pusht, go2); None when the run does not say."""
    rate_hz: float | None = None
    """Control rate of the training data (Hz)."""
    aspect: str = "crop"
    """How camera frames were fitted to the policy's size (the converter's ``--aspect``)."""
    camera_size: tuple[int, int] | None = None
    """(H, W) of the recorded raw camera images, when one size was recorded; a camera of another size is refused."""
    action: dict[str, Any] = field(default_factory=dict)
    """The action's message, fields, names, units, scale and semantics as the dataset stored them."""


def _camera_size(source_formats: Any) -> tuple[int, int] | None:
    sizes = {match.groups() for text in source_formats or [] if (match := re.match(r"(\d+)x(\d+) ", str(text)))}
    if len(sizes) != 1:
        return None  # compressed sources (no size in the format) or several sizes: no check
    width, height = next(iter(sizes))
    return (int(height), int(width))


def load_policy_run(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last") -> PolicyRun:
    """:func:`load_policy` plus the run's deployment metadata; :class:`PolicyError` for anything unusable (a
    missing run, a pickle payload instead of safetensors weights, a damaged checkpoint)."""
    from dmo_ros.training import CheckpointError, read_run_config

    policy = load_policy(run_dir, device, checkpoint)
    try:
        deployment = read_run_config(run_dir).get("deployment") or {}
    except CheckpointError as error:
        raise PolicyError(str(error)) from error
    image = deployment.get("image") or {}
    rate = deployment.get("rate_hz")
    return PolicyRun(policy=policy, robot=deployment.get("robot"), rate_hz=float(rate) if rate else None,
                     aspect=str(image.get("aspect") or "crop"), camera_size=_camera_size(image.get("source_formats")),
                     action=dict(deployment.get("action") or {}))


__all__ = ["POLICY_KIND", "LatentActorPolicy", "NonFiniteActionError", "Policy", "PolicyError", "PolicyRun",
           "RandomPolicy", "check_frame", "clamp_action", "load_policy", "load_policy_run", "policy_from_state",
           "with_prefix", "without_prefix"]
