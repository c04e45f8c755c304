"""Imagined rollouts to watch: a real start window, actions from a source, the world model's frames, flags.

The core of the dream node and of ``dmo-dream-strip`` (no ROS here)::

    catalog = StartCatalog("datasets/pusht", context=4, horizon=32)       # real start windows
    dream = Dreamer(load_world_model("runs/wm"), DreamConfig(horizon=32, seeds=4), reward=goal_reward)
    dream.start(catalog.start(index=0, count=2), RecordedActions())        # or PolicyActions / ExternalActions
    while not dream.finished:
        step = dream.step()   # imagined frames, the real ones beside them, actions, rewards, spread, off-data

Time convention: that of :mod:`dmo_ros.world_model.imagination`. A start holds the L context frames
``f_{t-L+1} .. f_t`` and the actions between them; step k applies action ``a_{t+k}`` and imagines frame
``f_{t+k+1}``, shown beside the recorded frame ``f_{t+k+1}`` when the start came from a recording.

**Hallucination flag.** With ``seeds`` = K > 1 every next frame is sampled K times from K different
noises (one batched call); the rollout continues from the first sample. Where the model has seen data
like the context, its deterministic sampler lands on nearly the same frame from any noise; where it
has not, the samples disagree. The per-pixel variance over the K samples (pixels in [0, 1], averaged
over the colour channels) is summarised per frame as its mean (``spread``), and a step whose spread
exceeds ``threshold`` is *off data*: marked, and with ``end_off_data`` the rollout ends there.
``dmo-dream-flags`` measures how the flag grows with the horizon and how it ranks the real error.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import WindowDataset, collate
from dmo_ros.world_model.denoiser import Denoiser, to_uint8
from dmo_ros.world_model.imagination import WorldModelEnv
from dmo_ros.world_model_v4.model import WorldModelV4

SPREAD_SUMMARIES = ("mean", "p99")
"""How the per-pixel variance map of a frame is summarised: its mean, or its 99th percentile (local blobs)."""


@dataclass
class DreamConfig:
    """How rollouts are imagined (the dream node's parameters of the same names)."""

    horizon: int = 32
    """Imagined steps per rollout (32 = 6.4 s at 5 Hz)."""

    seeds: int = 4
    """K, samples of every next frame from different noise for the hallucination flag; 1 turns the flag off
    (spread 0) and costs K times less."""

    threshold: float = 0.0
    """Spread above which a step is off data (a flagged step); 0: never flagged."""

    end_off_data: bool = False
    """End a rollout at its first flagged step (else the step is only marked)."""

    summary: str = "mean"
    """Summary of the per-pixel variance map: mean (default) or p99 (its 99th percentile)."""

    sampling_steps: int = 0
    """Denoising steps per frame; 0: the model's own (its config's ``sampler_steps``; DIAMOND: 3)."""

    seed: int = 0
    """Seed of the sampler's noise: the same start, actions and seed give the same rollout."""

    bf16: bool = False
    """Sample the DIAMOND world model under bfloat16 autocast (:attr:`SamplerConfig.bf16`: ~2.5x faster on a CPU
    with AMX, frames within a uint8 level; slow on a CPU without bfloat16 units). Not for a DreamerV4-style model."""

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1 step, got {self.horizon}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1 (1: no hallucination flag), got {self.seeds}")
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ValueError(f"threshold must be >= 0 (0: never flag), got {self.threshold}")
        if self.summary not in SPREAD_SUMMARIES:
            raise ValueError(f"summary must be one of {', '.join(SPREAD_SUMMARIES)}, got {self.summary!r}")
        if self.sampling_steps < 0:
            raise ValueError(f"sampling_steps must be >= 1 (0: the model's own), got {self.sampling_steps}")


def spread_map(samples: Tensor) -> Tensor:
    """(B, K, 3, H, W) samples in [-1, 1] -> (B, H, W): the per-pixel variance over K, pixels in [0, 1],
    averaged over the colour channels (0 for K = 1)."""
    if samples.ndim != 5:
        raise ValueError(f"samples must be (B, K, C, H, W), got {tuple(samples.shape)}")
    unit = (samples.float() + 1) / 2
    return unit.var(dim=1, correction=0).mean(dim=1)


def summarise_spread(variance: Tensor, summary: str = "mean") -> Tensor:
    """(B, H, W) per-pixel variance -> (B,) one number per frame (``mean`` or ``p99``)."""
    flat = variance.flatten(1)
    if summary == "mean":
        return flat.mean(1)
    if summary == "p99":
        return flat.quantile(0.99, dim=1)
    raise ValueError(f"summary must be one of {', '.join(SPREAD_SUMMARIES)}, got {summary!r}")


# -- where rollouts start --------------------------------------------------------------------------------------


@dataclass
class DreamStart:
    """B real start windows: the context, and, when they come from a recording, what really happened next."""

    frames: Tensor
    """(B, L, 3, H, W) uint8: the context frames, oldest first."""
    actions: Tensor
    """(B, L - 1, A) float32: the actions between the context frames."""
    future_frames: Tensor | None = None
    """(B, T, 3, H, W) uint8: the recorded frames after the context (frame k follows step k), or None (live)."""
    future_actions: Tensor | None = None
    """(B, T, A): the recorded actions from the last context frame on (step k's action), or None."""
    first_frames: Tensor | None = None
    """(B, 3, H, W) uint8: the first frame of each window's recorded episode (the reward's start), or None."""
    labels: list[str] = field(default_factory=list)
    """What each start is, for logs and captions (``episode 3, sample 12``)."""

    def __post_init__(self) -> None:
        if self.frames.ndim != 5 or self.frames.dtype != torch.uint8:
            raise ValueError(f"start frames must be (B, L, 3, H, W) uint8, got {tuple(self.frames.shape)} "
                             f"{self.frames.dtype}")
        b, length = self.frames.shape[:2]
        if self.actions.ndim != 3 or self.actions.shape[:2] != (b, length - 1):
            raise ValueError(f"start actions must be ({b}, {length - 1}, A), got {tuple(self.actions.shape)}")
        if (self.future_frames is None) != (self.future_actions is None):
            raise ValueError("a recorded start gives both its future frames and its future actions")
        if self.future_frames is not None and self.future_frames.shape[1] != self.future_actions.shape[1]:
            raise ValueError("future frames and future actions must cover the same steps")
        if not self.labels:
            self.labels = [f"start {i}" for i in range(b)]

    @property
    def batch_size(self) -> int:
        return self.frames.shape[0]

    @property
    def recorded_steps(self) -> int:
        """Steps for which the recording says what happened (0 for a live start)."""
        return 0 if self.future_frames is None else self.future_frames.shape[1]

    @classmethod
    def from_live(cls, frames: np.ndarray | Tensor, actions: np.ndarray | Tensor | None = None,
                  action_size: int | None = None) -> DreamStart:
        """One start from the last L frames (L, H, W, 3) uint8 received live, and the L - 1 actions between them
        ((L - 1, A); None: zero actions of ``action_size`` components)."""
        frames = torch.as_tensor(np.asarray(frames))
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"live frames must be (L, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
        if actions is None:
            if action_size is None:
                raise ValueError("give the actions between the live frames or the action size (zero actions)")
            actions = torch.zeros(frames.shape[0] - 1, action_size)
        actions = torch.as_tensor(np.asarray(actions), dtype=torch.float32)
        return cls(frames.permute(0, 3, 1, 2)[None].contiguous(), actions[None], labels=["live"])


class StartCatalog:
    """Start windows from a dataset: every run of L context + ``horizon`` recorded samples of one episode.

    The validation split by default (what the model has not trained on); a dataset without a long enough
    validation episode falls back to all episodes (and says so in ``split``). Windows are addressed by a
    flat ``index`` (cycled), or by ``episode`` and ``offset`` within it (:meth:`find`).
    """

    def __init__(self, folder: Path | str, context: int, horizon: int, split: str = "val") -> None:
        self.folder = Path(folder)
        self.windows = WindowDataset(self.folder, context=context, horizon=horizon, split=split)
        if len(self.windows) == 0 and split != "all":
            self.windows = WindowDataset(self.folder, context=context, horizon=horizon, split="all")
        if len(self.windows) == 0:
            raise DatasetError(f"{self.folder}: no episode holds {context} context + {horizon} recorded samples; "
                               "lower the horizon or record longer episodes")
        self.context, self.horizon = int(context), int(horizon)
        self.split = self.windows.split
        self._first: dict[int, int] = {int(ep["index"]): int(ep["start"]) for ep in self.windows.episodes}

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def episodes(self) -> list[int]:
        """Indices of the episodes that hold at least one window."""
        return sorted({int(e) for e in self.windows.episode_of})

    def find(self, episode: int, offset: int = 0) -> int:
        """The flat index of the window starting ``offset`` samples into ``episode`` (clamped to its last)."""
        mine = np.flatnonzero(self.windows.episode_of == episode)
        if not len(mine):
            raise ValueError(f"episode {episode} has no window of {self.context}+{self.horizon} samples in "
                             f"{self.folder} ({self.split}); episodes with one: {self.episodes[:20]}")
        return int(mine[min(max(offset, 0), len(mine) - 1)])

    def next_episode(self, index: int, step: int = 1) -> int:
        """The flat index of the first window of the episode ``step`` episodes after the one of ``index``."""
        episodes = self.episodes
        current = episodes.index(int(self.windows.episode_of[index % len(self)]))
        return self.find(episodes[(current + step) % len(episodes)])

    def start(self, index: int = 0, count: int = 1, stride: int | None = None) -> DreamStart:
        """``count`` windows from ``index`` on, ``stride`` windows apart (default: one horizon, so the rollouts
        of one start show successive stretches of the episode), cycling through the catalog."""
        stride = self.horizon if stride is None else stride
        picks = [(index + k * stride) % len(self) for k in range(count)]
        window = collate([self.windows[i] for i in picks])
        length = self.context
        firsts = torch.stack([
            torch.from_numpy(np.array(self.windows.arrays["frames"][self._first[int(e)]])).permute(2, 0, 1)
            for e in window.episode.tolist()
        ])
        labels = [f"episode {int(e)}, sample {int(s) - self._first[int(e)]}"
                  for e, s in zip(window.episode.tolist(), window.start.tolist(), strict=True)]
        return DreamStart(frames=window.context_frames.contiguous(),
                          actions=window.actions[:, : length - 1].contiguous(),
                          future_frames=window.future_frames.contiguous(),
                          future_actions=window.actions[:, length - 1 : length - 1 + self.horizon].contiguous(),
                          first_frames=firsts, labels=labels)


# -- where actions come from -----------------------------------------------------------------------------------


class ActionSource(Protocol):
    """Gives the B rollouts their actions, one step at a time."""

    name: str
    """Shown in logs and captions (policy, recorded, teleop)."""

    def reset(self, start: DreamStart) -> None:
        """A new start: forget the last rollouts (a policy filters the context frames here)."""

    def actions(self, step: int, observation: Tensor) -> Tensor:
        """(B, A) actions in robot units for step ``step`` at the observations (B, 3, H, W) uint8."""


class RecordedActions:
    """Open-loop replay of the recorded actions (the imagined frames can be compared with the real ones)."""

    name = "recorded"

    def __init__(self) -> None:
        self._actions: Tensor | None = None

    def reset(self, start: DreamStart) -> None:
        if start.future_actions is None:
            raise ValueError("recorded actions need a start from a recording (a dataset window), not a live one")
        self._actions = start.future_actions.float()

    def actions(self, step: int, observation: Tensor) -> Tensor:
        if self._actions is None:
            raise RuntimeError("reset the action source with a start first")
        if step >= self._actions.shape[1]:
            raise IndexError(f"the recording holds {self._actions.shape[1]} actions after the start, step {step} "
                             "asked for one more")
        return self._actions[:, step]


class PolicyActions:
    """A trained policy (the :class:`dmo_ros.policy.Policy` API) drives every rollout; one copy per rollout.

    On :meth:`reset` each copy is reset and shown the context frames with the recorded actions between them, so a
    recurrent policy starts from the same filtered state as on the robot after those frames. ``value`` (optional)
    maps a policy copy to its critic's value of the current state (None: no value, NaN).
    """

    name = "policy"

    def __init__(self, policy, value: Callable[[object], float] | None = None) -> None:
        self.policy = policy
        self.value_of = value
        self.copies: list = []

    def reset(self, start: DreamStart) -> None:
        size = tuple(self.policy.image_size)
        if tuple(start.frames.shape[-2:]) != size:
            raise ValueError(f"the policy takes {size[1]}x{size[0]} frames, the start windows are "
                             f"{start.frames.shape[-1]}x{start.frames.shape[-2]}")
        self.copies = [copy.deepcopy(self.policy) for _ in range(start.batch_size)]
        frames = start.frames.permute(0, 1, 3, 4, 2).numpy()
        for b, policy in enumerate(self.copies):
            policy.reset()
            for i in range(start.frames.shape[1] - 1):
                policy.act(frames[b, i])
                policy.observe_action(start.actions[b, i].numpy())

    def actions(self, step: int, observation: Tensor) -> Tensor:
        frames = observation.permute(0, 2, 3, 1).cpu().numpy()
        return torch.as_tensor(np.stack([policy.act(frames[b]) for b, policy in enumerate(self.copies)]),
                               dtype=torch.float32)

    def values(self) -> Tensor | None:
        """(B,) the critic's values of the copies' current states, or None without a value function."""
        if self.value_of is None or not self.copies:
            return None
        return torch.tensor([float(self.value_of(policy)) for policy in self.copies])


class ExternalActions:
    """Actions from outside (a teleop topic): the latest one given to :meth:`set`, the same for every rollout.

    An action older than ``timeout`` seconds (or none yet) is zero, as the robot would stop.
    """

    name = "teleop"

    def __init__(self, action_size: int, timeout: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.action_size = int(action_size)
        self.timeout = float(timeout)
        self.clock = clock
        self._latest = torch.zeros(self.action_size)
        self._stamp = -math.inf
        self._batch = 1

    def set(self, action: Sequence[float] | np.ndarray) -> None:
        action = torch.as_tensor(np.asarray(action, dtype=np.float32))
        if action.shape != (self.action_size,) or not torch.isfinite(action).all():
            raise ValueError(f"an external action has {self.action_size} finite components, got {action.tolist()}")
        self._latest, self._stamp = action, self.clock()

    def reset(self, start: DreamStart) -> None:
        self._batch = start.batch_size

    def current(self) -> Tensor:
        """(A,) the action in force now: the latest one, or zero once it is older than the timeout."""
        fresh = self.clock() - self._stamp <= self.timeout
        return self._latest.clone() if fresh else torch.zeros(self.action_size)

    def actions(self, step: int, observation: Tensor) -> Tensor:
        return self.current().expand(self._batch, -1).clone()


# -- the rollouts ----------------------------------------------------------------------------------------------


@dataclass
class DreamStep:
    """One imagined step of B rollouts (everything on the CPU)."""

    step: int
    """Step index within the rollouts, from 0 (frame ``step`` is the result of action ``step``)."""
    imagined: Tensor
    """(B, 3, H, W) uint8: the imagined frames."""
    real: Tensor | None
    """(B, 3, H, W) uint8: the recorded frames at the same step (replaying a recording), else None."""
    actions: Tensor
    """(B, A) float32: the actions that led to the frames, robot units."""
    rewards: Tensor
    """(B,) the reward model's reward of the imagined frames (NaN without a reward model)."""
    values: Tensor
    """(B,) the critic's value of the state the action was taken in (NaN without one)."""
    spread: Tensor
    """(B,) the hallucination score: the summarised per-pixel variance over the K seeds (0 when K = 1)."""
    spread_map: Tensor
    """(B, H, W) the per-pixel variance over the K seeds (pixels in [0, 1])."""
    off_data: Tensor
    """(B,) bool: spread above the threshold."""
    active: Tensor
    """(B,) bool: the rollout had not ended before this step (ended ones keep stepping, unpublished)."""


class Dreamer:
    """B imagined rollouts from a start, stepped together; see the module doc.

    Args:
        world_model: the trained diffusion world model, or a DreamerV4-style one
            (:class:`dmo_ros.world_model_v4.WorldModelV4`, rewarded by its reward token).
        config: horizon, seeds, threshold.
        reward: a callable frames (B, 3, H, W) uint8 -> rewards (B,), with ``set_start(frames)`` like
            :class:`dmo_ros.reward.GoalReward` (it is given each episode's first frame), or None.
        device: where the world model runs (default: its device).
    """

    def __init__(self, world_model: Denoiser | WorldModelV4, config: DreamConfig | None = None, reward=None,
                 device: torch.device | str | None = None) -> None:
        self.config = config or DreamConfig()
        self.world_model = world_model.eval()
        device = torch.device(device) if device is not None else world_model.device
        self.generator = torch.Generator(device=device).manual_seed(self.config.seed)
        self.reward = reward
        self.token_rewards = hasattr(world_model, "dynamics")
        """A DreamerV4-style model (:mod:`dmo_ros.world_model_v4`): its reward token rewards the frames when no
        reward model is given, and rollouts start from its L_init real frames prefilled into the KV cache."""
        if self.token_rewards:
            from dmo_ros.world_model_v4.imagination import WorldModelV4Env

            if self.config.bf16:
                raise ValueError("bf16 samples the DIAMOND world model; a DreamerV4-style model samples in float32")

            self.env = WorldModelV4Env(world_model, self.config.sampling_steps or None, device=device,
                                       generator=self.generator)
            self.context = world_model.config.l_init
        else:
            sampler = world_model.sampler_with(bf16=self.config.bf16)  # the model's change threshold kept
            if self.config.sampling_steps:
                sampler = replace(sampler, num_steps=self.config.sampling_steps)
            self.env = WorldModelEnv(world_model, sampler, device=device,
                                     generator=self.generator)
            self.context = world_model.config.context
        self.start_windows: DreamStart | None = None
        self.source: ActionSource | None = None
        self.steps = 0
        """Steps imagined since the last start."""
        self.active = torch.zeros(0, dtype=torch.bool)
        self.rollouts_started = 0
        """Starts so far (the node's rollout counter)."""

    @property
    def finished(self) -> bool:
        """Every rollout has ended (horizon reached, recording exhausted, or off data with ``end_off_data``)."""
        return self.start_windows is None or not bool(self.active.any()) or self.steps >= self.limit

    @property
    def limit(self) -> int:
        """Steps of the current rollouts: the horizon, or fewer when replaying a shorter recording."""
        if self.start_windows is not None and isinstance(self.source, RecordedActions):
            return min(self.config.horizon, self.start_windows.recorded_steps)
        return self.config.horizon

    def start(self, start: DreamStart, source: ActionSource) -> None:
        """Begin B rollouts from ``start`` with actions from ``source`` (the step counter restarts at 0)."""
        cfg = self.world_model.config
        if start.frames.shape[1] != self.context:
            raise ValueError(f"a start holds {start.frames.shape[1]} frames, the world model's context is "
                             f"{self.context}")
        if tuple(start.frames.shape[-2:]) != (cfg.image_size, cfg.image_size):
            raise ValueError(f"start frames are {start.frames.shape[-1]}x{start.frames.shape[-2]}, the world model "
                             f"takes {cfg.image_size}x{cfg.image_size}")
        if start.actions.shape[-1] != cfg.action_size:
            raise ValueError(f"start actions have {start.actions.shape[-1]} components, the world model "
                             f"{cfg.action_size}")
        source.reset(start)
        self.env.reset(start.frames, start.actions)
        if self.reward is not None and hasattr(self.reward, "set_start"):
            first = start.first_frames if start.first_frames is not None else start.frames[:, -1]
            self.reward.set_start(first)
        self.start_windows, self.source = start, source
        self.steps = 0
        self.active = torch.ones(start.batch_size, dtype=torch.bool)
        self.rollouts_started += 1

    def restart(self) -> None:
        """The same start and action source again, from step 0 (with fresh noise: the sampler's seed moves on)."""
        if self.start_windows is None or self.source is None:
            raise RuntimeError("nothing to restart: start() first")
        self.start(self.start_windows, self.source)

    @torch.no_grad()
    def step(self) -> DreamStep:
        """Imagine the next step of every rollout."""
        if self.start_windows is None or self.source is None:
            raise RuntimeError("start() the rollouts before stepping them")
        if self.steps >= self.limit:
            raise RuntimeError(f"the rollouts ended at step {self.limit}; restart() or start() new ones")
        start, cfg, k = self.start_windows, self.config, self.steps
        observation = to_uint8(self.env.observation).cpu()
        actions = self.source.actions(k, observation).float().cpu()
        values = self.source.values() if hasattr(self.source, "values") else None
        samples = self.env.step_samples(actions, cfg.seeds)  # (B, K, 3, H, W) in [-1, 1]
        variance = spread_map(samples).cpu()
        spread = summarise_spread(variance, cfg.summary)
        imagined = to_uint8(samples[:, 0]).cpu()
        rewards = (torch.as_tensor(self.reward(imagined)).float().cpu().reshape(-1) if self.reward is not None
                   else torch.full((start.batch_size,), math.nan))
        if self.reward is None and self.token_rewards:
            rewards = self.env.rewards.float().cpu()
        off_data = spread > cfg.threshold if cfg.threshold > 0 else torch.zeros(start.batch_size, dtype=torch.bool)
        active = self.active.clone()
        if cfg.end_off_data:
            self.active &= ~off_data
        real = start.future_frames[:, k] if k < start.recorded_steps else None
        self.steps += 1
        return DreamStep(step=k, imagined=imagined, real=real, actions=actions, rewards=rewards,
                         values=values.float() if values is not None else torch.full((start.batch_size,), math.nan),
                         spread=spread, spread_map=variance, off_data=off_data, active=active)

    def rollout(self) -> list[DreamStep]:
        """Every remaining step of the current rollouts."""
        steps = []
        while not self.finished:
            steps.append(self.step())
        return steps


def load_policy_value(run_dir: Path | str, device: torch.device | str = "cpu") -> Callable[[object], float] | None:
    """The critic of a DMO-SAPO / No Diffusion policy run as ``value(policy) -> V(state)`` for
    :class:`PolicyActions` (the policy's filtered RSSM state's features), or None for runs without one (PPO).

    Reads the run's ``config.json`` and safetensors weights (no code runs)."""
    from dmo_ros.dmo.critics import TwinCritics
    from dmo_ros.local_model.rssm import features
    from dmo_ros.policy.base import without_prefix
    from dmo_ros.training import load_model_weights, read_run_config

    run_config = read_run_config(run_dir)
    if run_config.get("method") not in ("dmo", "no_diffusion"):
        return None
    sapo = (run_config.get("configs") or {}).get("sapo") or {}
    weights = without_prefix("critics.", load_model_weights(run_dir))
    if not weights:
        return None
    critics = TwinCritics(int(run_config["policy"]["feature_size"]), int(sapo.get("critic_hidden", 256)),
                          int(sapo.get("critic_layers", 2)))
    critics.load_state_dict(weights)
    critics.to(device).eval()

    @torch.no_grad()
    def value(policy) -> float:
        state = getattr(policy, "state", None)
        return math.nan if state is None else float(critics(features(state)).reshape(-1)[0])

    return value


__all__ = ["SPREAD_SUMMARIES", "ActionSource", "DreamConfig", "DreamStart", "DreamStep", "Dreamer",
           "ExternalActions", "PolicyActions", "RecordedActions", "StartCatalog", "load_policy_value",
           "spread_map", "summarise_spread"]
