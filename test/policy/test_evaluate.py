"""Policy evaluation on the Push-T stand-in: reproducible, ends at success, frames as the policy takes them, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo_ros.dataset.format import write_dataset
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.policy import evaluate
from dmo_ros.policy.actor import SquashedGaussianActor
from dmo_ros.policy.api import RandomPolicy, check_frame
from dmo_ros.policy.episodes import CEILING_LABELS
from dmo_ros.policy.evaluate import EvalConfig, EvalResult, evaluate_policy, main, random_policy_for
from dmo_ros.sims.pusht import ARENA_UNITS, PushTSim
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

PUSHT_LIMIT = np.array([0.25, 0.25])


class RecordingPolicy:
    """A random policy that keeps a digest and the shape/dtype of every frame it was handed."""

    def __init__(self, image_size: tuple[int, int] = (64, 64), seed: int = 0) -> None:
        self.inner = RandomPolicy(PUSHT_LIMIT, image_size, seed)
        self.image_size = self.inner.image_size
        self.action_limit = self.inner.action_limit
        self.digests: list[str] = []
        self.frames: list[np.ndarray] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, frame: np.ndarray) -> np.ndarray:
        self.frames.append(frame)
        self.digests.append(hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest())
        return self.inner.act(frame)

    def observe_action(self, action: np.ndarray) -> None:
        pass


def test_same_seed_gives_identical_episodes_and_another_seed_other_ones():
    config = EvalConfig(episodes=2, max_steps=8, seed=123)
    first, second = RecordingPolicy(seed=5), RecordingPolicy(seed=5)
    result_a, result_b = evaluate_policy(first, config), evaluate_policy(second, config)
    assert result_a.episodes == result_b.episodes
    assert first.digests == second.digests and len(first.digests) == 16  # same start poses, same pushes
    assert len(set(first.digests)) > 8  # the agent moved: frames change from step to step
    other = RecordingPolicy(seed=5)
    evaluate_policy(other, EvalConfig(episodes=2, max_steps=8, seed=124))
    assert other.digests[0] != first.digests[0]  # another seed, other start poses
    assert first.digests[0] != first.digests[8]  # each episode starts from its own pose


def test_frames_have_the_policy_image_size_and_coverage_is_a_fraction():
    policy = RecordingPolicy(image_size=(40, 56))
    progress: list[int] = []
    result = evaluate_policy(policy, EvalConfig(episodes=3, max_steps=5, seed=7),
                             progress=lambda index, episode: progress.append(index))
    assert isinstance(result, EvalResult) and len(result.episodes) == 3 and progress == [0, 1, 2]
    assert policy.resets == 3
    assert len(policy.frames) == sum(episode.steps for episode in result.episodes) == 15
    for frame in policy.frames:
        assert frame.shape == (40, 56, 3) and frame.dtype == np.uint8
        check_frame(frame, (40, 56))
    assert np.std(policy.frames[0].astype(float)) > 10  # a real render (table, T, goal), not a blank frame
    for episode in result.episodes:
        assert 0.0 <= episode.max_coverage <= 1.0 and not episode.success
    assert result.success_rate == 0.0
    assert result.mean_max_coverage == pytest.approx(np.mean([e.max_coverage for e in result.episodes]))
    numbers = result.to_dict()
    assert numbers["episodes"] == 3 and len(numbers["per_episode"]) == 3 and numbers["successes"] == 0
    json.dumps(numbers)


class TrackedSim(PushTSim):
    """The stand-in, remembered so that the test's oracle can move the block (as if a perfect pusher did)."""

    latest: TrackedSim | None = None

    def __init__(self, config=None) -> None:
        super().__init__(config)
        TrackedSim.latest = self


class OraclePolicy:
    """Moves the T block from its start pose to the goal pose in ``steps`` acts (pose interpolation), acts 0."""

    image_size = (32, 32)
    action_limit = PUSHT_LIMIT

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.calls: list[int] = []

    def reset(self) -> None:
        self.t = 0
        self.calls.append(0)
        env = TrackedSim.latest.env
        self.start = np.array([*env.block.position, env.block.angle])
        self.goal = np.array(env.goal_pose, dtype=np.float64)
        self.goal[2] = self.start[2] + (self.goal[2] - self.start[2] + np.pi) % (2 * np.pi) - np.pi

    def act(self, frame: np.ndarray) -> np.ndarray:
        check_frame(frame, self.image_size)
        self.t += 1
        self.calls[-1] += 1
        pose = self.start + min(self.t / self.steps, 1.0) * (self.goal - self.start)
        env = TrackedSim.latest.env
        env.block.velocity, env.block.angular_velocity = (0.0, 0.0), 0.0
        env.block.angle = float(pose[2])
        env.block.position = (float(pose[0]), float(pose[1]))
        env.agent.velocity = (0.0, 0.0)
        env.agent.position = (20.0, ARENA_UNITS - 20.0)  # a corner away from the goal T
        env.space.reindex_shapes_for_body(env.block)
        env.space.reindex_shapes_for_body(env.agent)
        return np.zeros(2)

    def observe_action(self, action: np.ndarray) -> None:
        pass


