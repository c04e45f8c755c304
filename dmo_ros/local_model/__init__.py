"""The local model: a DreamerV3-style RSSM whose single-step Jacobians DMO's policy gradient flows through.

- :mod:`.config` — :class:`LocalModelConfig` (presets tiny / cpu / gpu).
- :mod:`.encoder` — :class:`ImageEncoder` (frames -> embedding) and :class:`ImageDecoder`.
- :mod:`.rssm` — :class:`RSSM` (prior_step / posterior / observe), :class:`RSSMState`, :func:`features`,
  :func:`kl_loss` (KL balancing with free bits).
- :mod:`.heads` — :func:`symlog` / :func:`symexp`, :class:`TwoHot`, :class:`RewardHead`.
- :mod:`.model` — :class:`LocalModel` (``forward(batch) -> (loss, logs)``), :class:`SequenceBatch`,
  :class:`SequenceDataset`, :func:`load_local_model`.
- :mod:`.train` — ``dmo-train-local-model`` and :func:`label_rewards`.
"""

from dmo_ros.local_model.config import PRESETS, LocalModelConfig
from dmo_ros.local_model.encoder import ImageDecoder, ImageEncoder
from dmo_ros.local_model.heads import RewardHead, TwoHot, symexp, symlog, symlog_mse
from dmo_ros.local_model.model import (
    LocalModel,
    SequenceBatch,
    SequenceDataset,
    load_local_model,
    local_model_from_state,
)
from dmo_ros.local_model.rssm import RSSM, KLTerms, RSSMState, features, kl_loss

__all__ = [
    "PRESETS",
    "RSSM",
    "ImageDecoder",
    "ImageEncoder",
    "KLTerms",
    "LocalModel",
    "LocalModelConfig",
    "RSSMState",
    "RewardHead",
    "SequenceBatch",
    "SequenceDataset",
    "TwoHot",
    "features",
    "kl_loss",
    "load_local_model",
    "local_model_from_state",
    "symexp",
    "symlog",
    "symlog_mse",
]
