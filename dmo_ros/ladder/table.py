"""The ladder table from finished runs: ``dmo-ladder-table [LABEL=]RUN_DIR ... [--out ladder.md]``.

One row per run (rung x task x method) from its ``final_eval.json`` (written by ``dmo-train-rung0`` at the
end of a run): samples, training wall-clock, success and loose success (k/N with Wilson's 95 % interval),
mean max coverage (``-`` on a reach task: its T starts on the goal pose, so it is 1.0 always) and final distance
(mean +- std), N and the evaluation seed; under each task its random,
zero-action and expert ceilings from the same file. Re-running the command regenerates the file.
``LABEL=RUN_DIR`` names the run's setting in its method cell (``dmo (fine-tuned)``), as ``dmo-compare``'s labels
name its curves.

``--gates`` adds a column with the gates of the models each run was trained on (world model, local model,
reward): the state the policy trainer recorded at its start (``config.json`` ``"gates"``), or, for runs that
predate that record, the models' ``gate.json`` as they are now (marked "now") — so a result can be read beside
whether its inputs passed (README "Gates").

``--episodes`` adds, under the table, each run's outcome per evaluation episode (``1`` success, ``.`` failure) and
the starts that no run solved and that every run solved. The runs must share the task, the evaluation seed and the
episode count (the same starts); a failure on a start every method misses (true state and pixels alike) is the
task's or the policy class's, not a learned part's (docs/ladder.md, "The same starts fail on every rung").
``--starts-picture PNG`` draws those starts (the stand-in's first frame of each), captioned with how many runs
solved each.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from dmo_ros.dmo.compare import parse_run_argument
from dmo_ros.gates.report import format_gate_snapshot, gate_snapshot
from dmo_ros.help_text import plain_text
from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_file
from dmo_ros.sims.pusht_tasks import REACH_TASKS, TASKS

COLUMNS = ("rung", "task", "method", "samples", "wall-clock", "success", "loose success", "mean max coverage",
           "final distance (u)", "N", "seed")


def _rate(numbers: dict[str, Any], key: str, count: int) -> str:
    low, high = numbers[f"{key}_ci95"]
    return f"{round(numbers[f'{key}_rate'] * count)}/{count} [{100 * low:.0f}-{100 * high:.0f}%]"


def _row(rung: str, task: str, method: str, samples: str, wall: str, numbers: dict[str, Any], count: int,
         seed: int) -> str:
    cells = (rung, task, method, samples, wall, _rate(numbers, "success", count),
             _rate(numbers, "loose_success", count),
             "-" if task in REACH_TASKS else f"{numbers['mean_max_coverage']:.3f} +- {numbers['max_coverage_std']:.3f}",
             f"{numbers['mean_final_distance']:.1f} +- {numbers['final_distance_std']:.1f}", str(count), str(seed))
    return "| " + " | ".join(cells) + " |"


def input_gates(config: dict[str, Any]) -> str:
    """The gates cell of a run (see the module doc)."""
    if "gates" in config:
        return format_gate_snapshot(config["gates"])
    inputs = {"reward": config.get("reward_run"), "world_model": config.get("world_model"),
              "local_model": config.get("local_model")}
    inputs = {component: run for component, run in inputs.items() if run and Path(run).is_dir()}
    return f"now: {format_gate_snapshot(gate_snapshot(inputs))}" if inputs else "-"


def _read_record(path: Path) -> dict[str, Any]:
    """A run's JSON record; ValueError naming the file when it is missing, damaged or not an object."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing (not a run folder of dmo-train-policy, dmo-train-act or "
                         "dmo-train-rung0?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error})") from error
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds a {type(record).__name__}, not a run's record")
    return record


POLICY_RUN_KINDS = ("policy", "rung0")
"""``config.json`` kinds of the runs this table lists (dmo-train-policy and dmo-train-act: ``policy``;
dmo-train-rung0: ``rung0``)."""


def _no_final_evaluation(run_dir: Path) -> str:
    """Why ``run_dir`` has no ``final_eval.json`` and what to do: it is not a policy run (its kind, from
    ``config.json``), or a policy run without a final evaluation (trained with ``--final-eval-episodes 0``, the tiny
    preset's default, or not finished): the command that evaluates it."""
    from dmo_ros.training.checkpoint import RUN_KINDS

    if not (run_dir / "config.json").is_file():
        return (f"{run_dir}: no final_eval.json and no config.json: not a run folder of dmo-train-policy, "
                "dmo-train-act or dmo-train-rung0")
    config = _read_record(run_dir / "config.json")
    kind = config.get("kind")
    if kind not in POLICY_RUN_KINDS:
        what, trainer = RUN_KINDS.get(str(kind), (f"'{kind}'", "another command"))
        return (f"{run_dir} is a {what} run (config.json kind '{kind}', trained by {trainer}), not a policy run: "
                "the ladder table lists the policy runs of dmo-train-policy, dmo-train-act and dmo-train-rung0")
    if config.get("method") == "act" and config.get("task") != "push_cube":
        return (f"{run_dir}: a Push-T ACT run has no final evaluation (final_eval.json): dmo-train-act evaluates only "
                f"Go2 runs at the end. Measure it with: dmo-eval-policy {run_dir}")
    if kind == "rung0":
        command, option, default = "dmo-train-rung0", "--final-eval-episodes", ""
    elif config.get("method") == "act":
        command, option, default = "dmo-train-act", "--eval-episodes", ""
    else:
        command, option, default = "dmo-train-policy", "--final-eval-episodes", ", the tiny preset's default"
    return (f"{run_dir}: this policy run has no final evaluation (final_eval.json): it was trained without one "
            f"({option} 0{default}) or has not finished. Evaluate it by re-running its {command} command (same "
            f"settings) with {option} 50: a finished run is then only evaluated")


