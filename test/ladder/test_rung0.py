"""Rung 0: the trainer's real CLI with the tiny preset runs, logs the evaluation metrics, resumes; the pieces."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from state_model_fit import fit_state_model

from dmo_ros.dmo.runner import read_evaluations
from dmo_ros.ladder import rung0
from dmo_ros.ladder.state_env import HALF, LURE_CORNER, StateEnvs, observe, state_reward, t_pose_error
from dmo_ros.ladder.table import ladder_table
from dmo_ros.sims.pusht import PushTConfig, PushTSim
from dmo_ros.sims.pusht_tasks import GOAL_POSE, pose_error
from policy_runs import untrained_reward_run

METRICS = ("success_rate", "success_ci95", "loose_success_rate", "mean_max_coverage", "max_coverage_std",
           "mean_final_distance", "final_distance_std", "episodes")


def scalar_tags(run_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in (run_dir / "tensorboard").glob("events.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


@pytest.mark.parametrize("method", rung0.METHODS)
def test_tiny_rung0_trainer_runs_logs_evaluations_and_resumes(tmp_path, capsys, method):
    run = tmp_path / "runs" / f"reach_{method}"
    args = [str(run), "--preset", "tiny", "--task", "reach", "--method", method, "--final-eval-episodes", "2",
            "--no-progress"]
    assert rung0.main(args) == 0
    out = capsys.readouterr().out
    records = read_evaluations(run)
    assert [r["samples"] for r in records][0] == 0 and len(records) >= 2  # before training, and after it
    for record in records:
        assert all(key in record for key in METRICS) and record["method"] == method
    tags = scalar_tags(run)
    assert {"eval/success_rate", "eval/loose_success_rate", "eval/mean_final_distance",
            "eval/mean_max_coverage"} <= tags
    assert any(tag.startswith("train/") for tag in tags)
    final = json.loads((run / "final_eval.json").read_text())
    assert final["policy"]["episodes"] == 2 and final["config"]["max_steps"] == 150
    assert len(final["ceilings"]) == 3 and "| ceiling: scripted expert" in out
    assert (tmp_path / "runs" / "ceilings.json").is_file()
    table = ladder_table([run])
    assert f"| 0 (true state) | reach | {method} |" in table and "| - | reach | scripted expert (privileged) |" in table
    # Resume: the same command with a larger budget goes on from the checkpoint.
    first_samples = records[-1]["samples"]
    assert rung0.main([*args, "--max-samples", str(first_samples + 64)]) == 0
    assert (f"resuming {run} at epoch" in (out := capsys.readouterr().out)
            and f"this command's budget is {first_samples + 64} samples: training goes on to it" in out)
    assert read_evaluations(run)[-1]["samples"] > first_samples
    resumed_samples = read_evaluations(run)[-1]["samples"]
    assert rung0.main([*args, "--max-samples", str(first_samples)]) == 0  # a finished run: evaluated again only
    assert f"at or past this command's budget ({first_samples} samples): no more training" in capsys.readouterr().out
    assert read_evaluations(run)[-1]["samples"] == resumed_samples
    with pytest.raises(SystemExit):  # a resumed run keeps its task
        rung0.main([str(run), "--preset", "tiny", "--task", "push_near"])


def test_a_resume_refuses_set_and_horizon_that_would_change_the_saved_run(tmp_path, capsys):
    """--set and --horizon used to be dropped without a word on a resume (an unknown key too); now a change is an
    error naming the saved and the asked value, and the same value resumes."""
    run = tmp_path / "r0"
    base = [str(run), "--preset", "tiny", "--task", "push_region", "--final-eval-episodes", "0", "--no-progress"]
    assert rung0.main([*base, "--set", "policy_ema=0.5"]) == 0
    capsys.readouterr()
    for extra, message in ((["--set", "policy_ema=0.9"], "policy_ema=0.5; resuming it cannot change that to "
                                                         "policy_ema=0.9"),
                           (["--horizon", "7"], "sapo.horizon=4; resuming it cannot change that to sapo.horizon=7"),
                           (["--set", "foo=1"], "unknown")):
        with pytest.raises(SystemExit) as exit_info:
            rung0.main([*base, *extra])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["rung0"]["policy_ema"] == 0.5
    assert rung0.main([*base, "--set", "policy_ema=0.5", "--max-samples", "128"]) == 0  # the same value: resumes


def test_observation_and_rewards_follow_the_true_state():
    sim = PushTSim(PushTConfig(task="reach", seed=3))
    state = sim.state()
    observation = torch.from_numpy(observe(state))
    np.testing.assert_allclose((observation[0:2].numpy() + 1) * HALF, state.agent, atol=1e-3)
    np.testing.assert_allclose((observation[6:8].numpy() + 1) * HALF, state.target, atol=1e-3)
    reward = state_reward(observation, "reach")
    assert reward.item() == pytest.approx(-np.linalg.norm(state.agent - state.target) / HALF, rel=1e-4)
    assert t_pose_error(observation).item() * HALF == pytest.approx(pose_error(state.block, GOAL_POSE), rel=1e-4)
    # The pushing reward is differentiable in the T's pose and best on the goal pose.
    on_goal = observation.clone()
    on_goal[2:4] = torch.tensor(GOAL_POSE[:2] / HALF - 1)
    on_goal[4:6] = torch.tensor([np.cos(GOAL_POSE[2]), np.sin(GOAL_POSE[2])])
    assert t_pose_error(on_goal).item() < 1e-5
    moved = observation.clone().requires_grad_(True)
    state_reward(moved, "push_near").backward()
    assert moved.grad[2:6].abs().sum() > 0
    sim.close()


def test_push_regions_behind_target_pulls_the_agent_to_the_spot_behind_the_t():
    """``approach_target=behind`` (push_region): the approach term is the agent's distance from the spot 70 u behind
    the T's centre on the line from the goal; the T's term unchanged; other tasks and names refused."""
    from dmo_ros.ladder.state_env import _GOAL_CENTRE
    from dmo_ros.sims.pusht_tasks import t_centre

    sim = PushTSim(PushTConfig(task="push_region", seed=3))
    state = sim.state()
    sim.close()
    observation = torch.from_numpy(observe(state))
    centre = torch.tensor(t_centre(state.block) / HALF - 1.0, dtype=torch.float32)
    away = (centre - _GOAL_CENTRE) / (centre - _GOAL_CENTRE).norm()
    spot, front = observation.clone(), observation.clone()
    spot[0:2], front[0:2] = centre + away * (70.0 / HALF), centre - away * (70.0 / HALF)
    plain = state_reward(spot, "push_region", approach=0.0)
    assert state_reward(spot, "push_region", approach_target="behind").item() == pytest.approx(plain.item(), abs=1e-6)
    assert (state_reward(front, "push_region", approach_target="behind") - plain).item() == pytest.approx(
        -0.1 * 140.0 / HALF, rel=1e-4)
    # The task's own term pays the same at both (each within 70 u of the centre): only "behind" tells them apart.
    assert state_reward(front, "push_region").item() == pytest.approx(state_reward(spot, "push_region").item())
    moved = front.clone().requires_grad_(True)
    state_reward(moved, "push_region", approach_target="behind").backward()
    assert torch.nn.functional.cosine_similarity(moved.grad[0:2], away, dim=0) > 0.99  # uphill: toward the spot
    with pytest.raises(ValueError, match="push_region's"):
        state_reward(observation, "push_t", approach_target="behind")
    with pytest.raises(ValueError, match="unknown approach target"):
        state_reward(observation, "push_region", approach_target="side")
    assert rung0.Rung0Config(task="push_region", approach_target="behind").true_reward(front) == \
        state_reward(front, "push_region", approach_target="behind")
    with pytest.raises(ValueError, match="push_cube's and push_region's"):
        rung0.Rung0Config(task="push_t", approach_target="behind")


def test_the_agent_lure_pays_only_for_the_agents_closeness_to_the_top_right_corner():
    """The diagnostic agent-only term: -w x the agent's distance from the corner, added to the task's reward; the T's
    terms unchanged. Bad weights and a learned reward are refused."""
    sim = PushTSim(PushTConfig(task="push_t", seed=3))
    observation = torch.from_numpy(observe(sim.state()))
    sim.close()
    corner, far = observation.clone(), observation.clone()
    corner[0:2], far[0:2] = torch.tensor(LURE_CORNER), torch.tensor([-1.0, 1.0])  # the bottom-left corner
    for o in (corner, far):
        lured, plain = state_reward(o, "push_t", approach=0.0, agent_lure=0.02), state_reward(o, "push_t", approach=0.0)
        expected = -0.02 * (o[0:2] - torch.tensor(LURE_CORNER)).norm()
        assert (lured - plain).item() == pytest.approx(expected.item(), abs=1e-6)
    assert state_reward(corner, "push_t", agent_lure=0.02) - state_reward(far, "push_t", agent_lure=0.02) > 0
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="agent_lure"):
            rung0.Rung0Config(task="push_t", agent_lure=bad)
    with pytest.raises(ValueError, match="agent_lure adds to the task's true reward"):
        rung0.Rung0Config(task="push_t", agent_lure=0.02, reward="learned", reward_run="r", goal="g")


def test_state_envs_step_in_metres_per_second_and_restart():
    envs = StateEnvs("reach", batch=2, seed=0, episode_steps=3)
    before = envs.observations()
    after = envs.step(np.array([[1.0, 0.0], [0.0, -1.0]]))
    assert envs.samples == 2 and after.shape == (2, 8)
    assert after[0, 0] > before[0, 0] and after[1, 1] < before[1, 1]  # x right, y toward -1
    envs.step(np.zeros((2, 2)))
    envs.step(np.zeros((2, 2)))
    assert envs.restart_ended() == 2 and (envs.steps == 0).all()
    envs.close()


def test_agent_anywhere_reaches_the_training_stand_ins_only_and_only_on_push_region():
    config = rung0.Rung0Config(task="push_region", num_envs=2, agent_anywhere=0.5)
    envs = config.make_envs(seed=0)
    assert all(sim.task.config.region_agent_anywhere == 0.5 for sim in envs.sims)
    envs.close()
    with pytest.raises(ValueError, match="push_region"):
        rung0.Rung0Config(task="reach", agent_anywhere=0.5)
    with pytest.raises(ValueError, match="fraction"):
        rung0.Rung0Config(task="push_region", agent_anywhere=2.0)


def test_state_model_learns_the_agents_motion():
    model, replay, generator, losses = fit_state_model(StateEnvs("reach", batch=8, seed=1, episode_steps=150),
                                                       rung0.OBSERVATION_SIZE, rung0.ACTION_SIZE)
    assert np.mean(losses[-20:]) < 0.3 * np.mean(losses[:5])
    # Its action Jacobian points where the agent moves: d agent_x / d action_x > 0.
    s, a = replay.sample(16, generator)[:2]
    a = a.clone().requires_grad_(True)
    model(s, a)[:, 0].sum().backward()
    assert (a.grad[:, 0] > 0).float().mean() > 0.9


def test_settings_override_fields_and_refuse_unknown_ones():
    config = rung0.apply_settings(rung0.Rung0Config(), ["model_updates=64", "sapo.alpha_init=0.02",
                                                          "task=push_near"])
    assert config.model_updates == 64 and config.sapo.alpha_init == 0.02 and config.task == "push_near"
    for bad in ("nothing=1", "sapo.nothing=1", "model_updates"):
        with pytest.raises(ValueError):
            rung0.apply_settings(rung0.Rung0Config(), [bad])
    with pytest.raises(ValueError, match="task"):
        rung0.apply_settings(rung0.Rung0Config(), ["task=stack"])


@pytest.mark.parametrize(("setting", "message"), [
    ("model_hidden=abc", "Rung0Config field 'model_hidden' takes int, got 'abc'"),
    ("model_hidden=2.5", "takes int"),
    ("model_lr=NaN", "takes float, got 'NaN' .*finite"),
    ("sapo.gamma=inf", "SAPOConfig field 'gamma' takes float"),
    ("bogus=1", "unknown Rung0Config field 'bogus'; valid fields: .*model_hidden"),
])
def test_settings_of_the_wrong_type_are_refused_by_field(setting, message):
    """--set model_hidden=abc ended in a TypeError traceback, --set model_lr=NaN in AdamW's 'Invalid learning
    rate: nan' traceback; an unknown field did not say which ones exist."""
    with pytest.raises(ValueError, match=message):
        rung0.apply_settings(rung0.Rung0Config(), [setting])


