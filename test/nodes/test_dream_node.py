"""The dream node refuses what it cannot use before anything runs: bad parameter combinations, a pickle
world-model checkpoint (the safe loader), a policy for another frame size."""

from __future__ import annotations

import json
import pickle
import shutil
import sys

import pytest

from conftest import BIN, LiveProcess, run_command
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
    ({"reward": "TINY_REWARD"}, "needs a goal picture"),  # the tiny goal-picture reward run, no goal given
    ({"reward": "runs/no_such_reward"}, "reward runs/no_such_reward:"),
    ({"horizon": 0}, "horizon must be at least 1"),
])
def test_bad_parameters_are_refused(ros_env, tiny_policies, parameters, message):
    root = tiny_policies["pusht"].parent
    base = {"world_model": root / "world_model", "dataset": root / "dataset", "action_source": "recorded"}
    parameters = {name: root / "reward" if value == "TINY_REWARD" else value for name, value in parameters.items()}
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


PARAMETER_PROBE = """
import json, rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
rclpy.init()
node = rclpy.create_node("dream_parameter_probe")
client = node.create_client(SetParameters, "/dream/set_parameters")
assert client.wait_for_service(timeout_sec=30)
replies = []
for name, value in (("offset", 3), ("episode", 999), ("horizon", 4)):
    request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
        type=ParameterType.PARAMETER_INTEGER, integer_value=value))])
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=30)
    result = future.result().results[0]
    replies.append([result.successful, result.reason])
print(json.dumps(replies))
"""


def test_setting_episode_or_offset_jumps_to_that_window(ros_env, tiny_policies):
    root = tiny_policies["pusht"].parent
    node = dream_node(ros_env, world_model=root / "world_model", dataset=root / "dataset",
                      action_source="recorded", horizon=12, rate_hz=10.0, seeds=1)
    try:
        node.wait_for("dreaming 1 rollout(s)", timeout=60)
        probe = run_command([sys.executable, "-c", PARAMETER_PROBE], ros_env, timeout=90)
    finally:
        code = node.stop()
    assert probe.returncode == 0 and code == 0, probe.stdout + node.output
    offset, episode, horizon = json.loads(probe.stdout.strip().splitlines()[-1])
    assert offset == [True, ""]
    assert not episode[0] and "episode 999 has no window" in episode[1]
    assert not horizon[0] and "only episode, offset change at run time" in horizon[1]
    starts = [line for line in node.lines if "rollouts from" in line]
    assert ", sample 0" in starts[0] and any(", sample 3" in line for line in starts)  # the jump: 3 samples in
