"""The local model: image encoder + RSSM + reward head (+ decoder), its sequence batches and data set.

:class:`LocalModel` is trained like every component (``forward(batch) -> (loss, logs)``) on
:class:`SequenceBatch` es of frames, actions and reward labels (the global reward model's
rewards of the frames, attached by :class:`SequenceDataset`). The loss is DreamerV3's world
model loss without the continue head: balanced KL with free bits, two-hot reward cross-entropy
on the posterior features, image reconstruction from the posterior features.

What DMO needs from it is *single-step* accuracy: the prior one step ahead should land where
the posterior of the real next frame is. The logs measure exactly that, over frames 1 .. T - 1
of each sequence (the prior of frame t + 1 made from the posterior of frame t and action t):

- ``next_latent_error``: fraction of the S categoricals whose most likely class under the prior
  differs from the posterior's (0 = the prediction picks the same code everywhere); with a Gaussian latent the
  mean |difference| of the means in units of the posterior's standard deviations
  (:func:`~dmo_ros.local_model.rssm.latent_mode_error`);
- ``next_latent_kl``: KL(posterior || prior) in nats, summed over the categoricals (or Gaussian dimensions);
- ``reward_error``: mean |reward decoded from the prior's features - label|;
- ``next_image_mse``: per-pixel squared error of the frame decoded from the prior's features
  (in [-1, 1] units; with a decoder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from dmo_ros.dataset.format import DatasetError
from dmo_ros.dataset.loaders import WindowDataset
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.encoder import ImageDecoder, ImageEncoder, to_model_images
from dmo_ros.local_model.heads import RewardHead, symlog
from dmo_ros.local_model.rssm import RSSM, RSSMState, features, kl_loss, latent_kl, latent_mode_error, latent_sample

SEQUENCE_WINDOWS = ("all", "play", "demonstrations")
"""Which training sequences :class:`SequenceDataset` keeps, by the operator's intent label."""

# -- batches ---------------------------------------------------------------------------------


@dataclass
class SequenceBatch:
    """T consecutive samples of one episode with reward labels (or a batch of them, leading dim B).

    Time alignment as in :class:`dmo_ros.dataset.loaders.Window`: ``actions[t]`` acts between
    frame ``t`` and frame ``t + 1``; ``rewards[t]`` is the reward *of frame t* (of the state
    reached), so the prior that predicts frame ``t + 1`` should also predict ``rewards[t + 1]``.
    """

    frames: torch.Tensor
    """(B, T, 3, H, W) uint8 RGB, channels first."""
    actions: torch.Tensor
    """(B, T, A) float32, in the robot's units."""
    rewards: torch.Tensor
    """(B, T) float32: the reward label of each frame."""

    @property
    def length(self) -> int:
        """T, samples per sequence."""
        return self.actions.shape[-2]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                for f in fields(self)})

    def pin_memory(self) -> SequenceBatch:
        """Page-locked copy (the DataLoader calls this when ``pin_memory=True``)."""
        return replace(self, **{f.name: getattr(self, f.name).pin_memory() for f in fields(self)})

    @classmethod
    def collate(cls, items: Sequence[SequenceBatch]) -> SequenceBatch:
        """Stack items into one batch with a leading batch dimension."""
        if not items:
            raise ValueError("cannot collate an empty list")
        return cls(**{f.name: torch.stack([getattr(item, f.name) for item in items]) for f in fields(cls)})


