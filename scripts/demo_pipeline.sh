#!/usr/bin/env bash
# The main job (`make demo`): record play data on the Push-T stand-in (in-process on a simulated clock: the same
# rosbag2 recording the live collect graph writes, without waiting on the wall clock; the deploy stage at the end
# runs the live ROS graph), then every offline stage up to a DMO-SAPO
# policy for the task push_region trained in the world model (ladder rung 2), evaluated on the stand-in over 50
# seeded episodes next to the random, zero-action and expert ceilings. Each stage prints its progress and its wall time; the
# times are collected in runs/demo/<session>/stage_times.txt. A re-run of a training stage resumes its run folder.
#
# The world model trains in the background on half the cores while the goal picture, the reward model and the local
# model train on the other half (the local model's recurrent steps use about one core; on 2 cores this takes the
# longer branch's time instead of the sum); its log goes to runs/demo/<session>/world_model.log and its end is
# printed when it finishes.
#
# Usage: scripts/demo_pipeline.sh BIN_DIR SAMPLES BAGS_DIR DATASETS_DIR RUNS_DIR [TASK] [POLICY_SAMPLES]
#   TASK (default push_region): the Push-T task the policy learns and is evaluated on (README "Tasks"); push_region
#   is the highest task the laptop budget learns (README "Ladder"), push_t is the paper's.
#   POLICY_SAMPLES (default 40000): imagined samples of DMO-SAPO (the ladder's push_region rows use 40 k).
# Environment (the test runs the whole job small with them): DEMO_PRESET (default cpu) for every trainer,
# DEMO_POLICY_SETTINGS (default "--batch-size 8 --policy-ema 0.98": 8 imagined episodes per update and the policy's
# weights averaged, the ladder's best rung-2 push_region setting, docs/ladder.md "Averaging the policy's weights"),
# DEMO_WORLD_MODEL_STEPS and DEMO_LOCAL_MODEL_STEPS (default: the preset's) of the two longest trainers,
# DEMO_FINAL_EPISODES (default 50) of the policy's final evaluation, DEMO_REPORT_WINDOWS (64) of the world
# model's fidelity report, DEMO_DEPLOY_EPISODES (5) and DEMO_DEPLOY_SECONDS (15) of the deployment stage.
set -euo pipefail
bin="$1"; samples="$2"; bags="$3"; datasets="$4"; runs_root="$5"; task="${6:-push_region}"; policy_samples="${7:-40000}"
preset="${DEMO_PRESET:-cpu}"
read -r -a policy_settings <<< "${DEMO_POLICY_SETTINGS---batch-size 8 --policy-ema 0.98}"
final_episodes="${DEMO_FINAL_EPISODES:-50}"
report_windows="${DEMO_REPORT_WINDOWS:-64}"; deploy_episodes="${DEMO_DEPLOY_EPISODES:-5}"; deploy_seconds="${DEMO_DEPLOY_SECONDS:-15}"
world_model_steps=(); [[ -n "${DEMO_WORLD_MODEL_STEPS:-}" ]] && world_model_steps=(--steps "$DEMO_WORLD_MODEL_STEPS")
local_model_steps=(); [[ -n "${DEMO_LOCAL_MODEL_STEPS:-}" ]] && local_model_steps=(--steps "$DEMO_LOCAL_MODEL_STEPS")
cores="$(nproc)"; half_cores=$(( cores / 2 > 0 ? cores / 2 : 1 ))

