"""The policy API's deployment side: the run's metadata, the executed action feeding the recurrent state, refusals."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dmo_ros.policy.api import LatentActorPolicy, PolicyError, load_policy, load_policy_run
from dmo_ros.policy.base import NonFiniteActionError, clamp_action
from dmo_ros.training.checkpoint import checkpoint_dir
from policy_runs import CAMERA, IMAGE


def test_a_run_carries_what_deployment_needs(tiny_policies):
    run = load_policy_run(tiny_policies["go2"])
    assert run.robot == "go2" and run.rate_hz == 5.0 and run.aspect == "crop" and run.camera_size == CAMERA
    assert run.action["message"] == "geometry_msgs/msg/Twist" and run.action["names"] == ["vx", "vy", "yaw_rate"]
    assert isinstance(run.policy, LatentActorPolicy) and run.policy.image_size == (IMAGE, IMAGE)


def test_the_executed_action_not_the_proposed_one_drives_the_recurrent_state(tiny_policies):
    policy = load_policy(tiny_policies["pusht"])
    frames = np.random.default_rng(0).integers(0, 255, size=(2, IMAGE, IMAGE, 3), dtype=np.uint8)

    def second_action(executed):
        policy.reset()
        policy.act(frames[0])
        if executed is not None:
            policy.observe_action(np.asarray(executed))
        return policy.act(frames[1])

    proposed = second_action(None)
    stopped = second_action([0.0, 0.0])  # a safety stop: the robot did not move
    pushed = second_action([0.25, -0.25])
    assert not np.allclose(stopped, pushed)  # the state follows what was executed
    policy.reset()
    first = policy.act(frames[0])
    np.testing.assert_allclose(second_action(first), proposed)  # executing the proposal = not reporting it


def test_non_finite_actions_are_an_error_not_a_silent_zero():
    with pytest.raises(NonFiniteActionError, match="non-finite action"):
        clamp_action(np.array([np.nan, 0.1]), np.array([0.25, 0.25]))
    np.testing.assert_allclose(clamp_action(np.array([0.5, -0.1]), np.array([0.25, 0.25])), [0.25, -0.1])


def test_pickled_weights_are_refused_without_being_unpickled(tiny_policies, tmp_path):
    import shutil

    run = shutil.copytree(tiny_policies["pusht"], tmp_path / "run")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (checkpoint_dir(run) / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(PolicyError, match="pickle payload, not safetensors; refused"):
        load_policy_run(run)
    (checkpoint_dir(run) / "model.safetensors").write_bytes(b"{not safetensors at all")
    with pytest.raises(PolicyError, match="not a readable safetensors file"):
        load_policy(run)
    assert not marker.exists()


def test_the_local_model_of_a_run_comes_from_a_local_model_run_or_a_dmo_run_and_not_from_act(tiny_policies,
                                                                                           tiny_act_policy):
    import torch

    from dmo_ros.local_model.model import LocalModel
    from dmo_ros.policy.api import load_run_local_model

    run = tiny_policies["pusht"]
    pretrained = load_run_local_model(run.parent / "local_model")
    in_policy = load_run_local_model(run)
    assert isinstance(pretrained, LocalModel) and isinstance(in_policy, LocalModel)
    policy_weights = load_policy(run).local_model.state_dict()  # the policy's (fine-tuned) copy, not the pretrained
    assert in_policy.state_dict().keys() == pretrained.state_dict().keys() == policy_weights.keys()
    for name, value in in_policy.state_dict().items():
        torch.testing.assert_close(value, policy_weights[name])
    with pytest.raises(PolicyError, match="has no local model"):
        load_run_local_model(tiny_act_policy)
