"""Graph definitions: the one source of truth for what each launch graph starts.

A graph (collect, deploy_pusht, deploy_go2, dream, smoke) is a YAML file in
``config/graphs``: its launch arguments with defaults, and its nodes with parameters,
remappings and conditions. Both the ROS 2 launch files (``launch/*.launch.py``) and the
pip-only runner (``dmo-launch``) turn a definition into processes through
``resolve_graph``, so the two always start the same nodes with the same parameters.

Plain Python: no rclpy, no launch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dmo_ros.resources import PACKAGE, config_dir

AUTO = "auto"
"""The default of an argument whose default depends on another argument."""

_ARGUMENT_REFERENCE = re.compile(r"\$\(arg ([A-Za-z_][A-Za-z0-9_]*)\)")
_GRAPH_KEYS = {"description", "arguments", "nodes"}
_ARGUMENT_KEYS = {"default", "description", "choices"}
_NODE_KEYS = {
    "name", "executable", "package", "description", "required", "when",
    "parameters", "remappings", "namespace",
}


class GraphError(ValueError):
    """A graph definition or a launch argument is wrong; the message says what to fix."""


@dataclass(frozen=True)
class LaunchArgument:
    """One ``name:=value`` argument of a graph."""

    name: str
    """Argument name, as typed after the graph name (``robot:=go2``)."""
    default: Any
    """Default value; its YAML type (bool, int, float, str) is the argument's type."""
    description: str
    """What the argument changes, shown by ``dmo-launch GRAPH --show-args``."""
    choices: tuple[str, ...] = ()
    """Allowed values (as strings); empty means any value of the argument's type."""
    depends_on: str = ""
    """For a default that depends on another argument: that argument's name (the default is ``auto``)."""
    default_by: dict[str, Any] = field(default_factory=dict)
    """With ``depends_on``: the default for each value of that argument."""

    def parse(self, value: Any) -> Any:
        """Convert a command-line string (or a YAML value) to the argument's type, or raise GraphError."""
        typed = coerce(value, self.default, f"argument '{self.name}'")
        if self.choices and as_text(typed) not in self.choices:
            raise GraphError(
                f"argument '{self.name}' must be one of {', '.join(self.choices)}; got '{value}'"
            )
        return typed


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph, before its arguments are substituted."""

    name: str
    """ROS node name (also the output prefix of the pip-only runner)."""
    executable: str
    """Executable of ``package`` (``ros2 run PACKAGE EXECUTABLE``)."""
    package: str = PACKAGE
    """ROS package that installs the executable."""
    description: str = ""
    """What the node does in this graph."""
    required: bool = False
    """When a required node exits, the whole graph shuts down (non-zero if it failed)."""
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Start the node only if every named argument has one of the listed values."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """ROS parameters; a value may reference arguments as ``$(arg NAME)``."""
    remappings: dict[str, str] = field(default_factory=dict)
    """Topic remappings ``from: to``; either side may reference arguments."""
    namespace: str = ""
    """ROS namespace of the node; empty for the root namespace."""


@dataclass(frozen=True)
class ResolvedNode:
    """A node with every argument substituted: what a launcher starts."""

    name: str
    executable: str
    package: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...]
    required: bool
    namespace: str


@dataclass(frozen=True)
class GraphSpec:
    """A whole graph as read from its YAML file."""

    name: str
    """Graph name (the YAML file's stem)."""
    description: str
    """What the graph is for."""
    arguments: tuple[LaunchArgument, ...]
    """Launch arguments, in file order."""
    nodes: tuple[NodeSpec, ...]
    """Nodes, in start order."""
    source: Path
    """The YAML file it came from."""

    def argument(self, name: str) -> LaunchArgument:
        for argument in self.arguments:
            if argument.name == name:
                return argument
        raise GraphError(self.unknown_argument_message(name))

    def unknown_argument_message(self, name: str) -> str:
        known = ", ".join(a.name for a in self.arguments) or "(none)"
        return f"unknown launch argument '{name}' for graph '{self.name}'; it takes: {known}"


def coerce(value: Any, like: Any, what: str) -> Any:
    """Convert ``value`` (a string from the command line or a YAML scalar) to ``like``'s type."""
    parsed = yaml.safe_load(value) if isinstance(value, str) else value
    if isinstance(like, bool):
        if isinstance(parsed, bool):
            return parsed
        raise GraphError(f"{what} expects true or false; got '{value}'")
    if isinstance(like, int):
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
        raise GraphError(f"{what} expects an integer; got '{value}'")
    if isinstance(like, float):
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return float(parsed)
        raise GraphError(f"{what} expects a number; got '{value}'")
    return str(value)


def available_graphs() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in (config_dir() / "graphs").glob("*.yaml"))


