"""The world model along a policy's paths: an oracle that shows the true next frames passes; a model that lets
the agent through the wall, or never moves the T, fails; the command writes its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmo_ros.dataset.loaders import Window
from dmo_ros.gates.cli import main as gate_main
from dmo_ros.gates.policy_paths import (
    STEP_CLASSES,
    PolicyPathConfig,
    PolicyPaths,
    classify_steps,
    path_windows,
    policy_path_report,
    record_paths,
)
from dmo_ros.sims.pusht import ARENA_UNITS, PushTConfig
from dmo_ros.sims.pusht_frames import agent_score, locate_agent
from dmo_ros.world_model.denoiser import to_model_range

SIZE = 64
MARGIN_PX = PushTConfig().arena_margin * SIZE / ARENA_UNITS


class TowardTheTThenDown:
    """Drives at the T for ``first`` steps (contact), then straight down into the bottom wall."""

    def __init__(self, first: int = 12, speed: float = 0.3) -> None:
        self.first, self.speed, self.step = first, speed, 0

    def reset(self, sim) -> None:
        self.step = 0

    def act(self, sim) -> np.ndarray:
        self.step += 1
        if self.step <= self.first:
            block = np.array(sim.env.block.position)
            way = block - sim.agent_position()
            return self.speed * way / max(np.linalg.norm(way), 1e-6)
        return np.array([0.0, self.speed])


@pytest.fixture(scope="module")
def paths() -> PolicyPaths:
    config = PolicyPathConfig(task="push_region", episodes=4, steps=30)
    return record_paths(TowardTheTThenDown(), config, SIZE)


def oracle(paths: PolicyPaths):
    """The true next frames, looked up by (path, step) from the windows' episode and start."""

    def rollout(window: Window, actions: torch.Tensor) -> torch.Tensor:
        out = [paths.frames[int(p), int(t) + 1 : int(t) + 1 + actions.shape[1]]
               for p, t in zip(window.episode, window.start, strict=True)]
        return to_model_range(torch.from_numpy(np.stack(out)).permute(0, 1, 4, 2, 3))

    return rollout