def test_settings_read_lists_and_json_strings():
    config = rung0.apply_settings(rung0.Rung0Config(), ["sapo.adam_betas=[0.8, 0.99]", 'task="push_t"'])
    assert config.sapo.adam_betas == (0.8, 0.99) and config.task == "push_t"


# -- the learned reward on true state (the rung between 0 and 1) ---------------------------------------------


@pytest.mark.parametrize("method", rung0.METHODS)
def test_tiny_rung0_with_the_learned_reward_runs_and_records_it(tmp_path, capsys, method):
    reward_run, goal = untrained_reward_run(tmp_path)
    run = tmp_path / f"learned_{method}"
    args = [str(run), "--preset", "tiny", "--task", "reach_fixed", "--method", method, "--reward", "learned",
            "--reward-run", str(reward_run), "--goal", str(goal), "--final-eval-episodes", "2", "--no-progress"]
    assert rung0.main(args) == 0
    assert f"with the learned reward of {reward_run}" in capsys.readouterr().out
    saved = json.loads((run / "config.json").read_text())["rung0"]
    assert (saved["reward"], saved["reward_run"], saved["goal"]) == ("learned", str(reward_run), str(goal))
    if method == "sapo":
        assert {"train/reward_model_error", "train/label_mean"} <= scalar_tags(run)
    assert f"| 0 (true state, learned reward) | reach_fixed | {method} |" in ladder_table([run])


