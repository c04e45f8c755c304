"""DMO's gradient matching (``DMOConfig.gradient_matching_scale``): the simulator's finite-difference probes, the
probe buffer, the refusals, and a learning test: fitting the local model's d r̂ / d a to the probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
from dmo_ros.dmo.imagined_env import StartWindows
from dmo_ros.dmo.replay import GradientProbeBuffer
from dmo_ros.dmo.sapo import SAPOConfig
from dmo_ros.dmo.simulator_env import SimulatorEnv
from dmo_ros.local_model.model import load_local_model
from dmo_ros.reward.energy import load_reward_model
from dmo_ros.reward.goal_image import load_goal_image


def _env(inputs, batch_size: int = 2, seed: int = 1) -> SimulatorEnv:
    reward = load_reward_model(inputs["reward"])
    goal = load_goal_image(inputs["goal"], size=(32, 32))
    return SimulatorEnv(reward, goal, batch_size=batch_size, image_size=32, context=4, task="push_region", seed=seed)


def test_reward_gradient_is_the_central_difference_and_leaves_the_episodes_where_they_were(policy_inputs):
    probed, twin, plus, minus = (_env(policy_inputs) for _ in range(4))
    push = torch.tensor([[0.1, -0.05], [-0.2, 0.1]])
    for env in (probed, twin, plus, minus):
        env.reset()
        env.step(push)
    epsilon = 0.05
    gradient = probed.reward_gradient(push, epsilon)
    assert gradient.shape == (2, 2) and torch.isfinite(gradient).all()
    assert probed.samples == 2 + 2 * 4  # the four branches of each episode are forward-model samples
    # The first component against two twins stepped by a ± eps e_0 for real.
    _, reward_plus = plus.step(push + torch.tensor([epsilon, 0.0]))
    _, reward_minus = minus.step(push - torch.tensor([epsilon, 0.0]))
    torch.testing.assert_close(gradient[:, 0], (reward_plus - reward_minus) / (2 * epsilon), rtol=1e-4, atol=1e-5)
    # The probed episodes go on from where they were, as the twin never probed does.
    observation, reward_now = probed.step(push)
    twin_observation, twin_reward = twin.step(push)
    assert torch.equal(observation, twin_observation) and torch.equal(reward_now, twin_reward)
    with pytest.raises(ValueError, match="epsilon"):
        probed.reward_gradient(push, 0.0)
    with pytest.raises(ValueError, match="finite"):
        probed.reward_gradient(torch.full((2, 2), float("nan")), epsilon)
    for env in (probed, twin, plus, minus):
        env.close()


def test_a_k_step_reward_gradient_holds_the_action_after_the_shift(policy_inputs):
    """``steps`` K: the finite difference of the sum of K rewards, a ± eps e_i first and a held after it, equals two
    twin stand-ins stepped that way; 2AK transitions per episode are counted; the episodes are put back."""
    probed, plus, minus = (_env(policy_inputs) for _ in range(3))
    push = torch.tensor([[0.1, -0.05], [-0.2, 0.1]])
    for env in (probed, plus, minus):
        env.reset()
        env.step(push)
    epsilon, steps = 0.05, 3
    before = probed.observation.clone()
    gradient = probed.reward_gradient(push, epsilon, steps=steps)
    assert probed.samples == 2 + 2 * 4 * steps and torch.equal(probed.observation, before)
    totals = []
    for env, sign in ((plus, 1.0), (minus, -1.0)):
        total = env.step(push + sign * torch.tensor([0.0, epsilon]))[1]
        for _ in range(steps - 1):
            total = total + env.step(push)[1]
        totals.append(total)
    # float32 rewards of frames batched another way differ by ~1e-5 each; / (2 eps) over K of them: atol 2e-3
    torch.testing.assert_close(gradient[:, 1], (totals[0] - totals[1]) / (2 * epsilon), rtol=1e-3, atol=2e-3)
    assert gradient[:, 1].abs().max() > 0.02  # a gradient the tolerance cannot hide
    with pytest.raises(ValueError, match="steps"):
        probed.reward_gradient(push, epsilon, steps=0)
    with pytest.raises(ValueError, match="gradient_matching_steps"):
        DMOConfig(gradient_matching_steps=0)
    with pytest.raises(ValueError, match="gradient_matching_scale > 0"):  # K without the matching: no effect
        DMOConfig(gradient_matching_steps=8)
    for env in (probed, plus, minus):
        env.close()


def test_the_probe_buffer_keeps_the_newest_probes_and_refuses_bad_ones():
    buffer = GradientProbeBuffer(capacity=3, length=2, image_shape=(3, 4, 4), action_size=2)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    for value in range(4):
        buffer.add(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 2), torch.full((1, 2), float(value)))
    assert len(buffer) == 3 and sorted(buffer.gradients[:, 0].tolist()) == [1.0, 2.0, 3.0]
    assert buffer.gradient_scale() == pytest.approx(2.0 * np.sqrt(2.0))
    frames, actions, gradients = buffer.sample(5)
    assert frames.dtype == torch.uint8 and frames.shape == (5, 2, 3, 4, 4) and gradients.shape == (5, 2)
    with pytest.raises(ValueError, match="non-finite"):
        buffer.add(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 2), torch.full((1, 2), float("inf")))
    with pytest.raises(ValueError, match="2 frames"):
        buffer.add(torch.zeros(1, 3, 3, 4, 4), torch.zeros(1, 3, 2), torch.zeros(1, 2))


def test_gradient_matching_needs_fine_tuning_and_a_forward_model_that_can_branch(policy_inputs):
    with pytest.raises(ValueError, match="finetune_steps"):
        DMOConfig(gradient_matching_scale=1.0, finetune_steps=0)
    with pytest.raises(ValueError, match="gradient_probe_epsilon"):
        DMOConfig(gradient_probe_epsilon=-1.0)
    from dmo_ros.dmo.imagined_env import ImaginedEnv
    from dmo_ros.world_model.denoiser import load_world_model

    world_model = load_world_model(policy_inputs["world_model"])
    starts = StartWindows([policy_inputs["dataset"]], context=world_model.config.context, seed=0)
    config = DMOConfig.preset("tiny", gradient_matching_scale=1.0)
    imagined = ImaginedEnv(world_model, load_reward_model(policy_inputs["reward"]),
                           load_goal_image(policy_inputs["goal"], size=(32, 32)), starts, config.batch_size)
    with pytest.raises(ValueError, match="--forward simulator"):  # the world model (rung 2) cannot branch yet
        LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config, SAPOConfig.preset("tiny"),
                   np.array([0.25, 0.25]), imagined)


def _matching_error(algorithm: LatentSAPO) -> tuple[float, float]:
    """The matching loss and mean cosine over every stored probe (no sampling), K steps as configured."""
    probes = algorithm.probes
    size = len(probes)
    frames, actions, targets = probes.frames[:size], probes.actions[:size], probes.gradients[:size]
    local = algorithm.local
    with torch.enable_grad():
        posteriors, _ = local.observe(frames, actions, sample=False)
        action = actions[:, -1].clone().requires_grad_(True)
        state = local.rssm.prior_step(posteriors.at(-1), action, sample=False)
        total = local.reward_through_priors(state, [action.detach()] * (algorithm.config.gradient_matching_steps - 1))
        (gradient,) = torch.autograd.grad(total.sum(), action)
    scale = probes.gradient_scale()
    loss = float((gradient / scale - targets / scale).pow(2).sum(-1).mean())
    return loss, float(torch.nn.functional.cosine_similarity(gradient, targets, dim=-1).mean())


@pytest.mark.parametrize("steps", [1, 3])
def test_gradient_matching_fits_the_local_gradient_to_the_simulator_probes(policy_inputs, steps):
    """Learning test: with the matching loss the fine-tuning turns the local one-step (K-step) gradient toward the
    probes' finite differences (an epoch probes each episode once; the untrained reward head's gradient is 0 at
    first)."""
    torch.manual_seed(0)
    config = DMOConfig.preset("tiny", finetune_steps=1, finetune_batch_size=8, finetune_lr=1e-3,
                              gradient_matching_scale=1000.0, replay_capacity=8, gradient_matching_steps=steps)
    env = _env(policy_inputs, batch_size=config.batch_size)
    starts = StartWindows([policy_inputs["dataset"]], context=4, seed=0)
    algorithm = LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config,
                           SAPOConfig.preset("tiny"), np.array([0.25, 0.25]), env)
    logs = algorithm.train_epoch()
    assert len(algorithm.probes) == config.batch_size
    assert env.samples == config.batch_size * (SAPOConfig.preset("tiny").horizon + 4 * steps)  # + 2AK branch steps
    before, cosine_before = _matching_error(algorithm)
    for _ in range(150):
        logs = algorithm._finetune()
    after, cosine_after = _matching_error(algorithm)
    assert {"local/gradient_matching_loss", "local/probe_gradient_cosine"} <= set(logs)
    assert after < 0.3 * before and cosine_after > max(0.8, cosine_before + 0.3), (before, after, cosine_before,
                                                                                   cosine_after)
    env.close()


def test_an_epoch_logs_the_actor_gradients_parts_and_trains_as_without(policy_inputs):
    """``actor_gradient_parts`` logs each part's norm, drift and mean, and leaves training as it was: the same seed
    gives the same actor with and without it."""
    actors = []
    for diagnostic in (False, True):
        torch.manual_seed(0)
        config = DMOConfig.preset("tiny", finetune_steps=0, actor_gradient_parts=diagnostic)
        env = _env(policy_inputs, batch_size=config.batch_size)
        starts = StartWindows([policy_inputs["dataset"]], context=4, seed=0)
        algorithm = LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config,
                               SAPOConfig.preset("tiny"), np.array([0.25, 0.25]), env)
        logs = algorithm.train_epoch()
        actors.append({key: value.clone() for key, value in algorithm.learner.actor.state_dict().items()})
        env.close()
    for part in ("reward_first", "reward_later", "value", "entropy", "total"):
        keys = {f"parts/{part}_{name}" for name in ("norm", "drift", "mean_0", "mean_1")}
        assert keys <= set(logs)
        assert 0.0 <= logs[f"parts/{part}_drift"] <= 1.0 + 1e-9
    assert logs["parts/total_norm"] > 0 and logs["parts/entropy_norm"] > 0  # later entropies depend on a_0
    for key, value in actors[0].items():
        torch.testing.assert_close(actors[1][key], value)


def test_the_true_reward_oracle_rewards_the_simulators_states(policy_inputs):
    """Rung 1's true-reward oracle: every reward (steps and probes) is the task's reward of the stand-in's state,
    rung 0's; the frame-reward interface refuses frames other than the current observation."""
    from dmo_ros.ladder.state_env import observe, state_reward

    with pytest.raises(ValueError, match="pass None"):
        SimulatorEnv(load_reward_model(policy_inputs["reward"]), None, 2, 32, 4, task="push_region", true_reward=True)
    with pytest.raises(ValueError, match="push_cube"):
        SimulatorEnv(None, None, 2, 32, 4, task="push_cube", true_reward=True)
    with pytest.raises(ValueError, match="reward model is needed"):
        SimulatorEnv(None, None, 2, 32, 4, task="push_region")
    envs = [SimulatorEnv(None, None, 2, 32, 4, task="push_region", seed=1, true_reward=True) for _ in range(3)]
    push = torch.tensor([[0.1, -0.05], [-0.2, 0.1]])
    for env in envs:
        env.reset()
        observation, reward_now = env.step(push)
    observation, reward_now = envs[0].observation, envs[0].reward(envs[0].observation)
    expected = torch.stack([state_reward(torch.from_numpy(observe(sim.state())), "push_region")
                            for sim in envs[0].sims])
    torch.testing.assert_close(reward_now, expected)
    with pytest.raises(ValueError, match="current observation"):
        envs[0].reward(observation.flip(-1))
    epsilon = 0.05
    gradient = envs[0].reward_gradient(push, epsilon)
    assert torch.equal(envs[0].reward(envs[0].observation), expected)  # the probes put the states back
    _, reward_plus = envs[1].step(push + torch.tensor([0.0, epsilon]))
    _, reward_minus = envs[2].step(push - torch.tensor([0.0, epsilon]))
    torch.testing.assert_close(gradient[:, 1], (reward_plus - reward_minus) / (2 * epsilon), rtol=1e-4, atol=1e-5)
    envs[0].reset_some(torch.tensor([True, False]))  # restarts go through the reward's start as with a frame reward
    for env in envs:
        env.close()


