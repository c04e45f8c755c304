"""Robot profiles (``config/robots/<robot>.yaml``): topics, control rate, and the action mapping.

The mapping from message fields to the action vector is configuration, not code: a
profile names the action message type and, per action component, the field path in the
message (``twist.linear.x``), its name, unit and scale (the dataset stores value × scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dmo_ros.resources import config_dir

_PROFILE_KEYS = {"description", "rate_hz", "topics", "action"}
_ACTION_KEYS = {"message", "fields", "names", "units", "scale", "semantics", "limits"}
TOPIC_ROLES = ("camera", "action", "intent", "reset")


class ProfileError(ValueError):
    """A robot profile that is missing or malformed; the message says what to fix."""


def _finite_numbers(path: Path, what: str, values: Any) -> tuple[float, ...]:
    """``values`` as floats; ``ProfileError`` naming ``what`` for one that is not a number or not finite (nan
    passes every later comparison, so it would surface far away as a wrong diagnosis)."""
    if not isinstance(values, list | tuple):
        raise ProfileError(f"{path}: {what} must be a list of numbers, got {values!r}")
    numbers = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ProfileError(f"{path}: {what} must be numbers, got {value!r}") from None
        if not math.isfinite(number):
            raise ProfileError(f"{path}: {what} must be finite, got {number}")
        numbers.append(number)
    return tuple(numbers)


@dataclass(frozen=True)
class ActionSpec:
    """How an action message becomes the action vector."""

    message: str
    """The action message type, e.g. geometry_msgs/msg/TwistStamped."""
    fields: tuple[str, ...]
    """Field path in the message for each component, e.g. twist.linear.x."""
    names: tuple[str, ...]
    """Name of each component."""
    units: tuple[str, ...]
    """Unit of each component (after scaling)."""
    scale: tuple[float, ...]
    """Factor applied to each field value."""
    semantics: str
    """What the action means physically (stored in the dataset's metadata)."""
    limits: tuple[float, ...] | None = None
    """Largest |action| per component the robot may be commanded (in the action's units); the policy node
    clamps to it. None: no robot-side limit beyond the policy's own."""

    def vector(self, message: Any) -> list[float]:
        """The scaled action components read from a deserialized message."""
        values = []
        for path, factor in zip(self.fields, self.scale, strict=True):
            value = message
            for part in path.split("."):
                value = getattr(value, part)
            values.append(float(value) * factor)
        return values

    def write(self, message: Any, action: Any) -> Any:
        """Set the message fields from an action vector (value / scale: the inverse of :meth:`vector`); returns
        ``message``. Fields the action does not name keep their values (zero in a fresh message)."""
        if len(action) != len(self.fields):
            raise ValueError(f"an action for {self.message} has {len(self.fields)} components, got {len(action)}")
        for path, factor, value in zip(self.fields, self.scale, action, strict=True):
            *parents, name = path.split(".")
            target = message
            for part in parents:
                target = getattr(target, part)
            setattr(target, name, float(value) / factor)
        return message


@dataclass(frozen=True)
class RobotProfile:
    name: str
    description: str
    rate_hz: float
    topics: dict[str, str]
    action: ActionSpec


def load_robot_profile(name_or_path: str | Path) -> RobotProfile:
    """A profile by robot name (``config/robots/NAME.yaml``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir() / "robots" / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (config_dir() / "robots").glob("*.yaml"))
            raise ProfileError(f"no robot profile '{name_or_path}' in {path.parent}; robots: {', '.join(known)}")
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a robot profile is a mapping")
    unknown = set(raw) - _PROFILE_KEYS
    if unknown:
        allowed = ", ".join(sorted(_PROFILE_KEYS))
        raise ProfileError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
    action = raw.get("action") or {}
    unknown = set(action) - _ACTION_KEYS
    if unknown:
        raise ProfileError(f"{path}: action: unknown key(s) {', '.join(sorted(unknown))}")
    fields = tuple(action.get("fields") or ())
    names = tuple(action.get("names") or fields)
    units = tuple(action.get("units") or [""] * len(fields))
    scale = _finite_numbers(path, "action scale factors", action.get("scale") or [1.0] * len(fields))
    if not fields or not action.get("message") or not len(fields) == len(names) == len(units) == len(scale):
        raise ProfileError(f"{path}: action needs a message and fields, with names, units and scale of the same length")
    topics = {role: str(topic) for role, topic in (raw.get("topics") or {}).items()}
    missing = [role for role in ("camera", "action") if not topics.get(role)]
    if missing or set(topics) - set(TOPIC_ROLES):
        raise ProfileError(f"{path}: topics needs camera and action (optional: intent, reset); got {sorted(topics)}")
    [rate] = _finite_numbers(path, "rate_hz", [raw.get("rate_hz", 5.0)])
    if rate <= 0:
        raise ProfileError(f"{path}: rate_hz must be positive, got {rate:g}")
    limits = action.get("limits")
    if limits is not None:
        limits = _finite_numbers(path, "action limits", limits)
        if len(limits) != len(fields) or not all(v > 0 for v in limits):
            raise ProfileError(f"{path}: action limits need one positive number per field ({len(fields)})")
    if any(factor == 0 for factor in scale):
        raise ProfileError(f"{path}: action scale factors must be non-zero")
    spec = ActionSpec(str(action["message"]), fields, names, units, scale, str(action.get("semantics", "")).strip(),
                      limits)
    return RobotProfile(path.stem, str(raw.get("description", "")), rate, topics, spec)
