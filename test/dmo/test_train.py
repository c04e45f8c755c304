"""``dmo-train-policy``: every method trains in the world model, logs samples + evaluations, checkpoints, resumes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dmo.runner import read_evaluations
from dmo_ros.dmo.train import main
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.policy.api import PolicyError, load_policy
from dmo_ros.training.checkpoint import (
    checkpoint_dir,
    load_model_weights,
    load_trainer_state,
    save_checkpoint,
    write_run_config,
)


def _args(method, inputs, run, *extra):
    args = [method, str(inputs["dataset"]), "--world-model", str(inputs["world_model"]), "--reward-run",
            str(inputs["reward"]), "--goal", str(inputs["goal"]), "--run-dir", str(run), "--preset", "tiny",
            "--device", "cpu", "--progress", "false", "--eval-max-steps", "3", "--force-gates"]
    if method != "ppo":
        args += ["--local-model", str(inputs["local_model"])]
    return args + list(extra)


@pytest.mark.parametrize("method", ["dmo", "no-diffusion", "ppo"])
def test_every_method_trains_logs_and_resumes(policy_inputs, tmp_path, method, capsys):
    run = tmp_path / method
    assert main(_args(method, policy_inputs, run, "--max-samples", "64")) == 0
    records = read_evaluations(run)
    # tiny presets: 4 episodes x 8 steps = 32 samples per epoch; evaluations before training and after every epoch.
    assert [r["samples"] for r in records] == [0, 32, 64]
    assert all(0.0 <= r["mean_max_coverage"] <= 1.0 and r["episodes"] == 2 for r in records)
    assert records[0]["wall_s"] == 0.0 and records[2]["wall_s"] >= records[1]["wall_s"] > 0.0
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == method.replace("-", "_") and config["policy"]["action_limit"]

    # Re-running with a larger budget resumes: the counters go on, nothing is evaluated twice.
    assert main(_args(method, policy_inputs, run, "--max-samples", "96")) == 0
    assert "resuming" in capsys.readouterr().out
    assert [r["samples"] for r in read_evaluations(run)] == [0, 32, 64, 96]
    assert load_trainer_state(run)["epoch"] == 3

    policy = load_policy(run)
    policy.reset()
    frame = np.zeros((32, 32, 3), np.uint8)
    actions = np.stack([policy.act(frame) for _ in range(3)])
    assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 0.25 + 1e-9)


def test_a_resume_with_other_settings_says_so_and_keeps_the_record(policy_inputs, tmp_path, capsys):
    """--batch-size, --horizon, --policy-ema given to a resume change the saved run's settings; that used to happen
    without a word and left config.json naming only the new ones."""
    run = tmp_path / "dmo"
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "32", "--eval-every", "0")) == 0
    capsys.readouterr()
    horizon = json.loads((run / "config.json").read_text())["configs"]["sapo"]["horizon"]
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0", "--horizon",
                      str(horizon + 1))) == 0
    out = capsys.readouterr().out
    assert f"with other settings than it was trained with so far: sapo.horizon {horizon} -> {horizon + 1}" in out
    assert "note: the checkpoint's replay buffer holds frames" in out and "it starts empty" in out  # H + 1 frames
    config = json.loads((run / "config.json").read_text())
    assert config["configs"]["sapo"]["horizon"] == horizon + 1
    assert config["config_changes"] == [{"changed": {"sapo.horizon": {"from": horizon, "to": horizon + 1}}}]


def test_dmo_fills_the_replay_buffer_and_never_touches_the_pretrained_local_model(policy_inputs, tmp_path):
    before = load_model_weights(policy_inputs["local_model"])
    run = tmp_path / "dmo"
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0")) == 0
    meta = json.loads((checkpoint_dir(run) / "meta.json").read_text())
    assert meta["metrics"]["replay_sequences"] == 8  # 2 epochs x 4 episodes
    assert "local/next_latent_error" in meta["metrics"]  # the second epoch fine-tuned on the first's transitions
    after = load_model_weights(policy_inputs["local_model"])
    assert all(torch.equal(after[key], before[key]) for key in before)
    tuned = load_model_weights(run)
    assert any(not torch.equal(tuned["local." + key], before[key]) for key in before)  # the run's copy was tuned


def test_real_priority_draws_the_high_reward_sequences(policy_inputs, tmp_path, monkeypatch):
    """``--finetune-real-priority``: real sequences drawn in proportion to exp(priority x z) of their best label;
    ``sequence_rewards`` reads the labels without the frames, in index order."""
    from dmo_ros.dmo import algorithm
    from dmo_ros.local_model.model import SequenceDataset

    drawn = []
    real_concatenate = algorithm._concatenate

    def recording_concatenate(sequences, batch):
        drawn.extend(float(sequence.rewards.max()) for sequence in sequences)
        return real_concatenate(sequences, batch)

    monkeypatch.setattr(algorithm, "_concatenate", recording_concatenate)
    best = {}
    for priority in ("0", "30"):
        drawn.clear()
        run = tmp_path / priority
        assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0",
                          "--finetune-real-fraction", "1", "--finetune-real-priority", priority)) == 0
        best[priority] = np.mean(drawn)
    index = json.loads((tmp_path / "0" / "rewards.json").read_text())
    labels = {key: np.load(tmp_path / "0" / entry["file"]) for key, entry in index.items()}
    sequences = SequenceDataset([policy_inputs["dataset"]], 4, "train", labels)
    each = sequences.sequence_rewards()
    assert each.shape == (len(sequences),)
    assert each[:5].tolist() == [float(sequences[i].rewards.max()) for i in range(5)]
    assert best["30"] > np.quantile(each, 0.9) > best["0"]  # priority 30: (nearly) only the top sequences
    assert main(_args("dmo", policy_inputs, tmp_path / "bad", "--finetune-real-priority", "-1")) == 2


def test_dmo_fine_tunes_all_but_the_encoder_when_asked(policy_inputs, tmp_path):
    before = load_model_weights(policy_inputs["local_model"])
    for encoder in ("true", "false"):
        run = tmp_path / encoder
        assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0",
                          "--finetune-encoder", encoder)) == 0
        tuned = load_model_weights(run)
        moved = {key.split(".")[0] for key in before if not torch.equal(tuned["local." + key], before[key])}
        assert "rssm" in moved and "reward_head" in moved
        assert ("encoder" in moved) == (encoder == "true")


def test_dmo_fine_tunes_on_real_sequences_as_asked(policy_inputs, tmp_path, monkeypatch):
    """``--finetune-real-fraction 1``: every fine-tuning sequence comes from the labelled real dataset (none from the
    replay of world-model frames); the labels are kept in the run folder for a resume."""
    from dmo_ros.dmo import algorithm
    from dmo_ros.dmo.replay import ReplayBuffer

    drawn = {"real": 0, "replay": 0}
    real_concatenate, replay_sample = algorithm._concatenate, ReplayBuffer.sample

    def counting_concatenate(sequences, batch):
        drawn["real"] += len(sequences)
        return real_concatenate(sequences, batch)

    def counting_sample(self, batch_size, length):
        drawn["replay"] += batch_size
        return replay_sample(self, batch_size, length)

    monkeypatch.setattr(algorithm, "_concatenate", counting_concatenate)
    monkeypatch.setattr(ReplayBuffer, "sample", counting_sample)
    run = tmp_path / "dmo"
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0",
                      "--finetune-real-fraction", "1")) == 0
    # tiny preset: 2 fine-tuning steps x 4 sequences in the second epoch (the first has an empty replay)
    assert drawn == {"real": 8, "replay": 0}
    labels = json.loads((run / "rewards.json").read_text())
    assert list(labels) == [str(policy_inputs["dataset"].resolve())]
    assert "local/next_latent_error" in json.loads((checkpoint_dir(run) / "meta.json").read_text())["metrics"]

    drawn.update(real=0, replay=0)
    assert main(_args("dmo", policy_inputs, tmp_path / "half", "--max-samples", "64", "--eval-every", "0",
                      "--finetune-real-fraction", "0.5")) == 0
    assert drawn == {"real": 4, "replay": 4}


def test_dmo_fine_tunes_on_the_windows_its_local_model_was_trained_on(policy_inputs, tmp_path, monkeypatch):
    """A local model trained with ``--windows play`` is fine-tuned on real play sequences only, not on every one."""
    import shutil

    from dmo_ros.local_model import model as local_model_module

    chosen = []

    class RecordingSequences(local_model_module.SequenceDataset):
        def __init__(self, folders, length, split, rewards, windows="all"):
            chosen.append(windows)
            super().__init__(folders, length, split, rewards, windows)

    monkeypatch.setattr(local_model_module, "SequenceDataset", RecordingSequences)
    play_model = tmp_path / "local_play"
    shutil.copytree(policy_inputs["local_model"], play_model)
    config = json.loads((play_model / "config.json").read_text())
    (play_model / "config.json").write_text(json.dumps({**config, "windows": "play"}))
    inputs = {**policy_inputs, "local_model": play_model}
    for model, expected in ((policy_inputs, "all"), (inputs, "play")):
        assert main(_args("dmo", model, tmp_path / f"dmo_{expected}", "--max-samples", "32", "--eval-every", "0",
                          "--finetune-real-fraction", "1")) == 0
        assert chosen[-1] == expected


@pytest.mark.parametrize("method", ["dmo", "ppo"])
def test_the_runs_change_threshold_samples_the_world_model_and_holds_on_resume(policy_inputs, tmp_path, method,
                                                                              monkeypatch, capsys):
    """``--sampler-change-threshold``: the imagined episodes use it (over the model's own 0), the run keeps it on a
    resume without the option, and a different one is refused."""
    from dmo_ros.world_model import sampler

    used = []
    real_sample = sampler.DiffusionSampler.sample

    def recording_sample(self, *args, **kwargs):
        used.append(self.config.change_threshold)
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(sampler.DiffusionSampler, "sample", recording_sample)
    run = tmp_path / method
    assert main(_args(method, policy_inputs, run, "--max-samples", "32", "--eval-every", "0",
                      "--sampler-change-threshold", "3")) == 0
    assert used and set(used) == {3.0}
    assert json.loads((run / "config.json").read_text())["run"]["sampler_change_threshold"] == 3.0
    used.clear()
    assert main(_args(method, policy_inputs, run, "--max-samples", "64", "--eval-every", "0")) == 0
    assert used and set(used) == {3.0}
    capsys.readouterr()
    assert main(_args(method, policy_inputs, run, "--max-samples", "96", "--sampler-change-threshold", "0")) == 2
    assert "--sampler-change-threshold 3.0" in capsys.readouterr().err
    used.clear()
    assert main(_args(method, policy_inputs, tmp_path / "own", "--max-samples", "32", "--eval-every", "0")) == 0
    assert used and set(used) == {0.0}  # none given: the model's own (the tiny preset: 0)
    assert main(_args(method, policy_inputs, tmp_path / "bad", "--sampler-change-threshold", "-1")) == 2


def test_the_runs_sampler_bf16_samples_the_world_model_under_bfloat16_autocast(policy_inputs, tmp_path, monkeypatch):
    """``--sampler-bf16 true``: the imagined frames are sampled under bfloat16 autocast; off by default."""
    from dmo_ros.world_model import sampler

    autocast = []
    real_sample = sampler.DiffusionSampler.sample

    def recording_sample(self, *args, **kwargs):
        autocast.append((self.config.bf16, torch.is_autocast_cpu_enabled()))
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(sampler.DiffusionSampler, "sample", recording_sample)
    assert main(_args("dmo", policy_inputs, tmp_path / "bf16", "--max-samples", "32", "--eval-every", "0",
                      "--sampler-bf16", "true")) == 0
    assert autocast and set(autocast) == {(True, True)}
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["run"]["sampler_bf16"] is True
    autocast.clear()
    assert main(_args("dmo", policy_inputs, tmp_path / "fp32", "--max-samples", "32", "--eval-every", "0")) == 0
    assert autocast and set(autocast) == {(False, False)}


def test_no_diffusion_needs_no_world_model_and_the_others_say_they_do(policy_inputs, tmp_path, capsys):
    """No Diffusion steps only the local RSSM: it trains without --world-model (start windows of 4 frames)."""
    def without_world_model(method, run):
        args = _args(method, policy_inputs, run, "--max-samples", "32")
        at = args.index("--world-model")
        return args[:at] + args[at + 2 :]

    assert main(without_world_model("no-diffusion", tmp_path / "nd")) == 0
    assert json.loads((tmp_path / "nd" / "config.json").read_text())["world_model"] is None
    assert [r["samples"] for r in read_evaluations(tmp_path / "nd")] == [0, 32]
    for method in ("dmo", "ppo"):
        assert main(without_world_model(method, tmp_path / method)) == 2
        assert "--world-model is required" in capsys.readouterr().err


def test_bad_inputs_are_clear_errors(policy_inputs, tmp_path, capsys):
    assert main(_args("dmo", policy_inputs, tmp_path / "a", "--world-model", str(tmp_path / "missing"))) == 2
    assert "not a training run folder" in capsys.readouterr().err
    # A run folder of another kind is refused rather than overwritten.
    assert main(_args("dmo", policy_inputs, policy_inputs["reward"])) == 2
    assert "not a dmo policy" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args("dmo", policy_inputs, tmp_path / "b", "--no-such-option", "1"))
    assert main(_args("dmo", policy_inputs, tmp_path / "c", "--finetune-real-fraction", "1.5")) == 2
    assert "finetune_real_fraction must be in [0, 1]" in capsys.readouterr().err
    with pytest.raises(PolicyError, match="not a policy run"):
        load_policy(policy_inputs["reward"])


def _latent_sapo(inputs, method, **dmo_overrides):
    from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
    from dmo_ros.dmo.imagined_env import ImaginedEnv, StartWindows
    from dmo_ros.dmo.sapo import SAPOConfig
    from dmo_ros.local_model.model import load_local_model
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image
    from dmo_ros.world_model.denoiser import load_world_model

    world_model = load_world_model(inputs["world_model"])
    reward = load_reward_model(inputs["reward"])
    starts = StartWindows([inputs["dataset"]], context=world_model.config.context, seed=0)
    config = DMOConfig.preset("tiny", **{"finetune_steps": 0, **dmo_overrides})
    env = ImaginedEnv(world_model, reward, load_goal_image(inputs["goal"], size=(32, 32)), starts, config.batch_size)
    local = load_local_model(inputs["local_model"])
    algorithm = LatentSAPO(method, local, starts, config, SAPOConfig.preset("tiny"), np.array([0.25, 0.25]),
                           env if method == "dmo" else None)
    return algorithm, world_model, reward, local


@pytest.mark.parametrize("method", ["dmo", "no_diffusion"])
def test_an_epoch_updates_the_actor_only(policy_inputs, method):
    """Policy gradients reach the actor alone: not the local model (nor its encoder), the world or reward model."""
    algorithm, world_model, reward, local = _latent_sapo(policy_inputs, method)
    actor_before = {k: v.clone() for k, v in algorithm.learner.actor.state_dict().items()}
    local_before = {k: v.clone() for k, v in local.state_dict().items()}
    logs = algorithm.train_epoch()
    assert algorithm.samples == 32 and np.isfinite(logs["actor_loss"])
    assert any(not torch.equal(v, actor_before[k]) for k, v in algorithm.learner.actor.state_dict().items())
    assert all(torch.equal(v, local_before[k]) for k, v in local.state_dict().items())  # no fine-tuning asked
    for model in (local, world_model, reward):
        assert all(p.grad is None for p in model.parameters())
    if method == "dmo":
        # The world model's transitions went into the replay buffer, labelled by the global reward.
        assert logs["replay_sequences"] == 4 and "global_return" in logs


def test_the_terminal_value_counts_after_the_critic_warmup(policy_inputs, monkeypatch):
    """``critic_warmup`` epochs of the H-step return alone, then the critics' terminal value joins the objective."""
    from dmo_ros.dmo.algorithm import DMOConfig

    algorithm = _latent_sapo(policy_inputs, "no_diffusion", critic_warmup=2)[0]
    weights = []
    update = algorithm.learner.update
    monkeypatch.setattr(algorithm.learner, "update",
                        lambda trajectory, terminal_weight=1.0: weights.append(terminal_weight) or update(
                            trajectory, terminal_weight=terminal_weight))
    logs = [algorithm.train_epoch()["terminal_weight"] for _ in range(3)]
    assert weights == logs == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="critic_warmup"):
        DMOConfig(critic_warmup=-1)


