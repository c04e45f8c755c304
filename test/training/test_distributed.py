"""resolve_device: a bad --device is a DeviceError (a ValueError) with the fix, never a bare torch RuntimeError."""

from __future__ import annotations

import pytest
import torch

from dmo_ros.training.distributed import DeviceError, World, resolve_device


def test_cpu_and_auto_resolve() -> None:
    assert resolve_device("cpu", World()) == torch.device("cpu")
    assert resolve_device("auto", World()).type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(("name", "message"), [("banana", "is not a device; use auto, cpu, cuda or cuda:N"),
                                               ("mps", "only cpu and cuda devices are supported")])
def test_a_name_that_is_no_usable_device_is_refused(name: str, message: str) -> None:
    """--device banana ended in torch's 'Expected one of cpu, cuda, ipu, ...' traceback."""
    with pytest.raises(DeviceError, match=message):
        resolve_device(name, World())


def test_cuda_on_a_machine_without_it_is_a_value_error(monkeypatch) -> None:
    """It was a RuntimeError, which the commands that catch ValueError (bad arguments, exit 2) let through."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available here"):
        resolve_device("cuda:1", World())


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="has 1 GPU"):
        resolve_device("cuda:3", World())
