"""``scripts/rung0_sampled_eval.py``: a rung-0 SAPO policy evaluated with actions drawn from its own Gaussian."""

from __future__ import annotations

import pytest
import torch
from script_modules import load_script

from dmo_ros.ladder import rung0
from dmo_ros.policy.actor import SquashedGaussianActor


def _script():
    return load_script("scripts/rung0_sampled_eval.py")


def test_scale_0_is_the_mode_and_a_larger_scale_spreads_the_actions():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(8, 2, hidden=16, layers=1, init_std=0.5)
    observation = torch.randn(256, 8)
    torch.testing.assert_close(_script().SampledActor(actor, 0.0)(observation), actor.deterministic(observation))
    spreads = [(_script().SampledActor(actor, scale)(observation) - actor.deterministic(observation)).std()
               for scale in (0.5, 2.0)]
    assert 0.1 < spreads[0] < spreads[1]  # init std 0.5: tanh(0.25 noise) and tanh(1.0 noise) around ~0


def test_the_command_evaluates_a_rung0_run_per_scale_and_refuses_other_runs(tmp_path, capsys):
    run = tmp_path / "r0"
    assert rung0.main([str(run), "--task", "push_region", "--preset", "tiny", "--final-eval-episodes", "0",
                       "--no-progress"]) == 0
    capsys.readouterr()
    assert _script().main([str(run), "--std-scales", "0", "1", "--episodes", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "std x 0: success" in lines[0] and "/2, loose" in lines[1]
    for bad in ([str(tmp_path / "none")], [str(run), "--episodes", "0"], [str(run), "--std-scales", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            _script().main(bad)
        assert exit_info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
