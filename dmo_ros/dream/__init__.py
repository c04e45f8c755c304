"""Dreaming: imagined world-model rollouts to watch, with hallucination flags (plain Python + PyTorch, no ROS).

- :mod:`.rollouts` — :class:`Dreamer` (B rollouts from a real start window), :class:`StartCatalog` (start windows
  of a dataset), the action sources (:class:`PolicyActions`, :class:`RecordedActions`, :class:`ExternalActions`)
  and the hallucination flag (spread of K denoising seeds).
- :mod:`.views` — tiled frames and the reward/value strip plot the dream node publishes.
- :mod:`.foxglove_view` — the same streams over a Foxglove websocket and into an MCAP file.
- :mod:`.strip` — ``dmo-dream-strip``: a real / imagined PNG strip and a GIF.
- :mod:`.flags` — ``dmo-dream-flags``: does the flag rise with the horizon and rank the real error?
"""

from dmo_ros.dream.rollouts import (
    DreamConfig,
    Dreamer,
    DreamStart,
    DreamStep,
    ExternalActions,
    PolicyActions,
    RecordedActions,
    StartCatalog,
)

__all__ = ["DreamConfig", "DreamStart", "DreamStep", "Dreamer", "ExternalActions", "PolicyActions",
           "RecordedActions", "StartCatalog"]