@pytest.mark.parametrize("noise", [0.0, 8.0])
def test_frame_noise_perturbs_only_what_the_actor_reads(policy_inputs, monkeypatch, noise):
    """``frame_noise`` adds pixel noise to the frames the local model encodes for the actor (starts and forward
    steps); the world model's own frames, which the replay keeps and the reward reads, stay clean."""
    from dmo_ros.dmo.algorithm import DMOConfig
    from dmo_ros.dmo.replay import to_uint8_frames
    from dmo_ros.local_model.encoder import to_model_images

    algorithm, _, _, local = _latent_sapo(policy_inputs, "dmo", frame_noise=noise)
    encoded, stepped, contexts = [], [], []
    encode, step, reset = local.encode, algorithm.env.step, algorithm.env.reset
    monkeypatch.setattr(local, "encode", lambda frames: encoded.append(frames.detach().clone()) or encode(frames))
    monkeypatch.setattr(algorithm.env, "step",
                        lambda action: (lambda out: stepped.append(out[0].detach().clone()) or out)(step(action)))
    monkeypatch.setattr(algorithm.env, "reset", lambda: (reset(), contexts.append(algorithm.env.context[0].clone())))
    algorithm.train_epoch()
    context = contexts[0]  # the episodes' real start frames
    horizon = algorithm.sapo.horizon
    assert len(stepped) == horizon and len(encoded) == horizon + 1  # the start's filter, then one per step
    gaps = [encoded[0] - to_model_images(context.to(encoded[0].device))] + \
        [seen - clean for seen, clean in zip(encoded[1:], stepped, strict=True)]
    if noise == 0:
        assert all(gap.abs().max() == 0 for gap in gaps)
    else:
        std = noise / 127.5  # uint8 levels on the [-1, 1] scale; clamping at white halves what white pixels get
        for gap in gaps:
            inside = gap[gap != 0]
            assert gap.abs().max() <= 6 * std and 0.3 * std < inside.std().item() < 1.2 * std
    # The replay holds the world model's frames as they were.
    assert torch.equal(algorithm.replay.frames[0, 1:horizon + 1], torch.stack([to_uint8_frames(f[0]) for f in stepped]))
    with pytest.raises(ValueError, match="frame_noise"):
        DMOConfig(frame_noise=-1.0)


