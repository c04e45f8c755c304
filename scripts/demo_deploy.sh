#!/usr/bin/env bash
# The main job's last stage: deploy its trained Push-T policy through the deploy_pusht graph (policy node +
# stand-in over DDS, as on the robot), then print the evaluation table: the policy through ROS next to the direct
# evaluation on the same seeded episodes, and the random floor.
#
# Usage: scripts/demo_deploy.sh BIN_DIR POLICY_RUN DATASET [EPISODES] [SECONDS] [TASK]
#   EPISODES (default 5) stand-in episodes of 100 steps (20 s each through ROS);
#   SECONDS (default 15, start-up included) of a live deployment first, whose node log shows commands, latency and rates.
#   TASK (default push_t): the Push-T task the stand-in plays (its resets and success rule).
set -euo pipefail
bin="$1"; policy="$2"; data="$3"; episodes="${4:-5}"; seconds="${5:-15}"; task="${6:-push_t}"

echo "--- live deployment: ${seconds} s of dmo-launch deploy_pusht (enabled at start) ---"
# timeout sends SIGINT like Ctrl-C; the graph stops cleanly (the node sends a zero command, prints its statistics).
timeout --preserve-status -s INT "$seconds" "$bin/dmo-launch" deploy_pusht checkpoint:="$policy" start_enabled:=true task:="$task" \
  | grep -E "\[dmo-launch\]|\[policy\]"

echo "--- evaluation through ROS and direct, ${episodes} episodes each ---"
"$bin/dmo-eval-policy" "$policy" --mode both --compare-random --dataset "$data" --episodes "$episodes" \
  --task "$task" --max-steps 100 --out "$policy/deploy_eval.json"
