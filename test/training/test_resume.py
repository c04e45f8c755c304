"""Resume: a run SIGKILLed after a checkpoint, started again, ends exactly where an uninterrupted run does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import BIN

WORKER = Path(__file__).parent / "toy_training.py"


def _train(run_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [str(BIN / "python"), str(WORKER), "--run-dir", str(run_dir), "--out", str(out),
               "--steps", "12", "--checkpoint-every", "4", "--input-noise", "0.3", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    whole = _train(tmp_path / "whole", tmp_path / "whole_out")
    assert whole.returncode == 0, whole.stderr

    # Killed inside step 7's forward pass: checkpoints at steps 4 exists, step 8 was never written.
    killed = _train(tmp_path / "resumed", tmp_path / "resumed_out", "--kill-at-call", "7")
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    assert (tmp_path / "resumed/checkpoints/last").read_text().strip() == "step_00000004"
    assert not (tmp_path / "resumed_out").exists()

    resumed = _train(tmp_path / "resumed", tmp_path / "resumed_out")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "from step 4" in resumed.stdout

    expected = load_file(str(tmp_path / "whole_out/rank0.safetensors"))
    actual = load_file(str(tmp_path / "resumed_out/rank0.safetensors"))
    # The input noise draws from torch's RNG: equal weights mean the RNG state, the optimizer
    # moments and the batch order were all restored, not just the weights.
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-6)
    start = load_file(str(tmp_path / "resumed/checkpoints/step_00000012/model.safetensors"))
    torch.testing.assert_close(start["linear.weight"], expected["linear.weight"], rtol=0, atol=1e-6)


def test_resume_without_restoring_rng_would_differ(tmp_path: Path) -> None:
    """Guard: the noise matters, so the test above would catch a resume that lost the RNG state."""
    a = _train(tmp_path / "a", tmp_path / "a_out")
    b = _train(tmp_path / "b", tmp_path / "b_out", "--input-noise", "0.31")
    assert a.returncode == 0 and b.returncode == 0
    wa = load_file(str(tmp_path / "a_out/rank0.safetensors"))["linear.weight"]
    wb = load_file(str(tmp_path / "b_out/rank0.safetensors"))["linear.weight"]
    assert (wa - wb).abs().max() > 1e-4


def test_moving_average_is_checkpointed_and_resumed(tmp_path: Path) -> None:
    """With ema_decay the checkpoint's model weights are the average (what loaders use), the raw weights resume
    training exactly, and a killed run ends with the same average as an uninterrupted one."""
    whole = _train(tmp_path / "whole", tmp_path / "whole_out", "--ema-decay", "0.8")
    assert whole.returncode == 0, whole.stderr
    killed = _train(tmp_path / "resumed", tmp_path / "resumed_out", "--ema-decay", "0.8", "--kill-at-call", "7")
    assert killed.returncode == -9
    resumed = _train(tmp_path / "resumed", tmp_path / "resumed_out", "--ema-decay", "0.8")
    assert resumed.returncode == 0, resumed.stderr

    raw_whole = load_file(str(tmp_path / "whole_out/rank0.safetensors"))
    raw_resumed = load_file(str(tmp_path / "resumed_out/rank0.safetensors"))
    average_whole = load_file(str(tmp_path / "whole/checkpoints/step_00000012/model.safetensors"))
    average_resumed = load_file(str(tmp_path / "resumed/checkpoints/step_00000012/model.safetensors"))
    for name in raw_whole:
        torch.testing.assert_close(raw_resumed[name], raw_whole[name], rtol=0, atol=1e-6)
        torch.testing.assert_close(average_resumed[name], average_whole[name], rtol=0, atol=1e-6)
    # The average lags the raw weights (a decay of 0.8 over 12 noisy steps), so it is not a copy of them.
    assert (average_whole["linear.weight"] - raw_whole["linear.weight"]).abs().max() > 1e-3
    plain = _train(tmp_path / "plain", tmp_path / "plain_out")
    assert plain.returncode == 0
    torch.testing.assert_close(load_file(str(tmp_path / "plain_out/rank0.safetensors"))["linear.weight"],
                               raw_whole["linear.weight"], rtol=0, atol=1e-6)  # the average never feeds back


def test_terminated_run_checkpoints_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """SIGTERM (``kill``, a scheduler's preemption) is answered as Ctrl-C is: a checkpoint at the last finished step,
    one line, exit code 143; re-running resumes from there. Before, SIGTERM lost the steps since the last periodic
    checkpoint (here 4 -> 6)."""
    whole = _train(tmp_path / "whole", tmp_path / "whole_out")
    assert whole.returncode == 0, whole.stderr

    terminated = _train(tmp_path / "resumed", tmp_path / "resumed_out", "--terminate-at-call", "7")
    assert terminated.returncode == 143, (terminated.returncode, terminated.stderr)
    assert "Traceback" not in terminated.stderr
    assert "terminated (SIGTERM); re-run the same command to resume" in terminated.stderr
    assert (tmp_path / "resumed/checkpoints/last").read_text().strip() == "step_00000006"

    resumed = _train(tmp_path / "resumed", tmp_path / "resumed_out")
    assert resumed.returncode == 0, resumed.stderr
    assert "from step 6" in resumed.stdout
    expected = load_file(str(tmp_path / "whole_out/rank0.safetensors"))
    actual = load_file(str(tmp_path / "resumed_out/rank0.safetensors"))
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-6)