@pytest.mark.parametrize("method, task", [("dmo", "push_near"), ("ppo", "reach_fixed")])
def test_rung_1_trains_in_the_simulator_and_writes_the_final_evaluation(policy_inputs, tmp_path, method, task, capsys):
    """Rung 1: the stand-in simulator steps the episodes (no world model given), the task's resets start them, and the
    run ends with the evaluation dmo-ladder-table reads."""
    from dmo_ros.ladder.table import ladder_table

    run = tmp_path / f"rung1_{method}"
    args = [a for a in _args(method, policy_inputs, run, "--max-samples", "32", "--forward", "simulator",
                             "--task", task, "--final-eval-episodes", "2") if a]
    at = args.index("--world-model")
    del args[at : at + 2]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"rung 1, task {task}" in out and "simulator samples" in out
    config = json.loads((run / "config.json").read_text())
    assert (config["forward"], config["task"], config["rung"], config["world_model"]) == \
        ("simulator", task, 1, None)
    # The gates of the models it trained on, as they stood at its start (no world model on rung 1).
    assert set(config["gates"]) == ({"reward", "local_model"} if method == "dmo" else {"reward"})
    assert config["gates"]["reward"]["run"] == str(policy_inputs["reward"])
    assert [r["samples"] for r in read_evaluations(run)] == [0, 32]
    final = json.loads((run / "final_eval.json").read_text())
    assert final["config"]["task"] == task and final["policy"]["episodes"] == 2
    assert {"ceiling: random actions", "ceiling: scripted expert (privileged)"} <= set(final["ceilings"])
    table = ladder_table([run])
    assert f"| 1 | {task} | {method} | 32 |" in table

    # Resuming with another forward model or task is refused, not mixed into one run.
    assert main(_args(method, policy_inputs, run, "--max-samples", "64")) == 2
    assert "--forward simulator" in capsys.readouterr().err


