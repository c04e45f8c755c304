"""Graph definitions: parsing, validation messages, argument typing and resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dmo_ros.graphs.definition import (
    GraphError,
    available_graphs,
    load_graph,
    parse_graph,
    parse_launch_arguments,
    resolve_graph,
)

GRAPH = {
    "description": "test graph",
    "arguments": {
        "robot": {"default": "pusht", "choices": ["pusht", "go2"], "description": "which robot"},
        "rate": {"default": 5.0, "description": "a float"},
        "count": {"default": 3, "description": "an int"},
        "verbose": {"default": False, "description": "a bool"},
        "topic": {"default": "/camera/image", "description": "a string"},
    },
    "nodes": [
        {"name": "sim", "executable": "sim", "when": {"robot": "pusht"},
         "parameters": {"rate": "$(arg rate)"}},
        {"name": "worker", "executable": "worker", "required": True,
         "parameters": {"count": "$(arg count)", "verbose": "$(arg verbose)", "label": "$(arg robot)-$(arg count)",
                        "topics": ["$(arg topic)", "/intent"]},
         "remappings": {"camera/image": "$(arg topic)"}},
    ],
}


def parse(raw: dict):
    return parse_graph(raw, name="test", source=Path("test.yaml"))


def test_every_shipped_graph_parses():
    assert {"smoke", "collect", "deploy_pusht", "deploy_go2", "dream"} <= set(available_graphs())
    for name in available_graphs():
        graph = load_graph(name)
        assert graph.nodes, name
        resolve_graph(graph, {})  # the defaults resolve


def test_defaults_resolve_with_types_and_conditions():
    nodes = resolve_graph(parse(GRAPH), {})
    assert [n.name for n in nodes] == ["sim", "worker"]
    assert nodes[0].parameters == {"rate": 5.0}
    worker = nodes[1]
    assert worker.required
    assert worker.parameters == {
        "count": 3, "verbose": False, "label": "pusht-3", "topics": ["/camera/image", "/intent"],
    }
    assert worker.remappings == (("camera/image", "/camera/image"),)


def test_command_line_arguments_are_typed_and_change_the_nodes():
    graph = parse(GRAPH)
    values = parse_launch_arguments(graph, ["robot:=go2", "rate:=10", "verbose:=true", "topic:=/front/image"])
    assert values == {"robot": "go2", "rate": 10.0, "count": 3, "verbose": True, "topic": "/front/image"}
    nodes = resolve_graph(graph, values)
    assert [n.name for n in nodes] == ["worker"]  # sim runs only for pusht
    assert nodes[0].remappings == (("camera/image", "/front/image"),)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["colour:=red"], "unknown launch argument 'colour' for graph 'test'; it takes: robot, rate, count"),
        (["robot=go2"], "launch arguments are written name:=value; got 'robot=go2'"),
        (["robot:=spot"], "argument 'robot' must be one of pusht, go2; got 'spot'"),
        (["rate:=fast"], "argument 'rate' expects a number; got 'fast'"),
        (["count:=2.5"], "argument 'count' expects an integer; got '2.5'"),
        (["verbose:=maybe"], "argument 'verbose' expects true or false; got 'maybe'"),
    ],
)
def test_bad_launch_arguments_are_rejected_clearly(tokens, message):
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_launch_arguments(parse(GRAPH), tokens)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda g: g.update(nodez=[]), "unknown key\\(s\\) nodez"),
        (lambda g: g["nodes"][0].update(paramters={}), "nodes\\[0\\]: unknown key\\(s\\) paramters"),
        (lambda g: g["nodes"][0].update(parameters={"x": "$(arg nope)"}), "uses argument 'nope'"),
        (lambda g: g["nodes"][1].update(name="sim"), "repeated: sim"),
        (lambda g: g["arguments"]["robot"].update(default="spot"), "must be one of pusht, go2"),
        (lambda g: g["arguments"]["rate"].pop("description"), "needs a 'default' and a 'description'"),
        (lambda g: g["nodes"][0].pop("executable"), "needs a 'name' and an 'executable'"),
    ],
)
def test_mistakes_in_a_definition_name_the_key(mutate, message):
    raw = yaml.safe_load(yaml.safe_dump(GRAPH))
    mutate(raw)
    with pytest.raises(GraphError, match=message):
        parse(raw)


def test_unknown_graph_lists_the_known_ones():
    with pytest.raises(GraphError, match="no graph named 'colect'.*graphs: collect"):
        load_graph("colect")


def test_config_dir_override_is_read_at_call_time(tmp_path, monkeypatch):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "mine.yaml").write_text(yaml.safe_dump(GRAPH))
    monkeypatch.setenv("DMO_ROS_CONFIG_DIR", str(tmp_path))
    assert available_graphs() == ["mine"]
    assert load_graph("mine").argument("rate").default == 5.0


def test_a_default_can_depend_on_another_argument():
    raw = yaml.safe_load(yaml.safe_dump(GRAPH))
    raw["arguments"]["action_topic"] = {
        "default": {"robot": {"pusht": "/servo_node/delta_twist_cmds", "go2": "/cmd_vel"}},
        "description": "per-robot standard topic",
    }
    raw["nodes"][1]["remappings"]["action"] = "$(arg action_topic)"
    graph = parse(raw)
    assert graph.argument("action_topic").default == "auto"
    worker = {n.name: n for n in resolve_graph(graph, {"robot": "go2"})}["worker"]
    assert ("action", "/cmd_vel") in worker.remappings
    worker = {n.name: n for n in resolve_graph(graph, {})}["worker"]
    assert ("action", "/servo_node/delta_twist_cmds") in worker.remappings
    chosen = resolve_graph(graph, parse_launch_arguments(graph, ["robot:=go2", "action_topic:=/my/cmd"]))
    assert ("action", "/my/cmd") in chosen[0].remappings


@pytest.mark.parametrize(
    ("default", "message"),
    [
        ({"robot": {"pusht": "/a"}}, "no default for robot=go2"),
        ({"rate": {"5.0": "/a"}}, "an earlier argument that has choices"),
        ({"nope": {"x": "/a"}}, "an earlier argument that has choices"),
    ],
)
def test_a_dependent_default_must_cover_the_other_arguments_choices(default, message):
    raw = yaml.safe_load(yaml.safe_dump(GRAPH))
    raw["arguments"]["action_topic"] = {"default": default, "description": "d"}
    with pytest.raises(GraphError, match=message):
        parse(raw)
