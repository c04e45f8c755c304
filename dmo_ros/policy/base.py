"""What every policy shares: the :class:`Policy` protocol, its error, frame check, action clamp, and
the random floor. The networks (:mod:`.actor`, :mod:`.ppo_agent`) and the loader (:mod:`.api`) build on it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

POLICY_KIND = "policy"
"""``config.json`` ``kind`` of a policy run (every method)."""


class PolicyError(ValueError):
    """A run folder that does not hold a usable policy, or a frame it cannot act on."""


class NonFiniteActionError(PolicyError):
    """The policy's network produced NaN or infinity (damaged weights or an out-of-range input): no action."""


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
        """The action (A,) float64 in robot units for the newest frame (H, W, 3) uint8.

        Raises :class:`PolicyError` for a frame of the wrong size or type, :class:`NonFiniteActionError`
        when the network's output is not finite."""

    def observe_action(self, action: np.ndarray) -> None:
        """The action (A,) actually executed after the last ``act`` (clamped, or zeroed by a safety stop):
        a recurrent policy filters its next state with it instead of with the action it proposed."""


def check_frame(frame: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A frame as the policies take it, or :class:`PolicyError` saying what is wrong with it."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.shape != (*image_size, 3):
        raise PolicyError(f"a policy frame is ({image_size[0]}, {image_size[1]}, 3) uint8 RGB, got {frame.shape} "
                          f"{frame.dtype}; resize it as the dataset converter does (dmo_ros.dataset.images.resize)")
    return frame


def clamp_action(action: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``action`` clamped to [-limit, limit] as float64; :class:`NonFiniteActionError` if any component is NaN/inf
    (never silently turned into a command)."""
    action = np.asarray(action, dtype=np.float64)
    if not np.isfinite(action).all():
        raise NonFiniteActionError(f"the policy produced a non-finite action {action.tolist()}")
    return np.clip(action, -limit, limit)


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

    def observe_action(self, action: np.ndarray) -> None:
        pass


def with_prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A module's state dict under ``prefix`` (how a policy run stores several modules in one safetensors file)."""
    return {prefix + key: value for key, value in state.items()}


def without_prefix(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, with the prefix removed (the inverse of :func:`with_prefix`)."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


__all__ = ["POLICY_KIND", "NonFiniteActionError", "Policy", "PolicyError", "RandomPolicy", "check_frame",
           "clamp_action", "with_prefix", "without_prefix"]
