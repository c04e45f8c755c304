"""``scripts/policy_heading.py``: which way a policy drives first, against the T's way and the direction to the T."""

from __future__ import annotations

import numpy as np
from script_modules import load_script


def _script():
    return load_script("scripts/policy_heading.py")


class _TheTsWay:
    """Drives the T's way to its goal at a slow, constant speed: the policy of a contact-free model."""

    def reset(self, sim) -> None:
        state = sim.state()
        way = state.goal[:2] - state.block[:2]
        self.velocity = 0.05 * way / np.linalg.norm(way)

    def act(self, sim) -> np.ndarray:
        return self.velocity


class _Still:
    def reset(self, sim) -> None:
        pass

    def act(self, sim) -> np.ndarray:
        return np.zeros(2)


def test_headings_measure_the_way_the_agent_drives():
    result = _script().headings(_TheTsWay(), "push_t", 10_000, episodes=3, steps=3)
    assert np.all(result["way"] > 0.95) and np.all(result["moved"] > 1.0)  # slow and short: no wall, no push
    still = _script().headings(_Still(), "push_t", 10_000, episodes=2, steps=3)
    assert np.all(still["moved"] < 1e-6) and np.all(np.abs(still["way"]) < 1e-3)


def test_the_command_prints_one_line_and_refuses_bad_inputs(tmp_path, capsys):
    assert _script().main(["random", "--episodes", "2", "--steps", "2"]) == 0
    assert capsys.readouterr().out.startswith("random: 2 starts of push_t, first 2 steps: the agent moved")
    assert _script().main(["random", "--task", "reach_fixed"]) == 2
    assert _script().main(["random", "--steps", "0"]) == 2
    assert _script().main([str(tmp_path / "no_run")]) == 2
    err = capsys.readouterr().err
    assert err.count("policy_heading: error") == 3 and "Traceback" not in err
