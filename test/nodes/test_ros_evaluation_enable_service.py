"""The evaluator's call of the policy node's ``enable`` service survives a lost response, over DDS in one process.

Fast DDS drops a service response when the server has not yet matched the client's response reader (it waits
100 ms; ros2/rmw_fastrtps#390, #467): on a loaded machine the first call right after the service turns ready can go
unanswered. Here a real ``SetBool`` server drops the responses it is told to, and the evaluator must resend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import SetBool

from dmo_ros.nodes.ros_evaluation import EvaluationError, Evaluator

pytestmark = pytest.mark.ros


class LossyEnableServer:
    """An ``enable`` server whose first ``drop`` responses are never sent (as Fast DDS drops them)."""

    def __init__(self, drop: int) -> None:
        self.node = rclpy.create_node("lossy_policy")
        self.requests: list[bool] = []
        self.drop = drop
        service = self.node.create_service(SetBool, "enable", self.on_request)
        send_response = service.send_response

        def maybe_send(response, header) -> None:
            if len(self.requests) > self.drop:
                send_response(response, header)

        service.send_response = maybe_send
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def on_request(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.requests.append(request.data)
        response.success = True
        return response

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def evaluator(ros_env, monkeypatch) -> Iterator[Evaluator]:
    for name in ("ROS_DOMAIN_ID", "ROS_LOG_DIR", "FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE"):
        monkeypatch.setenv(name, ros_env[name])
    rclpy.init()
    try:
        node = Evaluator()
        yield node
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def ready(evaluator: Evaluator) -> None:
    evaluator.spin_until(evaluator.enable_client.service_is_ready, 30.0, "enable service")


def test_a_lost_enable_response_is_answered_by_resending_the_request(evaluator):
    server = LossyEnableServer(drop=2)
    try:
        ready(evaluator)
        evaluator.set_enabled(True, lambda: True, timeout=30.0, resend_after=0.5)
    finally:
        server.close()
    assert server.requests == [True, True, True]


def test_an_enable_service_that_never_answers_is_named_after_the_timeout(evaluator):
    server = LossyEnableServer(drop=10**6)
    try:
        ready(evaluator)
        with pytest.raises(EvaluationError, match=r"no answer of the policy node's enable service within 2 s"):
            evaluator.set_enabled(False, lambda: True, timeout=2.0, resend_after=0.5)
    finally:
        server.close()
    assert len(server.requests) >= 2 and not any(server.requests)


def test_a_graph_that_stops_while_waiting_is_named_not_retried(evaluator):
    server = LossyEnableServer(drop=10**6)
    try:
        ready(evaluator)
        with pytest.raises(EvaluationError, match="the deploy graph stopped"):
            evaluator.set_enabled(True, lambda: False, timeout=30.0, resend_after=0.5)
    finally:
        server.close()
    assert len(server.requests) <= 1
