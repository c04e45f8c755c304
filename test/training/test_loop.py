"""The training loop on a small known problem: it learns, skips bad steps, refuses what it cannot do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from toy_training import RegressionData, Regressor  # test/training is on sys.path (pytest rootdir-less import)

from dmo_ros.training import TrainConfig, TrainingError, read_run_config, seed_everything, train
from dmo_ros.training.distributed import World
from dmo_ros.training.loop import GlobalBatches, learning_rate


def _config(**overrides) -> TrainConfig:
    settings = dict(steps=200, batch_size=16, lr=0.05, warmup_steps=5, weight_decay=0.0, grad_clip=10.0,
                    log_every=10, val_every=100, checkpoint_every=100, progress=False, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def test_learns_a_known_linear_map(tmp_path: Path) -> None:
    seed_everything(0)
    data = RegressionData(256)
    model = Regressor()
    result = train(model, data, RegressionData(64, seed=0), _config(), tmp_path / "run", {"model": {"kind": "toy"}})
    assert result.step == 200 and result.samples == 200 * 16
    # The weights recovered: the same W, b that generated the data.
    assert torch.allclose(model.linear.weight.detach().T, data.weight, atol=2e-2)
    assert torch.allclose(model.linear.bias.detach(), data.bias, atol=2e-2)
    assert result.val_logs["loss"] < 1e-3
    config = read_run_config(tmp_path / "run")
    assert config["model"] == {"kind": "toy"} and config["train"]["steps"] == 200
    meta = json.loads((tmp_path / "run/checkpoints/step_00000200/meta.json").read_text())
    assert meta["step"] == 200 and meta["metrics"]["val/loss"] < 1e-3
    assert list((tmp_path / "run/tensorboard").glob("events.out.tfevents.*"))


def test_rerun_of_a_finished_run_does_nothing(tmp_path: Path, capsys) -> None:
    train(Regressor(), RegressionData(64), None, _config(steps=10), tmp_path, {"model": {"kind": "toy"}})
    result = train(Regressor(), RegressionData(64), None, _config(steps=10), tmp_path, {"model": {"kind": "toy"}})
    assert result.step == 10 and result.samples == 0
    assert "already trained to step 10" in capsys.readouterr().out


def test_isolated_nan_batches_are_skipped_not_learned(tmp_path: Path) -> None:
    seed_everything(0)
    data = RegressionData(256, nan_items=2)  # at most 2 of 16 batches per epoch hold a NaN
    model = Regressor()
    result = train(model, data, None, _config(steps=64), tmp_path, {"model": {"kind": "toy"}})
    assert 1 <= result.skipped_steps <= 2 * 4
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_persistent_nan_stops_with_a_clear_error(tmp_path: Path) -> None:
    data = RegressionData(64, nan_items=64)
    with pytest.raises(TrainingError, match="not finite for 3 steps in a row"):
        train(Regressor(), data, None, _config(steps=20, max_bad_steps=3), tmp_path, {"model": {"kind": "toy"}})


def test_too_little_data_for_one_batch(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="fewer than one batch of 16"):
        train(Regressor(), RegressionData(10), None, _config(), tmp_path, {"model": {"kind": "toy"}})


def test_run_folder_of_another_model_is_not_resumed(tmp_path: Path) -> None:
    train(Regressor(), RegressionData(64), None, _config(steps=4), tmp_path, {"model": {"kind": "toy", "width": 1}})
    with pytest.raises(TrainingError, match="different model .*width"):
        train(Regressor(), RegressionData(64), None, _config(steps=8), tmp_path,
              {"model": {"kind": "toy", "width": 2}})


def test_a_file_or_a_dataset_folder_as_run_folder_is_refused(tmp_path: Path) -> None:
    """--run-dir naming a file used to end in a FileExistsError traceback; naming a dataset folder trained into it."""
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TrainingError, match="is a file, not a folder"):
        train(Regressor(), RegressionData(64), None, _config(steps=2), tmp_path / "notes.txt", {"model": {}})
    with pytest.raises(TrainingError, match="notes.txt is a file, so no folder can be made there"):
        train(Regressor(), RegressionData(64), None, _config(steps=2), tmp_path / "notes.txt/run", {"model": {}})
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds/meta.json").write_text("{}")
    with pytest.raises(TrainingError, match="is a dataset folder"):
        train(Regressor(), RegressionData(64), None, _config(steps=2), tmp_path / "ds", {"model": {}})
    assert sorted(path.name for path in (tmp_path / "ds").iterdir()) == ["meta.json"]


@pytest.mark.parametrize("damage", ["weights", "trainer_state", "meta", "pointer"])
def test_a_damaged_last_checkpoint_is_refused_with_the_way_back(tmp_path: Path, damage: str) -> None:
    """Resuming a damaged last checkpoint used to end in a traceback (weights, trainer state, meta.json) or, with
    ``last`` naming a missing folder, silently start over from step 0 and overwrite the run."""
    train(Regressor(), RegressionData(64), None, _config(steps=8, checkpoint_every=4), tmp_path, {"model": {}})
    last = tmp_path / "checkpoints/step_00000008"
    if damage == "pointer":
        (tmp_path / "checkpoints/last").write_text("step_00000099\n")
    else:
        name = {"weights": "model.safetensors", "trainer_state": "trainer.pt", "meta": "meta.json"}[damage]
        (last / name).write_bytes((last / name).read_bytes()[:20])
    with pytest.raises(TrainingError, match=r"write its name \(step_00000004.*\) into .*last, or train into a new"):
        train(Regressor(), RegressionData(64), None, _config(steps=12, checkpoint_every=4), tmp_path, {"model": {}})
    (tmp_path / "checkpoints/last").write_text("step_00000004\n")  # the way back the message names
    result = train(Regressor(), RegressionData(64), None, _config(steps=12, checkpoint_every=4), tmp_path,
                   {"model": {}})
    assert result.start_step == 4 and result.step == 12


def test_a_bad_device_is_a_training_error(tmp_path: Path) -> None:
    """--device banana used to end every trainer in a RuntimeError traceback from inside the loop."""
    with pytest.raises(TrainingError, match="is not a device"):
        train(Regressor(), RegressionData(64), None, _config(steps=2, device="banana"), tmp_path, {"model": {}})
    assert not (tmp_path / "config.json").exists()


def test_a_resume_with_other_training_settings_says_so_and_keeps_the_record(tmp_path: Path, capsys) -> None:
    """A resume may change the training settings, but it used to rewrite config.json without a word: a run started
    with --lr 0.01 and resumed without it trained on at the default and recorded only that."""
    toy = {"model": {"kind": "toy"}}
    train(Regressor(), RegressionData(64), None, _config(steps=10, lr=0.01, checkpoint_every=10), tmp_path, toy)
    capsys.readouterr()
    train(Regressor(), RegressionData(64), None, _config(steps=20, lr=0.05, batch_size=8, checkpoint_every=10),
          tmp_path, toy)
    out = capsys.readouterr().out
    assert ("note: resuming" in out and "at step 10 with other training settings than it was last trained with: "
            "batch_size 16 -> 8, lr 0.01 -> 0.05" in out)
    config = read_run_config(tmp_path)
    assert config["train"]["lr"] == 0.05
    assert config["train_changes"] == [{"step": 10, "changed": {"batch_size": {"from": 16, "to": 8},
                                                                "lr": {"from": 0.01, "to": 0.05}}}]
    # The same settings again (a longer budget only) add nothing and keep the record.
    train(Regressor(), RegressionData(64), None, _config(steps=30, lr=0.05, batch_size=8, checkpoint_every=10),
          tmp_path, toy)
    assert "note: resuming" not in capsys.readouterr().out
    assert len(read_run_config(tmp_path)["train_changes"]) == 1


def test_time_limit_stops_with_a_checkpoint_and_rerun_continues(tmp_path: Path) -> None:
    first = train(Regressor(), RegressionData(64), None, _config(steps=100_000, time_limit_s=0.5), tmp_path,
                  {"model": {"kind": "toy"}})
    assert first.stopped_early and 0 < first.step < 100_000
    second = train(Regressor(), RegressionData(64), None, _config(steps=first.step + 3), tmp_path,
                   {"model": {"kind": "toy"}})
    assert second.start_step == first.step and second.step == first.step + 3


def test_warmup_schedule() -> None:
    config = _config(lr=1.0, warmup_steps=4)
    assert [learning_rate(config, s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_schedule_warms_up_then_falls_to_zero_at_steps() -> None:
    config = _config(lr=1.0, warmup_steps=2, steps=6, lr_schedule="cosine")
    rates = [learning_rate(config, s) for s in range(7)]
    assert rates[:3] == [0.5, 1.0, 1.0]  # warm-up, then the full rate where the cosine starts
    assert rates[3:] == pytest.approx([0.8535534, 0.5, 0.1464466, 0.0])  # (1 + cos(pi k / 4)) / 2
    assert all(a >= b for a, b in zip(rates[1:], rates[2:], strict=False))


def test_global_batches_split_between_processes_like_one_big_batch() -> None:
    one = list(GlobalBatches(40, 8, World(), seed=3, epoch=2))
    two = [list(GlobalBatches(40, 4, World(rank=r, size=2), seed=3, epoch=2)) for r in range(2)]
    assert len(one) == 5 and all(len(b) == 4 for b in two[0])
    assert [a + b for a, b in zip(two[0], two[1], strict=True)] == one
    # Resuming mid-epoch continues the same sequence.
    assert list(GlobalBatches(40, 8, World(), seed=3, epoch=2, first_batch=3)) == one[3:]
    # Different epochs, different orders.
    assert list(GlobalBatches(40, 8, World(), seed=3, epoch=3)) != one


def test_a_run_saved_before_a_config_field_existed_resumes_with_its_default(tmp_path: Path) -> None:
    # The model's config is a dataclass; the saved run lacks "gain" (added later, default 1.0).
    @dataclass
    class ToyConfig:
        width: int = 1
        gain: float = 1.0

    def model(config: ToyConfig) -> Regressor:
        regressor = Regressor()
        regressor.config = config
        return regressor

    train(model(ToyConfig()), RegressionData(64), None, _config(steps=4), tmp_path, {"model": {"width": 1}})
    result = train(model(ToyConfig()), RegressionData(64), None, _config(steps=8), tmp_path,
                   {"model": {"width": 1, "gain": 1.0}})
    assert result.step == 8
    with pytest.raises(TrainingError, match="different model .*gain"):  # another value than the default is not
        train(model(ToyConfig(gain=2.0)), RegressionData(64), None, _config(steps=12), tmp_path,
              {"model": {"width": 1, "gain": 2.0}})


TRAINER_MAINS = [("dmo_ros.world_model.train", "main", []), ("dmo_ros.reward.train", "main", []),
                 ("dmo_ros.local_model.train", "main", []), ("dmo_ros.baselines.act_train", "main", []),
                 ("dmo_ros.dmo.train", "main", ["dmo", "--local-model", "loc"]),
                 ("dmo_ros.world_model_v4.train", "tokenizer_main", []),
                 ("dmo_ros.world_model_v4.train", "dynamics_main", ["--tokenizer", "tok"])]


@pytest.mark.parametrize(("module", "name", "extra"), TRAINER_MAINS)
def test_ctrl_c_ends_a_trainer_with_one_line_and_exit_130(module, name, extra, tmp_path, monkeypatch, capsys):
    """Ctrl-C used to end every trainer in a KeyboardInterrupt traceback (after the loop's checkpoint)."""
    import importlib

    trainer = importlib.import_module(module)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "find_datasets", interrupted)
    monkeypatch.setattr("sys.argv", ["dmo-train-something"])
    assert getattr(trainer, name)([*extra, str(tmp_path), "--run-dir", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err.strip() == "dmo-train-something: interrupted; re-run the same command to resume"


def test_a_busy_machine_is_named_at_the_start(tmp_path: Path, capsys, monkeypatch) -> None:
    from dmo_ros.training import loop

    monkeypatch.setattr(loop, "oversubscription_warning", lambda: "warning: the machine is busy (test)")
    train(Regressor(), RegressionData(64), None, _config(steps=2), tmp_path / "run", {"model": {"kind": "toy"}})
    assert "[train] warning: the machine is busy (test)" in capsys.readouterr().out


def test_a_machine_that_turns_busy_while_it_trains_is_named_once(tmp_path: Path, capsys, monkeypatch) -> None:
    from dmo_ros.training import loop
    from dmo_ros.training.cpu_load import LoadWatch

    monkeypatch.setattr(loop, "oversubscription_warning", lambda: None)  # idle when it starts
    monkeypatch.setattr(loop, "LoadWatch", lambda: LoadWatch(every_s=0.0, warning=lambda: "warning: busy (test)"))
    train(Regressor(), RegressionData(64), None, _config(steps=5), tmp_path / "run", {"model": {"kind": "toy"}})
    output = capsys.readouterr()
    assert (output.out + output.err).count("[train] step 1: warning: busy (test)") == 1


def test_logs_given_as_value_weight_pairs_are_averaged_by_their_weights(tmp_path: Path) -> None:
    """A quantity measured on part of each batch (a reward's tie pairs) logs (value, weight): a step with weight 0
    does not pull its average to 0; plain values average over steps; a key never measured logs 0."""
    from dmo_ros.training.loop import _Averages

    averages = _Averages()
    for value, weight in ((2.0, 3), (0.0, 0), (6.0, torch.tensor(1.0))):
        averages.add({"part": (value, weight), "plain": value, "never": (1.0, 0)})
    assert averages.mean() == pytest.approx({"part": (2.0 * 3 + 6.0) / 4, "plain": 8.0 / 3, "never": 0.0})

    class PartLogging(Regressor):  # every other step measures nothing
        def forward(self, batch):
            loss, logs = super().forward(batch)
            return loss, {**logs, "part": (5.0, self.calls % 2)}

    result = train(PartLogging(), RegressionData(64), None, _config(steps=10), tmp_path, {"model": {"kind": "toy"}})
    assert result.train_logs["part"] == pytest.approx(5.0)