def test_simulator_env_follows_the_contract(policy_inputs):
    from dmo_ros.dmo.simulator_env import SimulatorEnv
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image

    reward = load_reward_model(policy_inputs["reward"])
    goal = load_goal_image(policy_inputs["goal"], size=(32, 32))
    with pytest.raises(ValueError, match="reach"):
        SimulatorEnv(reward, goal, 2, 32, 4, task="reach")
    fixed = SimulatorEnv(reward, goal, batch_size=2, image_size=32, context=4, task="reach_fixed", seed=1)
    assert fixed.reset().shape == (2, 3, 32, 32)  # one target for every episode: learnable from the camera
    fixed.close()
    env = SimulatorEnv(reward, goal, batch_size=3, image_size=32, context=4, task="push_t", seed=1)
    first = env.reset()
    assert first.shape == (3, 3, 32, 32) and -1 <= first.min() and first.max() <= 1
    frames, actions = env.context
    assert frames.shape == (3, 4, 3, 32, 32) and actions.shape == (3, 3, 2) and not actions.any()
    push = torch.tensor([[0.25, 0.0]] * 3)
    for _ in range(3):
        observation, reward_now = env.step(push)
    assert reward_now.shape == (3,) and torch.isfinite(reward_now).all()
    frames, actions = env.context
    assert torch.equal(frames[:, -1], observation) and torch.equal(actions[:, -1], push)
    assert not torch.equal(observation, first)  # the agent moved on the camera
    assert env.samples == 9 and env.steps.tolist() == [3, 3, 3]
    env.reset_some(torch.tensor([False, True, False]))
    assert env.steps.tolist() == [3, 0, 3]
    assert torch.equal(env.context[0][1, 0], env.context[0][1, -1])  # a fresh episode's context is its first frame
    with pytest.raises(ValueError, match="non-finite"):
        env.step(torch.tensor([[float("nan"), 0.0]] * 3))
    env.close()