def test_the_regressed_reward_fits_the_regressor_to_the_true_rewards_values(tmp_path, capsys):
    """reward=regressed: the labels are the true reward of the stand-ins' current states, the regressor is trained
    and logged as with the learned reward, and PPO (which takes values only) refuses it."""
    run = tmp_path / "regressed"
    args = [str(run), "--preset", "tiny", "--task", "reach_fixed", "--reward", "regressed",
            "--final-eval-episodes", "2", "--no-progress"]
    assert rung0.main(args) == 0
    assert "with the task's true reward through the reward regressor" in capsys.readouterr().out
    assert {"train/reward_model_error", "train/label_mean"} <= scalar_tags(run)
    assert "| 0 (true state, regressed true reward) | reach_fixed | sapo |" in ladder_table([run])
    # Each replayed transition's label is the true reward of its next state s' (what r_hat(s') is fitted to).
    config = rung0.Rung0Config(task="push_t", reward="regressed", num_envs=3, warmup_samples=30, warmup_updates=1)
    algorithm = rung0.Rung0SAPO(config, seed=0)
    algorithm._warm_up()
    rows = algorithm.replay.data[: len(algorithm.replay)]
    assert len(rows) >= 30
    next_states, labels = rows[:, 8 + 2: -1], rows[:, -1]
    torch.testing.assert_close(labels, config.true_reward(next_states).float())
    assert labels.std() > 0
    algorithm.close()
    with pytest.raises(ValueError, match="reward=regressed tests SAPO's reward regressor"):
        rung0.Rung0Config(task="push_t", reward="regressed", method="ppo")
    with pytest.raises(ValueError, match="reward=regressed takes the true reward's values"):
        rung0.Rung0Config(task="push_t", reward="regressed", reward_run="r", goal="g")