def ladder_table(run_dirs: list[Path | str], gates: bool = False) -> str:
    """The markdown table of the runs (each a folder, or ``"LABEL=RUN_DIR"``; see the module doc); ``gates``: with
    the inputs' gates column."""
    rows: dict[str, list[str]] = {}
    ceilings: dict[str, list[str]] = {}
    for argument in run_dirs:
        label, run_dir = parse_run_argument(str(argument))
        path = Path(run_dir) / "final_eval.json"
        if not path.is_file():
            raise ValueError(_no_final_evaluation(Path(run_dir)))
        final, config = _read_record(path), _read_record(Path(run_dir) / "config.json")
        if final.get("task") == "push_cube" or config.get("task") == "push_cube":
            raise ValueError(f"{run_dir} is a Push Cube run (Go2); the ladder table lists Push-T runs. Compare Push "
                             f"Cube runs with: dmo-compare {run_dir} [RUN_DIR ...] --out DIR (its table is in "
                             f"{Path(run_dir) / 'final_eval.md'})")
        try:
            task, count, seed = final["config"]["task"], final["policy"]["episodes"], final["config"]["seed"]
            rung = str(config.get("rung", "?"))
            if config.get("kind") == "rung0":
                reward = config.get("rung0", {}).get("reward", "true")
                rung = {"learned": "0 (true state, learned reward)",
                        "regressed": "0 (true state, regressed true reward)"}.get(reward, "0 (true state)")
            elif config.get("reward") == "true":  # dmo-train-policy --true-reward: rung 1's oracle
                rung = f"{rung} (true reward)"
            method = config["method"] if label is None else f"{config['method']} ({label})"
            row = _row(rung, task, method, f"{final['samples']:,}", f"{final['wall_s'] / 60:.1f} min",
                       final["policy"], count, seed)
            if task not in ceilings:
                ceilings[task] = [_row("-", task, label.removeprefix("ceiling: "), "-", "-", numbers,
                                       numbers["episodes"], seed) + (" - |" if gates else "")
                                  for label, numbers in final["ceilings"].items()]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{run_dir}: its final_eval.json or config.json lacks {error} (not a finished run of "
                             "dmo-train-policy, dmo-train-act or dmo-train-rung0, or a damaged one)") from error
        rows.setdefault(task, []).append(row + (f" {input_gates(config)} |" if gates else ""))
    columns = (*COLUMNS, "gates of its inputs") if gates else COLUMNS
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for task in sorted(rows, key=TASKS.index):
        lines += rows[task] + ceilings[task]
    return "\n".join(lines)


def _shared_starts(run_dirs: list[Path | str]) -> tuple[list[tuple[str, list[bool]]], list[float | None],
                                                         dict[str, Any]]:
    """Each run's name and per-episode successes, the starts' distances from the goal and the evaluation's config,
    for runs evaluated on the same starts (ValueError otherwise, as :func:`episode_outcomes` says)."""
    runs, starts, config, episodes_key = [], None, None, None
    for argument in run_dirs:
        label, run_dir = parse_run_argument(str(argument))
        final = _read_record(Path(run_dir) / "final_eval.json")
        try:
            key = (final["config"]["task"], final["config"]["seed"], final["policy"]["episodes"])
            episodes = final["policy"]["per_episode"]
            success = [bool(episode["success"]) for episode in episodes]
            distances = [episode.get("start_distance") for episode in episodes]
        except (KeyError, TypeError) as error:
            raise ValueError(f"{run_dir}: its final_eval.json lacks {error} (per-episode records are written by "
                             "dmo-train-policy, dmo-train-act and dmo-train-rung0)") from error
        if episodes_key is not None and key != episodes_key:
            raise ValueError(f"{run_dir} was evaluated on other starts (task, seed, episodes = {key}) than "
                             f"{runs[0][0]} ({episodes_key}); --episodes and --starts-picture compare runs on the "
                             "same starts")
        episodes_key, starts, config = key, starts or distances, config or final["config"]
        runs.append((run_dir if label is None else f"{label}={run_dir}", success))
    return runs, starts, config


