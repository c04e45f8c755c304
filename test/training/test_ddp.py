"""DistributedDataParallel: two CPU processes (gloo, started by torchrun) train like one on their combined batch."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import BIN

WORKER = Path(__file__).parent / "toy_training.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    common = ["--steps", "10", "--items", "64", "--lr", "0.05"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), str(WORKER), "--run-dir", str(tmp_path / "ddp"),
         "--out", str(tmp_path / "ddp_out"), "--batch-size", "4", *common],
        capture_output=True, text=True, timeout=180, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [str(BIN / "python"), str(WORKER), "--run-dir", str(tmp_path / "one"), "--out", str(tmp_path / "one_out"),
         "--batch-size", "8", *common],
        capture_output=True, text=True, timeout=120, env=env)
    assert single.returncode == 0, single.stderr[-3000:]

    rank0 = load_file(str(tmp_path / "ddp_out/rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp_out/rank1.safetensors"))
    one = load_file(str(tmp_path / "one_out/rank0.safetensors"))
    torch.manual_seed(0)  # the worker's seed_everything(0): its initial weights
    initial = torch.nn.Linear(6, 3)  # guard: training moved the weights far from where they started
    for name in one:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0)  # replicas never drift
        torch.testing.assert_close(rank0[name], one[name], rtol=1e-5, atol=1e-6)
    assert (one["linear.weight"] - initial.weight.detach()).abs().max() > 0.05
    # Each process left the group before interpreter shutdown, where gloo's threads can abort it (pytorch#190489).
    for rank in (0, 1):
        assert (tmp_path / f"ddp_out/rank{rank}_group_at_exit.txt").read_text() == "destroyed"
    # Only rank 0 writes the run folder; its checkpoint holds the shared weights.
    saved = load_file(str(tmp_path / "ddp/checkpoints/step_00000010/model.safetensors"))
    torch.testing.assert_close(saved["linear.weight"], rank0["linear.weight"], rtol=0, atol=0)