def test_the_learned_reward_needs_a_readable_run_and_goal(tmp_path, capsys):
    with pytest.raises(SystemExit):
        rung0.main([str(tmp_path / "a"), "--preset", "tiny", "--reward", "learned"])
    assert "needs a reward run (--reward-run R)" in capsys.readouterr().err
    reward_run, _ = untrained_reward_run(tmp_path)  # a goal-picture energy without its picture
    with pytest.raises(SystemExit):
        rung0.main([str(tmp_path / "c"), "--preset", "tiny", "--reward", "learned", "--reward-run", str(reward_run)])
    assert "needs a goal picture" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rung0.main([str(tmp_path / "b"), "--preset", "tiny", "--reward", "learned", "--reward-run",
                    str(tmp_path / "missing"), "--goal", str(tmp_path / "missing.png")])
    assert "missing" in capsys.readouterr().err


def test_frame_rewards_score_the_resized_render_as_the_reward_model_does(tmp_path):
    from dmo_ros.dataset.images import resize
    from dmo_ros.reward.energy import GoalReward, load_reward_model
    from dmo_ros.reward.goal_image import load_goal_image

    reward_run, goal = untrained_reward_run(tmp_path)
    sims = [PushTSim(PushTConfig(task="reach_fixed", seed=s)) for s in range(3)]
    labels = rung0.FrameRewards(reward_run, goal)(sims)
    reference = GoalReward(load_reward_model(reward_run), load_goal_image(goal, size=(32, 32)))
    expected = reference(np.stack([resize(sim.render(), 32, 32, "crop") for sim in sims]))
    torch.testing.assert_close(labels, expected.float())
    assert labels.shape == (3,) and labels.std() > 0  # three different frames, three different rewards