def episode_outcomes(run_dirs: list[Path | str]) -> str:
    """Per-episode successes of runs evaluated on the same starts (see the module doc), as markdown.

    Raises:
        ValueError: a run without a finished evaluation or per-episode records, or runs evaluated on other starts
            (task, evaluation seed or episode count differ).
    """
    runs, starts, _config = _shared_starts(run_dirs)
    count = len(runs[0][1])
    lines = [f"| run | successes | episodes 0-{count - 1} (1 success, . failure) |", "|---|---|---|"]
    lines += [f"| {name} | {sum(success)}/{len(success)} | `{''.join('1' if s else '.' for s in success)}` |"
              for name, success in runs]

    def named(indices: list[int]) -> str:
        return ", ".join(f"{i}" + (f" ({starts[i]:.0f} u)" if starts[i] is not None else "") for i in indices) or "none"

    never = [i for i in range(count) if not any(success[i] for _name, success in runs)]
    always = [i for i in range(count) if all(success[i] for _name, success in runs)]
    lines += ["", f"Starts no run solved ({len(never)}; the start's distance from the goal): {named(never)}",
              f"Starts every run solved ({len(always)}): {named(always)}"]
    return "\n".join(lines)


def starts_picture(run_dirs: list[Path | str], out: Path, columns: int = 10, scale: int = 2) -> Path:
    """Draw the runs' shared evaluation starts (the stand-in's first camera frame of each episode, re-created from
    the evaluation's seed; the simulator is read for evaluation only) as one PNG, each start captioned with how many
    of the runs solved it and framed red where none did, green where all did, grey otherwise.

    Args:
        run_dirs: finished Push-T runs evaluated on the same starts (as ``--episodes``).
        out: the PNG to write.
        columns: starts per row.
        scale: each camera frame (96 x 96 px) is enlarged this many times.

    Returns:
        ``out``.

    Raises:
        ValueError: as :func:`episode_outcomes`.
    """
    from PIL import Image, ImageDraw  # here, not at the top: the table alone needs neither PIL nor the simulator

    from dmo_ros.policy.evaluate import EvalConfig
    from dmo_ros.sims.pusht import PushTSim

    runs, _starts, config = _shared_starts(run_dirs)
    known = {field.name for field in fields(EvalConfig)}
    evaluation = EvalConfig(**{key: value for key, value in config.items() if key in known})
    sim = PushTSim(evaluation.sim_config())
    tiles = []
    try:
        for index in range(len(runs[0][1])):  # the episodes the runs recorded
            if index:
                sim.reset()  # as the evaluation: episode e from (seed, e)
            solved = sum(success[index] for _name, success in runs)
            frame = Image.fromarray(sim.render())
            frame = frame.resize((frame.width * scale, frame.height * scale), Image.NEAREST)
            tile = Image.new("RGB", (frame.width + 8, frame.height + 22), "white")
            colour = (200, 0, 0) if solved == 0 else (0, 150, 0) if solved == len(runs) else (150, 150, 150)
            ImageDraw.Draw(tile).rectangle((0, 0, tile.width - 1, frame.height + 7), outline=colour, width=4)
            tile.paste(frame, (4, 4))
            ImageDraw.Draw(tile).text((4, frame.height + 9), f"start {index}: {solved}/{len(runs)} runs", fill=colour)
            tiles.append(tile)
    finally:
        sim.close()
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (tiles[0].width * min(columns, len(tiles)), tiles[0].height * rows), "white")
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * tile.width, (index // columns) * tile.height))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dmo-ladder-table", description=plain_text(__doc__.split("\n\n")[0]))
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="finished run folders; LABEL=RUN_DIR names the run's setting in its method cell")
    parser.add_argument("--out", type=output_file, default=None, help="also write the table to this markdown file")
    parser.add_argument("--gates", action="store_true",
                        help="add a column with the gates of the models each run was trained on")
    parser.add_argument("--episodes", action="store_true",
                        help="add each run's outcome per evaluation episode and the starts no run / every run solved "
                             "(runs on the same starts)")
    parser.add_argument("--starts-picture", type=output_file, default=None, metavar="PNG",
                        help="also draw the runs' shared evaluation starts into this PNG, each captioned with how many "
                             "runs solved it (red: none, green: all); Push-T runs on the same starts, as --episodes")
    options = parser.parse_args(argv)
    try:
        table = ladder_table(options.run_dirs, options.gates)
        if options.episodes:
            table += "\n\n" + episode_outcomes(options.run_dirs)
        if options.starts_picture is not None:
            picture = starts_picture(options.run_dirs, options.starts_picture)
    except (ValueError, OSError, KeyError) as error:
        print(f"dmo-ladder-table: error: {error}", file=sys.stderr)
        return 2
    print(table)
    if options.starts_picture is not None:
        print(f"wrote the evaluation starts, each with how many runs solved it, to {picture}")
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
