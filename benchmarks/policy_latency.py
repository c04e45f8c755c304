"""Policy node latency and CPU use: the deploy_pusht graph (Push-T stand-in camera, 96x96 rgb8 at 10 Hz) with a
cpu-preset DMO-SAPO policy (the local model's cpu preset at 64x64 and SAPO's cpu actor; random weights: latency
does not depend on what the weights learned).

Reported, from the node's own statistics over the run: inference (``policy.act``) p50/p99; camera-to-command
(the frame's conversion by the converter's function + the decision until the command is handed to the publisher)
p50/p99; the frame's age when decided on (includes waiting for the 5 Hz tick: camera and control are not in
phase); the achieved decision rate; and the policy node's CPU use (user + system time of its process over the
run, in % of one core, from /proc). Goal: camera-to-command p99 <= 10 ms on a CPU.

    .venv/bin/python benchmarks/policy_latency.py                   # 30 s
    .venv/bin/python benchmarks/policy_latency.py --seconds 60 --stream-rate-hz 50
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from dmo_ros.dmo.sapo import SAPOConfig
from dmo_ros.local_model.config import LocalModelConfig
from dmo_ros.local_model.model import LocalModel
from dmo_ros.policy.actor import SquashedGaussianActor
from dmo_ros.policy.base import with_prefix
from dmo_ros.training.checkpoint import save_checkpoint, write_run_config

BIN = Path(sys.executable).parent
LIMIT = [0.25, 0.25]


def cpu_policy_run(folder: Path, image_size: int = 64) -> Path:
    """A policy run with the cpu presets' networks, as dmo-train-policy writes it."""
    torch.manual_seed(0)
    local_config = LocalModelConfig.preset("cpu", 2, LIMIT, image_size=image_size)
    sapo = SAPOConfig.preset("cpu")
    local = LocalModel(local_config)
    actor = SquashedGaussianActor(local_config.feature_size, 2, sapo.actor_hidden, sapo.actor_layers)
    policy = {"image_size": [image_size, image_size], "action_limit": LIMIT, "local_model": asdict(local_config),
              "feature_size": local_config.feature_size, "actor_hidden": sapo.actor_hidden,
              "actor_layers": sapo.actor_layers}
    deployment = {"robot": "pusht", "rate_hz": 5.0,
                  "image": {"height": image_size, "width": image_size, "aspect": "crop",
                            "source_formats": ["96x96 rgb8"]}}
    write_run_config(folder, {"kind": "policy", "method": "dmo", "preset": "cpu", "policy": policy,
                              "deployment": deployment})
    weights = {**with_prefix("local.", local.state_dict()), **with_prefix("actor.", actor.state_dict())}
    save_checkpoint(folder, 1, weights, {}, {})
    parameters = sum(p.numel() for p in local.parameters()) + sum(p.numel() for p in actor.parameters())
    print(f"policy: cpu presets (local model {local_config.image_size} px, actor {sapo.actor_hidden} x "
          f"{sapo.actor_layers}), {parameters / 1e6:.2f} M parameters")
    return folder


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds after the first command")
    parser.add_argument("--stream-rate-hz", type=float, default=0.0, help="the node's stream rate (0: off)")
    parser.add_argument("--image-size", type=int, default=64, help="the policy's frame size")
    options = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, the node uses 1 intra-op thread")
    with tempfile.TemporaryDirectory(prefix="policy_latency_") as tmp:
        run = cpu_policy_run(Path(tmp) / "policy", options.image_size)
        env = {**os.environ, "ROS_DOMAIN_ID": str(random.randint(101, 200)), "ROS_HOME": str(Path(tmp) / "ros"),
               "FASTDDS_BUILTIN_TRANSPORTS": "SHM", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
               "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        command = [str(BIN / "dmo-launch"), "deploy_pusht", f"checkpoint:={run}", "start_enabled:=true",
                   f"stream_rate_hz:={options.stream_rate_hz}"]
        graph = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        pid = None
        started = None
        try:
            for line in graph.stdout:
                lines.append(line)
                if match := re.search(r"started 'policy' \(pid (\d+)", line):
                    pid = int(match.group(1))
                if "] [policy]: policy " in line and pid is not None:
                    break
            time.sleep(3.0)  # discovery and the first frames
            started, cpu_start = time.monotonic(), cpu_seconds(pid)
            time.sleep(options.seconds)
            cpu_used = cpu_seconds(pid) - cpu_start
            elapsed = time.monotonic() - started
        finally:
            graph.send_signal(signal.SIGINT)
            rest, _ = graph.communicate(timeout=60)
            lines.append(rest)
    output = "".join(lines)
    final = re.search(r"final statistics: (.*); sent a zero command", output)
    if final is None or started is None:
        print(output)
        print("benchmark failed: no final statistics from the policy node")
        return 1
    print(f"policy node over {elapsed:.0f} s (plus start-up): {final.group(1)}")
    print(f"policy node CPU: {cpu_used:.2f} s in {elapsed:.1f} s = {100 * cpu_used / elapsed:.1f} % of one core "
          "(after start-up)")
    p99 = float(re.search(r"camera-to-command p50 [\d.]+ ms, p99 ([\d.]+) ms", final.group(1)).group(1))
    print(f"goal camera-to-command p99 <= 10 ms: {'met' if p99 <= 10.0 else 'NOT met'} ({p99:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
