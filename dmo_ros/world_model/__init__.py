"""DIAMOND-style diffusion world model: EDM denoiser, UNet, few-step sampler, imagination env, fidelity report.

- :mod:`.config` — :class:`WorldModelConfig` (presets tiny / cpu / gpu), :class:`SamplerConfig`.
- :mod:`.inner_model` — the conditioned UNet F.
- :mod:`.denoiser` — :class:`Denoiser`: EDM preconditioning, ``forward(window) -> (loss, logs)``,
  :func:`load_world_model`.
- :mod:`.sampler` — :func:`karras_sigmas`, :class:`DiffusionSampler` (Euler / Heun).
- :mod:`.imagination` — :class:`WorldModelEnv`: batched reset / step / rollout in imagination.
- :mod:`.fidelity` — PSNR / SSIM, open-loop fidelity report and its command line.
"""

from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser, edm_preconditioning, load_world_model, to_model_range, to_uint8
from dmo_ros.world_model.imagination import WorldModelEnv
from dmo_ros.world_model.sampler import DiffusionSampler, karras_sigmas

__all__ = [
    "Denoiser",
    "DiffusionSampler",
    "SamplerConfig",
    "WorldModelConfig",
    "WorldModelEnv",
    "edm_preconditioning",
    "karras_sigmas",
    "load_world_model",
    "to_model_range",
    "to_uint8",
]
