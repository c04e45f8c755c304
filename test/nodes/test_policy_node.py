"""The policy node as a real process over DDS, with a probe process playing the camera and the operator.

Safety first: a camera that stops, an e-stop, a NaN policy, a bad image (wrong encoding, wrong size) all give
zero commands with an error; a pickle checkpoint is refused before anything runs; shutdown sends zero.
"""

from __future__ import annotations

import pickle
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import BIN, LiveProcess
from dmo_ros.training.checkpoint import checkpoint_dir
from policy_probe import Probe, zero
from policy_runs import CAMERA, nan_policy

pytestmark = pytest.mark.ros


def policy_node(env: dict[str, str], checkpoint: Path, **parameters) -> LiveProcess:
    args = [str(BIN / "policy"), "--ros-args", "-p", f"checkpoint:={checkpoint}"]
    for name, value in {"statistics_period": 0.0, **parameters}.items():
        args += ["-p", f"{name}:={value}"]
    return LiveProcess(args, env)


@pytest.fixture
def processes():
    """Everything a test starts, stopped afterwards even when it fails."""
    started: list = []
    yield started
    for process in started:
        if isinstance(process, Probe):
            process.close()
        elif process.process.poll() is None:
            process.process.kill()
            process.finish(10)


def test_camera_loss_estop_and_bad_images_give_zero_commands_then_it_recovers(ros_env, tiny_policies, processes):
    node = policy_node(ros_env, tiny_policies["pusht"], robot="pusht", start_enabled=True, stale_timeout=0.5,
                       command_frame_id="table")
    probe = Probe(ros_env)
    processes += [node, probe]
    node.wait_for("enabled")
    height, width = CAMERA
    probe.ask("camera", width, height, "rgb8", 10)
    first = probe.wait_moving(0.0)
    running = probe.wait_commands(first, 4, moving=True)
    assert all(c[4] == "table" for c in running)  # TwistStamped with the configured command frame

    # 1. The camera stops: zero within the stale timeout (+ one 20 Hz guard tick), and zero from then on.
    probe.ask("camera", "off")
    last_frame = probe.ask("frames")[-1]
    time.sleep(1.5)
    after = [c for c in probe.ask("commands") if c[0] > last_frame]
    first_zero = next(c[0] for c in after if zero(c))
    assert first_zero - last_frame <= 0.5 + 0.1, first_zero - last_frame
    assert all(zero(c) for c in after if c[0] >= first_zero)
    node.wait_for("s old (timeout 0.5 s); zero command")

    # It recovers when frames come back.
    probe.ask("camera", width, height, "rgb8", 10)
    resumed = probe.wait_moving(probe.ask("now"))

    # 2. E-stop on the topic: zero at once and until enabled again (here through the SetBool service).
    time.sleep(0.6)
    stop_time = probe.ask("now")
    assert probe.ask("enable_topic", "false") == "ok"
    time.sleep(1.0)
    after = probe.commands_since(stop_time)
    assert after and zero(after[-1])
    first_zero = next(c[0] for c in after if zero(c))
    assert first_zero - stop_time < 0.2 and all(zero(c) for c in after if c[0] >= first_zero)
    node.wait_for("DISABLED (zero command) by the enable topic")
    assert probe.ask("enable_service", "true") == [True, "enabled"]
    assert probe.wait_moving(probe.ask("now")) > resumed

    # 3. Wrong encoding, then a camera of another size: zero and a clear error each; then good frames again.
    for spec, error in ((("yuv422",), "unsupported image encoding 'yuv422'"),
                        (("rgb8",), f"camera image is 64x48, the policy was trained on {width}x{height} images")):
        size = (width, height) if spec[0] == "yuv422" else (64, 48)
        probe.ask("camera", *size, *spec, 10)
        time.sleep(0.3)
        bad_from = probe.ask("now")
        time.sleep(1.0)
        bad = probe.commands_since(bad_from)
        assert bad and all(zero(c) for c in bad), bad
        node.wait_for(error)
        probe.ask("camera", width, height, "rgb8", 10)
        probe.wait_moving(probe.ask("now"))

    # 4. Shutdown: exit 0, a zero command last, the statistics line.
    shutdown_from = probe.ask("now")
    assert node.stop(signal.SIGINT) == 0, node.output
    time.sleep(0.3)
    tail = probe.commands_since(shutdown_from)
    assert tail and zero(tail[-1])
    assert "final statistics:" in node.output and "inference p50" in node.output and "Traceback" not in node.output


