"""What the two stand-in evaluations share: Push-T (:mod:`dmo_ros.policy.evaluate`) and Push Cube
(:mod:`dmo_ros.policy.push_cube_eval`).

- :class:`PolicyController` drives a simulator with an image policy: the simulator's camera render, resized as
  the dataset converter resized the training frames, in; the action the policy proposes out.
- :func:`run_seeded_episodes` plays a controller for a number of episodes on one simulator, resetting it between
  episodes (the simulators seed each episode from ``(seed, episode)``, so every controller meets the same starts).
- :func:`cached_ceilings` evaluates the random, zero-action and scripted-expert ceilings once per configuration,
  in this process and optionally in a JSON file (the expert takes a minute or two for 50 episodes).
- :func:`write_final_files` writes a trained run's ``final_eval.json`` / ``final_eval.md``, which
  ``dmo-ladder-table`` and ``dmo-compare`` read (a later evaluation under another configuration goes beside them).

The task-specific parts — what an episode measures, the ceilings' controllers, the tables — stay in each module.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from dmo_ros.dataset.images import resize
from dmo_ros.policy.base import Policy

CEILINGS = ("random", "zero", "expert")
"""The reference controllers evaluated beside every table."""

CEILING_LABELS = {"random": "ceiling: random actions", "zero": "ceiling: zero action",
                  "expert": "ceiling: scripted expert (privileged)"}
"""Their row labels."""

Episode = TypeVar("Episode")
Result = TypeVar("Result")


class Controller(Protocol):
    """Anything that drives a stand-in simulator for an evaluation: an image policy, a state policy, a ceiling."""

    def reset(self, sim: Any) -> None:
        """A new episode starts (the simulator is at its start)."""

    def act(self, sim: Any) -> np.ndarray:
        """The command for the simulator's current step (Push-T: end-effector velocity (2,) in m/s; Push Cube:
        body velocity [vx, vy, yaw rate] in m/s, m/s, rad/s)."""


class PolicyController:
    """A :class:`Policy` (camera frames in) as a controller: the simulator's ``render()`` (H, W, 3) uint8, fitted to
    the policy's ``image_size`` with ``aspect`` (:data:`dmo_ros.dataset.images.ASPECTS`)."""

    def __init__(self, policy: Policy, aspect: str = "crop") -> None:
        self.policy, self.aspect = policy, aspect

    def reset(self, sim: Any) -> None:
        self.policy.reset()

    def act(self, sim: Any) -> np.ndarray:
        height, width = self.policy.image_size
        action = np.asarray(self.policy.act(resize(sim.render(), height, width, self.aspect)), dtype=np.float64)
        self.policy.observe_action(action)  # executed as proposed (the policy clamped it to its limits)
        return action


class StillController:
    """The zero-action ceiling: the robot holds still (the start's own score)."""

    def __init__(self, action_size: int) -> None:
        self.action_size = action_size

    def reset(self, sim: Any) -> None:
        pass

    def act(self, sim: Any) -> np.ndarray:
        return np.zeros(self.action_size)


def run_seeded_episodes(sim: Any, episodes: int, run_episode: Callable[[Any], Episode],
                        progress: Callable[[int, Episode], None] | None = None) -> list[Episode]:
    """``episodes`` results of ``run_episode(sim)``, the simulator reset between them (the first starts from the
    freshly made simulator's start); ``progress(index, episode)`` after each."""
    results: list[Episode] = []
    for index in range(episodes):
        if index:
            sim.reset()  # the next episode: seeded from (seed, episode), so reproducible
        results.append(run_episode(sim))
        if progress is not None:
            progress(index, results[-1])
    return results


def cached_ceilings(config: Any, names: tuple[str, ...], evaluate: Callable[[str], Result],
                    from_dict: Callable[[dict[str, Any]], Result], memory: dict[str, Result],
                    cache: Path | str | None = None, key_extra: dict[str, Any] | None = None,
                    ) -> list[tuple[str, Result]]:
    """``(label, result)`` of each ceiling ``name`` on exactly ``config``'s episodes.

    ``evaluate(name)`` runs a ceiling; results are remembered in ``memory`` (the caller's per-process dict) and,
    given ``cache``, in that JSON file, keyed by the ceiling, ``key_extra`` and the dataclass ``config``;
    ``from_dict`` reads a stored result back (the inverse of the result's ``to_dict()``)."""
    cache = Path(cache) if cache is not None else None
    stored: dict[str, Any] = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    rows = []
    for name in names:
        key = json.dumps({**(key_extra or {}), "ceiling": name, **asdict(config)}, sort_keys=True)
        if key not in memory and key in stored:
            memory[key] = from_dict(stored[key])
        if key not in memory:
            memory[key] = evaluate(name)
        stored[key] = memory[key].to_dict()  # type: ignore[attr-defined]
        rows.append((CEILING_LABELS[name], memory[key]))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stored) + "\n")
    return rows


FINAL_STEM = "final_eval"
"""A trained run's evaluation files: ``final_eval.json`` (what ``dmo-compare`` and ``dmo-ladder-table`` read) and
``final_eval.md``."""
REEVALUATION_STEM = "final_eval_reevaluated"
"""Where an evaluation of a finished run under another configuration goes (fewer episodes to record videos, another
seed), so the run's recorded evaluation is not replaced by it."""


def final_stem(run_dir: Path | str, config: Any) -> str:
    """The stem :func:`write_final_files` writes ``config``'s evaluation under in ``run_dir``: :data:`FINAL_STEM`
    unless ``final_eval.json`` already holds an evaluation with another configuration (then
    :data:`REEVALUATION_STEM`; an unreadable file counts as none and is replaced)."""
    path = Path(run_dir) / f"{FINAL_STEM}.json"
    try:
        stored = json.loads(path.read_text())["config"] if path.is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        stored = None
    # Compared as JSON stores it (a tuple field reads back as a list).
    return FINAL_STEM if stored is None or stored == json.loads(json.dumps(asdict(config))) else REEVALUATION_STEM


def write_final_files(run_dir: Path | str, rows: list[tuple[str, Any]], table: str, config: Any, samples: int,
                      wall_s: float, extra: dict[str, Any] | None = None) -> str:
    """Write ``final_eval.json`` (``extra``, the dataclass ``config``, ``samples``, ``wall_s``, the policy's result
    ``rows[0]`` in full and the ceilings ``rows[1:]`` as records) and ``final_eval.md`` (``table``) into
    ``run_dir``; return ``table``. When ``final_eval.json`` holds an evaluation with another configuration, the
    files are ``final_eval_reevaluated.*`` instead (:func:`final_stem`) and the returned table says so."""
    run_dir = Path(run_dir)
    stem = final_stem(run_dir, config)
    (run_dir / f"{stem}.json").write_text(json.dumps(
        {**(extra or {}), "config": asdict(config), "samples": samples, "wall_s": wall_s,
         "policy": rows[0][1].to_dict(), "ceilings": {name: result.record() for name, result in rows[1:]}},
        indent=1) + "\n")
    (run_dir / f"{stem}.md").write_text(table + "\n")
    if stem != FINAL_STEM:
        table += (f"\n(written to {run_dir / stem}.json and .md: {run_dir / FINAL_STEM}.json holds the run's "
                  f"evaluation under another configuration and is kept; delete it to replace it)")
    return table