def test_the_reward_regressor_learns_the_labels_and_points_the_actor_to_the_target(monkeypatch):
    """With labels that measure the distance to the target, the regressor the actor differentiates learns their
    slope: its gradient in the agent's position points at the target (fails if the labels never reach it)."""

    class DistanceLabels:
        def __init__(self, reward_run, goal):
            pass

        def __call__(self, sims):
            return torch.tensor([-float(np.linalg.norm(sim.state().agent - sim.state().target)) / HALF
                                 for sim in sims])

    monkeypatch.setattr(rung0, "FrameRewards", DistanceLabels)
    config = rung0.Rung0Config(task="reach_fixed", reward="learned", reward_run="r", goal="g", num_envs=16,
                               warmup_samples=2048, warmup_updates=400, model_batch=128, reward_hidden=64)
    algorithm = rung0.Rung0SAPO(config, seed=0)
    logs = algorithm._warm_up()
    assert np.isfinite(logs["model_warmup_loss"])
    states = torch.from_numpy(algorithm.envs.observations()).requires_grad_(True)
    algorithm.reward_model(states).sum().backward()
    toward = states.detach()[:, 6:8] - states.detach()[:, 0:2]
    cosine = torch.nn.functional.cosine_similarity(states.grad[:, 0:2], toward, dim=-1)
    assert (cosine > 0.5).float().mean() > 0.8, cosine
    algorithm.close()


