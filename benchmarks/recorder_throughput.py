"""Recorder throughput: a camera-sized load against the real ``recorder`` process.

Starts ``recorder`` as its own process and a publisher process (this file with
``--publisher``) that sends 640x480 rgb8 images at 30 Hz, geometry_msgs/TwistStamped
actions at 5 Hz and dmo_msgs/Intent at 5 Hz for ``--seconds``, once the recorder has
subscribed to all three. Then stops the recorder with SIGINT and prints, per topic,
messages sent / recorded and drops, the recorder's CPU use in % of one core (utime+stime
from /proc/<pid>/stat over the publishing window) and the MB/s it wrote.

    .venv/bin/python benchmarks/recorder_throughput.py --seconds 60

Goal: zero drops, under 25 % of one core. Each run uses a private DDS domain over
shared memory (like the tests) and a temporary output folder (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Fast DDS's built-in shared-memory transport has 512 KB segments: a 900 KB best-effort
# image is fragmented and most frames are lost (measured: ~70 % of 640x480 @ 30 Hz, with
# the recorder at 7 % CPU, i.e. lost in transport, not in the recorder). A camera
# deployment on one machine gives the transport room for whole frames; so does this run.
LARGE_SHM_PROFILE = REPO / "config" / "fastdds" / "large_shm.xml"
BIN = Path(sys.executable).parent
TOPICS = ("/camera/image", "/action", "/intent")


def publisher(args: argparse.Namespace) -> int:
    """The load: runs in its own process (``--publisher``); prints JSON lines."""
    import numpy as np
    import rclpy
    from geometry_msgs.msg import TwistStamped
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from dmo_msgs.msg import Intent
    from dmo_ros.nodes.template import qos_profile

    rclpy.init()
    node = Node("throughput_publisher")
    image_pub = node.create_publisher(Image, "/camera/image", qos_profile(args.image_qos))
    action_pub = node.create_publisher(TwistStamped, "/action", qos_profile("reliable"))
    intent_pub = node.create_publisher(Intent, "/intent", qos_profile("reliable"))
    publishers = (image_pub, action_pub, intent_pub)
    deadline = time.monotonic() + 60
    while min(p.get_subscription_count() for p in publishers) == 0:
        if time.monotonic() > deadline:
            print(json.dumps({"error": "the recorder did not subscribe to all topics within 60 s"}), flush=True)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.2)  # let the last subscription settle before the clock starts
    pixels = np.random.default_rng(0).integers(0, 255, (args.height, args.width, 3), np.uint8)
    image = Image(height=args.height, width=args.width, encoding="rgb8", is_bigendian=0, step=args.width * 3)
    image.header.frame_id = "camera"
    frames = [pixels.tobytes(), np.roll(pixels, 1, axis=1).tobytes()]
    sent = dict.fromkeys(TOPICS, 0)
    rates = {"/camera/image": args.image_hz, "/action": 5.0, "/intent": 5.0}
    print(json.dumps({"started": True}), flush=True)
    start = time.monotonic()
    late = 0.0
    while True:
        now = time.monotonic() - start
        if now >= args.seconds:
            break
        due = {t: int(now * rates[t]) + 1 - sent[t] for t in TOPICS}
        for _ in range(max(due["/camera/image"], 0)):
            image.header.stamp = node.get_clock().now().to_msg()
            image.data = frames[sent["/camera/image"] % 2]
            image_pub.publish(image)
            sent["/camera/image"] += 1
        for _ in range(max(due["/action"], 0)):
            action = TwistStamped()
            action.header.stamp = node.get_clock().now().to_msg()
            action.twist.linear.x = 0.1 * (sent["/action"] % 10)
            action_pub.publish(action)
            sent["/action"] += 1
        for _ in range(max(due["/intent"], 0)):
            intent = Intent(active=(sent["/intent"] // 25) % 2 == 1, milestone=0.0)
            intent.header.stamp = node.get_clock().now().to_msg()
            intent_pub.publish(intent)
            sent["/intent"] += 1
        next_due = min((sent[t]) / rates[t] for t in TOPICS)
        wait = next_due - (time.monotonic() - start)
        if wait > 0:
            time.sleep(wait)
        else:
            late = max(late, -wait)
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": elapsed, "max_late_s": late}), flush=True)
    time.sleep(1.0)  # reliable topics: let the last messages be delivered before exiting
    node.destroy_node()
    rclpy.shutdown()
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def benchmark(args: argparse.Namespace) -> int:
    from dmo_ros.recording import read_manifest

    workdir = Path(tempfile.mkdtemp(prefix="recorder_throughput_"))
    output = Path(args.output) if args.output else workdir / "bags"
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(random.randint(101, 200)),
        ROS_HOME=str(workdir / "ros_home"),
        ROS_LOG_DIR=str(workdir / "ros_log"),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
        RCUTILS_COLORIZED_OUTPUT="0",
    )
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if args.transport == "large-shm":
        env.update(FASTDDS_DEFAULT_PROFILES_FILE=str(LARGE_SHM_PROFILE), RMW_FASTRTPS_USE_QOS_FROM_XML="0")
    else:
        env["FASTDDS_BUILTIN_TRANSPORTS"] = args.transport
    recorder_log: list[str] = []
    recorder = subprocess.Popen(
        [str(BIN / "recorder"), "--ros-args", "-p", f"output:={output}", "-p", f"storage:={args.storage}",
         "-p", f"topics:=[{','.join(TOPICS)}]", "-p", "report_period:=0.0"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    reader = threading.Thread(target=lambda: recorder_log.extend(recorder.stdout), daemon=True)
    reader.start()
    load = subprocess.Popen(
        [sys.executable, __file__, "--publisher", "--seconds", str(args.seconds), "--width", str(args.width),
         "--height", str(args.height), "--image-hz", str(args.image_hz), "--image-qos", args.image_qos],
        env=env, text=True, stdout=subprocess.PIPE, cwd=REPO,
    )
    result: dict = {}
    cpu_start = wall_start = None
    try:
        for line in load.stdout:
            report = json.loads(line)
            if report.get("started"):
                cpu_start, wall_start = cpu_seconds(recorder.pid), time.monotonic()
            elif "sent" in report or "error" in report:
                cpu_end, wall_end = cpu_seconds(recorder.pid), time.monotonic()
                result = report
        load.wait(timeout=30)
    finally:
        if load.poll() is None:
            load.kill()
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        reader.join(timeout=5)
    if "sent" not in result or cpu_start is None:
        print(result.get("error", "the publisher did not finish"), file=sys.stderr)
        print("".join(recorder_log), file=sys.stderr)
        return 1

    (session,) = [p for p in output.iterdir() if p.is_dir()] if not args.output else [
        max((p for p in output.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    ]
    manifest = read_manifest(session)
    recorded = {t: manifest["topics"].get(t, {}).get("count", 0) for t in TOPICS}
    window = wall_end - wall_start
    cpu = 100.0 * (cpu_end - cpu_start) / window
    written = folder_bytes(session) / 1e6
    print(f"recorder throughput: {result['seconds']:.1f} s of {args.width}x{args.height} rgb8 at {args.image_hz:g} Hz "
          f"({args.image_qos}), 5 Hz actions, 5 Hz intent; storage {args.storage}; transport {args.transport}")
    print(f"{'topic':<16}{'sent':>8}{'recorded':>10}{'drops':>8}")
    drops = 0
    for topic in TOPICS:
        dropped = result["sent"][topic] - recorded[topic]
        drops += max(dropped, 0)
        print(f"{topic:<16}{result['sent'][topic]:>8}{recorded[topic]:>10}{dropped:>8}")
    print(f"recorder CPU: {cpu:.1f} % of one core over {window:.1f} s")
    print(f"written: {written:.1f} MB in {len(manifest['splits'])} splits, {written / window:.1f} MB/s")
    print(f"publisher max lateness: {result['max_late_s'] * 1000:.1f} ms")
    verdict = "ok" if drops == 0 and cpu < 25.0 else "MISSED the goal (zero drops, < 25 % of one core)"
    print(f"result: {drops} drops, {cpu:.1f} % CPU - {verdict}")
    if args.keep or args.output:
        print(f"session kept in {session}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if drops == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="publishing time (default 60)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--image-hz", type=float, default=30.0)
    parser.add_argument("--image-qos", default="sensor_data", help="sensor_data (a camera's usual QoS) or reliable")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    parser.add_argument(
        "--transport", default="large-shm",
        help="large-shm (shared memory with 32 MB segments, default) or a FASTDDS_BUILTIN_TRANSPORTS value "
             "(SHM, UDPv4, LARGE_DATA, DEFAULT)",
    )
    parser.add_argument("--output", help="record here and keep the session (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return publisher(args) if args.publisher else benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