def test_a_go2_run_is_evaluated_on_push_cube_during_and_after_training(tmp_path):
    """Go2 runs: the periodic evaluations (eval.jsonl) and the final one (final_eval.json) are Push Cube's, with the
    Table II metrics; the run's task is push_cube."""
    from policy_runs import train_tiny_policy

    run = train_tiny_policy(tmp_path, "go2", max_samples=16,
                            extra=("--eval-every", "1", "--eval-episodes", "1", "--eval-max-steps", "3",
                                   "--final-eval-episodes", "1"))
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "push_cube"
    records = read_evaluations(run)
    assert records and {"success_rate", "straightness", "curvature_rad_m", "out_of_view_fraction"} <= set(records[-1])
    final = json.loads((run / "final_eval.json").read_text())
    assert final["task"] == "push_cube" and final["policy"]["episodes"] == 1
    assert "ceiling: scripted expert (privileged)" in final["ceilings"]


def test_rung_1_on_push_cube_steps_the_go2_stand_in(tmp_path):
    """``--forward simulator`` on Go2 data: the episodes are the MuJoCo Push Cube stand-in's (3-D body velocities,
    its ego camera resized as recorded); the run is rung 1 of push_cube and is evaluated on Push Cube."""
    from dmo_ros.dmo.simulator_env import SimulatorEnv
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image
    from policy_runs import train_tiny_policy

    run = train_tiny_policy(tmp_path, "go2", max_samples=16,
                            extra=("--forward", "simulator", "--eval-every", "1", "--eval-episodes", "1",
                                   "--eval-max-steps", "3", "--final-eval-episodes", "1"))
    config = json.loads((run / "config.json").read_text())
    assert (config["forward"], config["task"], config["rung"]) == ("simulator", "push_cube", 1)
    assert read_evaluations(run) and json.loads((run / "final_eval.json").read_text())["task"] == "push_cube"

    root = run.parent
    env = SimulatorEnv(load_reward_model(root / "reward"), load_goal_image(root / "goal.png", size=(32, 32)),
                       batch_size=2, image_size=32, context=4, task="push_cube", seed=3)
    first = env.reset()
    assert first.shape == (2, 3, 32, 32) and env.context[1].shape == (2, 3, 3)
    turn = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    for _ in range(3):
        observation, reward_now = env.step(turn)
    assert reward_now.shape == (2,) and torch.isfinite(reward_now).all()
    assert (observation - first).abs().mean() > 0.05  # turning on the spot swings the ego camera's view
    assert env.samples == 6 and torch.equal(env.context[1][:, -1], turn)
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        env.step(torch.zeros(2, 2))  # Push-T's 2-D actions are not the Go2's
    env.close()