class SequenceDataset(Dataset):
    """Every run of ``length`` consecutive samples inside one episode of ``folders``, with reward labels.

    ``rewards`` maps each folder (as given, or its string) to an (N,) array: the reward of every
    sample of that dataset, indexed by dataset sample index (all splits), e.g. from
    :func:`dmo_ros.local_model.train.label_rewards`.

    ``windows`` selects sequences by the operator's intent label (:data:`SEQUENCE_WINDOWS`): "all", "play" (every
    sample intent off) or "demonstrations" (every sample intent on): to learn, or to measure, what each part of a
    recording teaches the dynamics (docs/ladder.md, "The imagined T follows every command": on push_t, play alone
    did not stop the imagined T from moving without contact).
    """

    def __init__(self, folders: Sequence[Path | str], length: int, split: str,
                 rewards: Mapping[Path | str, np.ndarray], windows: str = "all") -> None:
        if length < 2:
            raise ValueError(f"sequence length must be at least 2 (a one-step prediction needs two frames), "
                             f"got {length}")
        if windows not in SEQUENCE_WINDOWS:
            raise ValueError(f"windows must be one of {', '.join(SEQUENCE_WINDOWS)}, got {windows!r}")
        labels = {str(Path(folder)): np.asarray(values, dtype=np.float32) for folder, values in rewards.items()}
        self.length = int(length)
        self.windows = windows
        self.parts: list[tuple[WindowDataset, np.ndarray, np.ndarray]] = []
        for folder in folders:
            sequences = WindowDataset(folder, context=1, horizon=self.length - 1, split=split)
            key = str(Path(folder))
            if key not in labels:
                raise DatasetError(f"{folder}: no reward labels given for this dataset")
            samples = int(sequences.meta.get("samples", 0)) or len(sequences.arrays["frames"])
            if labels[key].shape != (samples,) or not np.isfinite(labels[key]).all():
                raise DatasetError(f"{folder}: reward labels of shape {labels[key].shape} (finite: "
                                   f"{bool(np.isfinite(labels[key]).all())}) for {samples} samples; relabel")
            kept = np.arange(len(sequences))
            if self.windows != "all":
                intent = np.asarray(sequences.arrays["intent"], dtype=bool)
                spans = intent[np.asarray(sequences.starts, dtype=np.int64)[:, None] + np.arange(self.length)]
                kept = kept[~spans.any(1)] if self.windows == "play" else kept[spans.all(1)]
            self.parts.append((sequences, labels[key], kept))
        self.offsets = np.cumsum([0] + [len(kept) for _, _, kept in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> SequenceBatch:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} sequences")
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        windows, labels, kept = self.parts[part]
        window = windows[int(kept[index - int(self.offsets[part])])]
        start = int(window.start)
        return SequenceBatch(frames=window.frames, actions=window.actions,
                             rewards=torch.from_numpy(labels[start : start + self.length].copy()))

    def sequence_rewards(self) -> np.ndarray:
        """(len,) float32: the largest reward label of each sequence, in index order (no frame is read)."""
        steps = np.arange(self.length)
        return np.concatenate([labels[np.asarray(windows.starts)[kept][:, None] + steps].max(1) if len(kept) else
                               np.zeros(0, np.float32) for windows, labels, kept in self.parts]).astype(np.float32)

    def __repr__(self) -> str:
        chosen = "" if self.windows == "all" else f" ({self.windows})"
        return f"SequenceDataset({len(self.parts)} dataset(s): {len(self)} sequences of {self.length}{chosen})"


# -- the model -------------------------------------------------------------------------------


class LocalModel(nn.Module):
    """Encoder + RSSM + reward head (+ decoder): ``forward(batch) -> (loss, logs)``; see the module doc."""

    def __init__(self, config: LocalModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ImageEncoder(config)
        self.rssm = RSSM(config)
        self.reward_head = RewardHead(config.feature_size, config)
        self.decoder = ImageDecoder(config) if config.decoder_loss_scale > 0 else None
        self.inverse_dynamics = (
            nn.Sequential(nn.Linear(2 * config.feature_size, config.hidden_size), nn.LayerNorm(config.hidden_size),
                          nn.SiLU(), nn.Linear(config.hidden_size, config.action_size))
            if config.inverse_dynamics_scale > 0 else None)
        self.agent_position = (  # the ladder's oracle (config.agent_position_scale)
            nn.Sequential(nn.Linear(config.feature_size, config.hidden_size), nn.LayerNorm(config.hidden_size),
                          nn.SiLU(), nn.Linear(config.hidden_size, 2))
            if config.agent_position_scale > 0 else None)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- use ------------------------------------------------------------------------------

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (..., 3, H, W), uint8 or float in [-1, 1] -> embeddings (..., E)."""
        return self.encoder(frames)

    def observe(self, frames: torch.Tensor, actions: torch.Tensor, initial: RSSMState | None = None,
                sample: bool = True) -> tuple[RSSMState, RSSMState]:
        """(posteriors, priors) (B, T, ...) of frames (B, T, 3, H, W) and actions (B, T, A); see RSSM.observe."""
        return self.rssm.observe(self.encode(frames), actions, initial, sample=sample)

    def posterior_of(self, prior: RSSMState, frames: torch.Tensor, sample: bool = True) -> RSSMState:
        """The posterior for frames (B, 3, H, W) reached where ``prior`` predicts (DMO's s_fwd)."""
        return self.rssm.posterior(prior, self.encode(frames), sample)

    def reward(self, state: RSSMState) -> torch.Tensor:
        """The decoded reward (...) of a state (...): symexp of the two-hot head's expected bin."""
        return self.reward_head.mean(self.reward_head(features(state)))

    def reward_through_priors(self, state: RSSMState, later_actions: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B,) r̂(state) + the reward of each one-step prior (means, no sampling) reached from it under
        ``later_actions`` (each (B, A), in order): the K-step reward sum whose gradient with respect to the action
        that led to ``state`` the gradient matching fits and the local-model gate measures."""
        total = self.reward(state)
        for action in later_actions:
            state = self.rssm.prior_step(state, action, sample=False)
            total = total + self.reward(state)
        return total

    # -- training -------------------------------------------------------------------------

    def forward(self, batch: SequenceBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """DreamerV3's world-model loss on a sequence batch, and the single-step accuracy metrics."""
        if batch.length < 2:
            raise ValueError("sequences of at least 2 frames are needed (one-step predictions)")
        posteriors, priors = self.observe(batch.frames, batch.actions, sample=self.config.train_sample)
        kl = kl_loss(posteriors, priors, self.config)
        post_features = features(posteriors)
        reward_logits = self.reward_head(post_features)
        reward_loss = self.reward_head.loss(reward_logits, batch.rewards).mean()
        loss = kl.loss + self.config.reward_loss_scale * reward_loss
        logs = {"kl": kl.value, "kl_dyn": kl.dyn.detach(), "kl_rep": kl.rep.detach(),
                "reward_loss": reward_loss.detach()}
        if self.config.prior_reward_scale > 0 or self.config.reward_difference_scale > 0:
            # The one-step priors of frames 1 .. T - 1 (posterior of frame t, action t) at their mode, as DMO
            # and the gate differentiate the reward head there with respect to the action.
            one_step = priors.at(slice(1, None))
            mode = RSSMState(one_step.deter, latent_sample(one_step.params, self.config, sample=False), one_step.params)
            prior_logits = self.reward_head(features(mode))
            if self.config.prior_reward_scale > 0:
                prior_reward_loss = self.reward_head.loss(prior_logits, batch.rewards[:, 1:]).mean()
                loss = loss + self.config.prior_reward_scale * prior_reward_loss
                logs.update(prior_reward_loss=prior_reward_loss.detach())
            if self.config.reward_difference_scale > 0:
                # The reward change one step brings, predicted as r̂(prior_{t+1}) - sg(r̂(posterior_t)), against the
                # labels' change, in symlog space (the head's own; no exp to amplify a wild early prediction) and
                # in units of the batch's RMS change; Huber, so that early predictions far off do not swamp the
                # other losses. symexp is monotone: d r̂ / d a points the same way in either space.
                symlog_rewards = symlog(batch.rewards.float())
                change = symlog_rewards[:, 1:] - symlog_rewards[:, :-1]
                predicted = (self.reward_head.twohot.decode(prior_logits.float().softmax(-1))
                             - self.reward_head.twohot.decode(reward_logits[:, :-1].float().softmax(-1)).detach())
                rms = change.pow(2).mean().sqrt().clamp_min(1e-3)
                difference_loss = torch.nn.functional.smooth_l1_loss(predicted / rms, change / rms, beta=1.0)
                loss = loss + self.config.reward_difference_scale * difference_loss
                logs.update(reward_difference_loss=difference_loss.detach())
        target = to_model_images(batch.frames)
        if self.decoder is not None:
            squared = (self.decoder(post_features).float() - target).pow(2)
            weights = self._pixel_weights(target)
            image_loss = (squared * weights).sum((-3, -2, -1)).mean()  # summed over pixels, as DreamerV3
            loss = loss + self.config.decoder_loss_scale * image_loss
            logs.update(image_loss=image_loss.detach(), image_mse=squared.detach().mean())
        if self.inverse_dynamics is not None:
            # Action t from the posteriors of frames t and t + 1 (the scaled action, O(1) per component).
            pairs = torch.cat([post_features[:, :-1], post_features[:, 1:]], -1)
            predicted = self.inverse_dynamics(pairs).float()
            inverse_loss = (predicted - self.rssm.scale_action(batch.actions[:, :-1]).detach()).pow(2).sum(-1).mean()
            loss = loss + self.config.inverse_dynamics_scale * inverse_loss
            logs.update(inverse_dynamics_loss=inverse_loss.detach())
        if self.agent_position is not None:
            position_loss = self._agent_position_loss(post_features, priors, batch.frames)
            loss = loss + self.config.agent_position_scale * position_loss
            logs.update(agent_position_loss=position_loss.detach())
        logs.update(self._one_step_metrics(posteriors, priors, batch, target))
        return loss, {key: float(value) for key, value in logs.items()}

    def _agent_position_loss(self, post_features: torch.Tensor, priors: RSSMState, frames: torch.Tensor,
                             ) -> torch.Tensor:
        """The oracle's loss (``agent_position_scale``): squared error of the agent's [x, y] in [-1, 1] read from the
        posterior features of frames (B, T, 3, H, W) uint8 and from the one-step priors of frames 1 .. T - 1 (at
        their mode), over the frames where :func:`~dmo_ros.sims.pusht_frames.locate_agent` sees the agent."""
        from dmo_ros.sims.pusht_frames import locate_agent

        pixels = frames.detach().permute(0, 1, 3, 4, 2).cpu().numpy()
        found, visible = locate_agent(pixels)
        size = torch.tensor([pixels.shape[3], pixels.shape[2]], dtype=torch.float32)
        target = (torch.from_numpy(np.nan_to_num(found)).float() + 0.5) / size * 2.0 - 1.0
        target, visible = target.to(post_features.device), torch.from_numpy(visible).to(post_features.device)
        one_step = priors.at(slice(1, None))
        mode = RSSMState(one_step.deter, latent_sample(one_step.params, self.config, sample=False), one_step.params)
        errors = [(self.agent_position(post_features).float() - target).pow(2).sum(-1)[visible],
                  (self.agent_position(features(mode)).float() - target[:, 1:]).pow(2).sum(-1)[visible[:, 1:]]]
        counted = sum(error.numel() for error in errors)
        return sum(error.sum() for error in errors) / max(counted, 1)

    @torch.no_grad()
    def _pixel_weights(self, target: torch.Tensor) -> torch.Tensor:
        """(B, T, 1, H, W) reconstruction weights: ``1 + foreground_weight`` where a pixel is off the batch's median
        colour by > 0.1 (the objects), 1 elsewhere (the empty table); plus ``difference_weight`` where a pixel
        changes by > 0.1 from the previous or to the next frame (what the action moved)."""
        weights = torch.ones_like(target[..., :1, :, :])
        if self.config.foreground_weight > 0:
            background = target.flatten(0, 1).median(dim=0).values  # (3, H, W): the table where nothing is
            foreground = ((target - background).abs().amax(-3, keepdim=True) > 0.1).to(target.dtype)
            weights = weights + self.config.foreground_weight * foreground
        if self.config.difference_weight > 0 and target.shape[1] > 1:
            changed = ((target[:, 1:] - target[:, :-1]).abs().amax(-3, keepdim=True) > 0.1).to(target.dtype)
            moved = torch.zeros_like(weights)
            moved[:, 1:] = changed  # differs from the previous frame
            moved[:, :-1] = torch.maximum(moved[:, :-1], changed)  # or from the next one
            weights = weights + self.config.difference_weight * moved
        return weights

    @torch.no_grad()
    def _one_step_metrics(self, posteriors: RSSMState, priors: RSSMState, batch: SequenceBatch,
                          target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Prior of frame t + 1 (from the posterior of frame t and action t) against frame t + 1, for t = 0 .. T - 2."""
        post, prior = posteriors.at(slice(1, None)), priors.at(slice(1, None))
        prior_features = features(prior)
        metrics = {
            "next_latent_error": latent_mode_error(prior.params, post.params, self.config).mean(),
            "next_latent_kl": latent_kl(post.params, prior.params, self.config).mean(),
            "reward_error": (self.reward_head.mean(self.reward_head(prior_features))
                             - batch.rewards[:, 1:].float()).abs().mean(),
            "reward_error_posterior": (self.reward_head.mean(self.reward_head(features(post)))
                                       - batch.rewards[:, 1:].float()).abs().mean(),
        }
        if self.decoder is not None:
            metrics["next_image_mse"] = (self.decoder(prior_features).float() - target[:, 1:]).pow(2).mean()
        return metrics

    @torch.no_grad()
    def sample_images(self, batch: SequenceBatch) -> dict[str, torch.Tensor]:
        """First sequence, up to 8 frames, rows: real | decoded posterior | decoded one-step prior, in [0, 1]."""
        if self.decoder is None:
            return {}
        item = SequenceBatch(batch.frames[:1, :8], batch.actions[:1, :8], batch.rewards[:1, :8])
        posteriors, priors = self.observe(item.frames, item.actions, sample=False)
        real = to_model_images(item.frames[0])
        rows = [real, self.decoder(features(posteriors))[0].float(), self.decoder(features(priors))[0].float()]
        grid = torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
        return {"real_posterior_prior": ((grid + 1.0) / 2.0).clamp(0.0, 1.0)}


def local_model_from_state(config: dict | LocalModelConfig, state: Mapping[str, torch.Tensor],
                           device: torch.device | str = "cpu") -> LocalModel:
    """A :class:`LocalModel` from a config (dict as saved, or the dataclass) and a state dict, in eval mode."""
    config = config if isinstance(config, LocalModelConfig) else LocalModelConfig.from_dict(dict(config))
    model = LocalModel(config)
    model.load_state_dict(dict(state))
    return model.to(device).eval()


def load_local_model(run_dir: Path | str, device: torch.device | str = "cpu", checkpoint: str = "last") -> LocalModel:
    """The local model trained in ``run_dir``: ``config.json``'s ``"model"`` + safetensors weights (no code runs)."""
    from dmo_ros.training import load_model_weights, read_run_config  # the training package pulls in TensorBoard

    run_config = read_run_config(run_dir, kind="local_model")
    if "model" not in run_config:
        raise ValueError(f"{run_dir}: not a local model run (kind {run_config.get('kind')!r})")
    return local_model_from_state(run_config["model"], load_model_weights(run_dir, checkpoint), device)


__all__ = ["LocalModel", "SequenceBatch", "SequenceDataset", "load_local_model", "local_model_from_state"]