def painter(window: Window, actions: torch.Tensor, walls: bool = False) -> torch.Tensor:
    """Moves the drawn agent by the commanded displacement, stopping at the border's margin when ``walls`` (else
    only at the picture's edge); the T never moves."""
    frame = window.context_frames[:, -1].permute(0, 2, 3, 1).numpy().copy()
    out = []
    for t in range(actions.shape[1]):
        position, _ = locate_agent(frame)
        frame[agent_score(frame) > 0.05] = 255
        shift = actions[:, t].numpy() * 0.2 * (ARENA_UNITS / 0.5) * SIZE / ARENA_UNITS  # m/s -> px per step
        ys, xs = np.mgrid[0:SIZE, 0:SIZE]
        for b in range(frame.shape[0]):
            low, high = (MARGIN_PX - 0.5, SIZE - MARGIN_PX - 0.5) if walls else (1.0, SIZE - 2.0)
            centre = np.clip(position[b] + shift[b], low, high)  # blind: into the wall, but still in the picture
            frame[b][(xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= 2.0] = (65, 105, 225)
        out.append(frame.copy())
    return to_model_range(torch.from_numpy(np.stack(out, axis=1)).permute(0, 1, 4, 2, 3))


def test_paths_reach_every_step_class(paths):
    kind, real = classify_steps(paths, PolicyPathConfig())
    counts = {name: int((kind == i).sum()) for i, name in enumerate(STEP_CLASSES)}
    assert all(counts[name] >= 3 for name in STEP_CLASSES), counts
    # At a wall step the real agent stopped short of the commanded target by the clipped part.
    assert np.linalg.norm(paths.clipped_px[kind == 1], axis=-1).min() >= 1.0
    assert real["agent"].shape == (4, 31, 2) and paths.actions.shape == (4, 30, 2)


def test_windows_end_at_the_step_with_its_action_and_pad_the_start_at_rest(paths):
    window = path_windows(paths, context=3, steps=[(1, 0), (2, 5)])
    assert window.frames.shape == (2, 4, 3, SIZE, SIZE)
    start = torch.from_numpy(paths.frames[1, 0]).permute(2, 0, 1)
    assert all(torch.equal(window.frames[0, i], start) for i in range(3))  # the start at rest
    assert torch.equal(window.actions[0, :2], torch.zeros(2, 2))
    assert torch.allclose(window.actions[1, 2], torch.from_numpy(paths.actions[2, 5]))  # leads to the next frame
    assert torch.equal(window.frames[1, 3], torch.from_numpy(paths.frames[2, 6]).permute(2, 0, 1))


def test_the_true_next_frames_pass(paths, tmp_path):
    picture = tmp_path / "paths.png"
    report = policy_path_report(oracle(paths), paths, context=3, config=PolicyPathConfig(task="push_region"),
                                picture=picture)
    assert report.passed, report.format()
    for name in STEP_CLASSES:
        assert report.metrics["classes"][name]["model_error_px"] == pytest.approx(0.0, abs=1e-9)
    assert report.metrics["open_loop"]["final_agent_error_px"] == pytest.approx(0.0, abs=1e-9)
    assert picture.is_file()


def test_a_model_that_ignores_the_wall_and_the_t_fails(paths):
    report = policy_path_report(painter, paths, context=3, config=PolicyPathConfig(task="push_region"))
    failed = {check.name for check in report.failed}
    assert {"wall_push_px", "contact_error_ratio"} <= failed, report.format()
    wall = report.metrics["classes"]["wall"]
    assert wall["agent_visible"] > 0.9 and wall["push_into_wall_px"] > 0.8  # seen, pushed into the wall


def test_a_model_that_stops_at_the_wall_passes_the_wall_check(paths):
    report = policy_path_report(lambda w, a: painter(w, a, walls=True), paths, context=3,
                                config=PolicyPathConfig(task="push_region"))
    checks = {check.name: check for check in report.checks}
    assert checks["wall_push_px"].passed and not checks["contact_error_ratio"].passed, report.format()


def test_the_command_writes_its_report(tiny_policies, tmp_path, capsys):
    policy = tiny_policies["pusht"]
    world_model = policy.parent / "world_model"  # the untrained tiny model the policy was trained in
    code = gate_main(["world-model-paths", str(world_model), "--policy", str(policy), "--episodes", "2",
                      "--steps", "4", "--task", "reach_fixed", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out  # an untrained model draws no agent
    assert "gate world_model_paths: FAILED" in out and "wrote" in out
    saved = json.loads((tmp_path / "world_model_paths.json").read_text())
    assert saved["metrics"]["task"] == "reach_fixed" and saved["metrics"]["episodes"] == 2
    assert len(saved["metrics"]["policy_in_model"]["final_gap_px_per_episode"]) == 2  # the policy in the model too
    assert (tmp_path / "world_model_paths.png").is_file()
    assert saved["metrics"]["sampler"]["change_threshold"] == 0.0  # the model's own sampler
    code = gate_main(["world-model-paths", str(world_model), "--policy", str(policy), "--episodes", "1",
                      "--steps", "2", "--task", "reach_fixed", "--out", str(tmp_path), "--change-threshold", "4",
                      "--bf16"])
    assert code == 1
    sampler = json.loads((tmp_path / "world_model_paths.json").read_text())["metrics"]["sampler"]
    assert sampler["change_threshold"] == 4 and sampler["bf16"] is True
    capsys.readouterr()
    with_reward = ["world-model-paths", str(world_model), "--policy", str(policy), "--episodes", "2", "--steps", "3",
                   "--task", "reach_fixed", "--out", str(tmp_path), "--reward-run", str(policy.parent / "reward")]
    assert gate_main(with_reward) == 2 and "both a reward run and its goal" in capsys.readouterr().err
    assert gate_main([*with_reward, "--goal", str(policy.parent / "goal.png")]) == 1
    assert "the learned reward on the open-loop frames" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "world_model_paths.json").read_text())["metrics"]
    assert set(metrics["reward"]) == {"real_per_step", "open_loop_per_step", "policy_in_model_per_step"}
    assert all(len(v) == 3 and np.isfinite(v).all() for v in metrics["reward"].values())
    assert len(metrics["open_loop"]["table_haze_levels_per_step"]) == 3


def test_the_command_refuses_an_unknown_task(tiny_policies, capsys):
    policy = tiny_policies["pusht"]
    code = gate_main(["world-model-paths", str(policy.parent / "world_model"), "--policy", str(policy),
                      "--task", "reach_far"])
    assert code == 2 and "unknown task 'reach_far'" in capsys.readouterr().err


class TowardACorner:
    """A stand-in policy that acts on what it sees: toward the top-left corner from the agent it locates."""

    action_limit = np.array([0.3, 0.3])

    def reset(self) -> None:
        pass

    def act(self, frame: np.ndarray) -> np.ndarray:
        position, seen = locate_agent(frame)
        way = np.array([8.0, 8.0]) - np.nan_to_num(position, nan=32.0)
        return (0.3 * way / max(np.linalg.norm(way), 1e-6)).astype(np.float32)

    def observe_action(self, action: np.ndarray) -> None:
        pass


def test_the_policy_acts_the_same_on_true_frames_and_otherwise_on_frozen_ones(paths):
    policy = TowardACorner()
    config = PolicyPathConfig(task="push_region")
    true = policy_path_report(oracle(paths), paths, context=3, config=config, policy=policy)
    inputs = true.metrics["policy_on_imagined_frames"]
    for name in ("one_step", "open_loop"):
        assert inputs[name]["action_gap"] == pytest.approx(0.0, abs=1e-6)
        assert inputs[name]["direction_cosine"] == pytest.approx(1.0, abs=1e-6)
        assert inputs[name]["en_route_direction_cosine"] == pytest.approx(1.0, abs=1e-6)  # it always drives
        assert inputs[name]["en_route_steps"] == 1.0 and "settling_direction_cosine" not in inputs[name]
    assert "acts off by 0.00 of its limit" in true.format()
    # Pixel noise on the real frames moves where it locates the agent a little, never the way it drives.
    noisy = inputs["real_noisy"]
    assert noisy["input_noise"] == 2.0 and 0 < noisy["action_gap"] < 0.1 and noisy["direction_cosine"] > 0.99
    exact = policy_path_report(oracle(paths), paths, context=3, policy=policy,
                               config=PolicyPathConfig(task="push_region", input_noise=0.0))
    assert exact.metrics["policy_on_imagined_frames"]["real_noisy"]["action_gap"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="input_noise"):
        PolicyPathConfig(input_noise=-1.0)

    def frozen(window: Window, actions: torch.Tensor) -> torch.Tensor:  # the agent never moves in the picture
        return to_model_range(window.context_frames[:, -1:]).repeat(1, actions.shape[1], 1, 1, 1)

    still = policy_path_report(frozen, paths, context=3, config=config, policy=policy)
    gaps = still.metrics["policy_on_imagined_frames"]
    assert gaps["open_loop"]["action_gap"] > 0.1 and gaps["open_loop"]["direction_cosine"] < 0.99
    assert gaps["open_loop"]["action_gap"] > gaps["one_step"]["action_gap"]  # one step behind vs from the start


def test_table_haze_measures_the_imagined_frames_only_where_the_real_one_shows_the_table():
    from dmo_ros.gates.policy_paths import table_haze

    real = np.full((2, 3, 8, 8, 3), 255, np.uint8)
    real[:, :, 2:4, 2:4] = (60, 90, 250)  # the agent: not table
    imagined = real.copy()
    imagined[:, 1] = np.where(real[:, 1] == 255, 250, 0)  # step 1: the table 5 levels off, the agent lost entirely
    imagined[:, 2, ..., 0] = 252  # step 2: 3 levels off in one channel, the agent painted over too
    assert table_haze(real, imagined).tolist() == [0.0, 5.0, 3.0]


class Still:
    """A controller (stand-in recording) and a policy (the report) that never moves: every action is zero, or
    ``tiny`` (an untrained policy's 1 % of the limit, which moves the agent less than a pixel)."""

    action_limit = np.array([0.3, 0.3])

    def __init__(self, tiny: float = 0.0) -> None:
        self.tiny = tiny

    def reset(self, *_sim) -> None:
        pass

    def act(self, _seen) -> np.ndarray:
        return np.full(2, self.tiny, dtype=np.float32)

    def observe_action(self, action: np.ndarray) -> None:
        pass


@pytest.mark.parametrize("tiny", [0.0, 0.002])
def test_paths_without_scored_steps_or_moving_commands_are_not_measured_not_failed(tiny):
    """Before: ``FAIL free_error_ratio nan <= 0.5`` for 0 scored steps and "direction cosine 1.00" (0.98 for an
    untrained policy) for commands that do not move."""
    config = PolicyPathConfig(task="reach_fixed", episodes=2, steps=4)
    still = record_paths(Still(tiny), config, SIZE)
    report = policy_path_report(oracle(still), still, context=3, config=config, policy=Still(tiny))
    text = report.format()
    assert report.metrics["step_class_counts"] == {name: 0 for name in STEP_CLASSES}, text
    assert "nan" not in text.split("info")[0] and "FAIL" not in text, text
    assert {check.name for check in report.checks} == {"agent_visible_one_step"} and report.passed
    for name in ("free_error_ratio", "contact_error_ratio"):
        assert f"info {name} not measured (0 scored {name.split('_')[0]} steps" in text, text
    assert "info wall_push_px not measured (0 scored wall steps" in text
    gaps = report.metrics["policy_on_imagined_frames"]
    for name in ("one_step", "open_loop", "real_noisy"):
        assert gaps[name]["direction_steps"] == 0 and np.isnan(gaps[name]["direction_cosine"])
    assert "(direction cosine not measured; en route not measured, settling not measured) one-step" in text
    assert "cosine 1.00" not in text and "cosine 0.9" not in text
