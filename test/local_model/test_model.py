"""LocalModel: the loss and its logs, encode, sequence batches and data set, save / load round trip."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import DatasetError, write_dataset
from dmo_ros.dataset.loaders import collate
from dmo_ros.local_model import LocalModel, LocalModelConfig, SequenceBatch, SequenceDataset, load_local_model
from dmo_ros.local_model.encoder import to_model_images
from dmo_ros.local_model.heads import symlog
from dmo_ros.local_model.rssm import features
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy shared machine a second one mostly spins (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

SIZE = 16


@pytest.fixture
def model() -> LocalModel:
    torch.manual_seed(0)
    return LocalModel(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=SIZE))


def _batch(b: int = 4, t: int = 5) -> SequenceBatch:
    generator = torch.Generator().manual_seed(0)
    return SequenceBatch(torch.randint(0, 256, (b, t, 3, SIZE, SIZE), dtype=torch.uint8, generator=generator),
                         torch.rand(b, t, 2, generator=generator) * 0.4 - 0.2, torch.randn(b, t, generator=generator))


def test_loss_is_finite_and_logs_the_single_step_metrics(model: LocalModel) -> None:
    loss, logs = model(_batch())
    assert loss.dim() == 0 and torch.isfinite(loss)
    for key in ("next_latent_error", "next_latent_kl", "reward_error", "reward_error_posterior", "next_image_mse",
                "kl", "kl_dyn", "kl_rep", "reward_loss", "image_loss"):
        assert key in logs and np.isfinite(logs[key]), key
        assert isinstance(logs[key], float)
    assert 0.0 <= logs["next_latent_error"] <= 1.0
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0  # the encoder is trained through the posterior
    images = model.sample_images(_batch())["real_posterior_prior"]
    assert images.shape == (3, 3 * SIZE, 5 * SIZE) and images.min() >= 0 and images.max() <= 1


def test_model_without_decoder(model: LocalModel) -> None:
    plain = LocalModel(LocalModelConfig.preset("tiny", 2, image_size=SIZE, decoder_loss_scale=0.0))
    assert plain.decoder is None
    loss, logs = plain(_batch())
    assert torch.isfinite(loss) and "image_loss" not in logs and "next_latent_error" in logs
    assert plain.sample_images(_batch()) == {}


def test_encode_and_reward_through_prior_step(model: LocalModel) -> None:
    frames = _batch().frames
    embeds = model.encode(frames)
    assert embeds.shape == (4, 5, model.config.embed_size)
    torch.testing.assert_close(model.encode(frames.float() / 127.5 - 1.0), embeds)  # float [-1, 1] == uint8
    with pytest.raises(ValueError, match="expected frames"):
        model.encode(torch.zeros(2, 3, 8, 8))
    # DMO's path: reward of the one-step prior, differentiable w.r.t. the action; the posterior of a new frame.
    posteriors, _ = model.observe(frames[:, :1], torch.zeros(4, 1, 2))
    action = torch.zeros(4, 2, requires_grad=True)
    prior = model.rssm.prior_step(posteriors.at(0), action)
    reward = model.reward(prior)
    assert reward.shape == (4,)
    posterior = model.posterior_of(prior, frames[:, 1])
    assert features(posterior).shape == (4, model.config.feature_size)


def test_sequence_batch_collate_and_to() -> None:
    items = [SequenceBatch(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 2), torch.zeros(3))] * 2
    batch = collate(items)
    assert isinstance(batch, SequenceBatch) and batch.frames.shape == (2, 3, 3, 8, 8) and batch.length == 3
    moved = batch.to("cpu")
    assert moved.rewards.shape == (2, 3) and moved.actions.dtype == torch.float32


def test_sequence_dataset_attaches_rewards_by_sample_index(tmp_path: Path) -> None:
    n = 30
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)  # sample index written into a pixel
    actions = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32)
    folders = [write_dataset(tmp_path / name, frames, actions, [10, 12, 8], validation_fraction=0.0)
               for name in ("a", "b")]
    rewards = {str(folders[0]): np.arange(n, dtype=np.float32) * 0.5, folders[1]: np.arange(n) * -1.0}
    dataset = SequenceDataset(folders, 4, "train", rewards)
    assert len(dataset) == 2 * (7 + 9 + 5)
    for index in (0, 6, 7, 20, 21, 41):
        item = dataset[index]
        sample = item.frames[:, 0, 0, 0].long()
        assert item.frames.shape == (4, 3, 8, 8) and item.rewards.shape == (4,)
        assert torch.equal(sample, sample[0] + torch.arange(4))  # consecutive samples of one episode
        torch.testing.assert_close(item.actions[:, 0], sample.float())
        scale = 0.5 if index < 21 else -1.0
        torch.testing.assert_close(item.rewards, sample.float() * scale)
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(DatasetError, match="no reward labels"):
        SequenceDataset(folders, 4, "train", {folders[0]: rewards[str(folders[0])]})
    with pytest.raises(DatasetError, match="relabel"):
        SequenceDataset(folders[:1], 4, "train", {folders[0]: np.zeros(n - 1)})
    with pytest.raises(ValueError, match="at least 2"):
        SequenceDataset(folders, 1, "train", rewards)


def test_sequence_dataset_keeps_play_or_demonstration_windows_by_intent(tmp_path: Path) -> None:
    n = 30
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    intent = np.zeros(n, bool)
    intent[2:8] = True  # episode 0 (samples 0-9): a demonstration in its middle; episode 1 (10-21): play;
    intent[22:] = True  # episode 2 (22-29): a demonstration throughout
    folder = write_dataset(tmp_path / "d", frames, np.zeros((n, 2), np.float32), [10, 12, 8], intent=intent,
                           validation_fraction=0.0)
    rewards = {folder: np.zeros(n, np.float32)}

    def samples(windows: str) -> list[list[int]]:
        dataset = SequenceDataset([folder], 3, "train", rewards, windows)
        return [dataset[i].frames[:, 0, 0, 0].tolist() for i in range(len(dataset))]

    assert len(samples("all")) == 8 + 10 + 6
    play, demonstrations = samples("play"), samples("demonstrations")
    assert play == [[s, s + 1, s + 2] for s in range(10, 20)] and all(not intent[w].any() for w in play)
    assert demonstrations == [[s, s + 1, s + 2] for s in [2, 3, 4, 5, *range(22, 28)]]
    assert "(play)" in repr(SequenceDataset([folder], 3, "train", rewards, "play"))
    sequence_rewards = SequenceDataset([folder], 3, "train", {folder: np.arange(n, dtype=np.float32)},
                                       "demonstrations").sequence_rewards()
    np.testing.assert_array_equal(sequence_rewards, [w[-1] for w in demonstrations])
    with pytest.raises(ValueError, match="windows must be one of all, play, demonstrations"):
        SequenceDataset([folder], 3, "train", rewards, "intent")


def test_save_and_load_roundtrip(model: LocalModel, tmp_path: Path) -> None:
    with torch.no_grad():  # make the zero-initialised reward output non-trivial
        model.reward_head.out.weight.normal_()
    write_run_config(tmp_path, {"kind": "local_model", "model": asdict(model.config)})
    save_checkpoint(tmp_path, 1, model.state_dict(), {"step": 1}, {})
    loaded = load_local_model(tmp_path)
    assert not loaded.training and loaded.config == model.config
    model.eval()
    batch = _batch()
    torch.manual_seed(3)
    expected = model(batch)[1]
    torch.manual_seed(3)
    assert loaded(batch)[1] == expected
    write_run_config(tmp_path, {"kind": "reward", "model": {}})
    with pytest.raises(ValueError, match="not a local model run"):
        load_local_model(tmp_path)


def test_configs_saved_before_the_action_options_load_as_trained() -> None:
    """A config.json without the newer fields reproduces the model it was saved from (none of them on)."""
    saved = asdict(LocalModelConfig.preset("tiny", 2, image_size=SIZE))
    for key in ("inverse_dynamics_scale", "foreground_weight", "difference_weight", "prior_action_input",
                "prior_reward_scale", "reward_difference_scale"):
        del saved[key]
    old = LocalModelConfig.from_dict(saved)
    assert (old.inverse_dynamics_scale, old.foreground_weight, old.difference_weight, old.prior_action_input,
            old.prior_reward_scale, old.reward_difference_scale) == (0.0, 0.0, 0.0, False, 0.0, 0.0)
    assert LocalModel(old).rssm.prior_head[0][0].in_features == old.deter_size


def test_prior_action_input_moves_the_prior_at_a_fixed_deterministic_state() -> None:
    torch.manual_seed(0)
    model = LocalModel(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=SIZE, prior_action_input=True,
                                               free_bits=0.0))
    rssm = model.rssm
    deter = torch.randn(3, rssm.config.deter_size)
    left, right = (rssm._prior_params(deter, torch.tensor([[sign, 0.0]]).expand(3, 2)) for sign in (-1.0, 1.0))
    assert not torch.allclose(left, right)  # the action reaches p(z' | h', a) besides the GRU
    state = rssm.initial(3)
    assert state.params.shape == (3, rssm.config.stoch_size, rssm.config.classes)
    action = torch.zeros(3, 2, requires_grad=True)
    (gradient,) = torch.autograd.grad(model.reward_head(features(rssm.prior_step(state, action))).sum(), action)
    assert torch.isfinite(gradient).all()
    loss, _ = model(_batch())
    loss.backward()
    assert rssm.prior_head[0][0].weight.grad[:, -2:].abs().sum() > 0  # the action columns are trained


def test_difference_weight_weighs_the_pixels_that_move() -> None:
    model = LocalModel(LocalModelConfig.preset("tiny", 2, image_size=SIZE, foreground_weight=0.0,
                                               difference_weight=5.0))
    frames = torch.full((1, 3, 3, SIZE, SIZE), 255, dtype=torch.uint8)
    frames[0, 1, :, 4, 4] = 0  # a dark pixel appears in frame 1 only
    weights = model._pixel_weights(to_model_images(frames))
    assert weights.shape == (1, 3, 1, SIZE, SIZE)
    assert weights[0, :, 0, 4, 4].tolist() == [6.0, 6.0, 6.0]  # changed going into frame 1 and out of it
    assert weights[0, :, 0, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert float(weights.sum()) == 3 * SIZE * SIZE + 3 * 5.0


def test_prior_reward_loss_trains_the_head_on_one_step_priors(model: LocalModel) -> None:
    with_prior = LocalModel(replace(model.config, prior_reward_scale=1.0))
    with_prior.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    loss_plain, logs_plain = model(_batch())
    torch.manual_seed(1)
    loss_prior, logs = with_prior(_batch())
    assert "prior_reward_loss" not in logs_plain and np.isfinite(logs["prior_reward_loss"])
    assert loss_prior.item() == pytest.approx(loss_plain.item() + logs["prior_reward_loss"], rel=1e-5)


def test_reward_difference_loss_measures_the_reward_change_in_rms_units(model: LocalModel) -> None:
    """With a zero reward head (its initialisation) every predicted change is 0: the loss is the Huber loss of
    the labels' changes in units of their RMS."""
    with_difference = LocalModel(replace(model.config, reward_difference_scale=2.0))
    batch = _batch()
    change = symlog(batch.rewards[:, 1:]) - symlog(batch.rewards[:, :-1])
    units = change / change.pow(2).mean().sqrt()
    expected = torch.where(units.abs() < 1, 0.5 * units.pow(2), units.abs() - 0.5).mean()
    _, logs = with_difference(batch)
    assert logs["reward_difference_loss"] == pytest.approx(float(expected), rel=1e-4)
    with torch.no_grad():
        with_difference.reward_head.out.weight.normal_()
    loss, logs = with_difference(_batch())
    assert logs["reward_difference_loss"] != pytest.approx(float(expected), rel=1e-4)
    loss.backward()
    assert with_difference.rssm.input_layer[0].weight.grad[:, -2:].abs().sum() > 0  # reaches the action input


