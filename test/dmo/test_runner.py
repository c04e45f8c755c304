"""train_policy on Ctrl-C: the epoch finishes, a checkpoint, then a result that says it was interrupted (its command
exits 130), and the resumed run ends where an uninterrupted one does; a machine that turns busy while it trains is
named once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from dmo_ros.dmo.runner import PolicyTrainConfig, train_policy
from dmo_ros.training.checkpoint import latest_step


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """SIGINT answered as in a terminal; a test run in the background (nohup, setsid) inherits it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class Interrupted:
    """A stand-in algorithm whose third epoch gets ``signals`` Ctrl-C (or SIGTERM) halfway through its update."""

    method = "stub"

    def __init__(self, signals: int = 1, number: int = signal.SIGINT) -> None:
        self.weight = torch.zeros(2)
        self.epochs = 0
        self.signals, self.number = signals, number

    @property
    def samples(self) -> int:
        return 10 * self.epochs

    def train_epoch(self) -> dict[str, float]:
        self.weight = self.weight + 1.0  # the first half of the update
        if self.epochs == 2:
            for _ in range(self.signals):
                os.kill(os.getpid(), self.number)
        self.weight = self.weight * 2.0  # the second half
        self.epochs += 1
        return {"loss": 1.0}

    def policy(self):
        return None

    def policy_config(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"weight": self.weight}

    def load_state_dict(self, state: dict) -> None:
        self.weight = state["weight"]

    def trainer_state(self) -> dict:
        return {"epochs": self.epochs}

    def load_trainer_state(self, state: dict) -> None:
        self.epochs = state["epochs"]


def test_ctrl_c_checkpoints_and_reports_the_interruption(tmp_path: Path) -> None:
    """A Ctrl-C used to end dmo-train-policy and dmo-train-rung0 with exit code 0, like a finished run: a script
    running them (make demo) went on to its next stage."""
    config = PolicyTrainConfig(max_samples=1000, eval_every=0, checkpoint_every=100, progress=False)
    result = train_policy(Interrupted(), config, tmp_path, {"kind": "policy"})
    assert result.interrupted and result.stopped_early and result.epochs == 3  # the cut epoch finished first
    assert latest_step(tmp_path) == 3
    finished = train_policy(Interrupted(), PolicyTrainConfig(max_samples=10, eval_every=0, progress=False),
                            tmp_path / "short", {"kind": "policy"})
    assert not finished.interrupted


class Steady(Interrupted):
    """The stand-in algorithm without the Ctrl-C."""

    def __init__(self) -> None:
        super().__init__(signals=0)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path: Path, number: int) -> None:
    """A Ctrl-C used to checkpoint the algorithm halfway through an epoch's update, counted as not done: the resumed
    run redid the epoch on top of half of it and ended elsewhere than an uninterrupted run (432 vs 416 samples)."""
    from dmo_ros.interrupt import stop_on_interrupt
    from dmo_ros.training.checkpoint import load_model_weights

    config = PolicyTrainConfig(max_samples=50, eval_every=0, checkpoint_every=100, progress=False)
    whole = train_policy(Steady(), config, tmp_path / "whole", {"kind": "policy"})

    def first_call(_argv=None) -> int:  # as a command runs it: SIGTERM is answered only inside stop_on_interrupt
        result = train_policy(Interrupted(number=number), config, tmp_path / "split", {"kind": "policy"})
        assert result.interrupted and result.epochs == 3
        return 130

    assert stop_on_interrupt(first_call)() == (130 if number == signal.SIGINT else 143)
    resumed = train_policy(Steady(), config, tmp_path / "split", {"kind": "policy"})
    assert (resumed.epochs, resumed.samples) == (whole.epochs, whole.samples) == (5, 50)
    split, uninterrupted = load_model_weights(tmp_path / "split"), load_model_weights(tmp_path / "whole")
    assert torch.equal(split["weight"], uninterrupted["weight"])


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_complete_checkpoint(tmp_path: Path, capsys) -> None:
    config = PolicyTrainConfig(max_samples=1000, eval_every=0, checkpoint_every=2, progress=False)
    result = train_policy(Interrupted(signals=2), config, tmp_path, {"kind": "policy"})
    assert result.interrupted and result.epochs == 2
    assert latest_step(tmp_path) == 2  # not the half-updated third epoch
    err = capsys.readouterr().out
    assert "SIGINT: stopping at the end of this epoch" in err and "interrupted inside epoch 3" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back


def test_a_machine_that_turns_busy_while_it_trains_is_named_once(tmp_path: Path, capsys, monkeypatch) -> None:
    from dmo_ros.dmo import runner
    from dmo_ros.training.cpu_load import LoadWatch

    monkeypatch.setattr(runner, "oversubscription_warning", lambda: None)  # idle when it starts
    monkeypatch.setattr(runner, "LoadWatch", lambda: LoadWatch(every_s=0.0, warning=lambda: "warning: busy (test)"))
    train_policy(Steady(), PolicyTrainConfig(max_samples=50, eval_every=0, progress=False), tmp_path,
                 {"kind": "policy"})
    output = capsys.readouterr()
    assert (output.out + output.err).count("warning: busy (test)") == 1