declare -a stage_names=() stage_seconds=()
pipeline_start=$SECONDS
stage() {  # stage NAME COMMAND...: run one stage, print and remember its wall time
  local name="$1"; shift
  local start=$SECONDS
  echo "=== stage $(( ${#stage_names[@]} + 1 )): ${name} ==="
  echo "+ $*"
  "$@"
  local took=$(( SECONDS - start ))
  stage_names+=("$name"); stage_seconds+=("$took")
  printf '=== %s: %d min %02d s ===\n' "$name" $(( took / 60 )) $(( took % 60 ))
}
background_pid=""
# A failed foreground stage stops the background one too (the trainer, then the subshell that times it).
trap '[[ -n "$background_pid" ]] && { pkill -P "$background_pid"; kill "$background_pid"; } 2>/dev/null || true' EXIT
background_stage() {  # background_stage NAME LOG COMMAND...: start one stage on half the cores in the background, its output to LOG
  background_name="$1"; background_log="$2"; shift 2
  echo "=== stage (background, log ${background_log}): ${background_name} ==="
  echo "+ $*"
  (  # the stage's own wall time, not the time until the foreground waits for it
    start="$(date +%s)"; status=0
    OMP_NUM_THREADS="$half_cores" "$@" || status=$?
    echo $(( $(date +%s) - start )) > "${background_log}.seconds"
    exit "$status"
  ) > "$background_log" 2>&1 &
  background_pid=$!
}
wait_background_stage() {  # wait for the background stage, print its log's end and remember its wall time
  echo "=== waiting for the background stage: ${background_name} ==="
  local status=0
  wait "$background_pid" || status=$?
  background_pid=""
  tail -n 25 "$background_log"
  if (( status != 0 )); then
    echo "=== ${background_name} failed (exit ${status}); its log: ${background_log} ===" >&2
    exit "$status"
  fi
  local took; took="$(cat "${background_log}.seconds")"
  stage_names+=("$background_name (background)"); stage_seconds+=("$took")
  printf '=== %s: %d min %02d s ===\n' "$background_name" $(( took / 60 )) $(( took % 60 ))
}

stage "collect ${samples} samples of play" "$bin/dmo-collect-fast" --robot pusht --samples "$samples" --output "$bags"
session="$(ls -td "$bags"/*/ | head -n 1)"; session="${session%/}"; name="$(basename "$session")"
data="$datasets/$name"; runs="$runs_root/$name"
mkdir -p "$runs"

stage "bag info" "$bin/dmo-bag-info" "$session"
stage "convert" "$bin/dmo-convert" "$session" -o "$data" --robot pusht
background_stage "world model (${preset})" "$runs/world_model.log" \
  "$bin/dmo-train-world-model" "$data" --run-dir "$runs/world_model" --preset "$preset" --progress false \
  "${world_model_steps[@]}"
export OMP_NUM_THREADS="$half_cores"  # the foreground stages on the other half
stage "goal image" "$bin/dmo-goal-image" --robot pusht --size 64 64 -o "$runs/goal.png"
stage "reward model (${preset})" "$bin/dmo-train-reward" "$data" --run-dir "$runs/reward" --preset "$preset" \
  --goal "$runs/goal.png"
stage "reward evaluation" "$bin/dmo-reward-eval" "$runs/reward" --dataset "$data" --goal-image "$runs/goal.png" \
  --out "$runs/reward/eval"
stage "local model (${preset})" "$bin/dmo-train-local-model" "$data" --reward-run "$runs/reward" --goal "$runs/goal.png" \
  --run-dir "$runs/local_model" --preset "$preset" "${local_model_steps[@]}"
wait_background_stage
unset OMP_NUM_THREADS
stage "world model report" "$bin/dmo-world-model-report" "$runs/world_model" --dataset "$data" \
  --windows "$report_windows" --out "$runs/world_model/report"
# Each trainer above printed its gate (dmo-gate); at the cpu preset's budget not every model passes yet, and the
# demo trains the policy anyway to show the whole pipeline (--force-gates marks the refused gates as forced).
# The run ends with its final evaluation: 50 seeded stand-in episodes of the task beside the random, zero-action
# and scripted-expert ceilings (final_eval.md).
stage "DMO-SAPO policy (${preset}, ${task})" "$bin/dmo-train-policy" dmo "$data" --world-model "$runs/world_model" \
  --reward-run "$runs/reward" --goal "$runs/goal.png" --local-model "$runs/local_model" --run-dir "$runs/dmo" \
  --preset "$preset" --task "$task" --max-samples "$policy_samples" "${policy_settings[@]}" \
  --final-eval-episodes "$final_episodes" --force-gates
stage "deployment through ROS" scripts/demo_deploy.sh "$bin" "$runs/dmo" "$data" "$deploy_episodes" "$deploy_seconds" "$task"

{
  echo "stage times of $runs (this machine: $(nproc) cores)"
  for i in "${!stage_names[@]}"; do
    printf '%-28s %4d min %02d s\n' "${stage_names[$i]}" $(( stage_seconds[i] / 60 )) $(( stage_seconds[i] % 60 ))
  done
  total=$(( SECONDS - pipeline_start ))
  printf '%-28s %4d min %02d s\n' "total" $(( total / 60 )) $(( total % 60 ))
} | tee "$runs/stage_times.txt"
echo "=== the DMO-SAPO policy on the stand-in (${task}, 50 episodes; $runs/dmo/final_eval.md) ==="
cat "$runs/dmo/final_eval.md"
