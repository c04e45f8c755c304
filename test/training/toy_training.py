"""A small deterministic component trained by the real loop, run as a script by the loop tests.

Run directly (one process) or under torchrun (several); it trains a linear regressor on a
fixed synthetic problem through :func:`dmo_ros.training.train` and, on every process, writes
the final parameters to ``OUT/rank<r>.safetensors``. ``--kill-at-call N`` SIGKILLs the process
inside its N-th forward pass: a crash with no chance to clean up. ``--terminate-at-call N`` sends it SIGTERM
there instead (``kill``, a scheduler's preemption): its ``main`` is wrapped as every trainer's is.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from dmo_ros.training import TrainConfig, exit_on_interrupt, seed_everything, train

INPUTS, OUTPUTS = 6, 3


@dataclass
class RegressionBatch:
    inputs: torch.Tensor
    targets: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> RegressionBatch:
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))

    @classmethod
    def collate(cls, items: list[RegressionBatch]) -> RegressionBatch:
        return cls(torch.stack([i.inputs for i in items]), torch.stack([i.targets for i in items]))


class RegressionData(Dataset):
    """targets = inputs @ W + b with a fixed W, b (the quantity a learning test recovers)."""

    def __init__(self, size: int, seed: int = 0, nan_items: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(INPUTS, OUTPUTS, generator=generator)
        self.bias = torch.randn(OUTPUTS, generator=generator)
        self.inputs = torch.randn(size, INPUTS, generator=generator)
        self.targets = self.inputs @ self.weight + self.bias
        if nan_items:
            self.inputs[:nan_items] = float("nan")

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> RegressionBatch:
        return RegressionBatch(self.inputs[index], self.targets[index])


class Regressor(nn.Module):
    """The (loss, logs) contract; ``input_noise`` draws from torch's RNG (so resume must restore it)."""

    def __init__(self, input_noise: float = 0.0, kill_at_call: int = 0, terminate_at_call: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(INPUTS, OUTPUTS)
        self.input_noise, self.kill_at_call, self.calls = input_noise, kill_at_call, 0
        self.terminate_at_call = terminate_at_call

    def forward(self, batch: RegressionBatch):
        self.calls += 1
        if self.kill_at_call and self.calls == self.kill_at_call:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.terminate_at_call and self.calls == self.terminate_at_call:
            signal.raise_signal(signal.SIGTERM)
        inputs = batch.inputs + self.input_noise * torch.randn_like(batch.inputs)
        loss = ((self.linear(inputs) - batch.targets) ** 2).mean()
        return loss, {"mse": loss.detach()}


def _record_process_group_at_exit(path: Path) -> None:
    if path.parent.is_dir():
        path.write_text("initialized" if torch.distributed.is_initialized() else "destroyed")


@exit_on_interrupt
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--input-noise", type=float, default=0.0)
    parser.add_argument("--kill-at-call", type=int, default=0)
    parser.add_argument("--terminate-at-call", type=int, default=0)
    parser.add_argument("--ema-decay", type=float, default=0.0)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    # Registered before train() joins the group, so (atexit runs last-in first-out) it runs after
    # the loop's own exit handler: it records whether the process group was left before Python tore down.
    atexit.register(_record_process_group_at_exit, args.out / f"rank{rank}_group_at_exit.txt")
    seed_everything(0)
    model = Regressor(args.input_noise, args.kill_at_call, args.terminate_at_call)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=3, grad_clip=10.0,
                         weight_decay=0.0, checkpoint_every=args.checkpoint_every, log_every=2, val_every=0,
                         progress=False, device="cpu", ema_decay=args.ema_decay)
    train(model, RegressionData(args.items), RegressionData(16, seed=1), config, args.run_dir,
          {"model": {"kind": "toy-regressor"}})
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / f"rank{rank}.safetensors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
