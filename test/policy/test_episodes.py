"""The parts both stand-in evaluations share: the seeded episode loop, the ceilings' cache, the final files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmo_ros.policy.episodes import (
    CEILING_LABELS,
    PolicyController,
    StillController,
    cached_ceilings,
    final_stem,
    run_seeded_episodes,
    write_final_files,
)


class CountingSim:
    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def render(self) -> np.ndarray:
        return np.full((96, 96, 3), 7, np.uint8)


@dataclass
class Config:
    episodes: int = 3
    seed: int = 5


@dataclass
class Result:
    value: float

    def to_dict(self) -> dict:
        return {"value": self.value}

    def record(self) -> dict:
        return {"value": self.value, "flat": True}


def test_episodes_run_on_one_simulator_reset_between_them() -> None:
    sim, seen = CountingSim(), []
    results = run_seeded_episodes(sim, 3, lambda s: s.resets, lambda index, episode: seen.append((index, episode)))
    assert results == [0, 1, 2] and seen == [(0, 0), (1, 1), (2, 2)] and sim.resets == 2


def test_ceilings_are_evaluated_once_per_configuration_and_read_back_from_the_file(tmp_path: Path) -> None:
    calls: list[str] = []

    def evaluate(name: str) -> Result:
        calls.append(name)
        return Result(len(calls))

    cache = tmp_path / "ceilings.json"
    first = cached_ceilings(Config(), ("random", "zero"), evaluate, lambda d: Result(d["value"]), {}, cache,
                            {"task": "t"})
    assert [label for label, _ in first] == [CEILING_LABELS["random"], CEILING_LABELS["zero"]]
    assert calls == ["random", "zero"]
    # A new process (empty memory) reads the file; another configuration is evaluated again.
    again = cached_ceilings(Config(), ("zero",), evaluate, lambda d: Result(d["value"]), {}, cache, {"task": "t"})
    assert again == [(CEILING_LABELS["zero"], Result(2))] and calls == ["random", "zero"]
    cached_ceilings(Config(seed=6), ("zero",), evaluate, lambda d: Result(d["value"]), {}, cache, {"task": "t"})
    assert calls == ["random", "zero", "zero"] and len(json.loads(cache.read_text())) == 3


def test_final_files_hold_the_policy_in_full_and_the_ceilings_as_records(tmp_path: Path) -> None:
    rows = [("policy", Result(0.5)), (CEILING_LABELS["zero"], Result(0.0))]
    assert write_final_files(tmp_path, rows, "| table |", Config(), 100, 2.5, {"task": "push_cube"}) == "| table |"
    final = json.loads((tmp_path / "final_eval.json").read_text())
    assert final == {"task": "push_cube", "config": {"episodes": 3, "seed": 5}, "samples": 100, "wall_s": 2.5,
                     "policy": {"value": 0.5}, "ceilings": {CEILING_LABELS["zero"]: {"value": 0.0, "flat": True}}}
    assert (tmp_path / "final_eval.md").read_text() == "| table |\n"


def test_an_evaluation_under_another_configuration_does_not_replace_the_runs_own(tmp_path: Path) -> None:
    """Re-running a finished run with fewer episodes (to record videos) rewrote final_eval.json, so dmo-compare read
    an 8-episode evaluation as the run's result."""
    rows = [("policy", Result(0.5))]
    write_final_files(tmp_path, rows, "| first |", Config(), 100, 2.5)
    recorded = (tmp_path / "final_eval.json").read_text()
    table = write_final_files(tmp_path, [("policy", Result(0.25))], "| again |", Config(episodes=1), 100, 2.5)
    assert (tmp_path / "final_eval.json").read_text() == recorded
    assert json.loads((tmp_path / "final_eval_reevaluated.json").read_text())["policy"] == {"value": 0.25}
    assert (tmp_path / "final_eval_reevaluated.md").read_text() == "| again |\n"
    assert table.startswith("| again |\n(written to ") and "is kept; delete it to replace it" in table
    # The same configuration again (a resumed run's end, a --video re-run) writes the run's files.
    assert write_final_files(tmp_path, [("policy", Result(0.75))], "| same |", Config(), 200, 3.0) == "| same |"
    assert json.loads((tmp_path / "final_eval.json").read_text())["policy"] == {"value": 0.75}
    # A configuration with a tuple field is the same after its JSON round trip (lists).
    @dataclass
    class Windowed:
        episodes: int = 3
        window: tuple[int, int] = (1, 2)

    (tmp_path / "w").mkdir()
    write_final_files(tmp_path / "w", [("policy", Result(0.5))], "| t |", Windowed(), 1, 1.0)
    assert final_stem(tmp_path / "w", Windowed()) == "final_eval"
    # An unreadable file is no evaluation: it is replaced.
    (tmp_path / "final_eval.json").write_text('{"config"')
    assert final_stem(tmp_path, Config(episodes=1)) == "final_eval"


def test_the_policy_controller_resizes_the_render_and_reports_the_action() -> None:
    class Policy:
        image_size = (32, 32)
        observed: list = []

        def reset(self) -> None:
            self.observed.clear()

        def act(self, frame: np.ndarray) -> np.ndarray:
            assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
            return np.array([0.1, -0.1])

        def observe_action(self, action: np.ndarray) -> None:
            self.observed.append(action)

    controller, policy = PolicyController(Policy()), Policy()
    controller.policy = policy
    controller.reset(CountingSim())
    np.testing.assert_allclose(controller.act(CountingSim()), [0.1, -0.1])
    assert len(policy.observed) == 1
    assert StillController(3).act(CountingSim()).tolist() == [0.0, 0.0, 0.0]
