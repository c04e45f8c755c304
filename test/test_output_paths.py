"""Output paths of the report commands: the wrong kind of path is refused at the parse (exit 2), before any work.

Before, ``--out`` naming a file ended in a FileExistsError traceback (dmo-reward-eval, dmo-world-model-report,
dmo-compare, ...) and ``--out`` naming a folder in an IsADirectoryError after the whole evaluation
(dmo-eval-policy, dmo-ladder-table)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from dmo_ros.output_paths import output_file, output_folder

FOLDER_COMMANDS = [("dmo_ros.world_model.fidelity", ["run"]), ("dmo_ros.reward.evaluate", ["run"]),
                   ("dmo_ros.dmo.compare", ["run"]), ("dmo_ros.dream.flags", ["run"]),
                   ("dmo_ros.dream.strip", ["run"]), ("dmo_ros.world_model_v4.report", ["run"])]
FILE_COMMANDS = [("dmo_ros.ladder.table", ["run"]), ("dmo_ros.policy.evaluate", ["run"]),
                 ("dmo_ros.policy.push_cube_eval", ["run"])]


@pytest.mark.parametrize(("module", "option"), [("dmo_ros.dataset.convert", ["bags", "-o"]),
                                                ("dmo_ros.dataset.lerobot_export", ["dataset"]),
                                                ("dmo_ros.reward.goal_image", ["-o"])])
def test_outputs_below_a_file_are_refused(module: str, option: list[str], tmp_path: Path, capsys) -> None:
    """dmo-convert -o, dmo-export-lerobot OUT and dmo-goal-image -o under a file ended in a FileExistsError or
    NotADirectoryError traceback."""
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main([*option, str(tmp_path / "notes.txt/out.png")])
    assert exit_info.value.code == 2
    assert "notes.txt is a file, so no folder can be made there" in capsys.readouterr().err


def test_output_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert output_folder(str(tmp_path / "new/deeper")) == tmp_path / "new/deeper"
    assert output_folder(str(tmp_path)) == tmp_path
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a folder"):
        output_folder(str(tmp_path / "notes.txt"))
    with pytest.raises(argparse.ArgumentTypeError, match="notes.txt is a file, so no folder can be made there"):
        output_folder(str(tmp_path / "notes.txt/sub"))


def test_output_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert output_file(str(tmp_path / "notes.txt")) == tmp_path / "notes.txt"  # overwritten, as before
    assert output_file(str(tmp_path / "new/out.json")) == tmp_path / "new/out.json"
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder; give the name of the file to write"):
        output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="notes.txt is a file, so no folder can be made there"):
        output_file(str(tmp_path / "notes.txt/out.json"))


@pytest.mark.parametrize(("module", "args"), FOLDER_COMMANDS + FILE_COMMANDS,
                         ids=[m for m, _ in FOLDER_COMMANDS + FILE_COMMANDS])
def test_commands_refuse_the_wrong_kind_of_out_path(module: str, args: list[str], tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("x")
    wrong = tmp_path / "notes.txt" if (module, args) in FOLDER_COMMANDS else tmp_path
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main([*args, "--out", str(wrong)])
    assert exit_info.value.code == 2
    assert "argument --out:" in capsys.readouterr().err
