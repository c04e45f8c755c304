"""Dataclass configs as options: help from field docstrings, presets overridden, unknown keys refused."""

from __future__ import annotations

import argparse

import pytest

from dmo_ros.training import ConfigError, TrainConfig, add_dataclass_options, apply_options, config_from_dict
from dmo_ros.training.options import field_docs


def test_every_train_option_has_help() -> None:
    docs = field_docs(TrainConfig)
    parser = argparse.ArgumentParser()
    names = add_dataclass_options(parser, TrainConfig)
    assert set(names) == set(docs) and all(docs[name] for name in names)
    assert "Optimizer steps to train for" in parser.format_help()


def test_given_options_override_the_preset_only() -> None:
    parser = argparse.ArgumentParser()
    names = add_dataclass_options(parser, TrainConfig)
    args = parser.parse_args(["--steps", "7", "--betas", "0.7", "0.95", "--mixed-precision", "false"])
    config = apply_options(TrainConfig(lr=3e-4), args, names)
    assert (config.steps, config.betas, config.mixed_precision, config.lr) == (7, (0.7, 0.95), False, 3e-4)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mixed-precision", "maybe"])
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        apply_options(TrainConfig(), parser.parse_args(["--steps", "0"]), names)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_float_options_refuse_non_finite_numbers(text, capsys) -> None:
    """``--lr nan`` used to crash inside AdamW with a traceback; ``--lr inf``, ``--grad-clip nan`` trained garbage."""
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, TrainConfig)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([f"--lr={text}"])
    assert exit_info.value.code == 2
    assert f"argument --lr: expected a finite number, got '{text}'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--grad-clip", "abc"])
    assert "expected a number, got 'abc'" in capsys.readouterr().err


def test_config_from_dict_is_strict() -> None:
    assert config_from_dict(TrainConfig, {"steps": 5}).steps == 5
    with pytest.raises(ConfigError, match="unknown key\\(s\\) stepz .*valid keys: .*steps"):
        config_from_dict(TrainConfig, {"stepz": 5}, where="run.json train")
    with pytest.raises(ConfigError, match="lr must be positive"):
        config_from_dict(TrainConfig, {"lr": -1})


def test_field_value_reads_each_field_by_its_type() -> None:
    from dmo_ros.training.options import field_value

    assert field_value(TrainConfig, "steps", "7") == 7
    assert field_value(TrainConfig, "lr", "3e-4") == 3e-4
    assert field_value(TrainConfig, "mixed_precision", "false") is False
    assert field_value(TrainConfig, "device", "cpu") == "cpu"
    assert field_value(TrainConfig, "betas", "[0.8, 0.9]") == (0.8, 0.9)
    assert field_value(TrainConfig, "betas", "0.8 0.9") == (0.8, 0.9)
    with pytest.raises(ConfigError, match="TrainConfig field 'steps' takes int, got 'many'"):
        field_value(TrainConfig, "steps", "many")
    with pytest.raises(ConfigError, match="takes float, got 'nan'"):
        field_value(TrainConfig, "lr", "nan")
    with pytest.raises(ConfigError, match="unknown TrainConfig field 'stepz'; valid fields: .*steps"):
        field_value(TrainConfig, "stepz", "1")