def test_rung_1_on_push_cube_with_an_intent_reward_needs_no_goal_picture(tmp_path, capsys):
    """An intent reward run (dmo-train-reward --objective intent) rewards rung 1's Push Cube episodes without
    --goal; a goal-picture reward run without --goal is refused, saying so."""
    from dmo_ros.dmo.simulator_env import SimulatorEnv
    from dmo_ros.dmo.train import main as train_policy_main
    from dmo_ros.reward.energy import load_reward_model
    from dmo_ros.reward.intent import IntentReward
    from policy_runs import train_tiny_policy

    run = train_tiny_policy(tmp_path, "go2", max_samples=16, objective="intent",
                            extra=("--forward", "simulator", "--final-eval-episodes", "1", "--eval-max-steps", "3"))
    config = json.loads((run / "config.json").read_text())
    assert config["rung"] == 1 and json.loads((run / "final_eval.json").read_text())["task"] == "push_cube"
    root = run.parent
    env = SimulatorEnv(load_reward_model(root / "intent"), None, batch_size=2, image_size=32, context=4,
                       task="push_cube", seed=3)
    assert isinstance(env.reward, IntentReward)
    env.reset()
    _, reward_now = env.step(torch.zeros(2, 3))
    assert reward_now.shape == (2,) and torch.isfinite(reward_now).all()
    env.close()
    code = train_policy_main(["dmo", str(root / "dataset"), "--reward-run", str(root / "reward"),
                              "--local-model", str(root / "local_model"), "--forward", "simulator",
                              "--run-dir", str(tmp_path / "refused"), "--preset", "tiny", "--device", "cpu",
                              "--force-gates"])
    assert code == 2 and "--goal is required" in capsys.readouterr().err


