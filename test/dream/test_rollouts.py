"""The dream core: start windows, the three action sources, rollouts, the hallucination flag (no ROS)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.dream.rollouts import (
    DreamConfig,
    Dreamer,
    DreamStart,
    ExternalActions,
    PolicyActions,
    RecordedActions,
    StartCatalog,
    spread_map,
    summarise_spread,
)
from dmo_ros.policy.base import RandomPolicy
from dmo_ros.world_model.config import WorldModelConfig
from dmo_ros.world_model.denoiser import Denoiser
from dmo_ros.world_model.imagination import WorldModelEnv

SIZE, L, A = 8, 4, 2


def denoiser() -> Denoiser:
    torch.manual_seed(0)
    model = Denoiser(WorldModelConfig.preset("tiny", A, [0.25, 0.25], image_size=SIZE))
    with torch.no_grad():  # zero-initialised layers would make F = 0: every seed would give the same frame
        for parameter in model.parameters():
            if parameter.ndim > 1 and not parameter.any():
                parameter.normal_(std=0.1)
    return model.eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    lengths = [12, 15, 10, 20, 14]
    frames = rng.integers(0, 255, size=(sum(lengths), SIZE, SIZE, 3), dtype=np.uint8)
    actions = rng.uniform(-0.25, 0.25, size=(sum(lengths), A)).astype(np.float32)
    return write_dataset(tmp_path_factory.mktemp("dream") / "data", frames, actions, lengths,
                         validation_fraction=0.4), frames, actions, lengths


def test_catalog_windows_match_the_recording(dataset):
    folder, frames, actions, lengths = dataset
    catalog = StartCatalog(folder, context=L, horizon=5)
    start = catalog.start(index=0, count=2, stride=1)
    assert start.frames.shape == (2, L, 3, SIZE, SIZE) and start.actions.shape == (2, L - 1, A)
    assert start.future_frames.shape == (2, 5, 3, SIZE, SIZE) and start.future_actions.shape == (2, 5, A)
    first = int(catalog.windows.starts[0])
    np.testing.assert_array_equal(start.frames[0, 0].permute(1, 2, 0).numpy(), frames[first])
    np.testing.assert_array_equal(start.future_frames[0, 0].permute(1, 2, 0).numpy(), frames[first + L])
    np.testing.assert_allclose(start.future_actions[0, 0].numpy(), actions[first + L - 1])  # leads to frame L
    np.testing.assert_allclose(start.actions[0].numpy(), actions[first : first + L - 1])
    episode = int(catalog.windows.episode_of[0])
    episode_start = next(ep["start"] for ep in catalog.windows.episodes if ep["index"] == episode)
    np.testing.assert_array_equal(start.first_frames[0].permute(1, 2, 0).numpy(), frames[episode_start])
    assert start.labels[0].startswith(f"episode {episode}, sample ")


def test_catalog_finds_episodes_and_cycles(dataset):
    folder = dataset[0]
    catalog = StartCatalog(folder, context=L, horizon=5)
    assert catalog.split == "val"
    for episode in catalog.episodes:
        index = catalog.find(episode, offset=2)
        assert int(catalog.windows.episode_of[index]) == episode
    first = catalog.find(catalog.episodes[0])
    if len(catalog.episodes) > 1:
        assert int(catalog.windows.episode_of[catalog.next_episode(first)]) == catalog.episodes[1]
    assert catalog.start(index=len(catalog) + 1).frames.shape[0] == 1  # indices cycle
    with pytest.raises(ValueError, match="no window"):
        catalog.find(999)
    with pytest.raises(ValueError, match="lower the horizon"):
        StartCatalog(folder, context=L, horizon=100)


def test_step_samples_draws_k_frames_and_continues_from_the_first():
    model = denoiser()
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, L, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    actions = torch.rand(2, L - 1, A, generator=g) * 0.2
    env = WorldModelEnv(model, generator=torch.Generator().manual_seed(1))
    env.reset(frames, actions)
    samples = env.step_samples(torch.zeros(2, A), 3)
    assert samples.shape == (2, 3, 3, SIZE, SIZE)
    assert torch.equal(env.observation, samples[:, 0])
    assert not torch.allclose(samples[:, 0], samples[:, 1])  # different noise, different frames
    # K = 1 is exactly step(): the same noise stream gives the same frame
    one, two = (WorldModelEnv(model, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    one.reset(frames, actions), two.reset(frames, actions)
    assert torch.equal(one.step(torch.zeros(2, A)), two.step_samples(torch.zeros(2, A), 1)[:, 0])


def test_spread_summaries():
    same = torch.zeros(2, 4, 3, SIZE, SIZE)
    assert torch.equal(spread_map(same), torch.zeros(2, SIZE, SIZE))
    mixed = same.clone()
    mixed[1, ::2] = 1.0  # half the seeds white, half grey: variance 0.0625 everywhere ([0, 1] pixels)
    variance = spread_map(mixed)
    assert torch.allclose(variance[1], torch.full((SIZE, SIZE), 0.0625))
    blob = torch.zeros(1, SIZE, SIZE)
    blob[0, 0, 0] = 1.0
    assert summarise_spread(blob, "mean").item() == pytest.approx(1 / SIZE**2)
    assert summarise_spread(blob, "p99").item() > summarise_spread(blob, "mean").item()
    with pytest.raises(ValueError, match="summary"):
        summarise_spread(blob, "max")


def test_recorded_replay_pairs_imagined_and_real_frames_by_step(dataset):
    catalog = StartCatalog(dataset[0], context=L, horizon=6)
    start = catalog.start(index=0, count=2)
    rewards_seen = []

    class CountingReward:  # the GoalReward interface: set_start, then frames -> rewards
        def set_start(self, first):
            self.first = first

        def __call__(self, frames):
            rewards_seen.append(frames.shape)
            return frames.float().mean(dim=(1, 2, 3)) / 255

    dream = Dreamer(denoiser(), DreamConfig(horizon=6, seeds=3), reward=CountingReward())
    dream.start(start, RecordedActions())
    steps = dream.rollout()
    assert [s.step for s in steps] == list(range(6)) and dream.finished
    for s in steps:
        assert s.imagined.shape == (2, 3, SIZE, SIZE) and s.imagined.dtype == torch.uint8
        assert torch.equal(s.real, start.future_frames[:, s.step])
        assert torch.allclose(s.actions, start.future_actions[:, s.step])
        assert torch.isfinite(s.rewards).all() and s.values.isnan().all()
        assert (s.spread > 0).all() and s.spread_map.shape == (2, SIZE, SIZE)
    assert len(rewards_seen) == 6 and torch.equal(dream.reward.first, start.first_frames)
    with pytest.raises(RuntimeError, match="ended"):
        dream.step()
    dream.restart()
    assert dream.steps == 0 and dream.rollouts_started == 2 and not dream.finished


def test_same_seed_same_rollout_and_threshold_ends_rollouts(dataset):
    start = StartCatalog(dataset[0], context=L, horizon=4).start(count=2)
    runs = []
    for _ in range(2):
        dream = Dreamer(denoiser(), DreamConfig(horizon=4, seeds=2, seed=3))
        dream.start(start, RecordedActions())
        runs.append(torch.stack([s.imagined for s in dream.rollout()]))
    assert torch.equal(*runs)
    dream = Dreamer(denoiser(), DreamConfig(horizon=4, seeds=2, threshold=1e-9, end_off_data=True))
    dream.start(start, RecordedActions())
    first = dream.step()
    assert first.off_data.all() and first.active.all()  # flagged at step 0, published, then ended
    assert dream.finished
    marked = Dreamer(denoiser(), DreamConfig(horizon=4, seeds=2, threshold=1e-9))  # only marked: goes on
    marked.start(start, RecordedActions())
    assert len(marked.rollout()) == 4


def test_one_seed_has_no_spread(dataset):
    start = StartCatalog(dataset[0], context=L, horizon=2).start()
    dream = Dreamer(denoiser(), DreamConfig(horizon=2, seeds=1))
    dream.start(start, RecordedActions())
    assert all((s.spread == 0).all() for s in dream.rollout())


def test_policy_actions_filter_the_context_and_act_per_rollout(dataset):
    start = StartCatalog(dataset[0], context=L, horizon=3).start(count=2)

    class Recording(RandomPolicy):
        def __init__(self):
            super().__init__(np.array([0.25, 0.25]), (SIZE, SIZE))
            self.seen, self.observed = [], []

        def reset(self):
            self.seen, self.observed = [], []

        def act(self, frame):
            self.seen.append(frame.copy())
            return super().act(frame)

        def observe_action(self, action):
            self.observed.append(np.asarray(action))

    source = PolicyActions(Recording(), value=lambda policy: float(len(policy.seen)))
    dream = Dreamer(denoiser(), DreamConfig(horizon=3, seeds=1))
    dream.start(start, source)
    assert len(source.copies) == 2 and source.copies[0] is not source.copies[1]
    copy0 = source.copies[0]
    assert len(copy0.seen) == L - 1 and len(copy0.observed) == L - 1  # the context, filtered
    np.testing.assert_array_equal(copy0.seen[0], start.frames[0, 0].permute(1, 2, 0).numpy())
    np.testing.assert_allclose(np.stack(copy0.observed), start.actions[0].numpy())
    steps = dream.rollout()
    assert len(steps) == 3
    np.testing.assert_array_equal(copy0.seen[L - 1], start.frames[0, -1].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(copy0.seen[L], steps[0].imagined[0].permute(1, 2, 0).numpy())  # closed loop
    assert all((s.actions.abs() <= 0.25).all() for s in steps)
    assert steps[0].values.tolist() == [float(L), float(L)]  # the value after the step's act
    wrong = PolicyActions(RandomPolicy(np.array([1.0, 1.0]), (SIZE * 2, SIZE * 2)))
    with pytest.raises(ValueError, match="frames"):
        dream.start(start, wrong)


def test_external_actions_hold_the_latest_and_time_out():
    now = [0.0]
    source = ExternalActions(A, timeout=0.5, clock=lambda: now[0])
    frames = torch.zeros(2, L, 3, SIZE, SIZE, dtype=torch.uint8)
    start = DreamStart.from_live(frames[0].permute(0, 2, 3, 1).numpy(), action_size=A)
    source.reset(DreamStart(frames=frames, actions=torch.zeros(2, L - 1, A)))
    assert torch.equal(source.actions(0, frames[:, -1]), torch.zeros(2, A))
    source.set([0.1, -0.2])
    assert torch.allclose(source.actions(1, frames[:, -1]), torch.tensor([[0.1, -0.2]] * 2))
    now[0] = 1.0
    assert torch.equal(source.actions(2, frames[:, -1]), torch.zeros(2, A))  # stale: the robot would stop
    with pytest.raises(ValueError, match="finite"):
        source.set([math.nan, 0.0])
    # a live start drives the dream with teleop actions (no recording: no real frames, no recorded actions)
    dream = Dreamer(denoiser(), DreamConfig(horizon=2, seeds=1))
    dream.start(start, source)
    step = dream.step()
    assert step.real is None and step.imagined.shape == (1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="recording"):
        dream.start(start, RecordedActions())


def test_config_validation():
    for bad in ({"horizon": 0}, {"seeds": 0}, {"threshold": -1.0}, {"summary": "median"}):
        with pytest.raises(ValueError):
            DreamConfig(**bad)


def test_the_dream_samples_with_the_models_change_threshold_at_any_number_of_steps():
    model = denoiser()
    model.config.sampler_change_threshold = 4.0
    for steps in (0, 2):  # the model's own steps, or the dream's: the threshold stays the model's
        sampler = Dreamer(model, DreamConfig(horizon=2, seeds=1, sampling_steps=steps)).env.sampler.config
        assert sampler.change_threshold == 4.0
        assert sampler.num_steps == (steps or model.config.sampler_steps)
        assert not sampler.bf16
    assert Dreamer(model, DreamConfig(horizon=2, seeds=1, sampling_steps=2, bf16=True)).env.sampler.config == replace(
        model.sampler_with(4.0, bf16=True), num_steps=2)
