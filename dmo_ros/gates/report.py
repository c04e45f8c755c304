"""Gate reports: the control-relevant checks a learned model must pass before a policy trains on it.

A gate is a list of :class:`GateCheck` s (a measured value, a bound, pass or fail) plus the
numbers behind them. It is written into the model's run folder as ``gate.json`` by the model's
trainer at the end (and by ``dmo-gate``), and read by the policy trainer, which refuses a model
whose gate failed or was never measured unless forced (:func:`require_gates`). See DESIGN.md §8.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GATE_FILE = "gate.json"
"""Name of the gate report inside a run folder."""


class GateError(RuntimeError):
    """A model is below its gate (or was never gated) and the caller did not force it."""


@dataclass
class GateCheck:
    """One measured quantity against its bound."""

    name: str
    """Short identifier, e.g. ``agent_visible``."""
    value: float
    """The measured value (NaN when it could not be measured: the check fails)."""
    bound: float
    """The threshold the value is compared with."""
    direction: str
    """``">="``: passes when value >= bound; ``"<="``: passes when value <= bound."""
    meaning: str
    """What the value measures, in words, for the printed table."""

    def __post_init__(self) -> None:
        if self.direction not in (">=", "<="):
            raise ValueError(f"direction must be '>=' or '<=', got {self.direction!r}")
        self.value, self.bound = float(self.value), float(self.bound)

    @property
    def passed(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.bound if self.direction == ">=" else self.value <= self.bound


@dataclass
class GateReport:
    """All checks of one model's gate, the numbers behind them, and how they were measured."""

    component: str
    """``world_model``, ``local_model`` or ``reward``."""
    checks: list[GateCheck]
    """The pass/fail checks."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Everything measured (per-horizon curves, per-command numbers, baselines), JSON-able."""
    seconds: float = 0.0
    """Wall time of the measurement."""
    notes: list[str] = field(default_factory=list)
    """Measured numbers shown beside the checks that are not checks themselves (no bound is known for them yet)."""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "passed": self.passed, "seconds": self.seconds,
                "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "checks": _jsonable([{**asdict(c), "passed": c.passed} for c in self.checks]),
                "metrics": _jsonable(self.metrics), "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateReport:
        checks = [GateCheck(c["name"], c["value"], c["bound"], c["direction"], c.get("meaning", ""))
                  for c in values.get("checks", [])]
        return cls(values["component"], checks, values.get("metrics", {}), values.get("seconds", 0.0),
                   list(values.get("notes", [])))

    def format(self) -> str:
        """The printed table: one line per check."""
        lines = [f"gate {self.component}: {'PASSED' if self.passed else 'FAILED'} ({self.seconds:.0f} s)"]
        for c in self.checks:
            lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.name:<28} {c.value:9.3f} {c.direction} "
                         f"{c.bound:<7g} {c.meaning}")
        lines += [f"  info {note}" for note in self.notes]
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_gate_report(run_dir: Path | str, report: GateReport) -> Path:
    """Write ``gate.json`` into ``run_dir`` atomically (write, then rename); returns its path."""
    path = Path(run_dir) / GATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False))
    partial.replace(path)
    return path


def read_gate_report(run_dir: Path | str) -> GateReport | None:
    """The gate report of a run, or None when it was never gated."""
    path = Path(run_dir) / GATE_FILE
    if not path.is_file():
        return None
    values = json.loads(path.read_text())
    checks = [{**c, "value": float("nan") if c.get("value") is None else c["value"]} for c in values.get("checks", [])]
    return GateReport.from_dict({**values, "checks": checks})


GATE_COMMANDS = {
    "world_model": "dmo-gate world-model {run} --dataset DATASET",
    "local_model": "dmo-gate local-model {run} --dataset DATASET --reward-run REWARD_RUN --goal GOAL",
    "reward": "dmo-gate reward {run} --goal GOAL",
}


def _failed_check(name: str, value: float | None, direction: str, bound: float, prefix: str = "") -> str:
    """``agent_visible 0.854 (needs >= 0.95)``: one failed check as the gate lines and tables print it
    (``value`` None: not finite, as a snapshot stores it)."""
    shown = "nan" if value is None else format(value, ".3g")
    return f"{name} {shown} ({prefix}{direction} {bound:g})"


def task_mismatch(component: str, report: GateReport, task: str | None) -> str | None:
    """Why ``report`` does not vouch for a policy on ``task`` (None: it does, or no task was given).

    The reward and local-model gates measure on a task (``metrics["task"]``; a report without it was measured on
    the pushing tasks). A reach task needs a gate measured on that very task (the reward's agent-to-target map,
    the local model's probes along reaches); a pushing task needs a gate of the pushing tasks. The world model's
    action response does not depend on the task."""
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    if task is None or component == "world_model":
        return None
    measured = report.metrics.get("task")
    if task in REACH_TASKS and measured != task:
        return f"gated on {measured or 'the pushing tasks'}, not on {task}"
    if task not in REACH_TASKS and measured in REACH_TASKS:
        return f"gated on {measured}, not on the pushing task {task}"
    return None


def goal_picture_digest(goal: Path | str) -> str:
    """The sha256 (hex) of the goal picture's bytes, as a gate records it beside the picture's path
    (``metrics["goal_sha256"]``). Raises ``OSError`` for a picture that cannot be read."""
    return hashlib.sha256(Path(goal).read_bytes()).hexdigest()


