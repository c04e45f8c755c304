"""``scripts/local_model_gradient_parts.py``: the gate's cosine split into the prior's and the reward head's part."""

from __future__ import annotations

import numpy as np
from script_modules import load_script


def _script():
    return load_script("scripts/local_model_gradient_parts.py")


def test_each_part_is_compared_with_the_simulator_at_the_same_probes(policy_inputs, capsys):
    parts = _script()
    local = str(policy_inputs["local_model"])
    assert parts.main(["--reward-run", str(policy_inputs["reward"]), "--goal", str(policy_inputs["goal"]),
                       "--probes", "6", local]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["gate", "decoupled", "posterior", "prior"]
    cosines = [float(line.split()[3]) for line in lines]
    assert all(np.isfinite(cosines)) and all(-1 <= c <= 1 for c in cosines)
    assert all("of 6 probes" in line for line in lines)