def test_a_linear_schedule_decays_the_actor_critics_and_fine_tuning_over_the_budget(policy_inputs, tmp_path):
    """``--lr-schedule linear`` (SHAC): each epoch's rates follow the budget spent before it, the local model's
    fine-tuning rate alongside the actor's; the run records the schedule; without a budget it is refused."""
    from dmo_ros.dmo.algorithm import LatentSAPO
    from dmo_ros.dmo.sapo import LINEAR_FINAL_LR, SAPOConfig

    algorithm, _, _, local = _latent_sapo(policy_inputs, "dmo")
    sapo = SAPOConfig.preset("tiny", lr_schedule="linear")
    with pytest.raises(ValueError, match="sample budget"):
        LatentSAPO("dmo", local, algorithm.starts, algorithm.config, sapo, np.array([0.25, 0.25]), algorithm.env)
    scheduled = LatentSAPO("dmo", local, algorithm.starts, algorithm.config, sapo, np.array([0.25, 0.25]),
                           algorithm.env, max_samples=64)
    first, second = scheduled.train_epoch(), scheduled.train_epoch()  # 32 samples per epoch
    assert first["actor_lr"] == pytest.approx(sapo.actor_lr)
    assert second["actor_lr"] == pytest.approx(sapo.actor_lr + (LINEAR_FINAL_LR - sapo.actor_lr) * 0.5)
    assert second["finetune_lr"] == pytest.approx(algorithm.config.finetune_lr
                                                  + (LINEAR_FINAL_LR - algorithm.config.finetune_lr) * 0.5)
    assert scheduled.learner.critic_optimizer.param_groups[0]["lr"] == pytest.approx(
        sapo.critic_lr + (LINEAR_FINAL_LR - sapo.critic_lr) * 0.5)
    assert scheduled.finetune_optimizer.param_groups[0]["lr"] == pytest.approx(second["finetune_lr"])
    assert "actor_lr" not in algorithm.train_epoch()  # the constant default logs no schedule

    run = tmp_path / "linear"
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0",
                      "--lr-schedule", "linear")) == 0
    assert json.loads((run / "config.json").read_text())["configs"]["sapo"]["lr_schedule"] == "linear"


def test_policy_ema_averages_the_deployed_policy_and_the_run_keeps_both(policy_inputs, tmp_path):
    """``policy_ema``: after each update the averaged actor and local model move (1 - decay) of the way to the latest
    weights; the policy evaluated and deployed is the average, training and resuming go on from the latest."""
    from dmo_ros.dmo.algorithm import DMOConfig, LatentSAPO
    from dmo_ros.policy.api import policy_from_state

    with pytest.raises(ValueError, match="policy_ema"):
        DMOConfig(policy_ema=1.0)
    algorithm, _, _, local = _latent_sapo(policy_inputs, "dmo", policy_ema=0.5, finetune_steps=2)
    algorithm.train_epoch()  # the first update: the average starts from the latest weights
    averaged = algorithm.average.module
    actor = algorithm.learner.actor.state_dict()
    assert all(torch.equal(averaged["actor"].state_dict()[k], v) for k, v in actor.items())
    first = {k: v.clone() for k, v in algorithm.state_dict().items() if k.startswith(("actor.", "local."))}
    algorithm.train_epoch()  # the replay now holds a sequence: the local model is fine-tuned as well
    latest = algorithm.state_dict()
    for key, value in first.items():
        assert torch.allclose(latest[f"average.{key}"], 0.5 * value + 0.5 * latest[key], atol=1e-6), key
    moved = [key for key in first if not torch.equal(first[key], latest[key])]
    assert any(k.startswith("actor.") for k in moved) and any(k.startswith("local.rssm") for k in moved)
    assert int(latest["average.n_averaged"]) == 2

    policy = algorithm.policy()  # evaluations read the average
    assert policy.actor is averaged["actor"] and policy.local_model is averaged["local"]

    # Resuming restores the latest weights and the average; the run's checkpoint deploys the average.
    resumed = LatentSAPO("dmo", local, algorithm.starts, algorithm.config, algorithm.sapo, np.array([0.25, 0.25]),
                         algorithm.env)
    resumed.load_state_dict(latest)
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in latest.items())
    run_config = {"kind": "policy", "method": "dmo", "policy": algorithm.policy_config()}
    deployed = policy_from_state(run_config, latest)
    assert all(torch.equal(deployed.actor.state_dict()[k], v) for k, v in averaged["actor"].state_dict().items())
    frame = np.full((32, 32, 3), 128, np.uint8)
    latest_only = policy_from_state(run_config, {k: v for k, v in latest.items() if not k.startswith("average.")})
    assert not np.allclose(deployed.act(frame), latest_only.act(frame))

    run = tmp_path / "ema"
    assert main(_args("dmo", policy_inputs, run, "--max-samples", "64", "--eval-every", "0",
                      "--policy-ema", "0.9")) == 0
    assert json.loads((run / "config.json").read_text())["configs"]["dmo"]["policy_ema"] == 0.9
    assert int(load_model_weights(run)["average.n_averaged"]) == 2


