"""The test side of a probe process: a child that speaks ROS for a test and answers one JSON line per command.

Tests that need a subscriber or publisher of their own start one (the test process itself stays free of
rclpy) and talk to it over stdin/stdout: :meth:`ProbeClient.ask` writes one command line and waits for
one JSON reply; lines that are not JSON (logs, tracebacks) are kept for the failure message.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading


class ProbeClient:
    """A probe process started from ``args``; it must print the JSON line ``"started"`` when ready."""

    def __init__(self, args: list[str], env: dict[str, str], timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(args, env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.timeout = timeout
        self.replies: queue.Queue = queue.Queue()
        self.other: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self._next(30) == "started", self.other

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.replies.put(json.loads(line))
            except json.JSONDecodeError:
                self.other.append(line)

    def _next(self, timeout: float | None = None):
        try:
            return self.replies.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise AssertionError(f"probe did not answer; its other output:\n{''.join(self.other)}") from None

    def ask(self, *command):
        """Send one command line (words joined by spaces); return the probe's JSON reply."""
        self.process.stdin.write(" ".join(map(str, command)) + "\n")
        self.process.stdin.flush()
        return self._next()

    def close(self) -> None:
        """Ask the probe to quit (no reply), then wait for it; kill it after 10 s."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
