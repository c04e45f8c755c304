"""The dream streams for Foxglove, without ROS: a websocket server and / or an MCAP file (``foxglove-sdk``).

The same streams as the dream node's ROS topics, under the same names:

- ``/dream/imagined`` and ``/dream/real``: ``foxglove.RawImage`` (rgb8, the tiled rollouts);
- ``/dream/step``: one JSON message per rollout and step (step, rollout, action, reward, value, spread,
  off_data) — plot any field in Foxglove's Plot panel (``/dream/step.reward``).

The server binds 127.0.0.1 by default (the viewer runs on the same machine, or reaches it through an SSH
tunnel: ``ssh -L 8765:localhost:8765 robot``); binding another address is an explicit choice. Each view has
its own ``foxglove.Context``, so two views (or tests) never share channels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

STEP_SCHEMA = {
    "type": "object",
    "properties": {
        "step": {"type": "integer"}, "rollout": {"type": "integer"},
        "action": {"type": "array", "items": {"type": "number"}},
        "reward": {"type": "number"}, "value": {"type": "number"}, "spread": {"type": "number"},
        "off_data": {"type": "boolean"}, "start": {"type": "string"},
    },
}
"""JSON schema of ``/dream/step`` (Foxglove shows the fields and plots the numbers)."""

TOPICS = ("/dream/imagined", "/dream/real", "/dream/step")


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None  # JSON has no NaN: null


class FoxgloveView:
    """Serve the dream streams over a Foxglove websocket (``port`` >= 0; 0 picks a free port) and / or write
    them to an MCAP file (``mcap_path``). ``port`` None: no server."""

    def __init__(self, port: int | None = 8765, host: str = "127.0.0.1", mcap_path: Path | str | None = None,
                 frame_id: str = "dream") -> None:
        import foxglove
        from foxglove.channels import RawImageChannel

        self.context = foxglove.Context()
        self.frame_id = frame_id
        self.server = None
        self.mcap = None
        self.images = {name: RawImageChannel(f"/dream/{name}", context=self.context) for name in ("imagined", "real")}
        self.steps = foxglove.Channel("/dream/step", schema=STEP_SCHEMA, message_encoding="json", context=self.context)
        if port is not None:  # first: a port in use fails here (RuntimeError) before any file is created
            self.server = foxglove.start_server(name="dmo_ros dream", host=host, port=port, context=self.context)
        if mcap_path:
            path = Path(mcap_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.mcap = foxglove.open_mcap(str(path), allow_overwrite=True, context=self.context)
        self.counts = dict.fromkeys(TOPICS, 0)
        """Messages logged per topic."""

    @property
    def port(self) -> int | None:
        """The port the server listens on (the chosen one when 0 was asked for), or None without a server."""
        return self.server.port if self.server is not None else None

    def log_image(self, name: str, image: np.ndarray, stamp_ns: int) -> None:
        """An (H, W, 3) uint8 RGB image on ``/dream/<name>`` (imagined or real)."""
        from foxglove.messages import RawImage, Timestamp

        image = np.ascontiguousarray(image, dtype=np.uint8)
        height, width = image.shape[:2]
        message = RawImage(timestamp=Timestamp(sec=stamp_ns // 1_000_000_000, nsec=stamp_ns % 1_000_000_000),
                           frame_id=self.frame_id, width=width, height=height, encoding="rgb8", step=width * 3,
                           data=image.tobytes())
        self.images[name].log(message, log_time=stamp_ns)
        self.counts[f"/dream/{name}"] += 1

    def log_step(self, stamp_ns: int, step: int, rollout: int, action: list[float], reward: float, value: float,
                 spread: float, off_data: bool, start: str = "") -> None:
        """One rollout's step on ``/dream/step``."""
        message = {"step": int(step), "rollout": int(rollout), "action": [float(a) for a in action],
                   "reward": _number(reward), "value": _number(value), "spread": _number(spread),
                   "off_data": bool(off_data), "start": start}
        self.steps.log(json.dumps(message), log_time=stamp_ns)
        self.counts["/dream/step"] += 1

    def close(self) -> None:
        """Stop the server and finish the MCAP file (its summary and index are written here)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.mcap is not None:
            self.mcap.close()
            self.mcap = None


__all__ = ["STEP_SCHEMA", "TOPICS", "FoxgloveView"]
