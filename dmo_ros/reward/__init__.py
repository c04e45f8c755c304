"""The global reward models: a Bradley-Terry temporal-distance energy f(s_t | s_start, s_goal) learned from video
(Push-T, with a goal picture), and the intent reward P(intent | frame) + a milestone bonus (the paper's Push Cube
reward, from the operator's intent button).

- :mod:`~dmo_ros.reward.config` — :class:`RewardConfig` and its tiny / cpu / gpu presets.
- :mod:`~dmo_ros.reward.pairs` — :class:`RankingPairs` batches and the :class:`PairDataset` that draws them.
- :mod:`~dmo_ros.reward.energy` — :class:`EnergyNet` (the model and its loss) and :class:`GoalReward` (RL reward);
  :func:`frame_reward` makes the RL reward of either kind of run.
- :mod:`~dmo_ros.reward.intent` — :class:`IntentRewardNet`, :class:`IntentReward` and the frames they train on.
- :mod:`~dmo_ros.reward.goal_image` — loading and making goal pictures (``dmo-goal-image``).
- :mod:`~dmo_ros.reward.train` — ``dmo-train-reward``; :mod:`~dmo_ros.reward.evaluate` — ``dmo-reward-eval``.
"""

from dmo_ros.reward.config import REWARD_PRESETS, RewardConfig
from dmo_ros.reward.energy import EnergyNet, GoalReward, frame_reward, load_reward_model, needs_goal, to_model_images
from dmo_ros.reward.goal_image import GoalImageError, load_goal_image
from dmo_ros.reward.intent import IntentReward, IntentRewardConfig, IntentRewardNet
from dmo_ros.reward.pairs import PairDataset, RankingPairs

__all__ = [
    "REWARD_PRESETS",
    "EnergyNet",
    "GoalImageError",
    "GoalReward",
    "IntentReward",
    "IntentRewardConfig",
    "IntentRewardNet",
    "PairDataset",
    "RankingPairs",
    "RewardConfig",
    "frame_reward",
    "load_goal_image",
    "load_reward_model",
    "needs_goal",
    "to_model_images",
]
