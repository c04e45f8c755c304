"""DMO-SAPO (Algorithm 1) and its "No Diffusion" ablation: SAPO on the local model's latent states.

One epoch of :class:`LatentSAPO` with ``method="dmo"``:

1. **Backward-model learning.** Fine-tune the local model (encoder + RSSM + reward head +
   decoder, its own DreamerV3 loss) for ``finetune_steps`` on sub-sequences of the replay
   buffer of forward-model transitions, labelled by the global reward model (with
   ``finetune_real_fraction`` of each batch from real dataset sequences instead). With
   ``gradient_matching_scale`` (rung 1) the loss also fits the local one-step reward gradient to the forward
   model's finite differences, probed at every episode's state each epoch.
2. **Imagination.** Roll the B episodes on by H steps. Each step the actor samples
   ``a_h ~ pi(. | s_h)`` from the features of the current latent state; the *global* diffusion
   world model makes the next image from the detached action (no gradient through the
   sampler); the local model encodes it into ``s_fwd`` (the RSSM posterior reached from the
   detached previous state) and :func:`dmo_ros.dmo.decoupled.decoupled_step` swaps it in for
   the local prior ``f_local(s_h, a_h)``: forward values, local Jacobians. The global reward
   model labels the new image.
3. **Actor and critics.** The actor maximises SAPO's objective over the trajectory: the local
   reward head's rewards of the swapped states (differentiable), the entropy bonus and the
   target critics' terminal value. The critics regress TD-lambda targets of the *global*
   reward labels. Gradients reach the actor only: the local model, its encoder and the world
   model get none (:class:`SAPOLearner` differentiates with respect to the actor alone, and
   the forward latents are computed under ``no_grad``).
4. The forward transitions (images, actions, global rewards) go into the replay buffer.

Episodes start from real dataset windows (their latent state is the RSSM's filter over the
window's frames) and continue across epochs until ``episode_steps``; then they restart from
new windows (so a rollout never goes further from real data than ``episode_steps + H``).

``method="no_diffusion"``: the same loop with the RSSM as its own forward model (its prior is
sampled instead of encoding a world-model image): no images, rewards from the local head for
the actor and the critics alike, nothing new to fine-tune on. Its samples count RSSM steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset

from dmo_ros.dmo.decoupled import detach_state, map_state, rollout_decoupled
from dmo_ros.dmo.imagined_env import ImaginedEnv, StartWindows
from dmo_ros.dmo.replay import GradientProbeBuffer, ReplayBuffer, to_uint8_frames
from dmo_ros.dmo.sapo import (
    SAPOConfig,
    SAPOLearner,
    Trajectory,
    actor_gradient_parts,
    check_schedule_budget,
    scheduled_lr,
)
from dmo_ros.local_model.encoder import to_model_images
from dmo_ros.local_model.model import LocalModel, SequenceBatch
from dmo_ros.local_model.rssm import RSSMState, features
from dmo_ros.policy.api import LatentActorPolicy, with_prefix, without_prefix

METHODS = ("dmo", "no_diffusion")


@dataclass
class DMOConfig:
    """The DMO-SAPO loop around the SAPO learner (whose own settings are :class:`SAPOConfig`)."""

    batch_size: int = 16
    """B, imagined episodes stepped in parallel (each step is B world-model samples)."""

    episode_steps: int = 64
    """Imagined steps after which an episode restarts from a new real window (the paper's simulation length 64);
    checked at epoch boundaries, so episodes last the next multiple of the horizon."""

    finetune_steps: int = 4
    """Local-model gradient steps on the replay buffer per epoch (Algorithm 1's model mini-epoch); 0 disables."""

    finetune_batch_size: int = 16
    """Sequences per local-model fine-tuning step."""

    finetune_length: int = 8
    """Frames per fine-tuning sequence (one-step accuracy needs short ones); at most horizon + 1."""

    finetune_lr: float = 1e-4
    """AdamW learning rate of the local model's fine-tuning (DreamerV3's world-model rate)."""

    finetune_grad_clip: float = 1000.0
    """Gradient-norm clip of the fine-tuning (the local loss sums pixels: norms in the hundreds, as in pretraining)."""

    replay_capacity: int = 512
    """Imagined sequences (each horizon + 1 frames) the replay buffer keeps; the oldest are overwritten."""

    finetune_real_fraction: float = 0.0
    """Share of each fine-tuning batch drawn from real dataset sequences (labelled by the global reward) instead of
    the replay of world-model frames, in [0, 1]. Fine-tuning on imagined frames alone drifts the local model away
    from the real frames its encoder reads on the robot (docs/ladder.md, "Why DMO declined": one-step error on real
    sequences 0.24 -> 0.39 after 20 k samples with a cpu world model); real sequences anchor it. 0: Algorithm 1 as
    written."""

    finetune_real_priority: float = 0.0
    """How strongly the real sequences of ``finetune_real_fraction`` favour high rewards: each is drawn with
    probability proportional to exp(priority x z), z its largest reward label standardised over the dataset. Near
    the goal the recordings are thin (a reach ends there once per demonstration), and the local reward head is
    flattest there; 0: uniform."""

    finetune_encoder: bool = True
    """Fine-tune the local model's image encoder with the rest (True: Algorithm 1 as written). False keeps the
    pretrained encoder, which learned only real frames: the world model's frames then train the RSSM, reward head
    and decoder but cannot move how the actor's inputs read a real frame."""

    critic_warmup: int = 0
    """Epochs before the critics' terminal value counts in the actor's objective (rung 0's ``critic_warmup``):
    before it the actor maximises the H-step return alone. 0: from the first epoch (Algorithm 1 as written); more
    epochs than the run has: never, so no critic gradient through the latent reaches the actor."""

    sample_forward_latent: bool = False
    """Sample the forward latent s_fwd from the posterior (True) or take each categorical's mode (False: the
    image's most likely code, a deterministic encoding of the world model's frame)."""

    frame_noise: float = 0.0
    """Std of Gaussian pixel noise, in uint8 levels (0..255 scale), added to every frame the local model encodes for
    the actor during policy training (episode starts and the forward model's frames; not the fine-tuning batches).
    Trains the actor on perturbed views so that its small settling commands near a goal do not hinge on exact pixels:
    a rung-2 reach policy fed real frames with std 2 noise turned its settling commands (direction cosine 0.85;
    docs/ladder.md "More tries at rung 2 reach"). Measured there (seeds 1-2, 60 k samples): 4 levels brought 95/100
    agents within 40 u of the target (78/100 without) and stopped as many within 20 u (44/100 vs 46/100); 8 levels
    lowered both. 0: off (Algorithm 1 as written)."""

    policy_ema: float = 0.0
    """Decay of an exponential moving average of the policy's weights (Polyak averaging, torch's ``AveragedModel``):
    after every update, average <- decay x average + (1 - decay) x latest, over the actor *and* the local model whose
    features it reads (fine-tuning moves both). The periodic and final evaluations and the saved policy (the
    checkpoint's ``average.*`` weights, which :func:`~dmo_ros.policy.api.load_policy` prefers) use the average;
    training goes on from the latest weights. 0.95 averages over about the last 20 updates (5 k samples of the cpu
    preset). Measured on rung 2 reach (docs/ladder.md, "averaging the policy's weights"): at 0.95 the evaluations swing
    half as much, the final successes do not rise (45/150 over three seeds against 81/150 for the latest weights of the
    same runs). 0: off (the latest weights, Algorithm 1 as written)."""

    gradient_matching_scale: float = 0.0
    """Weight of a gradient-matching (Sobolev) loss in the local model's fine-tuning: at the episodes' states each
    epoch, the forward model's finite difference of the global reward of the next frame with respect to the action
    (``gradient_probe_epsilon``; :meth:`~dmo_ros.dmo.simulator_env.SimulatorEnv.reward_gradient`) is the target of
    the local one-step gradient d r̂(prior(h, z, a)) / d a that DMO hands the actor (squared error in units of the
    targets' median norm). The local gradient agrees with the reward's only where the recorded play went (cosine
    0.45-0.60 there, -0.04 to 0.26 at a trained policy's states; docs/ladder.md "Which draw decides"); this fits it
    where the policy goes. Each epoch probes every episode once: 2A extra forward-model transitions per episode,
    counted in the samples. Needs ``finetune_steps`` > 0 and a forward model that can branch (the simulator,
    rung 1). 0: off (Algorithm 1 as written)."""

    gradient_probe_epsilon: float = 0.05
    """Finite-difference step of ``gradient_matching_scale``'s probes, in the action's robot units (the local-model
    gate's 0.05 on Push-T; about a quarter of the recorded commands' largest magnitude)."""

    gradient_probe_capacity: int = 4096
    """Probes (one episode's state each) kept for ``gradient_matching_scale``; the oldest are overwritten."""

    gradient_matching_steps: int = 1
    """K, the rewards the gradient matching differentiates: d (r̂_1 + ... + r̂_K) / d a through K prior steps with
    the probed action held after it, fitted to the forward model's finite difference of the same K rewards (each
    branch held K steps: 2AK transitions per probed episode, counted in the samples). The actor follows the H-step
    chain, not the one-step gradient: on push_region the later rewards' part of its gradient on the first action is
    7-26 times the first reward's, and where a failing policy parks the local 8-step gradient is 11-84 times the
    stand-in's (docs/ladder.md, "The actor follows the chain"; there K = 8 did not turn the chain's direction and did
    not beat the one-step fit at S = 10). 1: the one-step gradient."""

    actor_gradient_parts: bool = False
    """Diagnostic: every epoch, also log the gradient of each part of the actor's objective (the first reward, the
    later rewards through the H-step chain, the critics' terminal value, the entropy bonus) with respect to the first
    action of the rollout, a_0 (total derivatives, the later actions following the policy), as ``parts/<part>_norm``
    (mean |g| over the episodes, per unit of the action in robot units), ``parts/<part>_drift`` (|mean g| / mean |g|:
    1 when every episode is pushed the same way whatever its state, about 0 when the pushes depend on the state) and
    ``parts/<part>_mean_<i>`` (the mean g's components). Four extra backward passes per epoch; training unchanged."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gradient_matching_scale) and self.gradient_matching_scale >= 0):
            raise ValueError(f"gradient_matching_scale must be a number >= 0 (0: off), got "
                             f"{self.gradient_matching_scale}")
        if not (math.isfinite(self.gradient_probe_epsilon) and self.gradient_probe_epsilon > 0):
            raise ValueError(f"gradient_probe_epsilon must be a positive number, got {self.gradient_probe_epsilon}")
        if self.gradient_matching_steps < 1:
            raise ValueError(f"gradient_matching_steps must be >= 1, got {self.gradient_matching_steps}")
        if self.gradient_matching_steps > 1 and self.gradient_matching_scale == 0:
            raise ValueError("gradient_matching_steps > 1 sets what the gradient matching fits: set "
                             "gradient_matching_scale > 0 too (e.g. --gradient-matching-scale 100)")
        if self.gradient_probe_capacity < 1:
            raise ValueError(f"gradient_probe_capacity must be >= 1, got {self.gradient_probe_capacity}")
        if self.gradient_matching_scale > 0 and self.finetune_steps == 0:
            raise ValueError("gradient_matching_scale > 0 fits the local model during its fine-tuning: set "
                             "finetune_steps > 0 (e.g. --finetune-steps 4)")
        if not (math.isfinite(self.policy_ema) and 0.0 <= self.policy_ema < 1.0):
            raise ValueError(f"policy_ema must be in [0, 1) (0: off), got {self.policy_ema}")
        if not (math.isfinite(self.frame_noise) and self.frame_noise >= 0):
            raise ValueError(f"frame_noise must be a number >= 0 (uint8 levels), got {self.frame_noise}")
        if self.critic_warmup < 0:
            raise ValueError(f"critic_warmup must be >= 0, got {self.critic_warmup}")
        for name in ("batch_size", "episode_steps", "finetune_batch_size", "replay_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.finetune_steps < 0:
            raise ValueError(f"finetune_steps must be >= 0, got {self.finetune_steps}")
        if self.finetune_length < 2:
            raise ValueError(f"finetune_length must be at least 2 (one-step predictions), got {self.finetune_length}")
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise ValueError(f"finetune_lr must be a positive number, got {self.finetune_lr}")
        if not (math.isfinite(self.finetune_real_priority) and self.finetune_real_priority >= 0):
            raise ValueError(f"finetune_real_priority must be a number >= 0, got {self.finetune_real_priority}")
        if not 0.0 <= self.finetune_real_fraction <= 1.0:
            raise ValueError(f"finetune_real_fraction must be in [0, 1], got {self.finetune_real_fraction}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DMOConfig:
        if name not in DMO_PRESETS:
            raise ValueError(f"unknown DMO preset {name!r}; valid presets: {', '.join(DMO_PRESETS)}")
        return replace(DMO_PRESETS[name], **overrides)


DMO_PRESETS: dict[str, DMOConfig] = {
    "tiny": DMOConfig(batch_size=4, episode_steps=16, finetune_steps=2, finetune_batch_size=4, finetune_length=4,
                      replay_capacity=32),
    # The laptop demo: 16 episodes x horizon 16 = 256 world-model samples per epoch (~6 s of sampling on 2 cores).
    # No fine-tuning: with the cpu world model, fine-tuning the local model on its frames (lr 1e-4, 4 steps per
    # epoch) made push_region success peak at ~6 k samples and decline (12-23/50 at 20 k over two seeds); a fixed
    # pretrained local model scored 31-35/50 and kept improving to 40 k (docs/ladder.md, "Why DMO declined").
    # --finetune-steps 4 restores Algorithm 1's fine-tuning (--finetune-lr 1e-5 measured as good as none on one seed).
    "cpu": DMOConfig(batch_size=16, episode_steps=48, finetune_steps=0, finetune_batch_size=16, finetune_length=8,
                     replay_capacity=512),
    # One GPU: the paper's simulation length, many more parallel episodes.
    "gpu": DMOConfig(batch_size=256, episode_steps=64, finetune_steps=8, finetune_batch_size=32, finetune_length=16,
                     replay_capacity=4096),
}
"""Size presets of :class:`DMOConfig` (the SAPO learner's are :data:`dmo_ros.dmo.sapo.PRESETS`)."""


def _concatenate(sequences: list[SequenceBatch], batch: SequenceBatch | None) -> SequenceBatch:
    """One batch of single sequences (each (T, ...)) followed by a batch (B, T, ...) or nothing."""
    stacked = SequenceBatch.collate(sequences)
    if batch is None:
        return stacked
    return SequenceBatch(**{f.name: torch.cat([getattr(stacked, f.name), getattr(batch, f.name)])
                            for f in fields(SequenceBatch)})


class LatentSAPO:
    """DMO-SAPO (``method="dmo"``) or No Diffusion (``"no_diffusion"``); see the module doc.

    Args:
        method: "dmo" or "no_diffusion".
        local_model: the pretrained local model (fine-tuned in place during DMO).
        starts: real windows episodes start from (the world model's context length).
        config, sapo: the loop's and the learner's settings.
        action_limit: (A,) the largest |action| per component; the actor's [-1, 1] output is scaled by it.
        env: the imagined environment (the global world model and reward); required for "dmo".
        device: where the local model and learner run.
        seed: the actor's sampling and the replay sampling.
        real_sequences: real dataset sequences of ``config.finetune_length`` frames with reward labels
            (:class:`~dmo_ros.local_model.model.SequenceDataset`); required when ``config.finetune_real_fraction``
            is above 0 for "dmo".
        max_samples: the run's sample budget, which ``sapo.lr_schedule`` "linear" spreads its decay over (the
            local model's fine-tuning rate decays alongside the actor's: the actor reads its features); required
            by that schedule.
    """

    def __init__(self, method: str, local_model: LocalModel, starts: StartWindows, config: DMOConfig,
                 sapo: SAPOConfig, action_limit: np.ndarray, env: ImaginedEnv | None = None,
                 device: torch.device | str = "cpu", seed: int = 0,
                 real_sequences: Dataset | None = None, max_samples: int | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if method == "dmo" and env is None:
            raise ValueError("DMO needs the imagined environment of the global world model and reward")
        if env is not None and env.batch_size != config.batch_size:
            raise ValueError(f"the environment steps {env.batch_size} episodes, the config asks for "
                             f"{config.batch_size}")
        if method == "dmo" and config.finetune_steps > 0 and config.finetune_real_fraction > 0:
            if real_sequences is None or len(real_sequences) == 0:
                raise ValueError("finetune_real_fraction > 0 needs real labelled sequences to fine-tune on")
            if real_sequences[0].length != config.finetune_length:
                raise ValueError(f"the real sequences hold {real_sequences[0].length} frames, fine-tuning uses "
                                 f"{config.finetune_length}")
        if config.gradient_matching_scale > 0 and (method != "dmo" or not hasattr(env, "reward_gradient")):
            raise ValueError("gradient_matching_scale > 0 needs DMO with a forward model that can try several actions "
                             "from one state: the simulator (--forward simulator, rung 1)")
        check_schedule_budget(sapo.lr_schedule, max_samples)
        self.max_samples = max_samples
        self.real_sequences = real_sequences
        if config.finetune_length > sapo.horizon + 1:
            raise ValueError(f"finetune_length {config.finetune_length} exceeds the replayed sequences' "
                             f"horizon + 1 = {sapo.horizon + 1} frames")
        self.method = method
        self.device = torch.device(device)
        self.local = local_model.to(self.device)
        self.local.requires_grad_(True)
        self.starts = starts
        self.env = env
        self.config, self.sapo = config, sapo
        self.action_limit = np.asarray(action_limit, dtype=np.float64)
        if self.action_limit.shape != (local_model.config.action_size,) or not (self.action_limit > 0).all():
            raise ValueError(f"action_limit must be {local_model.config.action_size} positive numbers, got "
                             f"{self.action_limit}")
        self._limit = torch.as_tensor(self.action_limit, dtype=torch.float32, device=self.device)
        feature_size = local_model.config.feature_size
        self.learner = SAPOLearner(feature_size, len(self.action_limit), sapo).to(self.device)
        # Fine-tuned: the whole local model, or all but the image encoder (the actor's view of real frames stays put).
        self.finetuned = [parameter for name, parameter in self.local.named_parameters()
                          if config.finetune_encoder or not name.startswith("encoder.")]
        self.finetune_optimizer = torch.optim.AdamW(self.finetuned, lr=config.finetune_lr, weight_decay=0.0)
        image_size = local_model.config.image_size
        self.replay = ReplayBuffer(config.replay_capacity, sapo.horizon + 1, (3, image_size, image_size),
                                   len(self.action_limit), seed=seed)
        self.resume_notes: list[str] = []
        """What :meth:`load_trainer_state` could not carry over (the runner prints them)."""
        self.probes: GradientProbeBuffer | None = None
        """The gradient-matching probes (``gradient_matching_scale`` > 0), else None."""
        if config.gradient_matching_scale > 0:
            self.probes = GradientProbeBuffer(config.gradient_probe_capacity, env.context_length,
                                              (3, image_size, image_size), len(self.action_limit), seed=seed + 1)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.real_weights = None
        """Sampling weights of the real sequences (``finetune_real_priority`` > 0), else None: uniform."""
        if real_sequences is not None and config.finetune_real_priority > 0:
            best = torch.from_numpy(real_sequences.sequence_rewards()).double()
            z = (best - best.mean()) / best.std().clamp(min=1e-6)
            self.real_weights = torch.softmax(config.finetune_real_priority * z, 0)
        self.policy_modules = nn.ModuleDict({"local": self.local, "actor": self.learner.actor})
        """What the deployed policy is made of: the local model (its filter) and the actor (the latest weights)."""
        self.average: AveragedModel | None = None
        """The policy's weights averaged over updates (``policy_ema`` > 0), else None."""
        if config.policy_ema > 0:
            self.average = AveragedModel(self.policy_modules, multi_avg_fn=get_ema_multi_avg_fn(config.policy_ema),
                                         use_buffers=True).requires_grad_(False)
        self.epoch = 0
        self._samples = 0  # No Diffusion's own count (DMO counts the environment's)
        self.state: RSSMState | None = None
        self.episode_steps = torch.zeros(config.batch_size, dtype=torch.long)
        self.episodes_started = 0

    # -- the PolicyAlgorithm contract ----------------------------------------------------------

    @property
    def samples(self) -> int:
        """Forward-model transitions generated so far (world-model images for DMO, RSSM steps for No Diffusion)."""
        return self.env.samples if self.method == "dmo" else self._samples

    def policy(self) -> LatentActorPolicy:
        """The current deterministic policy, from the averaged weights when ``policy_ema`` is on (shares the networks:
        evaluate, do not keep across training)."""
        image_size = self.local.config.image_size
        modules = self.average.module if self.average is not None else self.policy_modules
        return LatentActorPolicy(modules["local"], modules["actor"], self.action_limit, (image_size, image_size),
                                 self.device)

    def policy_config(self) -> dict[str, Any]:
        image_size = self.local.config.image_size
        return {"image_size": [image_size, image_size], "action_limit": self.action_limit.tolist(),
                "local_model": asdict(self.local.config), "feature_size": self.local.config.feature_size,
                "actor_hidden": self.sapo.actor_hidden, "actor_layers": self.sapo.actor_layers}

    def state_dict(self) -> dict[str, Tensor]:
        """The latest weights (``local.*``, ``actor.*``, ``critics.*``, ``log_alpha``) and, with ``policy_ema``, the
        averaged policy's (``average.local.*``, ``average.actor.*``, ``average.n_averaged``)."""
        learner = self.learner
        state = {**with_prefix("local.", self.local.state_dict()), **with_prefix("actor.", learner.actor.state_dict()),
                 **with_prefix("critics.", learner.critics.state_dict()), "log_alpha": learner.log_alpha.detach()}
        if self.average is not None:
            state.update(with_prefix("average.", self.average.module.state_dict()))
            state["average.n_averaged"] = self.average.n_averaged.detach()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.local.load_state_dict(without_prefix("local.", state))
        self.learner.actor.load_state_dict(without_prefix("actor.", state))
        self.learner.critics.load_state_dict(without_prefix("critics.", state))
        with torch.no_grad():
            self.learner.log_alpha.copy_(state["log_alpha"])
            if self.average is not None and "average.n_averaged" in state:  # else it starts from the latest weights
                averaged = without_prefix("average.", state)
                self.average.n_averaged.copy_(averaged.pop("n_averaged"))
                self.average.module.load_state_dict(averaged)

    def trainer_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "samples": self._samples, "episodes_started": self.episodes_started,
                "optimizers": {name: opt.state_dict() for name, opt in self.learner.optimizers.items()},
                "finetune_optimizer": self.finetune_optimizer.state_dict(),
                "skipped_steps": self.learner.skipped_steps, "generator": self.generator.get_state(),
                "starts": self.starts.state_dict(), "env": self.env.state_dict() if self.env is not None else {},
                "replay": self.replay.state_dict(),
                "probes": self.probes.state_dict() if self.probes is not None else None}

    def load_trainer_state(self, state: dict[str, Any]) -> None:
        self.epoch, self._samples = int(state["epoch"]), int(state["samples"])
        self.episodes_started = int(state["episodes_started"])
        for name, optimizer in self.learner.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.finetune_optimizer.load_state_dict(state["finetune_optimizer"])
        self.learner.skipped_steps = int(state["skipped_steps"])
        self.generator.set_state(state["generator"])
        self.starts.load_state_dict(state["starts"])
        if self.env is not None:
            self.env.load_state_dict(state["env"])
        # Checkpoints written before the buffers were saved resume with them empty, as those runs did; so does a
        # resume whose settings changed the buffers' shapes (a resume may change them: dmo-train-policy says so).
        for name, buffer in (("replay", self.replay), ("probes", self.probes)):
            if buffer is not None and state.get(name) is not None:
                try:
                    buffer.load_state_dict(state[name])
                except ValueError as error:
                    self.resume_notes.append(f"{error}: it starts empty")
        self.state = None  # episodes restart from new real windows after a resume

    # -- one epoch -------------------------------------------------------------------------------

    def _filter(self, frames: Tensor, actions: Tensor) -> RSSMState:
        """The latent state (B, ...) after the RSSM's filter over context frames (B, L, ...) and the actions between
        them (B, L - 1, A): the posterior of the last frame."""
        padded = torch.cat([actions, actions.new_zeros(actions.shape[0], 1, actions.shape[-1])], dim=1)
        posteriors, _ = self.local.observe(self._perturb(frames.to(self.device)), padded.to(self.device, torch.float32),
                                           sample=self.config.sample_forward_latent)
        return posteriors.at(-1)

    def _perturb(self, frames: Tensor) -> Tensor:
        """Frames (..., 3, H, W), uint8 or float in [-1, 1] -> float in [-1, 1] with ``frame_noise`` added (unchanged
        when it is 0). The noise is drawn from the run's generator, so a resumed run continues its stream."""
        if self.config.frame_noise == 0:
            return frames
        images = to_model_images(frames)
        noise = torch.randn(images.shape, generator=self.generator).to(images.device)
        return (images + noise * (self.config.frame_noise / 127.5)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def _start_episodes(self) -> int:
        """Restart the episodes that have run ``episode_steps`` (all of them at the first epoch)."""
        batch = self.config.batch_size
        done = (self.episode_steps >= self.config.episode_steps) if self.state is not None \
            else torch.ones(batch, dtype=torch.bool)
        if not done.any():
            return 0
        if self.method == "dmo":
            if self.state is None:
                self.env.reset()
            else:
                self.env.reset_some(done)
            frames, actions = self.env.context
        else:
            window = self.starts.sample(batch)
            frames, actions = window.context_frames, window.context_actions[:, :-1]
        fresh = self._filter(frames, actions)
        if self.state is None or done.all():
            self.state = fresh
        else:  # the restarted episodes take their new state, the others keep theirs
            mask = done.to(self.device)
            self.state = map_state(lambda old, new: torch.where(mask.view(-1, *([1] * (old.dim() - 1))), new, old),
                                   self.state, fresh)
        self.episode_steps[done] = 0
        self.episodes_started += int(done.sum())
        return int(done.sum())

    def _finetune(self) -> dict[str, float]:
        """Algorithm 1's backward-model learning on the replay buffer (DMO only, once it holds data)."""
        config = self.config
        if self.method != "dmo" or config.finetune_steps == 0 or len(self.replay) == 0:
            return {}
        self.local.train()
        totals: dict[str, float] = {}
        real = round(config.finetune_real_fraction * config.finetune_batch_size) if self.real_sequences else 0
        for _ in range(config.finetune_steps):
            batch = self.replay.sample(config.finetune_batch_size - real, config.finetune_length) \
                if real < config.finetune_batch_size else None
            if real:
                if self.real_weights is None:
                    rows = torch.randint(len(self.real_sequences), (real,), generator=self.generator).tolist()
                else:
                    rows = torch.multinomial(self.real_weights, real, replacement=True,
                                             generator=self.generator).tolist()
                batch = _concatenate([self.real_sequences[row] for row in rows], batch)
            batch = batch.to(self.device)
            loss, logs = self.local(batch)
            if self.probes is not None and len(self.probes):
                matching, cosine = self._gradient_matching_loss()
                loss = loss + config.gradient_matching_scale * matching
                logs.update(gradient_matching_loss=float(matching.detach()), probe_gradient_cosine=cosine)
            self.finetune_optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                continue  # a NaN batch must not poison the local model; the next one is fresh
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.finetuned, config.finetune_grad_clip)
            self.finetune_optimizer.step()
            for key, value in logs.items():
                totals[key] = totals.get(key, 0.0) + value / config.finetune_steps
        self.local.zero_grad(set_to_none=True)  # the encoder's too when it is not fine-tuned
        return {f"local/{key}": value for key, value in totals.items()}

    def _gradient_matching_loss(self) -> tuple[Tensor, float]:
        """The squared error of the local one-step gradient d r̂(prior(h, z, a)) / d a against the probes' finite
        differences, both in units of the probes' median gradient norm (a graph through the gradient: double
        backward), and the batch's mean cosine between the two (a diagnostic)."""
        frames, actions, targets = self.probes.sample(self.config.finetune_batch_size)
        frames, actions = frames.to(self.device), actions.to(self.device)
        posteriors, _ = self.local.observe(frames, actions, sample=False)
        action = actions[:, -1].clone().requires_grad_(True)
        state = self.local.rssm.prior_step(posteriors.at(-1), action, sample=False)
        held = [action.detach()] * (self.config.gradient_matching_steps - 1)  # as the probes held it
        total = self.local.reward_through_priors(state, held)
        (gradient,) = torch.autograd.grad(total.sum(), action, create_graph=True)
        targets, scale = targets.to(self.device), self.probes.gradient_scale()
        loss = (gradient / scale - targets / scale).pow(2).sum(-1).mean()
        cosine = torch.nn.functional.cosine_similarity(gradient.detach(), targets, dim=-1, eps=1e-12).mean()
        return loss, float(cosine)

    @torch.no_grad()
    def _probe_gradients(self) -> None:
        """Probe every episode's current state: the forward model's finite-difference reward gradient at an action
        the actor samples there, stored with the state's history for the gradient matching."""
        frames, actions = self.env.context  # (B, L, 3, H, W), (B, L - 1, A)
        action, _ = self._act(self.state)
        gradients = self.env.reward_gradient(action, self.config.gradient_probe_epsilon,
                                             steps=self.config.gradient_matching_steps)
        self.probes.add(frames, torch.cat([actions.to(action), action[:, None]], 1), gradients)

    def _actor_gradient_parts(self, trajectory: Trajectory, first_action: Tensor,
                              terminal_weight: float) -> dict[str, float]:
        """``actor_gradient_parts``' logs (see :func:`~dmo_ros.dmo.sapo.actor_gradient_parts`)."""
        terminal = terminal_weight * self.learner.critics.target(trajectory.features[-1])
        gradients = actor_gradient_parts(trajectory.rewards, trajectory.entropies, terminal,
                                         self.learner.alpha.detach(), self.sapo.gamma, first_action)
        logs = {}
        for name, gradient in gradients.items():
            gradient = gradient.detach().double()
            norm = gradient.norm(dim=-1).mean()
            mean = gradient.mean(0)
            logs[f"parts/{name}_norm"] = float(norm)
            logs[f"parts/{name}_drift"] = float(mean.norm() / norm) if norm > 0 else 0.0
            logs.update({f"parts/{name}_mean_{index}": float(value) for index, value in enumerate(mean)})
            if name != "total":
                cosine = torch.nn.functional.cosine_similarity(gradient, gradients["total"].double(), dim=-1)
                logs[f"parts/{name}_cosine_total"] = float(cosine.mean())
        return logs

    def _act(self, state: RSSMState) -> tuple[Tensor, Tensor]:
        """The actor's sampled action in robot units and its log-probability, from the state's features."""
        action, log_prob = self.learner.actor(features(state))
        return action * self._limit, log_prob

    def _schedule_learning_rates(self) -> dict[str, float]:
        """Set this epoch's learning rates by ``sapo.lr_schedule`` (the actor and critics, and the local model's
        fine-tuning); returns them for the logs (none under a constant schedule)."""
        if self.sapo.lr_schedule == "constant":
            return {}
        progress = self.samples / self.max_samples
        finetune_lr = scheduled_lr(self.config.finetune_lr, self.sapo.lr_schedule, progress)
        for group in self.finetune_optimizer.param_groups:
            group["lr"] = finetune_lr
        return {"actor_lr": self.learner.set_progress(progress), "finetune_lr": finetune_lr}

    def train_epoch(self) -> dict[str, float]:
        """One epoch of Algorithm 1 (fine-tune, imagine H steps, update actor / critics / alpha); returns logs."""
        learning_rates = self._schedule_learning_rates()
        logs = self._finetune()
        logs.update(learning_rates)
        restarted = self._start_episodes()
        if self.probes is not None:
            self._probe_gradients()
        horizon = self.sapo.horizon
        frames: list[Tensor] = []
        global_rewards: list[Tensor] = []
        if self.method == "dmo":
            with torch.no_grad():
                first = self.env.observation
                frames.append(to_uint8_frames(first).cpu())
                first_reward = self.env.reward(first)

        def forward_step(state: RSSMState, action: Tensor) -> RSSMState:
            """s_fwd' in the local latent space: the posterior of the world model's next image (DMO), or a sample
            of the RSSM's own prior (No Diffusion). Called under no_grad with detached inputs."""
            prior = self.local.rssm.prior_step(state, action, sample=True)
            if self.method == "no_diffusion":
                self._samples += action.shape[0]
                return prior
            observation, reward = self.env.step(action)
            frames.append(to_uint8_frames(observation).cpu())
            global_rewards.append(reward.to(self.device, torch.float32))
            return self.local.rssm.posterior(prior, self.local.encode(self._perturb(observation)),
                                             sample=self.config.sample_forward_latent)

        def local_step(state: RSSMState, action: Tensor) -> RSSMState:
            return self.local.rssm.prior_step(state, action, sample=False)  # its value is swapped out anyway

        self.local.eval()
        rollout = rollout_decoupled(self.state, self._act, local_step, forward_step, horizon)
        states = RSSMState.stack(rollout.states, dim=0)  # (H + 1, B, ...)
        next_states = RSSMState(states.deter[1:], states.stoch[1:], states.params[1:])
        local_rewards = self.local.reward(next_states)  # (H, B): r(s_{h+1}), differentiable
        entropies = -torch.stack([extras[0] for extras in rollout.policy_extras])
        value_rewards = torch.stack(global_rewards) if global_rewards else None
        if not torch.isfinite(local_rewards).all() or (value_rewards is not None
                                                       and not torch.isfinite(value_rewards).all()):
            raise FloatingPointError("non-finite rewards in the imagined rollout (check the world, reward and local "
                                     "models' checkpoints)")
        trajectory = Trajectory(features=features(states), rewards=local_rewards, entropies=entropies,
                                value_rewards=value_rewards)
        terminal_weight = 1.0 if self.epoch >= self.config.critic_warmup else 0.0
        if self.config.actor_gradient_parts:
            logs.update(self._actor_gradient_parts(trajectory, rollout.actions[0], terminal_weight))
        logs.update(self.learner.update(trajectory, terminal_weight=terminal_weight))
        logs["terminal_weight"] = terminal_weight
        if self.average is not None:
            self.average.update_parameters(self.policy_modules)

        self.state = detach_state(rollout.states[-1])
        self.episode_steps += horizon
        self.epoch += 1
        actions = torch.stack(rollout.actions, dim=1).detach()  # (B, H, A)
        logs.update({"samples": float(self.samples), "episodes_started": float(self.episodes_started),
                     "episodes_restarted": float(restarted),
                     "local_return": local_rewards.detach().sum(0).mean().item(),
                     "action_abs_mean": (actions / self._limit).abs().mean().item()})
        if value_rewards is not None:
            rewards = torch.cat([first_reward[None].to(self.device), value_rewards])  # (H + 1, B), frame by frame
            self.replay.add(torch.stack(frames, dim=1), actions, rewards.t())
            logs.update({"global_return": value_rewards.sum(0).mean().item(),
                         "global_reward_final": value_rewards[-1].mean().item(),
                         "local_reward_error": (local_rewards.detach() - value_rewards).abs().mean().item(),
                         "replay_sequences": float(len(self.replay))})
        return logs


__all__ = ["DMO_PRESETS", "METHODS", "DMOConfig", "LatentSAPO"]
