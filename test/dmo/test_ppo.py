"""PPO: GAE against hand values (with a time-limit bootstrap), the clipped loss's gradients, the config,
the policy round trip through the run config, the non-finite guards, and a learning test on a toy image env."""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict

import numpy as np
import pytest
import torch

from dmo_ros.dmo.ppo import (
    PPO_PRESETS,
    NonFiniteError,
    PPOAlgorithm,
    PPOConfig,
    compute_gae,
    ppo_losses,
)
from dmo_ros.policy.api import Policy, PolicyError, RandomPolicy, policy_from_state
from dmo_ros.policy.ppo_agent import ppo_policy_from_state


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class DotEnv:
    """A batched toy env with ImaginedEnv's interface: a point in [-1, 1]^2 seen as a bright blob on a dark
    (size x size) image; actions (robot units) move it; reward = minus its distance to the centre.

    Random actions wander (about -0.6 per step); steering to the centre earns about 0.
    """

    def __init__(self, batch_size: int = 4, size: int = 16, seed: int = 0, nan_reward_at: int | None = None,
                 nan_observation_at: int | None = None) -> None:
        self.batch_size, self.size, self.action_size = batch_size, size, 2
        self.device = torch.device("cpu")
        self.samples = 0
        self.steps = torch.zeros(batch_size, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)
        self.positions = torch.zeros(batch_size, 2)
        self.nan_reward_at, self.nan_observation_at = nan_reward_at, nan_observation_at
        self.resets = 0
        grid = torch.linspace(-1.0, 1.0, size)
        self.grid_y, self.grid_x = torch.meshgrid(grid, grid, indexing="ij")

    def _starts(self, count: int) -> torch.Tensor:
        return torch.rand(count, 2, generator=self.generator) * 1.6 - 0.8

    def render(self, positions: torch.Tensor) -> torch.Tensor:
        """(N, 2) -> (N, 3, size, size) in [-1, 1]: a Gaussian blob (sigma 1.5 pixels) at each position."""
        sigma = 1.5 * 2.0 / (self.size - 1)
        dx = self.grid_x[None] - positions[:, 0, None, None]
        dy = self.grid_y[None] - positions[:, 1, None, None]
        blob = torch.exp(-(dx.pow(2) + dy.pow(2)) / (2 * sigma**2))
        return (2.0 * blob - 1.0)[:, None].expand(-1, 3, -1, -1).contiguous()

    @property
    def observation(self) -> torch.Tensor:
        return self.render(self.positions)

    def reset(self) -> torch.Tensor:
        self.positions = self._starts(self.batch_size)
        self.steps.zero_()
        self.resets += self.batch_size
        return self.observation

    def reset_some(self, done: torch.Tensor) -> torch.Tensor:
        done = done.to("cpu", torch.bool)
        assert done.shape == (self.batch_size,)
        self.positions[done] = self._starts(int(done.sum()))
        self.steps[done] = 0
        self.resets += int(done.sum())
        return self.observation

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert actions.shape == (self.batch_size, self.action_size)
        assert torch.isfinite(actions).all()
        self.positions = (self.positions + actions).clamp(-1.0, 1.0)
        self.samples += self.batch_size
        self.steps += 1
        rewards = -self.positions.norm(dim=1)
        observation = self.observation
        step = self.samples // self.batch_size - 1
        if step == self.nan_reward_at:
            rewards[3] = float("nan")
        if step == self.nan_observation_at:
            observation[1, 0, 2, 2] = float("nan")
        return observation, rewards

    def state_dict(self) -> dict:
        return {"samples": self.samples}

    def load_state_dict(self, state: dict) -> None:
        self.samples = int(state["samples"])