def record_goal(report: GateReport, goal: Path | str | None, digest: str | None) -> None:
    """Record in ``report`` the goal picture it was measured toward: its resolved path (so a policy started from
    another folder finds it) and ``digest``, the :func:`goal_picture_digest` of the bytes measured with (so a
    picture redrawn under the same name is told apart). None: an intent reward, no picture."""
    report.metrics["goal"] = None if goal is None else str(Path(goal).resolve())
    report.metrics["goal_sha256"] = None if goal is None else digest


def goal_mismatch(report: GateReport, goal: Path | str | None) -> str | None:
    """Why ``report`` does not vouch for rewards toward the goal picture ``goal`` (None: it does, or cannot tell).

    The reward and local-model gates score toward the goal picture they were given (``metrics["goal"]``); a gate
    measured toward another picture (another task's, another target) says nothing about this one. Two pictures are
    the same when they hold the same bytes (wherever they lie): a gate that recorded its picture's sha256
    (``metrics["goal_sha256"]``) is compared by it, so a picture redrawn under the same name is another picture;
    a gate written before the hash was recorded is compared with the file now at its path (the same path, or the
    same bytes). None when no goal was given here or there, or a picture cannot be read (nothing to compare)."""
    measured = report.metrics.get("goal")
    if goal is None or measured is None:
        return None
    ours, theirs = Path(goal), Path(measured)
    recorded = report.metrics.get("goal_sha256")
    if recorded is not None:
        try:
            if goal_picture_digest(ours) == recorded:
                return None
        except OSError:
            return None
        if ours.resolve() == theirs.resolve():
            return (f"gated toward the goal picture {measured} as it was then; the file has been redrawn since "
                    "(other bytes: a different picture)")
        return f"gated toward the goal picture {measured}, not toward {goal}"
    if not theirs.is_file() or not ours.is_file():
        return None
    if ours.resolve() == theirs.resolve() or ours.read_bytes() == theirs.read_bytes():
        return None
    return f"gated toward the goal picture {measured}, not toward {goal}"


def require_gates(runs: dict[str, Path | str], force: bool = False, task: str | None = None,
                  goal: Path | str | None = None) -> list[str]:
    """Check that every run in ``runs`` (component -> run folder) passed its gate, measured on ``task`` where the
    gate depends on the task (:func:`task_mismatch`; None: any task) and, for the reward and local-model gates,
    toward the goal picture ``goal`` (:func:`goal_mismatch`; None: any).

    Returns the lines to print (one per component). Raises :class:`GateError` naming each failed
    check (or the missing report, or the other task it was measured on, and the command that measures it),
    unless ``force``: then the same lines come back marked as forced.
    """
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    lines, problems = [], []
    for component, run in runs.items():
        report = read_gate_report(run)
        reach = task in REACH_TASKS and component != "world_model"
        command = GATE_COMMANDS[component].format(run=run) + (f" --task {task}" if reach else "")
        if report is None:
            problem = f"{component} {run}: never gated (no {GATE_FILE}); measure it with {command}"
        elif (other := task_mismatch(component, report, task) or goal_mismatch(report, goal)) is not None:
            problem = f"{component} {run}: {other}; measure it with {command}"
        elif not report.passed:
            failed = ", ".join(_failed_check(c.name, c.value, c.direction, c.bound, "needs ") for c in report.failed)
            problem = f"{component} {run}: gate FAILED: {failed}"
        else:
            lines.append(f"{component} {run}: gate passed")
            continue
        problems.append(problem)
        lines.append(problem)
    if problems and not force:
        raise GateError("a model is below its gate:\n  " + "\n  ".join(problems)
                        + "\n(pass --force-gates to train on it anyway)")
    if problems:
        lines = [f"{line} [forced]" if line in problems else line for line in lines]
    return lines


def gate_snapshot(runs: dict[str, Path | str | None]) -> dict[str, dict[str, Any]]:
    """The gate state of each input run (component -> run folder) as a policy run records it in its
    ``config.json`` (``"gates"``), so a result can be read beside the gates of the models it was trained on
    (``dmo-ladder-table --gates``): per component the run folder, ``passed`` (None: never gated) and each
    check's value and bound."""
    snapshot: dict[str, dict[str, Any]] = {}
    for component, run in runs.items():
        if run is None:
            continue
        report = read_gate_report(run)
        snapshot[component] = {"run": str(run), "passed": None if report is None else report.passed,
                               "task": None if report is None else report.metrics.get("task"),
                               "checks": [] if report is None else [
                                   {"name": c.name, "value": c.value if math.isfinite(c.value) else None,
                                    "bound": c.bound, "direction": c.direction, "passed": c.passed}
                                   for c in report.checks]}
    return snapshot


def format_gate_snapshot(snapshot: dict[str, dict[str, Any]]) -> str:
    """One table cell: ``reward ok; world_model FAIL agent_visible 0.87 (>= 0.95); local_model never gated``."""
    parts = []
    for component, state in snapshot.items():
        if state["passed"] is None:
            parts.append(f"{component} never gated")
        elif state["passed"]:
            parts.append(f"{component} ok")
        else:
            failed = ", ".join(_failed_check(c["name"], c["value"], c["direction"], c["bound"])
                               for c in state["checks"] if not c["passed"])
            parts.append(f"{component} FAIL {failed}")
    return "; ".join(parts) or "-"


__all__ = ["GATE_FILE", "GateCheck", "GateError", "GateReport", "format_gate_snapshot", "gate_snapshot",
           "goal_mismatch", "goal_picture_digest", "read_gate_report", "record_goal", "require_gates", "task_mismatch",
           "write_gate_report"]