def test_dmo_on_rung_1_trains_with_the_true_reward_and_gradient_matching(policy_inputs, tmp_path, capsys):
    """``--true-reward --forward simulator`` trains without a reward run, records the oracle in the run, and refuses
    the flag where it has no meaning (rung 2, beside a reward run) and a resume that would swap the reward."""
    from dmo_ros.dmo.train import main

    common = [str(policy_inputs["dataset"]), "--local-model", str(policy_inputs["local_model"]), "--preset", "tiny",
              "--device", "cpu", "--progress", "false", "--eval-max-steps", "3", "--force-gates"]
    run = tmp_path / "oracle"
    assert main(["dmo", *common, "--forward", "simulator", "--task", "push_region", "--true-reward",
                 "--gradient-matching-scale", "1", "--run-dir", str(run), "--max-samples", "64",
                 "--final-eval-episodes", "1", "--ceilings-cache", str(tmp_path / "ceilings.json")]) == 0
    assert "| rung 1 (true reward) dmo, " in (run / "final_eval.md").read_text()  # the table names the oracle
    config = __import__("json").loads((run / "config.json").read_text())
    assert (config["reward"], config["rung"], config["configs"]["dmo"]["gradient_matching_scale"]) == ("true", 1, 1.0)
    assert main(["dmo", *common, "--forward", "simulator", "--task", "push_region", "--reward-run",
                 str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]), "--run-dir", str(run),
                 "--max-samples", "96"]) == 2
    assert "--true-reward" in capsys.readouterr().err  # the run was trained on the oracle
    assert main(["dmo", *common, "--world-model", str(policy_inputs["world_model"]), "--true-reward",
                 "--run-dir", str(tmp_path / "rung2")]) == 2
    assert "--forward simulator" in capsys.readouterr().err
    assert main(["dmo", *common, "--forward", "simulator", "--task", "push_region", "--true-reward", "--reward-run",
                 str(policy_inputs["reward"]), "--run-dir", str(tmp_path / "both")]) == 2
    assert "leave --reward-run and --goal out" in capsys.readouterr().err


