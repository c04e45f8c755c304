"""The world-model gate passes the true simulator and fails models that ignore actions or lose the agent."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dmo_ros.dataset.loaders import WindowDataset
from dmo_ros.gates.world_model import WorldModelGateConfig, action_response_gate, simulator_displacement
from gates.conftest import SimulatorRollout

CONFIG = WorldModelGateConfig(windows=8, horizon=4, direction_step=3, batch_size=8)


def _dataset(play):
    dataset = WindowDataset(play.dataset, context=4, horizon=1, split="val")
    indices = np.unique(np.linspace(0, len(dataset) - 1, 8).round().astype(int)).tolist()
    return dataset, indices


def test_simulator_moves_about_three_pixels_a_step_at_64px():
    moved = simulator_displacement(0.2, 3, 64)
    assert np.all(np.diff(moved) > 0)
    assert 6.0 < moved[-1] < 12.0


def test_the_true_simulator_passes(pusht_play, tmp_path):
    dataset, indices = _dataset(pusht_play)
    picture = tmp_path / "action_response.png"
    report = action_response_gate(SimulatorRollout(pusht_play), dataset, indices, CONFIG, picture=picture)
    checks = {c.name: c for c in report.checks}
    # The picture: 3 windows x 5 commands rows of (last real frame + 4 imagined steps), 2x upscaled.
    with Image.open(picture) as image:
        assert image.size == (22 + 5 * 64 * 2, 3 * (5 * 64 * 2 + 6))
    assert report.passed, report.format()
    assert checks["agent_visible"].value > 0.99
    assert checks["right_direction"].value >= 0.9
    assert report.metrics["one_step_error"] < 0.1 * report.metrics["copy_last_frame_error"]
    assert report.metrics["one_step_abs_error"] < 1e-3 < report.metrics["copy_last_frame_abs_error"]
    # Under a zero command the real agent stops within a step: the drift note reads a fraction of a pixel.
    drift = report.metrics["commands"]["zero"]["drift_px_per_step"]
    assert max(drift) < 0.6 and "zero command: the imagined agent drifts" in report.format()


def test_a_model_that_repeats_the_last_frame_fails_the_direction_check(pusht_play):
    dataset, indices = _dataset(pusht_play)

    def copy_last(window, actions):
        last = window.context_frames[:, -1].float() / 127.5 - 1.0
        return last[:, None].expand(-1, actions.shape[1], -1, -1, -1)

    report = action_response_gate(copy_last, dataset, indices, CONFIG)
    checks = {c.name: c for c in report.checks}
    assert not report.passed
    assert checks["agent_visible"].passed and not checks["right_direction"].passed
    assert checks["right_direction"].value == 0.0
    assert report.metrics["commands"]["zero"]["drift_px_per_step"] == [0.0] * CONFIG.horizon  # a frozen agent


def test_a_model_that_loses_the_agent_fails_visibility(pusht_play):
    dataset, indices = _dataset(pusht_play)
    truth = SimulatorRollout(pusht_play)

    def blurred(window, actions):  # the true frames, averaged with white: the agent fades away
        return (truth(window, actions) + 3.0 * torch.ones(1)) / 4.0

    report = action_response_gate(blurred, dataset, indices, CONFIG)
    checks = {c.name: c for c in report.checks}
    assert not checks["agent_visible"].passed and checks["agent_visible"].value < 0.5
    assert not report.passed
    # The zero command's drift cannot be measured without the agent: said so, not printed as "nan px".
    drift_note = next(note for note in report.notes if note.startswith("zero command"))
    assert "nan" not in drift_note and "? px (the imagined agent not found)" in drift_note, drift_note


def test_the_per_command_line_names_the_command_that_loses_the_agent(pusht_play):
    """A model that keeps the agent while it moves and loses it when told to stand still (what play without pauses
    taught the cpu preset's world model, docs/gates.md) fails, and the gate's printout says which command."""
    dataset, indices = _dataset(pusht_play)
    truth = SimulatorRollout(pusht_play)

    def loses_it_standing_still(window, actions):
        frames = truth(window, actions)
        still = actions.abs().sum(dim=(1, 2)) == 0
        frames[still] = 1.0  # a white table: no agent, no T
        return frames

    report = action_response_gate(loses_it_standing_still, dataset, indices, CONFIG)
    commands = report.metrics["commands"]
    assert commands["zero"]["visible"] == 0.0 and all(commands[name]["visible"] > 0.99 for name in ("+x", "-y"))
    assert not report.passed
    line = next(note for note in report.notes if note.startswith("agent visible per command"))
    assert "zero 0.00 / 0.00," in line and "+x 1.00 / " in line, line
    assert line in report.format()


def test_fidelity_report_on_pusht_data_scores_agent_and_t_positions_per_step(pusht_play, tmp_path, capsys):
    from dmo_ros.world_model.config import SamplerConfig, WorldModelConfig
    from dmo_ros.world_model.denoiser import Denoiser
    from dmo_ros.world_model.fidelity import fidelity_report

    torch.manual_seed(0)
    untrained = Denoiser(WorldModelConfig.preset("tiny", 2, [0.2, 0.2], image_size=64))
    report = fidelity_report(untrained, pusht_play.dataset, tmp_path, horizon=2, windows=3,
                             sampler_config=SamplerConfig(num_steps=1), gif_rollouts=1)
    assert len(report["agent_visible"]) == len(report["agent_error"]) == len(report["block_error"]) == 2
    assert all(0.0 <= v <= 1.0 for v in report["agent_visible"])
    assert "agent error px" in capsys.readouterr().out
