"""``scripts/drift_along_episodes.py``: the local model's gradient drift where a policy's own episodes go."""

from __future__ import annotations

import re

from script_modules import load_script

from policy_runs import train_tiny_policy


def _script():
    return load_script("scripts/drift_along_episodes.py")


def test_it_measures_the_drift_at_the_asked_steps_and_says_how_each_episode_ends(tmp_path, capsys):
    run = train_tiny_policy(tmp_path)
    assert _script().main([str(run), "--episodes", "0,2", "--steps", "0,3", "--max-steps", "4", "--grid", "128",
                           "--gradient-steps", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    measured = [line for line in lines if " step " in line and "drift" in line]
    assert [line.split(":")[0] for line in measured] == ["episode 0 step   0", "episode 0 step   3",
                                                         "episode 2 step   0", "episode 2 step   3"]
    for line in measured:  # a drift in [0, 1], a unit direction (none where the gradient is zero), a cosine
        drift, x, y, cosine = map(float, re.search(r"drift (\S+) toward \((\S+), (\S+)\) \(cosine with the way "
                                                  r"(\S+)\)", line).groups())
        assert 0.0 <= drift <= 1.0 + 1e-6 and -1.0 <= cosine <= 1.0
        assert abs(x * x + y * y - 1.0) < 0.05 or (drift == 0.0 and x == y == cosine == 0.0)
    assert sum(line.startswith(("episode 0: ", "episode 2: ")) and "the agent ends at" in line for line in lines) == 2


def test_bad_inputs_exit_2_without_a_traceback(tmp_path, capsys):
    run = train_tiny_policy(tmp_path)
    assert _script().main([str(run), "--task", "reach_fixed"]) == 2
    assert _script().main([str(tmp_path / "none")]) == 2
    assert _script().main([str(run), "--local-model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("drift_along_episodes: error") == 3 and "Traceback" not in err
