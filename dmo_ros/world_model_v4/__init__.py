"""DreamerV4-style global world model for Push Cube: causal tokenizer, shortcut-forcing dynamics transformer with
axial attention, a KV cache and an intent reward token; batched imagination and a fidelity report.

- :mod:`.config` — :class:`TokenizerConfig`, :class:`DynamicsConfig` (presets tiny / cpu / gpu).
- :mod:`.layers` — RMSNorm, attention with rotary positions and a KV cache, transformer block.
- :mod:`.tokenizer` — :class:`Tokenizer`: frames <-> tanh latent tokens, masked-patch training.
- :mod:`.dynamics` — :class:`Dynamics`: tokens, masks, shortcut-forcing loss, few-step sampling, :class:`KVCache`.
- :mod:`.model` — :class:`WorldModelV4` (tokenizer + dynamics) and the run-folder loaders.
- :mod:`.imagination` — :class:`WorldModelV4Env`: batched reset / step / rollout with rewards.
- :mod:`.train` — ``dmo-train-tokenizer`` and ``dmo-train-dynamics``.
- :mod:`.report` — ``dmo-world-model-v4-report``: fidelity, object permanence, reward AUC, action shuffle;
  pictures of imagined rollouts.

Plain PyTorch: nothing here imports rclpy or the policy trainers.
"""

from dmo_ros.world_model_v4.config import DynamicsConfig, TokenizerConfig
from dmo_ros.world_model_v4.dynamics import Dynamics, KVCache, LatentWindow
from dmo_ros.world_model_v4.imagination import WorldModelV4Env
from dmo_ros.world_model_v4.model import WorldModelV4, is_world_model_v4, load_tokenizer, load_world_model_v4
from dmo_ros.world_model_v4.tokenizer import FrameBatch, Tokenizer

__all__ = [
    "Dynamics",
    "DynamicsConfig",
    "FrameBatch",
    "KVCache",
    "LatentWindow",
    "Tokenizer",
    "TokenizerConfig",
    "WorldModelV4",
    "WorldModelV4Env",
    "is_world_model_v4",
    "load_tokenizer",
    "load_world_model_v4",
]