def load_graph(name_or_path: str | Path) -> GraphSpec:
    """Read a graph by name (from ``config/graphs``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = config_dir() / "graphs" / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(available_graphs()) or "(none)"
            raise GraphError(f"no graph named '{name_or_path}' in {path.parent}; graphs: {known}")
    elif not path.is_file():
        raise GraphError(f"graph file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise GraphError(f"{path}: not valid YAML: {error}") from error
    return parse_graph(raw, name=path.name.removesuffix(path.suffix), source=path)


def parse_graph(raw: Any, name: str, source: Path) -> GraphSpec:
    """Validate a graph's YAML content; every mistake names the file and the key."""
    where = str(source)
    raw = _mapping(raw, where)
    _reject_unknown(raw, _GRAPH_KEYS, where)
    arguments = []
    for arg_name, arg_raw in _mapping(raw.get("arguments") or {}, f"{where}: arguments").items():
        arg_where = f"{where}: argument '{arg_name}'"
        arg_raw = _mapping(arg_raw, arg_where)
        _reject_unknown(arg_raw, _ARGUMENT_KEYS, arg_where)
        if "default" not in arg_raw or "description" not in arg_raw:
            raise GraphError(f"{arg_where} needs a 'default' and a 'description'")
        choices = tuple(as_text(c) for c in arg_raw.get("choices") or ())
        argument = LaunchArgument(arg_name, arg_raw["default"], str(arg_raw["description"]), choices)
        if isinstance(arg_raw["default"], dict):
            argument = _dependent_default(argument, arguments, arg_where)
        argument.parse(argument.default)  # a default outside its own choices is a mistake too
        arguments.append(argument)
    graph_arguments = {a.name for a in arguments}

    nodes = []
    for index, node_raw in enumerate(raw.get("nodes") or []):
        node_where = f"{where}: nodes[{index}]"
        node_raw = _mapping(node_raw, node_where)
        _reject_unknown(node_raw, _NODE_KEYS, node_where)
        if "name" not in node_raw or "executable" not in node_raw:
            raise GraphError(f"{node_where} needs a 'name' and an 'executable'")
        when = {
            str(k): tuple(as_text(v) for v in (vs if isinstance(vs, list) else [vs]))
            for k, vs in _mapping(node_raw.get("when") or {}, f"{node_where}: when").items()
        }
        node = NodeSpec(
            name=str(node_raw["name"]),
            executable=str(node_raw["executable"]),
            package=str(node_raw.get("package", PACKAGE)),
            description=str(node_raw.get("description", "")),
            required=bool(node_raw.get("required", False)),
            when=when,
            parameters=dict(_mapping(node_raw.get("parameters") or {}, f"{node_where}: parameters")),
            remappings={
                str(k): str(v)
                for k, v in _mapping(node_raw.get("remappings") or {}, f"{node_where}: remappings").items()
            },
            namespace=str(node_raw.get("namespace", "")),
        )
        referenced = set(when) | set(_references(node.parameters)) | set(_references(node.remappings))
        for missing in sorted(referenced - graph_arguments):
            raise GraphError(
                f"{node_where} ('{node.name}') uses argument '{missing}', which the graph does not declare"
            )
        nodes.append(node)
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GraphError(f"{where}: node names must be unique; repeated: {', '.join(duplicates)}")
    return GraphSpec(name, str(raw.get("description", "")).strip(), tuple(arguments), tuple(nodes), source)