def test_rung0_sapo_paces_a_linear_schedule_by_its_budget() -> None:
    """``--set sapo.lr_schedule=linear``: the rates of each update follow the budget spent before it (SHAC)."""
    from dataclasses import replace

    from dmo_ros.dmo.sapo import LINEAR_FINAL_LR

    config, run = rung0.PRESETS["tiny"]
    config = replace(config, sapo=replace(config.sapo, lr_schedule="linear"))
    with pytest.raises(ValueError, match="sample budget"):
        rung0.build(config, seed=0)
    algorithm = rung0.build(config, seed=0, max_samples=run.max_samples)
    rates = []
    for _ in range(2):
        rate = algorithm.train_epoch()["actor_lr"]
        before = algorithm.samples - config.num_envs * config.sapo.horizon  # after the first epoch's warm-up
        rates.append((before, rate))
    algorithm.close()
    for before, rate in rates:
        progress = before / run.max_samples
        assert rate == pytest.approx(config.sapo.actor_lr + (LINEAR_FINAL_LR - config.sapo.actor_lr) * progress)
    assert rates[1][1] < rates[0][1]


def test_the_run_folder_is_positional_or_run_dir_as_in_the_other_trainers(tmp_path, capsys):
    run = tmp_path / "r0"
    assert rung0.main(["--run-dir", str(run), "--preset", "tiny", "--final-eval-episodes", "0", "--no-progress"]) == 0
    assert (run / "config.json").is_file()
    with pytest.raises(SystemExit):
        rung0.main([str(tmp_path / "a"), "--run-dir", str(tmp_path / "b"), "--preset", "tiny"])
    assert "two run folders given" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rung0.main(["--preset", "tiny"])
    assert "the run folder is required" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_video_records_the_final_evaluation_and_a_finished_run_can_be_watched_again(tmp_path, capsys):
    run, video = tmp_path / "r0", tmp_path / "video"
    args = [str(run), "--preset", "tiny", "--task", "push_region", "--final-eval-episodes", "2", "--no-progress"]
    assert rung0.main(args) == 0
    assert not video.exists()
    first = json.loads((run / "final_eval.json").read_text())["policy"]["per_episode"]
    assert rung0.main([*args, "--video", str(video)]) == 0  # finished: no training, the same episodes recorded
    assert sorted(p.name.split("_")[1] for p in video.glob("episode_*.gif")) == ["000", "001"]
    assert (video / "episodes.png").is_file()
    again = json.loads((run / "final_eval.json").read_text())["policy"]["per_episode"]
    assert not (run / "final_eval_reevaluated.json").exists()  # the same configuration: the run's own files
    assert [e["success"] for e in again] == [e["success"] for e in first]
    assert [e["final_distance"] for e in again] == pytest.approx([e["final_distance"] for e in first])
    with pytest.raises(SystemExit):
        rung0.main([*args[:-3], "--final-eval-episodes", "0", "--video", str(video)])
    assert "--video records the final evaluation's episodes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rung0.main([*args, "--video", str(video), "--video-episodes", "-1"])
    assert "--video-episodes must be >= 0" in capsys.readouterr().err
    # Another episode count watches the run again without replacing its recorded evaluation.
    recorded = (run / "final_eval.json").read_text()
    assert rung0.main([*args[:-3], "--final-eval-episodes", "1", "--no-progress"]) == 0
    assert (run / "final_eval.json").read_text() == recorded
    assert json.loads((run / "final_eval_reevaluated.json").read_text())["config"]["episodes"] == 1
    assert "is kept; delete it to replace it" in capsys.readouterr().out


def test_policy_ema_evaluates_the_averaged_actor_and_keeps_it_across_a_checkpoint():
    config = replace(rung0.PRESETS["tiny"][0], task="push_region", policy_ema=0.5)
    algorithm = rung0.build(config, seed=0)
    try:
        for _ in range(3):
            algorithm.train_epoch()
        latest = dict(algorithm.learner.actor.named_parameters())
        averaged = dict(algorithm.average.module.named_parameters())
        evaluated = dict(algorithm.policy().net.actor.named_parameters())
        assert all(torch.equal(evaluated[name], averaged[name]) for name in averaged)
        assert any(not torch.equal(averaged[name], latest[name]) for name in latest)  # it lags the latest weights
        restored = rung0.build(config, seed=1)
        restored.load_state_dict(algorithm.state_dict())
        again = dict(restored.policy().net.actor.named_parameters())
        assert all(torch.equal(again[name], averaged[name]) for name in averaged)
        restored.close()
    finally:
        algorithm.close()
    with pytest.raises(ValueError, match="policy_ema must be in"):
        replace(config, policy_ema=1.0)
    with pytest.raises(ValueError, match="PPO keeps its latest weights"):
        replace(config, method="ppo")


