"""Checkpoints: atomic, pointed at only when complete, pruned, and loaded without running code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from dmo_ros.training.checkpoint import (
    CheckpointError,
    checkpoint_dir,
    latest_step,
    load_model_weights,
    load_trainer_state,
    read_run_config,
    save_checkpoint,
    write_run_config,
)


def _save(run: Path, step: int, keep: int = 2) -> Path:
    return save_checkpoint(run, step, {"w": torch.full((2, 2), float(step))}, {"step": step, "opt": {"lr": 0.1}},
                           {"loss": 1.0 / step}, keep=keep)


def test_save_load_prune(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        _save(tmp_path, step)
    assert latest_step(tmp_path) == 30
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last", "step_00000020", "step_00000030"]
    assert load_model_weights(tmp_path)["w"][0, 0] == 30
    assert load_model_weights(tmp_path, "step_00000020")["w"][0, 0] == 20
    assert load_trainer_state(tmp_path)["opt"] == {"lr": 0.1}


def test_half_written_checkpoint_is_never_used(tmp_path: Path) -> None:
    _save(tmp_path, 10)
    # A crash while writing step 20: its .tmp folder exists, the pointer still names step 10.
    (tmp_path / "checkpoints/step_00000020.tmp").mkdir()
    assert latest_step(tmp_path) == 10
    _save(tmp_path, 20)  # the next save replaces the stale .tmp
    assert latest_step(tmp_path) == 20 and not (tmp_path / "checkpoints/step_00000020.tmp").exists()


def test_missing_and_incomplete(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        checkpoint_dir(tmp_path)
    with pytest.raises(CheckpointError, match="not a training run folder"):
        read_run_config(tmp_path)
    assert latest_step(tmp_path) is None
    _save(tmp_path, 5)
    os.remove(tmp_path / "checkpoints/step_00000005/model.safetensors")
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        load_model_weights(tmp_path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_trainer_state_that_would_run_code_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _save(tmp_path, 1)
    with open(folder / "trainer.pt", "wb") as stream:
        pickle.dump({"step": 1, "payload": _RunsCode()}, stream)
    with pytest.raises(CheckpointError, match="only code could rebuild, and loading a checkpoint never runs code"):
        load_trainer_state(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_run_config_roundtrip(tmp_path: Path) -> None:
    write_run_config(tmp_path, {"model": {"channels": [1, 2]}})
    assert read_run_config(tmp_path) == {"model": {"channels": [1, 2]}}
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_run_config(tmp_path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_damaged_inside_a_valid_file_are_refused_with_the_way_back(tmp_path: Path, bad: float) -> None:
    """Bytes overwritten inside the tensor data leave the header valid: the file loaded and a gate reported its
    NaN outputs as an ordinary FAIL. Non-finite weights are refused, naming the tensor and the checkpoint to go
    back to; integer tensors are not checked (they have no NaN)."""
    good = {"layer.weight": torch.ones(2, 2), "steps": torch.zeros((), dtype=torch.int64)}
    save_checkpoint(tmp_path, 1, good, {}, {})
    damaged = {**good, "layer.bias": torch.tensor([0.0, bad])}
    save_checkpoint(tmp_path, 2, damaged, {}, {})
    with pytest.raises(CheckpointError, match=r"non-finite \(NaN or inf\) values in layer.bias: a damaged file.*"
                                              r"step_00000001"):
        load_model_weights(tmp_path)
    assert torch.equal(load_model_weights(tmp_path, "step_00000001")["layer.weight"], torch.ones(2, 2))


def test_safetensors_whose_header_length_looks_like_a_pickle_still_load(tmp_path: Path) -> None:
    """A safetensors file starts with its header length (little-endian): its first byte can be 0x80, a pickle's
    protocol byte (1 file in 256 — seen in a trainer test); the layout tells them apart, not the first byte."""
    for length in range(1, 300):  # a tensor name that makes the header length's low byte 0x80
        name = "w" + "x" * length
        folder = save_checkpoint(tmp_path / str(length), 1, {name: torch.ones(3)}, {}, {})
        weights = folder / "model.safetensors"
        if weights.read_bytes()[0] == 0x80:
            break
    assert torch.equal(load_model_weights(tmp_path / str(length))[name], torch.ones(3))
    weights.write_bytes(pickle.dumps({name: 1}))  # a real pickle in its place is still refused
    with pytest.raises(CheckpointError, match="pickle payload"):
        load_model_weights(tmp_path / str(length))


def test_saved_run_refuses_a_damaged_last_checkpoint_and_a_dataset_folder(tmp_path: Path) -> None:
    """Trainers ask saved_run before loading data: the refusal comes at once, as a bad argument (exit 2)."""
    from dmo_ros.training.checkpoint import saved_run

    write_run_config(tmp_path / "run", {"kind": "toy", "model": {}})
    assert saved_run(tmp_path / "run", "toy", "toy model") is not None
    _save(tmp_path / "run", 10)
    (tmp_path / "run/checkpoints/step_00000010/meta.json").write_text("{")
    with pytest.raises(CheckpointError, match="meta.json: unreadable .*remove .*run to start over"):
        saved_run(tmp_path / "run", "toy", "toy model")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds/meta.json").write_text("{}")
    with pytest.raises(CheckpointError, match="is a dataset folder"):
        saved_run(tmp_path / "ds", "toy", "toy model")


def test_read_run_config_names_a_run_of_the_wrong_kind(tmp_path: Path) -> None:
    """A reward run given as the world model was refused only by a list of 'unknown WorldModelConfig keys'."""
    from dmo_ros.training.checkpoint import RunKindError

    write_run_config(tmp_path / "reward", {"kind": "reward", "model": {}})
    with pytest.raises(RunKindError, match=r"holds a reward model run \(from dmo-train-reward\), not a world model "
                                           r"run; give the run folder of a world model \(dmo-train-world-model\)"):
        read_run_config(tmp_path / "reward", kind="world_model")
    assert read_run_config(tmp_path / "reward", kind="reward")["kind"] == "reward"
    write_run_config(tmp_path / "old", {"model": {}})  # a run from before kinds were recorded: taken as it is
    assert read_run_config(tmp_path / "old", kind="world_model") == {"model": {}}
    (tmp_path / "old/config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a list, not a run's config"):
        read_run_config(tmp_path / "old")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_trainer_state_is_one_line_that_never_suggests_unsafe_loading(tmp_path: Path, damage: str) -> None:
    """A garbage or truncated trainer.pt used to surface torch.load's multi-line message, which advises loading
    with weights_only=False (running whatever code the file holds)."""
    _save(tmp_path, 1)
    folder = _save(tmp_path, 2)
    state = folder / "trainer.pt"
    state.write_bytes({"garbage": b"x\n", "truncated": state.read_bytes()[:40], "empty": b""}[damage])
    with pytest.raises(CheckpointError) as caught:
        load_trainer_state(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "weights_only" not in message and "file an issue" not in message
    assert message.startswith(f"{state} is damaged") and "write its name (step_00000001)" in message


def test_a_checkpointed_run_is_not_resumed_with_other_inputs(tmp_path: Path) -> None:
    """Resuming with another preset, dataset or goal picture trained one network on two setups and rewrote
    config.json to name only the second."""
    from dmo_ros.training.checkpoint import changed_inputs

    inputs = {"kind": "reward", "preset": "cpu", "datasets": ["/d/a", "/d/b"], "goal": "/g/goal.png", "model": {}}
    write_run_config(tmp_path, inputs)
    assert changed_inputs(tmp_path, {**inputs, "preset": "tiny"}) == ""  # nothing checkpointed yet: a fresh start
    _save(tmp_path, 1)
    assert changed_inputs(tmp_path, {**inputs, "datasets": ["/d/b", "/d/a"], "train": {"steps": 9}}) == ""
    write_run_config(tmp_path, {**inputs, "train": {"steps": 9}})  # the same inputs: resumed, settings may change
    for key, value, said in (("preset", "tiny", "--preset cpu (given now: tiny)"),
                             ("datasets", ["/d/a"], "datasets /d/a, /d/b (given now: /d/a)"),
                             ("goal", "/g/other.png", "--goal /g/goal.png (given now: /g/other.png)"),
                             ("goal", None, "--goal /g/goal.png (given now: none)")):
        with pytest.raises(CheckpointError) as caught:
            write_run_config(tmp_path, {**inputs, key: value})
        assert str(caught.value) == (f"{tmp_path} holds a run trained with {said}; resume it with the same inputs, "
                                     "or train into a new --run-dir")
    assert read_run_config(tmp_path)["goal"] == "/g/goal.png"  # config.json untouched
