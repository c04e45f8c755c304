"""train_policy on Ctrl-C: a checkpoint, then a result that says it was interrupted (its command exits 130); a
machine that turns busy while it trains is named once."""

from __future__ import annotations

from pathlib import Path

import torch

from dmo_ros.dmo.runner import PolicyTrainConfig, train_policy
from dmo_ros.training.checkpoint import latest_step


class Interrupted:
    """A stand-in algorithm whose third epoch is cut by Ctrl-C."""

    method = "stub"

    def __init__(self) -> None:
        self.weight = torch.zeros(2)
        self.epochs = 0

    @property
    def samples(self) -> int:
        return 10 * self.epochs

    def train_epoch(self) -> dict[str, float]:
        if self.epochs == 2:
            raise KeyboardInterrupt
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
    assert result.interrupted and result.stopped_early and result.epochs == 2
    assert latest_step(tmp_path) is not None
    finished = train_policy(Interrupted(), PolicyTrainConfig(max_samples=10, eval_every=0, progress=False),
                            tmp_path / "short", {"kind": "policy"})
    assert not finished.interrupted


class Steady(Interrupted):
    """The stand-in algorithm without the Ctrl-C."""

    def train_epoch(self) -> dict[str, float]:
        self.epochs += 1
        return {"loss": 1.0}


def test_a_machine_that_turns_busy_while_it_trains_is_named_once(tmp_path: Path, capsys, monkeypatch) -> None:
    from dmo_ros.dmo import runner
    from dmo_ros.training.cpu_load import LoadWatch

    monkeypatch.setattr(runner, "oversubscription_warning", lambda: None)  # idle when it starts
    monkeypatch.setattr(runner, "LoadWatch", lambda: LoadWatch(every_s=0.0, warning=lambda: "warning: busy (test)"))
    train_policy(Steady(), PolicyTrainConfig(max_samples=50, eval_every=0, progress=False), tmp_path,
                 {"kind": "policy"})
    output = capsys.readouterr()
    assert (output.out + output.err).count("warning: busy (test)") == 1
