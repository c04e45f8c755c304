"""The Push-T global reward: a Bradley-Terry temporal-distance energy f(s_t | s_start, s_goal) learned from video.

- :mod:`~dmo_ros.reward.config` — :class:`RewardConfig` and its tiny / cpu / gpu presets.
- :mod:`~dmo_ros.reward.pairs` — :class:`RankingPairs` batches and the :class:`PairDataset` that draws them.
- :mod:`~dmo_ros.reward.energy` — :class:`EnergyNet` (the model and its loss) and :class:`GoalReward` (RL reward).
- :mod:`~dmo_ros.reward.goal_image` — loading and making goal pictures (``dmo-goal-image``).
- :mod:`~dmo_ros.reward.train` — ``dmo-train-reward``; :mod:`~dmo_ros.reward.evaluate` — ``dmo-reward-eval``.
"""

from dmo_ros.reward.config import REWARD_PRESETS, RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward, load_reward_model, to_model_images
from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
from dmo_ros.reward.pairs import PairDataset, RankingPairs

__all__ = [
    "REWARD_PRESETS",
    "EnergyNet",
    "GoalImageError",
    "GoalReward",
    "PairDataset",
    "RankingPairs",
    "RewardConfig",
    "load_goal_image",
    "load_reward_model",
    "to_model_images",
]