def test_episodes_end_at_success(monkeypatch):
    monkeypatch.setattr(evaluate, "PushTSim", TrackedSim)
    oracle = OraclePolicy(steps=4)
    config = EvalConfig(episodes=3, max_steps=30, seed=10_000)
    result = evaluate_policy(oracle, config)
    assert result.success_rate == 1.0
    for episode, calls in zip(result.episodes, oracle.calls, strict=True):
        assert episode.success and episode.max_coverage > 0.95 and episode.max_coverage <= 1.0
        assert episode.steps == calls == 4  # stopped at the step the block reached the goal, not at max_steps
    slow = evaluate_policy(OraclePolicy(steps=50), config)  # reaches the goal only after max_steps
    assert slow.success_rate == 0.0
    assert [episode.steps for episode in slow.episodes] == [30, 30, 30]
    assert all(0.0 <= episode.max_coverage < 0.95 for episode in slow.episodes)


def test_only_pusht_can_be_evaluated():
    with pytest.raises(ValueError, match="--robot go2"):  # Push Cube has its own evaluation
        EvalConfig(robot="go2")
    with pytest.raises(ValueError, match="episodes"):
        EvalConfig(episodes=0)
    with pytest.raises(ValueError, match="aspect"):
        EvalConfig(aspect="zoom")
    assert EvalConfig.preset("tiny").episodes < EvalConfig.preset("gpu").episodes


# -- the command line ---------------------------------------------------------------------------


def tiny_dataset(folder: Path, height: int = 24, width: int = 32) -> Path:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(12, height, width, 3), dtype=np.uint8)
    actions = rng.uniform(-0.2, 0.2, size=(12, 2)).astype(np.float32)
    actions[3] = [0.25, -0.1]
    actions[7] = [0.0, -0.22]  # the largest |action| per component: 0.25 and 0.22
    return write_dataset(folder, frames, actions, [6, 6])


def tiny_policy_run(folder: Path) -> Path:
    """A DMO policy run folder as dmo-train-policy writes it (untrained tiny networks)."""
    torch.manual_seed(0)
    local_config = LocalModelConfig.preset("tiny", action_size=2, action_scale=[0.25, 0.25], image_size=16)
    local = LocalModel(local_config)
    actor = SquashedGaussianActor(local_config.feature_size, 2, hidden=16, layers=1)
    policy = {"image_size": [16, 16], "action_limit": [0.25, 0.25], "local_model": local_config.__dict__,
              "feature_size": local_config.feature_size, "actor_hidden": 16, "actor_layers": 1}
    write_run_config(folder, {"kind": "policy", "method": "dmo", "policy": policy})
    weights = {**{f"local.{k}": v for k, v in local.state_dict().items()},
               **{f"actor.{k}": v for k, v in actor.state_dict().items()}}
    save_checkpoint(folder, 1, weights, {}, {})
    return folder


def test_random_policy_from_a_dataset(tmp_path):
    dataset = tiny_dataset(tmp_path / "ds")
    policy = random_policy_for(dataset, seed=3)
    assert policy.image_size == (24, 32)
    np.testing.assert_array_equal(policy.action_limit, np.float32([0.25, 0.22]).astype(np.float64))
    actions = np.stack([policy.act(np.zeros((24, 32, 3), np.uint8)) for _ in range(200)])
    assert (np.abs(actions) <= policy.action_limit).all() and (np.abs(actions).max(0) > 0.8 * policy.action_limit).all()


