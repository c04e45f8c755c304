"""The paper's Fig. 3 for Push-T from logged policy runs: ``dmo-compare RUN_DIR [RUN_DIR ...] --out DIR``.

Push Cube runs (Go2: ``config.json`` ``task`` push_cube, from ``dmo-train-policy`` or ``dmo-train-act``) get the
paper's Table II instead (:func:`compare_push_cube`): success, steps to success, straightness, curvature and the
cube's time out of view per method from each run's ``final_eval.json``, the ceilings beside them, and Fig. 3b
(``fig3b.png``: success against world-model samples and wall-clock; ACT, which learns from demonstrations only, as
a line at its final success).

Each run folder of ``dmo-train-policy`` holds ``config.json`` (``"kind": "policy"``, ``"method"``)
and ``eval.jsonl``: one line per periodic stand-in evaluation, ``{"epoch", "samples", "wall_s",
"success_rate", "mean_max_coverage", "episodes", "method"}``. A resumed run may log an epoch
twice; the later line wins.

Several runs of one method (seeds) are aggregated **aligned by epoch**: a point per epoch that
every run of the method evaluated (give all seeds one evaluation schedule; a run stopped
early ends the curve), at x = the runs' mean x at that epoch, y = the runs' mean value, with a
min-max band. So every plotted point is a mean over *all* the seeds at the same training progress;
x is the world-model samples (transitions imagined so far: equal across seeds) or the training
wall-clock (evaluation time excluded: differs a little by seed, hence the mean). Runs of one
method with no evaluated epoch in common are an error.

Outputs in ``--out``:

- ``success_vs_samples.png``, ``success_vs_time.png``, ``coverage_vs_samples.png``,
  ``coverage_vs_time.png`` — one panel each;
- ``fig3.png`` — the four panels in one 2 x 2 figure (success on top, coverage below);
- ``comparison.md`` and ``comparison.csv`` — per method: runs, world-model samples and wall-clock
  at the final evaluation, final and best success rate, final and best mean max coverage. Each
  number is the mean over the method's runs of that run's own value (its last evaluation, or its
  best one); the CSV adds each one's min and max over the runs. The table is printed too.

Runs of a reach task (:data:`dmo_ros.sims.pusht_tasks.REACH_TASKS`) leave the T where it is, so its coverage says
nothing there; their second metric is the agent's final distance to the target (``mean_final_distance``, arena
units, lower is better; best = lowest): ``distance_vs_samples.png``, ``distance_vs_time.png``, the bottom row of
``fig3.png`` and the table's distance columns.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmo_ros.interrupt import stop_on_interrupt
from dmo_ros.output_paths import output_folder

EVAL_LOG = "eval.jsonl"
RUN_CONFIG = "config.json"

METHODS: dict[str, tuple[str, str]] = {
    # method: (label, colour) — the same colour for a method in every figure.
    "dmo": ("DMO", "tab:red"),
    "no_diffusion": ("No Diffusion", "tab:blue"),
    "ppo": ("PPO", "tab:green"),
    "sapo": ("SAPO on true state (rung 0)", "tab:purple"),
    "ppo_rung0": ("PPO on true state (rung 0)", "tab:olive"),
    "act": ("ACT (behaviour cloning)", "tab:orange"),
}
"""The methods a policy run can log, in the order they are listed and drawn."""

METRICS = {"success_rate": "success rate", "mean_max_coverage": "mean max coverage",
           "mean_final_distance": "final distance to the target (u)"}
"""The evaluation numbers plotted, with their axis labels."""

COVERAGE, DISTANCE = "mean_max_coverage", "mean_final_distance"
"""The second metric: the goal T's coverage on the pushing tasks, the agent's final distance on a reach task."""

LOWER_IS_BETTER = {DISTANCE}
"""Metrics whose best evaluation is the lowest."""

AXES = {"samples": "world-model samples", "wall_s": "training wall-clock"}
"""The x quantities, with their axis labels (the samples' label names the runs' forward model:
:func:`samples_label`)."""

SAMPLE_SOURCES = {"world-model": "world-model samples", "simulator": "simulator samples"}
"""``config.json`` ``forward`` of a run: what its samples were drawn from (rung 2: a learned world model, the
diffusion model or No Diffusion's RSSM; rungs 0 and 1: the stand-in simulator)."""

FIGURES = {
    # file name: (metric, x)
    "success_vs_samples.png": ("success_rate", "samples"),
    "success_vs_time.png": ("success_rate", "wall_s"),
    "coverage_vs_samples.png": ("mean_max_coverage", "samples"),
    "coverage_vs_time.png": ("mean_max_coverage", "wall_s"),
}
"""The pushing tasks' panels; a reach task's bottom row is :func:`figures` with the distance."""


def figures(second_metric: str = COVERAGE) -> dict[str, tuple[str, str]]:
    """File name -> (metric, x) of the four panels: success on top, ``second_metric`` below."""
    if second_metric == COVERAGE:
        return dict(FIGURES)
    name = {DISTANCE: "distance"}[second_metric]
    return {**{key: value for key, value in FIGURES.items() if value[0] == "success_rate"},
            f"{name}_vs_samples.png": (second_metric, "samples"), f"{name}_vs_time.png": (second_metric, "wall_s")}


def second_metric(runs: list[RunLog]) -> str:
    """The runs' second metric: the final distance when they are all on reach tasks, else the coverage.

    Raises :class:`CompareError` when reach runs are mixed with pushing ones (their metrics differ)."""
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    reach = {run.task in REACH_TASKS for run in runs}
    if len(reach) > 1:
        tasks = ", ".join(sorted({run.task for run in runs}))
        raise CompareError(f"reach runs mixed with pushing runs ({tasks}); compare one task at a time")
    return DISTANCE if reach == {True} else COVERAGE

RUN_KINDS = ("policy", "rung0")
"""``config.json`` kinds of the runs compared: dmo-train-policy's and dmo-train-rung0's."""

REQUIRED = ("epoch", "samples", "wall_s", "success_rate", "mean_max_coverage")
"""Keys every ``eval.jsonl`` line must hold."""


class CompareError(ValueError):
    """A run folder that cannot be compared (no evaluations, a damaged log, not a policy run)."""


@dataclass
class RunLog:
    """One policy run's evaluations, in epoch order."""

    run_dir: Path
    """The run folder."""
    method: str
    """``config.json`` ``method``: dmo, no_diffusion, ppo (or sapo: rung 0)."""
    records: list[dict[str, Any]]
    """The ``eval.jsonl`` lines (one per epoch, the last logged line of each), sorted by epoch."""
    task: str = "push_t"
    """``config.json`` ``task`` (runs that predate tasks trained and evaluated on push_t)."""
    forward: str = "world-model"
    """What the samples came from (:data:`SAMPLE_SOURCES`): ``config.json`` ``forward``; rung 0 is the simulator."""
    label: str | None = None
    """The user's name for the run's group (``dmo-compare LABEL=RUN_DIR``: variants of one method, e.g. two
    settings, as separate curves); None: grouped and named by its method."""

    @property
    def group(self) -> str:
        """The curve the run is a seed of: its label, else its method."""
        return self.label if self.label is not None else self.method

    def values(self, key: str) -> np.ndarray:
        """``key`` of every evaluation, in epoch order."""
        return np.array([float(record[key]) for record in self.records])

    def epochs(self) -> list[int]:
        return [int(record["epoch"]) for record in self.records]

    def at_epochs(self, key: str, epochs: list[int]) -> np.ndarray:
        """``key`` at each of ``epochs`` (all of them evaluated by this run)."""
        by_epoch = {int(record["epoch"]): float(record[key]) for record in self.records}
        return np.array([by_epoch[epoch] for epoch in epochs])


def parse_run_argument(text: str) -> tuple[str | None, Path]:
    """``RUN_DIR`` or ``LABEL=RUN_DIR`` (a label names a group of runs; an existing folder whose name holds ``=``
    is taken as a folder)."""
    label, separator, path = text.partition("=")
    if not separator or Path(text).exists() or "/" in label or not label.strip():
        return None, Path(text)
    return label.strip(), Path(path)


def read_run(run_dir: Path | str, label: str | None = None) -> RunLog:
    """A run's method and evaluations (``label``: see :attr:`RunLog.label`); :class:`CompareError` naming the file
    (and line) when unusable."""
    run_dir = Path(run_dir)
    config_path, log_path = run_dir / RUN_CONFIG, run_dir / EVAL_LOG
    if not config_path.is_file():
        raise CompareError(f"{run_dir}: not a training run (no {RUN_CONFIG})")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise CompareError(f"{config_path}: not valid JSON ({error})") from error
    if not isinstance(config, dict) or config.get("kind") not in RUN_KINDS:
        kind = config.get("kind") if isinstance(config, dict) else None
        raise CompareError(f"{run_dir}: not a policy run (kind {kind!r}); give run folders of dmo-train-policy "
                           "or dmo-train-rung0")
    method = recorded = config.get("method")
    if config["kind"] == "rung0" and method == "ppo":  # not pooled with PPO on rung 1 (also simulator samples)
        method = "ppo_rung0"
    if method not in METHODS:
        raise CompareError(f"{config_path}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not log_path.is_file():
        raise CompareError(f"{run_dir}: no {EVAL_LOG} (the run has not been evaluated yet; evaluations are logged "
                           "every few epochs)")
    by_epoch: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(log_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CompareError(f"{log_path}:{number}: not a JSON line ({error.msg})") from error
        if not isinstance(record, dict):
            raise CompareError(f"{log_path}:{number}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in REQUIRED if key not in record]
        if missing:
            raise CompareError(f"{log_path}:{number}: missing {', '.join(missing)}")
        for key in REQUIRED:
            value = record[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CompareError(f"{log_path}:{number}: {key} must be a finite number, got {value!r}")
        if record.get("method", recorded) != recorded:
            raise CompareError(f"{log_path}:{number}: method {record['method']!r} differs from {config_path}'s "
                               f"{recorded!r}")
        by_epoch[int(record["epoch"])] = record  # a resumed run re-logs epochs: the later line wins
    if not by_epoch:
        raise CompareError(f"{log_path}: empty (no evaluation logged yet)")
    task = str(config.get("task", "push_t"))
    from dmo_ros.sims.pusht_tasks import REACH_TASKS

    if task in REACH_TASKS:
        for epoch, record in by_epoch.items():
            value = record.get(DISTANCE)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CompareError(f"{log_path}: epoch {epoch} of a {task} run has no finite {DISTANCE} "
                                   f"(got {value!r})")
    forward = str(config.get("forward", "simulator" if config["kind"] == "rung0" else "world-model"))
    if forward not in SAMPLE_SOURCES:
        raise CompareError(f"{config_path}: unknown forward {forward!r}; expected one of {', '.join(SAMPLE_SOURCES)}")
    return RunLog(run_dir, method, [by_epoch[epoch] for epoch in sorted(by_epoch)], task, forward, label)


def samples_label(runs: list[RunLog]) -> str:
    """The samples axis's label: ``world-model samples``, ``simulator samples``, or both sources named when the
    runs mix them (a ladder figure with rung 1 beside rung 2)."""
    sources = sorted({run.forward for run in runs})
    if len(sources) == 1:
        return SAMPLE_SOURCES[sources[0]]
    return "samples (" + " or ".join(source.replace("-", " ") for source in sources) + ")"


# -- aggregation ---------------------------------------------------------------------------------


@dataclass
class Curve:
    """One method's metric against one x quantity, over its runs, at the epochs every run evaluated."""

    epochs: np.ndarray
    """The evaluated epochs common to all the runs."""
    x: np.ndarray
    """Mean over runs of the x quantity at each epoch (samples are equal across seeds; wall-clock is not)."""
    mean: np.ndarray
    """Mean over runs of the metric at each epoch."""
    low: np.ndarray
    """Min over runs at each epoch."""
    high: np.ndarray
    """Max over runs at each epoch."""


def group_name(runs: list[RunLog]) -> str:
    """How a group of runs is named in legends and tables: its label, else its method's name."""
    return runs[0].label if runs[0].label is not None else METHODS[runs[0].method][0]


EXTRA_COLOURS = ("tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
"""Colours of labelled groups after the first of a method (which keeps the method's colour)."""


def group_colours(groups: dict[str, list[RunLog]]) -> dict[str, str]:
    """A colour per group: a method's own for its first group, then :data:`EXTRA_COLOURS` in turn."""
    colours, used, extra = {}, set(), 0
    for key, runs in groups.items():
        colour = METHODS[runs[0].method][1]
        if colour in used:
            colour, extra = EXTRA_COLOURS[extra % len(EXTRA_COLOURS)], extra + 1
        colours[key] = colour
        used.add(colour)
    return colours


def aggregate(runs: list[RunLog], metric: str, x_key: str) -> Curve:
    """Mean and min-max of ``metric`` over ``runs`` against ``x_key``, aligned by epoch (see the module doc)."""
    common = sorted(set.intersection(*(set(run.epochs()) for run in runs)))
    if not common:
        raise CompareError(f"the {group_name(runs)} runs ({', '.join(str(run.run_dir) for run in runs)}) "
                           "share no evaluated epoch; evaluate every run of a method at the same epochs")
    x = np.stack([run.at_epochs(x_key, common) for run in runs])
    y = np.stack([run.at_epochs(metric, common) for run in runs])
    return Curve(np.array(common), x.mean(0), y.mean(0), y.min(0), y.max(0))


def summarise(method: str, runs: list[RunLog], metric: str = COVERAGE) -> dict[str, Any]:
    """The table row of a method (or a labelled group of its runs): each number the mean (and min, max) over runs
    of the run's own value; ``metric`` is the second metric (:func:`second_metric`)."""
    best = np.min if metric in LOWER_IS_BETTER else np.max
    per_run = {
        "samples": [run.records[-1]["samples"] for run in runs],
        "wall_s": [run.records[-1]["wall_s"] for run in runs],
        "final_success_rate": [run.records[-1]["success_rate"] for run in runs],
        "best_success_rate": [run.values("success_rate").max() for run in runs],
        f"final_{metric}": [run.records[-1][metric] for run in runs],
        f"best_{metric}": [best(run.values(metric)) for run in runs],
    }
    row: dict[str, Any] = {"method": method, "label": group_name(runs), "runs": len(runs),
                           "forward": runs[0].forward}
    for key, values in per_run.items():
        values = np.asarray(values, dtype=np.float64)
        row[key], row[f"{key}_min"], row[f"{key}_max"] = float(values.mean()), float(values.min()), float(values.max())
    row["run_dirs"] = ";".join(str(run.run_dir) for run in runs)
    return row


def group_by_method(runs: list[RunLog]) -> dict[str, list[RunLog]]:
    """Runs per group (:attr:`RunLog.group`: the method, or the user's label), in :data:`METHODS` order and, within
    a method, labelled groups in the order given (groups without runs left out).

    Raises :class:`CompareError` when a group's runs drew samples from different forward models (they are not
    seeds of one curve: compare one rung at a time) or one label names runs of different methods."""
    groups: dict[str, list[RunLog]] = {}
    for method in METHODS:
        for run in runs:
            if run.method == method:
                groups.setdefault(run.group, []).append(run)
    for group in groups.values():
        methods = sorted({run.method for run in group})
        if len(methods) > 1:
            raise CompareError(f"the label {group[0].label!r} names runs of different methods ({', '.join(methods)})")
        sources = sorted({run.forward for run in group})
        if len(sources) > 1:
            raise CompareError(f"the {group_name(group)} runs mix forward models ({', '.join(sources)}): they are "
                               "not seeds of one curve; compare one rung at a time")
    return groups


# -- outputs ---------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.20 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _spread(row: dict[str, Any], key: str, digits: int = 3) -> str:
    text = f"{row[key]:.{digits}f}"
    if row["runs"] > 1:
        text += f" ({row[key + '_min']:.{digits}f}-{row[key + '_max']:.{digits}f})"
    return text


MARKDOWN_COLUMNS = ("method", "runs", "samples (from)", "wall-clock", "final success", "best success",
                    "final coverage", "best coverage")

METRIC_COLUMNS = {COVERAGE: ("final coverage", "best coverage"),
                  DISTANCE: ("final distance (u)", "best distance (u)")}
"""The table's headers of each second metric."""


def markdown_table(rows: list[dict[str, Any]], metric: str = COVERAGE) -> str:
    """The comparison as a markdown table (numbers: mean over runs, (min-max) when there are several)."""
    columns = (*MARKDOWN_COLUMNS[:6], *METRIC_COLUMNS[metric])
    digits = 1 if metric == DISTANCE else 3
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] + ["---:"] * 7) + "|"]
    for row in rows:
        cells = [row["label"], str(row["runs"]), f"{row['samples']:,.0f} ({row['forward']})",
                 format_duration(row["wall_s"]),
                 _spread(row, "final_success_rate"), _spread(row, "best_success_rate"),
                 _spread(row, f"final_{metric}", digits), _spread(row, f"best_{metric}", digits)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_columns(metric: str = COVERAGE) -> list[str]:
    """The CSV's columns with ``metric`` as the second metric."""
    return ["method", "label", "runs", "forward",
            *(f"{key}{suffix}" for key in ("samples", "wall_s", "final_success_rate", "best_success_rate",
                                            f"final_{metric}", f"best_{metric}")
              for suffix in ("", "_min", "_max")),
            "run_dirs"]


CSV_COLUMNS = csv_columns()


def write_csv(rows: list[dict[str, Any]], path: Path, metric: str = COVERAGE) -> Path:
    columns = csv_columns(metric)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row[key] for key in columns})
    return path


def _time_scale(seconds: float) -> tuple[float, str]:
    if seconds < 120:
        return 1.0, "s"
    if seconds < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def x_axis_label(groups: dict[str, list[RunLog]], x_key: str) -> str:
    """:data:`AXES`'s label of ``x_key``; for samples, :func:`samples_label` of the plotted runs."""
    return samples_label([run for runs in groups.values() for run in runs]) if x_key == "samples" else AXES[x_key]


def draw_panel(axis: Any, groups: dict[str, list[RunLog]], metric: str, x_key: str) -> None:
    """One panel: each method's mean over runs, with the min-max band where it has several."""
    scale, unit = (1.0, "") if x_key == "samples" else _time_scale(
        max(run.values("wall_s").max() for runs in groups.values() for run in runs))
    colours = group_colours(groups)
    for key, runs in groups.items():
        label, colour = group_name(runs), colours[key]
        curve = aggregate(runs, metric, x_key)
        x = curve.x / scale
        axis.plot(x, curve.mean, color=colour, marker="o", markersize=3,
                  label=f"{label} ({len(runs)} run{'s' * (len(runs) > 1)})")
        if len(runs) > 1:
            axis.fill_between(x, curve.low, curve.high, color=colour, alpha=0.2, linewidth=0)
    axis.set_xlabel(x_axis_label(groups, x_key) + (f" ({unit})" if unit else ""))
    axis.set_ylabel(METRICS[metric] + (", lower is better" if metric in LOWER_IS_BETTER else ""))
    if metric in LOWER_IS_BETTER:
        axis.set_ylim(bottom=0)
    else:
        axis.set_ylim(-0.02, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="upper left")


def plot_figures(groups: dict[str, list[RunLog]], out_dir: Path, title: str,
                 metric: str = COVERAGE) -> list[Path]:
    """The four single panels (:func:`figures` of the second ``metric``) and the 2 x 2 ``fig3.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    panels = figures(metric)
    for name, (panel_metric, x_key) in panels.items():
        figure, axis = plt.subplots(figsize=(5.5, 4.0))
        draw_panel(axis, groups, panel_metric, x_key)
        axis.set_title(f"{title}: {METRICS[panel_metric]} vs {x_axis_label(groups, x_key)}", fontsize=10)
        figure.tight_layout()
        figure.savefig(out_dir / name, dpi=120)
        plt.close(figure)
        paths.append(out_dir / name)
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for axis, (panel_metric, x_key) in zip(axes.flat, panels.values(), strict=True):
        draw_panel(axis, groups, panel_metric, x_key)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out_dir / "fig3.png", dpi=120)
    plt.close(figure)
    paths.append(out_dir / "fig3.png")
    return paths


def ceilings_table(runs: list[RunLog], episodes: int = 50, cache: Path | None = None) -> str:
    """The random, zero-action and expert ceilings on the runs' task, as ``dmo-eval-policy`` reports them
    (``episodes`` fixed-seed episodes of gym-pusht's standard 30 s)."""
    from dmo_ros.policy.evaluate import EvalConfig, evaluate_ceilings, format_table

    tasks = sorted({run.task for run in runs})
    if len(tasks) != 1:
        raise CompareError(f"the runs are on different tasks ({', '.join(tasks)}); compare one task at a time")
    config = EvalConfig(episodes=episodes, task=tasks[0])
    return format_table(evaluate_ceilings(config, cache=cache), config)


def compare(run_dirs: list[Path | str], out_dir: Path | str, title: str = "Push-T",
            ceilings: int = 0, ceilings_cache: Path | None = None) -> tuple[list[dict], list[Path]]:
    """Read the runs (each ``RUN_DIR`` or ``LABEL=RUN_DIR``: :func:`parse_run_argument`), write the figures and
    tables into ``out_dir``; the table rows and the written files.

    ``ceilings`` > 0 adds the ceilings' table (that many episodes) under the comparison in ``comparison.md``."""
    labelled = [parse_run_argument(str(run_dir)) for run_dir in run_dirs]
    resolved = [path.resolve() for _, path in labelled]
    repeated = sorted({str(path) for (_, path), full in zip(labelled, resolved, strict=True)
                       if resolved.count(full) > 1})
    if repeated:
        raise CompareError(f"run folder(s) given more than once: {', '.join(repeated)} (each would count as a seed)")
    runs = [read_run(path, label) for label, path in labelled]
    if any(run.task == PUSH_CUBE for run in runs):
        if any(run.label is not None for run in runs):
            raise CompareError("labels (LABEL=RUN_DIR) group Push-T runs; the Push Cube comparison groups by method")
        return compare_push_cube(runs, out_dir, title if title != "Push-T" else "Push Cube (Go2 stand-in)")
    groups = group_by_method(runs)
    metric = second_metric(runs)
    for group in groups.values():
        aggregate(group, "success_rate", "samples")  # runs of a method share evaluated epochs: checked before writing
    rows = [summarise(group[0].method, group, metric) for group in groups.values()]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table_path = out_dir / "comparison.md"
    ceiling_text = ""
    if ceilings:
        ceiling_text = f"\nCeilings on the same task:\n\n{ceilings_table(runs, ceilings, ceilings_cache)}\n"
    table_path.write_text(f"# {title}\n\n{markdown_table(rows, metric)}\n\n"
                          "Numbers: mean over a method's runs of each run's own value (its last evaluation, or its "
                          "best), (min-max) over the runs when there are several.\n" + ceiling_text)
    written = [*plot_figures(groups, out_dir, title, metric), table_path,
               write_csv(rows, out_dir / "comparison.csv", metric)]
    return rows, written


# -- Push Cube (the Go2 stand-in): Table II and Fig. 3b ---------------------------------------------------------

PUSH_CUBE = "push_cube"
"""``config.json`` ``task`` of Go2 runs (dmo-train-policy on Go2 data, dmo-train-act)."""

PAPER_TABLE_II = {"dmo": (91.3, 0.881, 0.565), "ppo": (134.3, 0.597, 0.775), "act": (None, 0.447, 0.588)}
"""The seed paper's Table II (Push Cube, N = 3 episodes): steps to success, straightness, curvature (rad/m)."""

PUSH_CUBE_COLUMNS = ("method", "runs", "N", "success (pooled)", "success per run", "steps to success",
                     "straightness", "curvature (rad/m)", "cube out of view", "samples", "wall-clock")


def _final_push_cube(run: RunLog) -> dict[str, Any]:
    path = run.run_dir / "final_eval.json"
    if not path.is_file():
        raise CompareError(f"{run.run_dir}: no final_eval.json (the Push Cube evaluation written when training ends; "
                           "has the run finished? dmo-eval-policy --robot go2 RUN --out FILE measures one by hand)")
    final = json.loads(path.read_text())
    if final.get("task") != PUSH_CUBE:
        raise CompareError(f"{path}: not a Push Cube evaluation (task {final.get('task')!r})")
    return final


def push_cube_rows(groups: dict[str, list[RunLog]]) -> list[dict[str, Any]]:
    """Per method: every run's final Push Cube episodes pooled (success k/N with Wilson's interval; steps to success
    over the successes; straightness and curvature where the robot moved), the success rate of each run, the mean
    samples and wall-clock at the end."""
    from dmo_ros.policy.evaluate import rate_interval
    from dmo_ros.policy.push_cube_eval import mean_spread

    rows = []
    for method, runs in groups.items():
        finals = [_final_push_cube(run) for run in runs]
        episodes = [episode for final in finals for episode in final["policy"]["per_episode"]]
        successes = sum(bool(episode["success"]) for episode in episodes)
        row: dict[str, Any] = {
            "method": method, "label": METHODS[method][0], "runs": len(runs), "episodes": len(episodes),
            "successes": successes, "success_rate": successes / max(len(episodes), 1),
            "success_ci95": list(rate_interval(successes, len(episodes))),
            "run_success_rates": [final["policy"]["success_rate"] for final in finals],
            "samples": float(np.mean([final["samples"] for final in finals])),
            "wall_s": float(np.mean([final["wall_s"] for final in finals])),
            "run_dirs": ";".join(str(run.run_dir) for run in runs)}
        for key in ("steps_to_success", "straightness", "curvature_rad_m", "out_of_view_fraction"):
            numbers = mean_spread([episode[key] for episode in episodes])
            row[key], row[f"{key}_std"], row[f"{key}_n"] = numbers["mean"], numbers["std"], numbers["n"]
        row["ceilings"] = finals[0].get("ceilings", {})
        rows.append(row)
    return rows


def _metric(row: dict[str, Any], key: str, digits: int) -> str:
    if not row.get(f"{key}_n"):
        return "-"
    return f"{row[key]:.{digits}f} +- {row[key + '_std']:.{digits}f}"


def push_cube_markdown(rows: list[dict[str, Any]]) -> str:
    """Table II for the compared runs, the ceilings of the same episodes, and the paper's numbers beside them."""
    lines = ["| " + " | ".join(PUSH_CUBE_COLUMNS) + " |", "|---|" + "---:|" * (len(PUSH_CUBE_COLUMNS) - 1)]
    for row in rows:
        low, high = row["success_ci95"]
        per_run = ", ".join(f"{100 * rate:.0f}%" for rate in row["run_success_rates"])
        samples = "- (demonstrations)" if row["method"] == "act" else f"{row['samples']:,.0f}"
        lines.append("| " + " | ".join([
            row["label"], str(row["runs"]), str(row["episodes"]),
            f"{row['successes']}/{row['episodes']} {100 * row['success_rate']:.0f}% "
            f"[{100 * low:.0f}-{100 * high:.0f}%]",
            per_run, _metric(row, "steps_to_success", 1), _metric(row, "straightness", 3),
            _metric(row, "curvature_rad_m", 3), f"{100 * row['out_of_view_fraction']:.0f}% of steps", samples,
            format_duration(row["wall_s"])]) + " |")
    ceilings = rows[0]["ceilings"] if rows else {}
    for label, numbers in ceilings.items():
        low, high = numbers.get("success_ci95", [0.0, 1.0])
        n = int(numbers["episodes"])

        def mean(key: str, digits: int, numbers: dict = numbers) -> str:
            value = numbers.get(key)
            return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

        k = round(numbers["success_rate"] * n)
        lines.append("| " + " | ".join([
            label, "-", str(n), f"{k}/{n} {100 * numbers['success_rate']:.0f}% [{100 * low:.0f}-{100 * high:.0f}%]",
            "-", mean("steps_to_success", 1), mean("straightness", 3), mean("curvature_rad_m", 3),
            f"{100 * numbers.get('out_of_view_fraction', float('nan')):.0f}% of steps", "-", "-"]) + " |")
    paper = "; ".join(f"{METHODS[m][0].split(' (')[0]} {'-' if v[0] is None else v[0]} steps, straightness {v[1]}, "
                      f"curvature {v[2]} rad/m" for m, v in PAPER_TABLE_II.items())
    return "\n".join(lines) + f"\n\nThe paper's Table II (real Go2, N = 3 episodes): {paper}."


def plot_push_cube(groups: dict[str, list[RunLog]], rows: list[dict[str, Any]], out_dir: Path,
                   title: str) -> list[Path]:
    """Fig. 3b: success against world-model samples and against training wall-clock for the methods that learn in a
    world model (their eval.jsonl), ACT (demonstrations only) as a dashed line at its final success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learners = {method: runs for method, runs in groups.items() if method != "act"}
    act = next((row for row in rows if row["method"] == "act"), None)
    paths = []
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, x_key in zip(axes, ("samples", "wall_s"), strict=True):
        if learners:
            draw_panel(axis, learners, "success_rate", x_key)
        else:
            axis.set_xlabel(AXES[x_key])
            axis.set_ylabel(METRICS["success_rate"])
            axis.set_ylim(-0.02, 1.02)
            axis.grid(alpha=0.3)
        if act is not None:
            axis.axhline(act["success_rate"], color=METHODS["act"][1], linestyle="--",
                         label=f"ACT, final ({act['runs']} run{'s' * (act['runs'] > 1)}; demonstrations only)")
        axis.legend(fontsize=8, loc="upper left")
    samples = samples_label([run for runs in learners.values() for run in runs]) if learners else AXES["samples"]
    figure.suptitle(f"{title}: success vs {samples} and training wall-clock")
    figure.tight_layout()
    for name in ("fig3b.png",):
        figure.savefig(out_dir / name, dpi=120)
        paths.append(out_dir / name)
    plt.close(figure)
    return paths


def compare_push_cube(runs: list[RunLog], out_dir: Path | str, title: str) -> tuple[list[dict], list[Path]]:
    """The Push Cube comparison: ``comparison.md`` (Table II per method with the ceilings), ``comparison.csv`` and
    ``fig3b.png`` in ``out_dir``; every run must be a Push Cube run with its ``final_eval.json``."""
    other = sorted({run.task for run in runs if run.task != PUSH_CUBE})
    if other:
        raise CompareError(f"Push Cube runs mixed with runs of {', '.join(other)}; compare one task at a time")
    groups = group_by_method(runs)
    for method, group in groups.items():
        if method != "act":
            aggregate(group, "success_rate", "samples")  # a method's seeds share evaluated epochs
    rows = push_cube_rows(groups)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = push_cube_markdown(rows)
    (out_dir / "comparison.md").write_text(
        f"# {title}\n\n{table}\n\nSuccess: every run's final evaluation episodes pooled, k/N [Wilson 95% CI], and "
        "each run's rate; other numbers: mean +- std over the pooled episodes (steps to success over successes, "
        "straightness and curvature where the robot moved). Ceilings: the first run's evaluation episodes.\n")
    columns = ["method", "label", "runs", "episodes", "successes", "success_rate", "samples", "wall_s",
               *(f"{key}{suffix}" for key in ("steps_to_success", "straightness", "curvature_rad_m",
                                               "out_of_view_fraction") for suffix in ("", "_std", "_n")), "run_dirs"]
    with open(out_dir / "comparison.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row[key] for key in columns})
    written = [*plot_push_cube(groups, rows, out_dir, title), out_dir / "comparison.md", out_dir / "comparison.csv"]
    return rows, written


@stop_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dmo-compare",
        description="Compare policy runs (DMO, No Diffusion, PPO; several seeds each) as in the paper's Fig. 3: "
                    "success rate and mean max coverage on the stand-in against world-model samples and "
                    "wall-clock, plus a table.",
        epilog="Runs of one method (or one label) are aggregated (mean, min-max band). Exit code: 0 done, 2 unusable "
               "runs.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="policy run folders; LABEL=RUN_DIR puts runs under a name of their own (one curve and "
                             "row per label: e.g. two settings of one method, seeds aggregated within each)")
    parser.add_argument("--out", type=output_folder, required=True, help="folder for the figures and tables")
    parser.add_argument("--title", default="Push-T", help="figure and table title")
    parser.add_argument("--ceilings", type=int, default=50, metavar="EPISODES",
                        help="evaluate the random, zero-action and expert ceilings on the runs' task over this many "
                             "fixed-seed episodes and put them beside the table (default 50; 0: leave them out)")
    parser.add_argument("--ceilings-cache", type=Path, default=None,
                        help="JSON file remembering the ceilings' results (default: OUT/ceilings.json)")
    options = parser.parse_args(argv)
    try:
        rows, written = compare(options.run_dirs, options.out, options.title, options.ceilings,
                                options.ceilings_cache or options.out / "ceilings.json")
    except (CompareError, OSError) as error:
        print(f"dmo-compare: error: {error}", file=sys.stderr)
        return 2
    print((options.out / "comparison.md").read_text())
    print(f"wrote {', '.join(str(path) for path in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