@pytest.mark.parametrize("fault", ["nan_policy", "inference_overrun"])
def test_a_nan_policy_or_an_overrunning_inference_commands_zero_and_says_so(fault, ros_env, tiny_policies, processes,
                                                                             tmp_path):
    if fault == "nan_policy":
        node = policy_node(ros_env, nan_policy(tiny_policies["pusht"], tmp_path / "nan_policy"), robot="pusht",
                           start_enabled=True)
        error, status = "non_finite: the policy produced a non-finite action", "non_finite"
    else:  # a budget no inference can meet: every decision is late, none may be sent
        node = policy_node(ros_env, tiny_policies["pusht"], robot="pusht", start_enabled=True,
                           inference_budget=0.00001)
        error, status = "overrun: inference took", "overrun"
    probe = Probe(ros_env)
    processes += [node, probe]
    node.wait_for("enabled")
    probe.ask("camera", CAMERA[1], CAMERA[0], "rgb8", 10)
    node.wait_for(error, timeout=20)
    commands = probe.wait_commands(0.0, 3)
    assert all(zero(c) for c in commands), commands
    assert node.stop() == 0 and status in node.output.split("final statistics:")[1]


def pickle_payload(kind: str, marker: Path) -> bytes:
    """A checkpoint that runs code when unpickled: it would create ``marker``."""
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    if kind == "pickle":
        return pickle.dumps({"actor.head.weight": Payload()})
    path = marker.with_suffix(".pt")
    torch.save({"actor.head.weight": Payload()}, path)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["pickle", "torch_save"])
def test_a_pickle_checkpoint_is_refused_before_anything_runs(ros_env, tiny_policies, tmp_path, kind):
    import shutil

    run = tmp_path / "tampered"
    shutil.copytree(tiny_policies["pusht"], run)
    # The payload is live: the same payload aimed at another file, unpickled as a careless loader would, creates it.
    live = tmp_path / f"live_{kind}"
    live_payload = tmp_path / f"live_{kind}.bin"
    live_payload.write_bytes(pickle_payload(kind, live))
    if kind == "pickle":
        pickle.loads(live_payload.read_bytes())
    else:
        torch.load(live_payload, weights_only=False)
    assert live.exists()
    marker = tmp_path / f"payload_ran_{kind}"
    payload = pickle_payload(kind, marker)
    (checkpoint_dir(run) / "model.safetensors").write_bytes(payload)
    node = LiveProcess([str(BIN / "policy"), "--ros-args", "-p", f"checkpoint:={run}"], ros_env)
    assert node.finish(60) == 2, node.output
    assert "pickle payload, not safetensors; refused" in node.output and "Traceback" not in node.output
    assert not marker.exists()


def test_compressed_jpeg_camera_drives_the_go2_policy(ros_env, tiny_policies, processes):
    node = policy_node(ros_env, tiny_policies["go2"], robot="go2", start_enabled=True, camera_format="compressed")
    probe = Probe(ros_env, "Twist", "/cmd_vel", "compressed")
    processes += [node, probe]
    node.wait_for("geometry_msgs/msg/Twist on /cmd_vel")
    probe.ask("camera", CAMERA[1], CAMERA[0], "jpeg", 10)
    first = probe.wait_moving(0.0)
    probe.wait_commands(first, 4, moving=True)
    assert node.stop() == 0


def test_a_policy_for_another_robot_is_refused(ros_env, tiny_policies):
    node = LiveProcess([str(BIN / "policy"), "--ros-args", "-p", f"checkpoint:={tiny_policies['go2']}",
                        "-p", "robot:=pusht"], ros_env)
    assert node.finish(60) == 2
    assert "was trained on robot 'go2', this node drives 'pusht'" in node.output and "Traceback" not in node.output