# Robot units per unit action differ per component, so a wrong scaling shows.
ACTION_LIMIT = np.array([0.15, 0.25])


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8, as a camera frame."""
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def mean_return(policy: Policy, episodes: int = 32, steps: int = 16, seed: int = 123) -> float:
    """Mean undiscounted return of ``policy`` driven frame by frame through the Policy API from fixed starts."""
    env = DotEnv(batch_size=1, seed=seed)
    total = 0.0
    for _ in range(episodes):
        observation = env.reset()
        policy.reset()
        for _ in range(steps):
            action = policy.act(to_uint8(observation[0]))
            assert action.shape == (2,) and (np.abs(action) <= ACTION_LIMIT + 1e-12).all()
            observation, reward = env.step(torch.as_tensor(action, dtype=torch.float32)[None])
            total += reward.item()
    return total / episodes


# -- GAE ---------------------------------------------------------------------------------------

REWARDS = torch.tensor([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]], dtype=torch.float64)  # T = 3, B = 2
VALUES = torch.tensor([[2.0, 1.0], [1.5, -0.5], [0.5, 3.0]], dtype=torch.float64)
NEXT_VALUE = torch.tensor([4.0, -2.0], dtype=torch.float64)
GAMMA = 0.9


def test_gae_lambda_one_is_the_bootstrapped_return_minus_the_value() -> None:
    advantages, returns = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam=1.0)
    for t in range(3):
        for b in range(2):
            discounted = sum(GAMMA ** (k - t) * REWARDS[k, b].item() for k in range(t, 3))
            expected_return = discounted + GAMMA ** (3 - t) * NEXT_VALUE[b].item()
            assert returns[t, b].item() == pytest.approx(expected_return)
            assert advantages[t, b].item() == pytest.approx(expected_return - VALUES[t, b].item())
    # One by hand: 1 + 0.9 * 0.5 + 0.81 * (-1) + 0.729 * 4 - 2.
    assert advantages[0, 0].item() == pytest.approx(1.0 + 0.45 - 0.81 + 2.916 - 2.0)


def test_gae_matches_a_hand_written_loop() -> None:
    lam = 0.7
    advantages, returns = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam)
    values = torch.cat([VALUES, NEXT_VALUE[None]])
    expected = torch.zeros(3, 2, dtype=torch.float64)
    for b in range(2):
        following = 0.0
        for t in (2, 1, 0):
            delta = REWARDS[t, b] + GAMMA * values[t + 1, b] - values[t, b]
            following = delta + GAMMA * lam * following
            expected[t, b] = following
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + VALUES)
    lam_zero, _ = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam=0.0)  # one-step TD errors
    torch.testing.assert_close(lam_zero, REWARDS + GAMMA * values[1:] - VALUES)


def test_gae_truncation_bootstraps_with_the_final_value_and_stops_there() -> None:
    """Episode 0 ends with step 1 (time limit): its steps 0-1 see the final frame's value 7, not V(s_2) of the
    new episode or its rewards; step 2 belongs to the new episode."""
    lam = 0.8
    dones = torch.tensor([[False, False], [True, False], [False, False]])
    final_values = torch.tensor([[0.0, 0.0], [7.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    advantages, returns = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam, dones, final_values)
    delta_1 = 0.5 + GAMMA * 7.0 - 1.5
    delta_0 = 1.0 + GAMMA * 1.5 - 2.0
    delta_2 = -1.0 + GAMMA * 4.0 - 0.5
    assert advantages[1, 0].item() == pytest.approx(delta_1)
    assert advantages[0, 0].item() == pytest.approx(delta_0 + GAMMA * lam * delta_1)
    assert advantages[2, 0].item() == pytest.approx(delta_2)
    # lam = 1: the ended episode's return is its two rewards plus the discounted final value.
    _, mc_returns = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, 1.0, dones, final_values)
    assert mc_returns[0, 0].item() == pytest.approx(1.0 + GAMMA * 0.5 + GAMMA**2 * 7.0)
    # The other episode did not end: same as without dones.
    plain, _ = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam)
    torch.testing.assert_close(advantages[:, 1], plain[:, 1])
    # A terminal end (no final_values) bootstraps with 0.
    terminal, _ = compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, lam, dones)
    assert terminal[1, 0].item() == pytest.approx(0.5 - 1.5)
    assert returns.shape == (3, 2)


def test_gae_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="next_value"):
        compute_gae(REWARDS, VALUES, NEXT_VALUE[:1], GAMMA, 0.9)
    with pytest.raises(ValueError, match="dones"):
        compute_gae(REWARDS, VALUES, NEXT_VALUE, GAMMA, 0.9, dones=torch.zeros(2, 2, dtype=torch.bool))


# -- the clipped loss -----------------------------------------------------------------------------------


def policy_gradient(log_ratio: float, advantage: float, clip: float = 0.2) -> float:
    new = torch.tensor([log_ratio], requires_grad=True)
    zeros = torch.zeros(1)
    terms = ppo_losses(new, zeros, torch.tensor([advantage]), zeros, zeros, zeros, zeros, clip, 0.5, 0.0)
    terms.loss.backward()
    return new.grad.item()


def test_ratio_clip_cuts_the_gradient_only_on_the_clipped_side() -> None:
    up, down = np.log(1.5), np.log(0.5)  # ratios 1.5 and 0.5, both outside [0.8, 1.2]
    # Moved past the clip in the advantage's favour: no gradient pushes further.
    assert policy_gradient(up, advantage=2.0) == 0.0
    assert policy_gradient(down, advantage=-2.0) == 0.0
    # Moved against the advantage: the unclipped term is the max, its gradient -A r stays.
    assert policy_gradient(up, advantage=-2.0) == pytest.approx(2.0 * 1.5)
    assert policy_gradient(down, advantage=2.0) == pytest.approx(-2.0 * 0.5)
    # Inside the clip region: d(-A r)/d log r = -A r.
    assert policy_gradient(np.log(1.1), advantage=2.0) == pytest.approx(-2.0 * 1.1)


def test_ppo_losses_values_kl_and_clipfrac() -> None:
    new_log_prob = torch.log(torch.tensor([1.5, 1.0, 0.9]))
    zeros = torch.zeros(3)
    advantages = torch.tensor([1.0, -1.0, 2.0])
    old_values = torch.tensor([0.0, 1.0, 2.0])
    new_values = torch.tensor([1.0, 1.1, 2.0])
    returns = torch.tensor([2.0, 1.0, 0.0])
    entropy = torch.tensor([0.3, 0.6, 0.9])
    terms = ppo_losses(new_log_prob, zeros, advantages, new_values, old_values, returns, entropy, 0.2, 0.5, 0.1)
    # Surrogates: max(-1.5, -1.2) = -1.2, max(1, 1) = 1, max(-1.8, -1.8) = -1.8.
    assert terms.policy_loss.item() == pytest.approx((-1.2 + 1.0 - 1.8) / 3)
    # Values clipped to old +- 0.2: 0.2 (err 3.24 vs 1), 1.1 (0.01 both), 2.0 (4 both).
    assert terms.value_loss.item() == pytest.approx(0.5 * (3.24 + 0.01 + 4.0) / 3)
    unclipped = ppo_losses(new_log_prob, zeros, advantages, new_values, old_values, returns, entropy, 0.2, 0.5, 0.1,
                           clip_vloss=False)
    assert unclipped.value_loss.item() == pytest.approx(0.5 * (1.0 + 0.01 + 4.0) / 3)
    ratios = torch.tensor([1.5, 1.0, 0.9])
    assert terms.approx_kl.item() == pytest.approx(((ratios - 1) - ratios.log()).mean().item())
    assert terms.clipfrac.item() == pytest.approx(1 / 3)
    assert terms.loss.item() == pytest.approx(terms.policy_loss.item() - 0.1 * 0.6 + 0.5 * terms.value_loss.item())


# -- config -------------------------------------------------------------------------------------------


def test_presets_overrides_and_json_round_trip() -> None:
    assert set(PPO_PRESETS) == {"tiny", "cpu", "gpu"}
    config = PPOConfig.preset("cpu", episode_steps=96)
    assert config.episode_steps == 96 and config.encoder_channels == (16, 32, 32)
    assert PPOConfig.from_dict(json.loads(json.dumps(asdict(config)))) == config
    with pytest.raises(ValueError, match="unknown PPOConfig keys"):
        PPOConfig.from_dict({"rollout_step": 8})
    with pytest.raises(ValueError, match="unknown PPOConfig fields"):
        PPOConfig.preset("tiny", lr=1.0)
    with pytest.raises(ValueError, match="unknown PPO preset"):
        PPOConfig.preset("huge")
    with pytest.raises(ValueError, match="gae_lambda"):
        PPOConfig(gae_lambda=1.5)
    with pytest.raises(ValueError, match="target_kl"):
        PPOConfig(target_kl=0.0)


def test_algorithm_rejects_a_wrong_action_limit() -> None:
    with pytest.raises(ValueError, match="action_limit"):
        PPOAlgorithm(DotEnv(), PPOConfig.preset("tiny"), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="action_limit"):
        PPOAlgorithm(DotEnv(), PPOConfig.preset("tiny"), np.array([0.1, 0.0]))
    with pytest.raises(ValueError, match="num_envs"):
        PPOAlgorithm(DotEnv(batch_size=8), PPOConfig.preset("tiny"), ACTION_LIMIT)


# -- the algorithm ----------------------------------------------------------------------------------


def test_iteration_logs_samples_and_time_limit_restarts() -> None:
    env = DotEnv(batch_size=4)
    config = PPOConfig.preset("tiny", rollout_steps=10, episode_steps=4, minibatches=2, update_epochs=2)
    algorithm = PPOAlgorithm(env, config, ACTION_LIMIT)
    assert algorithm.method == "ppo"
    logs = algorithm.train_epoch()
    assert algorithm.samples == env.samples == 40
    # Restarts after steps 4 and 8 of every episode (plus the first reset).
    assert env.resets == 4 + 2 * 4 and env.steps.tolist() == [2] * 4
    assert logs["episodes_ended"] == 8.0 and logs["samples"] == 40.0
    for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "explained_variance",
                "mean_reward", "episode_return"):
        assert np.isfinite(logs[key]), key
    assert logs["mean_reward"] < 0 and logs["episode_return"] < logs["mean_reward"]  # 4 negative rewards each
    # The running observation carries over: the next iteration continues the same episodes.
    algorithm.train_epoch()
    assert env.resets == 4 + 5 * 4 and env.steps.tolist() == [0] * 4


def test_rollout_executes_clamped_scaled_actions_and_stores_the_samples() -> None:
    env = DotEnv(batch_size=8)
    # Initial std e: many samples fall outside [-1, 1].
    config = PPOConfig.preset("tiny", num_envs=8, rollout_steps=6, episode_steps=100, init_log_std=1.0)
    algorithm = PPOAlgorithm(env, config, ACTION_LIMIT)
    executed = []
    step = env.step
    env.step = lambda actions: (executed.append(actions.clone()), step(actions))[1]
    rollout, _ = algorithm.collect()
    executed = torch.stack(executed)
    torch.testing.assert_close(executed, rollout.actions.clamp(-1, 1) * torch.as_tensor(ACTION_LIMIT).float())
    assert (rollout.actions.abs() > 1).any()  # the stored samples are the unclamped ones
    assert rollout.observations.dtype == torch.uint8 and rollout.observations.shape == (6, 8, 3, 16, 16)


def test_non_finite_reward_or_observation_is_refused() -> None:
    for env, name in ((DotEnv(nan_reward_at=3), "reward"), (DotEnv(nan_observation_at=5), "observation")):
        algorithm = PPOAlgorithm(env, PPOConfig.preset("tiny"), ACTION_LIMIT)
        before = {key: value.clone() for key, value in algorithm.state_dict().items()}
        with pytest.raises(NonFiniteError, match=f"non-finite {name}") as error:
            algorithm.train_epoch()
        assert isinstance(error.value, FloatingPointError)  # dmo-train-policy reports it as a failed run
        for key, value in algorithm.state_dict().items():  # nothing was learned from it
            torch.testing.assert_close(value, before[key])


def test_policy_round_trip_through_the_run_config_gives_identical_actions() -> None:
    env = DotEnv()
    algorithm = PPOAlgorithm(env, PPOConfig.preset("tiny"), ACTION_LIMIT, seed=3)
    algorithm.train_epoch()
    run_config = json.loads(json.dumps({"kind": "policy", "method": "ppo", "policy": algorithm.policy_config()}))
    weights = algorithm.state_dict()
    assert weights and all(key.startswith("agent.") for key in weights)
    agent_state = {key.removeprefix("agent."): value.clone() for key, value in weights.items()}
    rebuilt = ppo_policy_from_state(run_config["policy"], agent_state, ACTION_LIMIT, (16, 16), "cpu")
    loaded = policy_from_state(run_config, weights)  # the policy API's dispatch for method "ppo"
    policy = algorithm.policy()
    assert isinstance(loaded, Policy) and loaded.image_size == (16, 16)
    frames = [to_uint8(frame) for frame in env.render(torch.rand(8, 2) * 2 - 1)]
    actions = np.stack([policy.act(frame) for frame in frames])
    assert np.abs(actions).max() > 1e-4  # not all zero: the comparison means something
    np.testing.assert_array_equal(np.stack([rebuilt.act(frame) for frame in frames]), actions)
    np.testing.assert_array_equal(np.stack([loaded.act(frame) for frame in frames]), actions)
    with pytest.raises(PolicyError, match="lacks"):
        ppo_policy_from_state({"image_size": [16, 16]}, agent_state, ACTION_LIMIT, (16, 16))
    with pytest.raises(PolicyError, match="frame"):
        policy.act(np.zeros((8, 8, 3), np.uint8))
    # The snapshot does not follow later training.
    algorithm.train_epoch()
    np.testing.assert_array_equal(np.stack([policy.act(frame) for frame in frames]), actions)


def test_trainer_state_loads_with_weights_only() -> None:
    algorithm = PPOAlgorithm(DotEnv(), PPOConfig.preset("tiny"), ACTION_LIMIT)
    algorithm.train_epoch()
    buffer = io.BytesIO()
    torch.save(algorithm.trainer_state(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = PPOAlgorithm(DotEnv(seed=1), PPOConfig.preset("tiny"), ACTION_LIMIT, seed=5)
    resumed.load_state_dict(algorithm.state_dict())
    resumed.load_trainer_state(state)
    assert resumed.iteration == 1 and resumed.samples == algorithm.samples
    torch.testing.assert_close(resumed.generator.get_state(), algorithm.generator.get_state())
    moments = [s["exp_avg"] for s in resumed.optimizer.state_dict()["state"].values()]
    expected = [s["exp_avg"] for s in algorithm.optimizer.state_dict()["state"].values()]
    assert moments and all(torch.equal(a, b) for a, b in zip(moments, expected, strict=True))
    with pytest.raises(ValueError, match="agent"):
        resumed.load_state_dict({"actor.weight": torch.zeros(1)})


def test_ppo_learns_to_steer_the_dot_to_the_centre() -> None:
    """From pixels: the deterministic policy's return must beat the initial (near-still) and a random policy's."""
    start = time.perf_counter()
    env = DotEnv(batch_size=16, seed=0)
    config = PPOConfig.preset("tiny", num_envs=16, rollout_steps=16, episode_steps=16, minibatches=4)
    algorithm = PPOAlgorithm(env, config, ACTION_LIMIT, seed=0)
    before = mean_return(algorithm.policy())
    random_return = mean_return(RandomPolicy(ACTION_LIMIT, (16, 16), seed=0))
    for _ in range(25):
        logs = algorithm.train_epoch()
    after = mean_return(algorithm.policy())
    elapsed = time.perf_counter() - start
    print(f"return: initial {before:.2f}, random {random_return:.2f}, trained {after:.2f} "
          f"({algorithm.samples} samples, {elapsed:.1f} s, explained variance {logs['explained_variance']:.2f})")
    assert before < -7.0 and random_return < -7.0  # the task is not trivially solved
    # Seeds 1-5 reach -1.0 to -1.8 after 20 iterations from about -9.7: at most 30% of the distance is left.
    assert after > 0.3 * before and after > 0.3 * random_return