def test_dmo_trains_and_deploys_with_a_gaussian_local_model(policy_inputs, tmp_path):
    """The Gaussian latent (``LocalModelConfig.latent``) goes through DMO's rollouts, fine-tuning and the policy."""
    config = LocalModelConfig.preset("tiny", 2, [0.25, 0.25], image_size=32, latent="gaussian")
    local = tmp_path / "local_gaussian"
    write_run_config(local, {"kind": "local_model", "model": asdict(config)})
    save_checkpoint(local, 1, LocalModel(config).state_dict(), {}, {})
    inputs = {**policy_inputs, "local_model": local}
    run = tmp_path / "dmo"
    assert main(_args("dmo", inputs, run, "--max-samples", "64", "--finetune-steps", "1")) == 0
    meta = json.loads((checkpoint_dir(run) / "meta.json").read_text())
    assert np.isfinite(meta["metrics"]["actor_loss"]) and np.isfinite(meta["metrics"]["local/next_latent_kl"])
    policy = load_policy(run)
    policy.reset()
    actions = np.stack([policy.act(np.zeros((32, 32, 3), np.uint8)) for _ in range(3)])
    assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 0.25 + 1e-9) and np.isfinite(actions).all()


@pytest.mark.parametrize(("option", "given", "held"), [("--local-model", "reward", "reward model"),
                                                        ("--reward-run", "local_model", "local model"),
                                                        ("--world-model", "reward", "reward model")])
def test_an_input_run_of_another_kind_is_named_before_any_gate(policy_inputs, tmp_path, monkeypatch, capsys, option,
                                                                given, held):
    """A run given as the wrong model is refused for what it holds, gated or not: no gate is measured toward the
    goal first, and no advice to gate it as the model it is not."""
    import dmo_ros.gates.cli

    def never(*args, **kwargs):
        raise AssertionError("a gate was measured before the kinds were checked")

    monkeypatch.setattr(dmo_ros.gates.cli, "reward_gate_toward", never)
    args = _args("dmo", policy_inputs, tmp_path / "y", "--max-samples", "32")
    args.remove("--force-gates")
    args[args.index(option) + 1] = str(policy_inputs[given])
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"holds a {held} run" in captured.err and "dmo-gate" not in captured.err
    assert "gate:" not in captured.out and not (tmp_path / "y").exists()


def test_a_resume_with_another_goal_picture_is_refused_before_any_model_loads(policy_inputs, tmp_path, capsys):
    """It used to train on, rewriting config.json's goal: one policy trained toward two pictures."""
    import shutil

    run = tmp_path / "ppo"
    assert main(_args("ppo", policy_inputs, run, "--max-samples", "32", "--eval-every", "0")) == 0
    other = shutil.copy(policy_inputs["goal"], tmp_path / "other_goal.png")
    args = _args("ppo", policy_inputs, run, "--max-samples", "64")
    args[args.index("--goal") + 1] = str(other)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"holds a run trained with --goal {Path(policy_inputs['goal']).resolve()} (given now: {other})" in err
    assert json.loads((run / "config.json").read_text())["goal"] == str(Path(policy_inputs["goal"]).resolve())


def test_a_resized_goal_picture_is_said_once(policy_inputs, tmp_path, capsys, caplog):
    """It was printed ("goal: goal image … resized …") and logged again (Python's last-resort handler on stderr)."""
    import logging

    from PIL import Image

    goal = tmp_path / "big_goal.png"
    Image.open(policy_inputs["goal"]).resize((48, 48)).save(goal)
    args = _args("ppo", policy_inputs, tmp_path / "ppo", "--max-samples", "32", "--eval-every", "0")
    args[args.index("--goal") + 1] = str(goal)
    with caplog.at_level(logging.WARNING, logger="dmo_ros.reward.goal_image"):
        assert main(args) == 0
    captured = capsys.readouterr()
    said = [line for line in (captured.out + captured.err).splitlines() if "resized 48x48 to 32x32" in line]
    said += [record.message for record in caplog.records if record.name == "dmo_ros.reward.goal_image"]
    assert said == [f"goal image {goal}: resized 48x48 to 32x32 px (centre crop to the target aspect, then resize, "
                    "as the dataset converter does)"], said