def parse_launch_arguments(graph: GraphSpec, tokens: list[str]) -> dict[str, Any]:
    """``['robot:=go2', ...]`` → every argument's typed value (defaults filled in)."""
    values = {a.name: a.default for a in graph.arguments}
    for token in tokens:
        name, separator, text = token.partition(":=")
        if not separator or not name:
            raise GraphError(f"launch arguments are written name:=value; got '{token}'")
        values[name] = graph.argument(name).parse(text)
    return values


def resolve_arguments(graph: GraphSpec, values: dict[str, Any]) -> dict[str, Any]:
    """Every argument's effective typed value: given values (strings or typed), else defaults.

    An ``auto`` default that depends on another argument takes that argument's entry.
    Unknown names are rejected.
    """
    typed = {}
    for argument in graph.arguments:
        value = argument.parse(values.get(argument.name, argument.default))
        if argument.depends_on and value == AUTO:
            value = argument.default_by[as_text(typed[argument.depends_on])]
        typed[argument.name] = value
    for name in values:
        if name not in typed:
            raise GraphError(graph.unknown_argument_message(name))
    return typed


def resolve_graph(graph: GraphSpec, values: dict[str, Any]) -> list[ResolvedNode]:
    """The nodes to start for these argument values, with every ``$(arg …)`` substituted."""
    typed = resolve_arguments(graph, values)
    resolved = []
    for node in graph.nodes:
        if any(as_text(typed[arg]) not in allowed for arg, allowed in node.when.items()):
            continue
        resolved.append(
            ResolvedNode(
                name=node.name,
                executable=node.executable,
                package=node.package,
                parameters={k: _substitute(v, typed) for k, v in node.parameters.items()},
                remappings=tuple(
                    (_substitute(k, typed), _substitute(v, typed)) for k, v in node.remappings.items()
                ),
                required=node.required,
                namespace=node.namespace,
            )
        )
    return resolved


def _dependent_default(argument: LaunchArgument, earlier: list[LaunchArgument], where: str) -> LaunchArgument:
    """``default: {robot: {pusht: A, go2: B}}``: the default follows an earlier argument with choices."""
    (depends_on, table), *rest = argument.default.items()
    owner = next((a for a in earlier if a.name == depends_on), None)
    if rest or owner is None or not owner.choices or not isinstance(table, dict):
        raise GraphError(
            f"{where}: a default that depends on another argument is written "
            "{OTHER: {VALUE: DEFAULT, ...}} with OTHER an earlier argument that has choices"
        )
    default_by = {as_text(k): v for k, v in table.items()}
    missing = [c for c in owner.choices if c not in default_by]
    if missing:
        raise GraphError(f"{where}: no default for {depends_on}={', '.join(missing)}")
    return LaunchArgument(argument.name, AUTO, argument.description, argument.choices, depends_on, default_by)


def _substitute(value: Any, values: dict[str, Any]) -> Any:
    """Replace ``$(arg x)``; a value that is only a reference keeps the argument's type."""
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = _ARGUMENT_REFERENCE.fullmatch(value)
    if whole:
        return values[whole.group(1)]
    return _ARGUMENT_REFERENCE.sub(lambda m: as_text(values[m.group(1)]), value)


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [name for k, v in value.items() for name in _references(k) + _references(v)]
    if isinstance(value, list):
        return [name for v in value for name in _references(v)]
    return _ARGUMENT_REFERENCE.findall(value) if isinstance(value, str) else []


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise GraphError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _reject_unknown(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise GraphError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