def test_a_resumed_run_keeps_its_replay_and_probes(policy_inputs, tmp_path):
    """The fine-tuning replay and the probes (forward-model samples already paid for) go into the checkpoint's
    trainer state and come back on a resume; a checkpoint written before they were saved resumes with them empty."""
    config = DMOConfig.preset("tiny", finetune_steps=1, gradient_matching_scale=1.0, replay_capacity=8)

    def build() -> LatentSAPO:
        env = _env(policy_inputs, batch_size=config.batch_size)
        starts = StartWindows([policy_inputs["dataset"]], context=4, seed=0)
        return LatentSAPO("dmo", load_local_model(policy_inputs["local_model"]), starts, config,
                          SAPOConfig.preset("tiny"), np.array([0.25, 0.25]), env)

    trained = build()
    trained.train_epoch()
    assert len(trained.replay) == config.batch_size and len(trained.probes) == config.batch_size
    torch.save(trained.trainer_state(), tmp_path / "trainer.pt")
    state = torch.load(tmp_path / "trainer.pt", weights_only=True)  # as a resume reads it
    resumed = build()
    resumed.load_trainer_state(state)
    for name in ("frames", "actions", "rewards"):
        assert torch.equal(getattr(resumed.replay, name), getattr(trained.replay, name))
    for name in ("frames", "actions", "gradients"):
        assert torch.equal(getattr(resumed.probes, name), getattr(trained.probes, name))
    assert (resumed.replay.cursor, resumed.probes.cursor) == (trained.replay.cursor, trained.probes.cursor)
    older = build()
    older.load_trainer_state({key: value for key, value in state.items() if key not in ("replay", "probes")})
    assert len(older.replay) == 0 and len(older.probes) == 0
    for algorithm in (trained, resumed, older):
        algorithm.env.close()
