"""The dream node refuses what it cannot use before anything runs: bad parameter combinations, a pickle
world-model checkpoint (the safe loader), a policy for another frame size."""

from __future__ import annotations

import pickle
import shutil

import pytest

from conftest import BIN, LiveProcess
from dmo_ros.training.checkpoint import checkpoint_dir

pytestmark = pytest.mark.ros


def dream_node(env: dict[str, str], **parameters) -> LiveProcess:
    args = [str(BIN / "dream"), "--ros-args"]
    for name, value in parameters.items():
        args += ["-p", f"{name}:={value}"]
    return LiveProcess(args, env)


@pytest.mark.parametrize(("parameters", "message"), [
    ({"action_source": "recorded", "start_source": "camera"}, "needs start_source dataset"),
    ({"action_source": "policy"}, "needs the parameter 'policy'"),  # no policy run given
    ({"action_source": "dreams"}, "action_source must be one of policy, recorded, teleop"),
    ({"reward": "runs/reward"}, "needs a goal picture"),
    ({"horizon": 0}, "horizon must be at least 1"),
])
def test_bad_parameters_are_refused(ros_env, tiny_policies, parameters, message):
    root = tiny_policies["pusht"].parent
    base = {"world_model": root / "world_model", "dataset": root / "dataset", "action_source": "recorded"}
    node = dream_node(ros_env, **{**base, **parameters})
    assert node.finish(60) == 2, node.output
    assert message in node.output and "Traceback" not in node.output


def test_a_pickle_world_model_is_refused_before_anything_runs(ros_env, tiny_policies, tmp_path):
    root = tiny_policies["pusht"].parent
    run = shutil.copytree(root / "world_model", tmp_path / "tampered")
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (checkpoint_dir(run) / "model.safetensors").write_bytes(pickle.dumps({"w": Payload()}))
    node = dream_node(ros_env, world_model=run, dataset=root / "dataset", action_source="recorded")
    assert node.finish(60) == 2, node.output
    assert "refused" in node.output and "Traceback" not in node.output
    assert not marker.exists()