def test_train_sample_false_filters_with_the_modes() -> None:
    torch.manual_seed(0)
    drawn = LocalModel(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=SIZE))
    modes = LocalModel(replace(drawn.config, train_sample=False))
    modes.load_state_dict(drawn.state_dict())
    batch = _batch()
    assert drawn(batch)[0] != drawn(batch)[0]  # categorical draws: another loss each call
    assert modes(batch)[0] == modes(batch)[0]
    loss, _ = modes(batch)
    loss.backward()
    assert modes.encoder.convs[0].weight.grad.abs().sum() > 0  # straight-through: the encoder still learns


def test_the_agent_position_oracle_scores_the_agent_the_frames_show() -> None:
    """``agent_position_scale`` (the ladder's oracle): its target is the agent the stand-in's colours show, scaled to
    [-1, 1]; its loss is the squared error over the frames where the agent is seen, from the posterior features of
    every frame and the one-step prior features of frames 1 .. T - 1; a run without the option has no such loss."""
    from dmo_ros.sims.pusht import PushTConfig, PushTSim
    from dmo_ros.sims.pusht_frames import locate_agent

    size, episodes, length = 32, 3, 4
    sim = PushTSim(PushTConfig(seed=3, width=size, height=size))
    rng = np.random.default_rng(0)
    frames = []
    try:
        for episode in range(episodes):
            if episode:
                sim.reset()
            clip = []
            for _ in range(length):
                clip.append(sim.render())
                sim.step(rng.uniform(-0.04, 0.04, 2))
            frames.append(clip)
    finally:
        sim.close()
    frames = np.asarray(frames)  # (E, T, H, W, 3) uint8
    frames[0, 2] = 255  # one frame without the agent: not counted
    found, visible = locate_agent(frames)
    assert visible.sum() == episodes * length - 1
    targets = (found + 0.5) / size * 2 - 1
    torch.manual_seed(0)
    model = LocalModel(LocalModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=size, agent_position_scale=2.0))
    guess = np.array([0.25, -0.5])

    class Constant(torch.nn.Module):
        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return torch.tensor(guess, dtype=torch.float32).expand(*features.shape[:-1], 2)

    model.agent_position = Constant()
    batch = SequenceBatch(torch.from_numpy(frames).permute(0, 1, 4, 2, 3).contiguous(),
                          torch.zeros(episodes, length, 2), torch.zeros(episodes, length))
    errors = ((targets - guess) ** 2).sum(-1)
    expected = (errors[visible].sum() + errors[:, 1:][visible[:, 1:]].sum()) / (visible.sum() + visible[:, 1:].sum())
    _, logs = model(batch)
    assert logs["agent_position_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert np.all(np.abs(targets[visible]) < 1.0)
    assert "agent_position_loss" not in LocalModel(LocalModelConfig.preset("tiny", 2, image_size=size))(batch)[1]
