"""Shared fixtures: an isolated ROS 2 environment for tests that start real nodes."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# DDS domains handed out in turn, not drawn from `random`: the trainers seed `random`, which made tests after a
# training call draw the same domain, where a previous graph's last processes could still be shutting down.
_DOMAINS = itertools.cycle(range(1, 101))
for _ in range(os.getpid() % 100):  # parallel test sessions start at different places
    next(_DOMAINS)


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for node processes: a private DDS domain, logs in tmp, traffic on this machine."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(next(_DOMAINS)),
        ROS_HOME=str(tmp_path / "ros_home"),
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        FASTDDS_BUILTIN_TRANSPORTS="SHM",
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    env.pop("DMO_ROS_CONFIG_DIR", None)
    return env


def run_command(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run a command to completion, output captured as text (stderr folded into stdout)."""
    return subprocess.run(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


class LiveProcess:
    """A process whose output (stderr folded in) is collected line by line while it runs."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{self.output}"
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited ({self.process.returncode}) before {text!r}:\n{self.output}")
            time.sleep(0.02)

    def wait_for_match(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """Wait for a line matching the regular expression ``pattern``; its match."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            assert time.monotonic() < deadline, f"no line matching {pattern!r} within {timeout} s:\n{self.output}"
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"exited ({self.process.returncode}) before {pattern!r}:\n{self.output}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send ``sig`` (if still running) and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.finish(timeout)

    def finish(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


class LiveRun(LiveProcess):
    """``dmo-launch ARGS`` as a LiveProcess."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__([str(BIN / "dmo-launch"), *args], env)


@pytest.fixture(scope="session")
def tiny_policies(tmp_path_factory) -> dict[str, Path]:
    """{"pusht": run, "go2": run}: tiny DMO-SAPO policies trained for one epoch (see policy_runs.py)."""
    from policy_runs import train_tiny_policy

    root = tmp_path_factory.mktemp("tiny_policies")
    return {robot: train_tiny_policy(root, robot) for robot in ("pusht", "go2")}


@pytest.fixture(scope="session")
def tiny_act_policy(tmp_path_factory) -> Path:
    """A tiny ACT policy run for the Go2 (dmo-train-act --preset tiny on a 32 px dataset; see policy_runs.py)."""
    from policy_runs import train_tiny_act

    return train_tiny_act(tmp_path_factory.mktemp("tiny_act"))