@pytest.mark.parametrize("method", rung0.METHODS)
def test_tiny_rung0_on_push_cube_runs_and_is_evaluated_as_push_cube(tmp_path, capsys, method):
    """--task push_cube: the Go2 stand-in's true state (8 numbers, 3-D commands), the Push Cube evaluation (success,
    steps, Table II metrics) periodically and at the end beside its ceilings; resumes; a finished run's episodes
    recorded from the stand-in's camera (``--video``)."""
    run = tmp_path / "runs" / f"cube_{method}"
    args = [str(run), "--preset", "tiny", "--task", "push_cube", "--method", method, "--final-eval-episodes", "2",
            "--no-progress"]
    assert rung0.main(args) == 0
    out = capsys.readouterr().out
    records = read_evaluations(run)
    assert len(records) >= 2 and all({"success_rate", "straightness", "mean_max_coverage"} <= set(r) for r in records)
    final = json.loads((run / "final_eval.json").read_text())
    assert final["task"] == "push_cube" and final["policy"]["episodes"] == 2 and len(final["ceilings"]) == 3
    assert "Push Cube on the Go2 stand-in" in out and "| ceiling: scripted expert (privileged) | 2 | 2/2" in out
    assert "eval at 0 samples" in out and "best progress" in out and "coverage" not in out
    assert (tmp_path / "runs" / "ceilings_push_cube.json").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "push_cube" and config["rung0"]["task"] == "push_cube"
    assert rung0.main([*args, "--max-samples", str(records[-1]["samples"] + 32)]) == 0
    assert f"resuming {run} at epoch" in capsys.readouterr().out
    assert read_evaluations(run)[-1]["samples"] > records[-1]["samples"]
    video = tmp_path / "video"
    assert rung0.main([*args, "--max-samples", str(read_evaluations(run)[-1]["samples"]), "--video", str(video)]) == 0
    assert sorted(p.name for p in video.glob("episode_*.gif")) == [
        f"episode_{i:03d}_{'success' if e['success'] else 'fail'}.gif"
        for i, e in enumerate(json.loads((run / "final_eval.json").read_text())["policy"]["per_episode"])]
    assert (video / "episodes.png").is_file()
    with pytest.raises(ValueError, match="agent_lure is the Push-T tasks' diagnostic"):
        rung0.Rung0Config(task="push_cube", agent_lure=0.02)


def test_the_in_view_observation_is_push_cubes_and_needs_the_learned_reward():
    assert rung0.task_sizes("push_cube", "in_view") == (10, 3) and rung0.task_sizes("push_cube") == (8, 3)
    assert rung0.task_sizes("push_cube", "memory") == (12, 3)
    with pytest.raises(ValueError, match="observation=memory needs reward=learned"):
        rung0.Rung0Config(task="push_cube", observation="memory")
    with pytest.raises(ValueError, match="unknown observation"):
        rung0.Rung0Config(task="push_cube", observation="pixels", reward="learned", reward_run="r")
    with pytest.raises(ValueError, match="push_cube's"):
        rung0.Rung0Config(task="push_region", observation="in_view", reward="learned", reward_run="r", goal="g")
    with pytest.raises(ValueError, match="needs reward=learned"):
        rung0.Rung0Config(task="push_cube", observation="in_view")
    # The logged cube-to-goal distance counts only the rows that see both (the others' positions are zeros).
    seen = torch.zeros(3, 10)
    seen[0, :4], seen[0, 8:], seen[1, 8] = torch.tensor([0.5, 0.0, 1.0, 0.0]), 1.0, 1.0
    assert rung0._task_distance(seen, "push_cube")["final_distance_u"] == pytest.approx(1.0)  # 0.5 units of 2 m
    assert rung0._task_distance(seen[1:], "push_cube") == {}  # no row sees both: no entry (not NaN)


