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

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from dmo_ros.dmo.actor_critic import SquashedGaussianActor
from dmo_ros.local_model.model import LocalModel, local_model_from_state
from dmo_ros.local_model.rssm import RSSMState, features

POLICY_KIND = "policy"
"""``config.json`` ``kind`` of a policy run (every method)."""


class PolicyError(ValueError):
    """A run folder that does not hold a usable policy, or a frame it cannot act on."""


@runtime_checkable
class Policy(Protocol):
    """What every trained (or random) policy offers."""

    image_size: tuple[int, int]
    """(H, W) of the frames ``act`` takes (the dataset's image size)."""
    action_limit: np.ndarray
    """(A,) the largest |action| per component; actions are clamped to [-limit, limit]."""

    def reset(self) -> None:
        """Forget the episode's history (call before its first frame)."""

    def act(self, frame: np.ndarray) -> np.ndarray:
        """The action (A,) float64 in robot units for the newest frame (H, W, 3) uint8."""


def check_frame(frame: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A frame as the policies take it, or :class:`PolicyError` saying what is wrong with it."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.shape != (*image_size, 3):
        raise PolicyError(f"a policy frame is ({image_size[0]}, {image_size[1]}, 3) uint8 RGB, got {frame.shape} "
                          f"{frame.dtype}; resize it as the dataset converter does (dmo_ros.dataset.images.resize)")
    return frame


def clamp_action(action: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Non-finite components become 0 (a stop), the rest are clamped to [-limit, limit]."""
    action = np.where(np.isfinite(action), action, 0.0)
    return np.clip(action, -limit, limit).astype(np.float64)


class RandomPolicy:
    """Uniform random actions in [-limit, limit]: the floor every trained policy is compared with."""

    def __init__(self, action_limit: np.ndarray, image_size: tuple[int, int], seed: int = 0) -> None:
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        self.image_size = tuple(image_size)
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray) -> np.ndarray:
        check_frame(frame, self.image_size)
        return self.rng.uniform(-self.action_limit, self.action_limit)


class LatentActorPolicy:
    """DMO-SAPO / No Diffusion at run time: the local model filters frames into RSSM states, the actor acts.

    The RSSM posterior of each new frame is taken from the prior of the previous state under the
    previous action (as during training: start states are posteriors of real frames), and the
    actor's deterministic action of that state's features is scaled to robot units.
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


def with_prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A module's state dict under ``prefix`` (how a policy run stores several modules in one safetensors file)."""
    return {prefix + key: value for key, value in state.items()}


def without_prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, with the prefix removed (the inverse of :func:`with_prefix`)."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def policy_from_state(run_config: dict[str, Any], weights: dict[str, torch.Tensor],
                      device: torch.device | str = "cpu") -> Policy:
    """A policy from a run's ``config.json`` and its weights (``local.*`` + ``actor.*``, or PPO's ``agent.*``)."""
    policy = run_config.get("policy")
    if run_config.get("kind") != POLICY_KIND or not isinstance(policy, dict):
        raise PolicyError(f"not a policy run (kind {run_config.get('kind')!r}); train one with dmo-train-policy")
    limit = np.asarray(policy["action_limit"], dtype=np.float64)
    image_size = tuple(int(v) for v in policy["image_size"])
    method = run_config.get("method")
    if method in ("dmo", "no_diffusion"):
        local = local_model_from_state(policy["local_model"], without_prefix("local.", weights), device)
        actor = SquashedGaussianActor(int(policy["feature_size"]), len(limit), int(policy["actor_hidden"]),
                                      int(policy["actor_layers"]))
        actor.load_state_dict(without_prefix("actor.", weights))
        return LatentActorPolicy(local, actor, limit, image_size, device)
    if method == "ppo":
        from dmo_ros.dmo.ppo import ppo_policy_from_state

        return ppo_policy_from_state(policy, without_prefix("agent.", weights), limit, image_size, device)
    raise PolicyError(f"unknown policy method {method!r} (dmo, no_diffusion, ppo)")


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


__all__ = ["POLICY_KIND", "LatentActorPolicy", "Policy", "PolicyError", "RandomPolicy", "check_frame",
           "clamp_action", "load_policy", "policy_from_state", "with_prefix", "without_prefix"]