def test_cli_random_prints_the_summary_and_writes_json(tmp_path, capsys):
    dataset = tiny_dataset(tmp_path / "ds")
    out = tmp_path / "eval" / "random.json"
    code = main(["--random", "--dataset", str(dataset), "--episodes", "2", "--max-steps", "6", "--seed", "77",
                 "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    saved = json.loads(out.read_text())
    random = saved["random"]
    assert saved["config"]["seed"] == 77 and saved["config"]["max_steps"] == 6
    assert random["episodes"] == 2 and [e["steps"] for e in random["per_episode"]] == [6, 6]
    successes = sum(e["success"] for e in random["per_episode"])
    line = captured.out.splitlines()[0]
    assert line.startswith(f"random policy: success {successes}/2 ({100 * successes / 2:.0f}%, 95% CI ")
    assert f"mean max coverage {random['mean_max_coverage']:.3f} +- " in line
    assert line.endswith("over 2 episodes of push_t (6 steps max)")
    # The ceilings are evaluated beside it by default, on the same episodes, and saved.
    assert set(saved["ceilings"]) == {"ceiling: random actions", "ceiling: zero action",
                                      "ceiling: scripted expert (privileged)"}
    assert all(c["episodes"] == 2 for c in saved["ceilings"].values())
    assert "| ceiling: scripted expert (privileged)" in captured.out


def test_cli_trained_policy_next_to_the_random_one(tmp_path, capsys):
    dataset = tiny_dataset(tmp_path / "ds")
    run = tiny_policy_run(tmp_path / "runs" / "dmo")
    out = tmp_path / "both.json"
    code = main([str(run), "--compare-random", "--dataset", str(dataset), "--episodes", "2", "--max-steps", "4",
                 "--out", str(out), "--no-ceilings"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"policy {run}: success ")
    assert lines[0].endswith("over 2 episodes of push_t (4 steps max)")
    assert lines[1].startswith("random policy: success ")
    assert "episode 2/2" in captured.err  # progress
    saved = json.loads(out.read_text())
    assert saved["policy"]["episodes"] == saved["random"]["episodes"] == 2
    assert saved["run_dir"] == str(run)
    # A dataset that cannot give the random floor's limits is refused before the policy's episodes run.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(run), "--compare-random", "--dataset", str(empty), "--episodes", "2", "--no-ceilings"]) == 2
    captured = capsys.readouterr()
    assert "dmo-eval-policy: error:" in captured.err and "episode 1/2" not in captured.err


def test_cli_evaluates_on_the_task_the_run_was_trained_on_unless_told_otherwise(tmp_path, capsys):
    """A push_region run used to be scored on push_t (the option's default) without a word; the run's recorded task
    is the default now, another --task is run with a note, and a run that records none keeps push_t."""
    run = tiny_policy_run(tmp_path / "runs" / "dmo")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "task": "push_region"}))
    common = ["--episodes", "1", "--max-steps", "2", "--no-ceilings", "--quiet"]
    assert main([str(run), *common]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].endswith("over 1 episodes of push_region (2 steps max)")
    assert "note:" not in captured.err
    assert main([str(run), "--task", "push_t", *common]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].endswith("over 1 episodes of push_t (2 steps max)")
    assert f"note: {run} was trained on push_region; evaluating it on push_t (--task)" in captured.err
    (run / "config.json").write_text(json.dumps(config))  # no task recorded
    assert main([str(run), *common]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("over 1 episodes of push_t (2 steps max)")


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "dmo-eval-policy: error:" in err and "missing" in err and "Traceback" not in err
    other = tmp_path / "reward_run"
    write_run_config(other, {"kind": "reward", "model": {}})
    save_checkpoint(other, 1, {"weight": torch.zeros(2)}, {}, {})
    assert main([str(other)]) == 2
    assert "not a policy run" in capsys.readouterr().err
    assert main(["--random", "--dataset", str(tmp_path / "no_dataset")]) == 2
    assert "not a dmo_ros dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--random"])  # no dataset to take the action limits from
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["--random", "--dataset", str(tmp_path), "--robot", "push_cube"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


# -- the standard episode, the spread, the tasks and the ceilings -----------------------------------------


def test_the_default_episode_is_gym_pushts_standard_30_s():
    import gymnasium as gym
    from gym_pusht.envs.pusht import PushTEnv

    spec = gym.spec("gym_pusht/PushT-v0")
    seconds = spec.max_episode_steps / PushTEnv.metadata["render_fps"]  # 300 env steps at 10 Hz
    config = EvalConfig()
    assert seconds == 30.0 and config.max_steps * config.control_period_s == seconds
    assert config.episodes == 50 and evaluate.LONG_EPISODE_STEPS > config.max_steps


def test_spread_of_rates_and_means():
    low, high = evaluate.rate_interval(0, 50)
    assert low == 0.0 and 0.05 < high < 0.08  # Wilson: 0/50 still allows up to ~7 %
    low, high = evaluate.rate_interval(25, 50)
    assert low == pytest.approx(1 - high) and 0.35 < low < 0.37
    spread = evaluate.mean_spread([1.0, 2.0, 3.0, None])
    assert spread["mean"] == 2.0 and spread["std"] == 1.0 and spread["ci95"] == pytest.approx(1.96 / np.sqrt(3))
    episodes = [evaluate.EpisodeResult(True, 0.97, 3, 0.97, 5.0, 80.0, True),
                evaluate.EpisodeResult(False, 0.85, 10, 0.8, 20.0, 80.0, True),
                evaluate.EpisodeResult(False, 0.5, 10, 0.5, 40.0, 80.0, False)]
    numbers = evaluate.summarize_episodes(episodes, 1.0).summary()
    assert numbers["success_rate"] == pytest.approx(1 / 3) and numbers["loose_success_rate"] == pytest.approx(2 / 3)
    assert numbers["mean_final_distance"] == pytest.approx(65 / 3) and numbers["final_distance_std"] > 0
    assert numbers["success_ci95"][0] < 1 / 3 < numbers["success_ci95"][1]


@pytest.mark.parametrize("task", ["reach", "reach_fixed", "push_near", "push_t"])
def test_every_task_is_evaluated_with_its_distance_and_rules(task):
    config = EvalConfig(episodes=2, max_steps=4, task=task, seed=5)
    result = evaluate.evaluate_controller(evaluate.ZeroController(), config)
    for episode in result.episodes:
        assert episode.steps == 4 and not episode.success
        assert episode.final_distance == pytest.approx(episode.start_distance)  # nothing moved
        assert episode.final_distance > 0
    table = evaluate.format_table([("zero", result)], config)
    assert f"task {task}" in table and evaluate.SUCCESS_RULES[task][0] in table


@pytest.mark.parametrize("task", ["reach", "reach_fixed"])
def test_the_expert_ceiling_solves_reach_and_the_floor_does_not(task):
    config = EvalConfig(episodes=3, task=task, seed=11)
    rows = dict(evaluate.evaluate_ceilings(config))
    expert, random, zero = (rows[CEILING_LABELS[name]] for name in ("expert", "random", "zero"))
    assert expert.success_rate == 1.0 and all(e.steps < 60 for e in expert.episodes)
    assert zero.success_rate == 0.0  # a random walk may pass the target (success at any step, as gym-pusht's)
    assert expert.summary()["mean_final_distance"] < 20.0 < zero.summary()["mean_final_distance"]
    assert expert.summary()["mean_final_distance"] < random.summary()["mean_final_distance"]


def test_ceilings_are_cached_in_a_file(tmp_path):
    config = EvalConfig(episodes=2, max_steps=3, task="push_near", seed=3)
    cache = tmp_path / "ceilings.json"
    first = dict(evaluate.evaluate_ceilings(config, ("zero",), cache=cache))
    evaluate._CEILING_CACHE.clear()
    second = dict(evaluate.evaluate_ceilings(config, ("zero",), cache=cache))
    assert cache.is_file() and first[CEILING_LABELS["zero"]].episodes == \
        second[CEILING_LABELS["zero"]].episodes


def test_cli_ceilings_only_for_a_task(capsys):
    assert main(["--ceilings-only", "--task", "reach", "--episodes", "2", "--max-steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "evaluation of task reach" in out and "agent < 20 u from target" in out
    assert out.count("| ceiling:") == 3
    assert "coverage" not in out and "final distance (u)" in out  # 1.0 in every reach episode: not a column
    # Through ROS only a policy runs (the reach tasks included); the ceilings run directly.
    with pytest.raises(SystemExit):
        main(["--ceilings-only", "--task", "reach", "--mode", "ros"])
    assert "--mode ros runs a policy RUN_DIR through the deploy graph" in capsys.readouterr().err


def test_a_negative_seed_is_refused_by_name(capsys) -> None:
    """--seed -1 ended dmo-eval-policy in numpy's 'expected non-negative integer' traceback."""
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        EvalConfig(seed=-1)
    with pytest.raises(SystemExit) as exit_info:
        main(["--random", "--dataset", "nowhere", "--seed", "-1", "--no-ceilings"])
    assert exit_info.value.code == 2
    assert "seed must be >= 0, got -1" in capsys.readouterr().err