@pytest.mark.parametrize("method", rung0.METHODS)
def test_tiny_rung0_on_push_cube_with_an_intent_reward_scores_the_stand_ins_camera(tmp_path, capsys, method):
    """The rung between 0 and 1 on the Go2: the true state, the learned intent reward of the stand-in's 96 x 96
    camera frame (resized as the dataset was), no goal picture."""
    from dataclasses import asdict

    from dmo_ros.reward.intent import IntentRewardConfig, IntentRewardNet
    from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

    torch.manual_seed(0)
    config = IntentRewardConfig.preset("tiny", image_size=32)
    reward_run = tmp_path / "intent"
    write_run_config(reward_run, {"kind": "reward", "objective": "intent", "model": asdict(config)})
    save_checkpoint(reward_run, 1, IntentRewardNet(config).state_dict(), {}, {})
    run = tmp_path / f"cube_intent_{method}"
    assert rung0.main([str(run), "--preset", "tiny", "--task", "push_cube", "--method", method, "--reward", "learned",
                       "--reward-run", str(reward_run), "--final-eval-episodes", "1", "--no-progress"]) == 0
    assert f"push_cube with the learned reward of {reward_run}" in capsys.readouterr().out
    # The same with only what the camera sees of the cube and the goal (10 numbers), and with where each was last
    # seen (12), trained and evaluated so.
    for observation, size in (("in_view", 10), ("memory", 12)):
        seen = tmp_path / f"cube_intent_{observation}_{method}"
        assert rung0.main([str(seen), "--preset", "tiny", "--task", "push_cube", "--method", method, "--reward",
                           "learned", "--reward-run", str(reward_run), "--set", f"observation={observation}",
                           "--final-eval-episodes", "1", "--no-progress"]) == 0
        policy = json.loads((seen / "config.json").read_text())["policy"]
        assert policy["observation_size"] == size and policy["observation"] == observation
        assert json.loads((seen / "final_eval.json").read_text())["policy"]["episodes"] == 1
    if method == "sapo":
        assert {"train/reward_model_error", "train/label_mean"} <= scalar_tags(run)


def test_the_state_model_carries_held_flags_and_leaves_their_events_out_of_its_loss():
    torch.manual_seed(0)
    model = rung0.StateModel(16, 1, observation_size=4, action_size=1, held=2)
    state = torch.tensor([[0.1, 0.2, 1.0, 0.0], [0.3, -0.1, 0.0, 1.0]])
    action = torch.zeros(2, 1)
    predicted = model(state, action)
    assert torch.equal(predicted[:, 2:], state[:, 2:])  # the flags carried as they were
    event = state.clone()
    event[:, :2] += 0.05
    event[1, 2], event[1, 0] = 1.0, 3.0  # row 1: a flag flips and a position jumps (a first sighting)
    assert model.loss(state, action, event).item() == pytest.approx(
        ((predicted[:1, :2] - event[:1, :2]) / model.scale[:2]).pow(2).mean().item())
    assert model.loss(state[1:], action[1:], event[1:]).item() == 0.0  # only an event: nothing to fit
    everything = rung0.StateModel(16, 1, observation_size=4, action_size=1)
    everything.load_state_dict(model.state_dict())  # the same weights; held=0 predicts and scores every component
    assert everything.loss(state, action, event).item() > 10 * model.loss(state, action, event).item()
