#!/usr/bin/env bash
# The reach ladder from nothing (README "The ladder"; its runs: docs/ladder.md, reach_fixed): record the data, train
# every learned part, then rung 0 (true state, learned reward), rung 1 (the stand-in as forward model) and rung 2 (the
# diffusion world model) with DMO-SAPO and its baselines at equal samples, and write the ladder table and the Fig. 3
# plots.
#
# Usage: scripts/ladder_reach.sh BIN_DIR OUT_DIR
#   OUT_DIR gets bags/, datasets/, runs/ (every model and policy run), ladder_reach.md (dmo-ladder-table) and
#   fig3_rung1/, fig3_rung2/ (dmo-compare). A re-run resumes every trainer from its run folder.
# Environment (the test runs it small): LADDER_PRESET (cpu) for every trainer, LADDER_PLAY_SAMPLES (10000) per
# recording, LADDER_POLICY_SAMPLES (60000) per policy run, LADDER_SEEDS ("0 1 2") of the DMO runs,
# LADDER_WORLD_MODEL_STEPS (3000), LADDER_ROLLOUT_CONTEXT (0: the world model's --rollout-context),
# LADDER_FINAL_EPISODES (50) of each final evaluation.
# On 2 CPU cores with the defaults this takes about 4 hours: data 10 min, reward 8, local model 15, world model
# 30 (beside them), rung 0 2 x 10, rung 1 3 x 16 + PPO 8, rung 2 3 x 20 + No Diffusion 1 + PPO 10.
set -euo pipefail
bin="$1"; out="$2"
preset="${LADDER_PRESET:-cpu}"; play="${LADDER_PLAY_SAMPLES:-10000}"; samples="${LADDER_POLICY_SAMPLES:-60000}"
seeds="${LADDER_SEEDS:-0 1 2}"; wm_steps="${LADDER_WORLD_MODEL_STEPS:-3000}"
rollout_context="${LADDER_ROLLOUT_CONTEXT:-0}"; episodes="${LADDER_FINAL_EPISODES:-50}"
task=reach_fixed
mkdir -p "$out"/bags "$out"/datasets "$out"/runs
runs="$out/runs"
step() { echo "=== $1 ==="; shift; echo "+ $*"; "$@"; }

# Data: the demo's pushing play, and play on the reach task that wanders the arena with reach demonstrations.
if [[ ! -d "$out/datasets/push_play" ]]; then
  rm -rf "$out/bags/push_play"
  step "record pushing play" "$bin/dmo-collect-fast" --robot pusht --samples "$play" --seed 1 -o "$out/bags/push_play" --quiet
  step "convert pushing play" "$bin/dmo-convert" "$(ls -d "$out"/bags/push_play/*/ | head -n 1)" -o "$out/datasets/push_play" --size 64 64
fi
if [[ ! -d "$out/datasets/reach_play" ]]; then
  rm -rf "$out/bags/reach_play"
  step "record reach play" "$bin/dmo-collect-fast" --robot pusht --samples "$play" --task "$task" --seed 3 \
    --play-wander-probability 0.5 -o "$out/bags/reach_play" --quiet
  step "convert reach play" "$bin/dmo-convert" "$(ls -d "$out"/bags/reach_play/*/ | head -n 1)" -o "$out/datasets/reach_play" --size 64 64
fi
push="$out/datasets/push_play"; reach="$out/datasets/reach_play"; goal="$out/goal_reach.png"
step "goal picture" "$bin/dmo-goal-image" --task "$task" --size 64 64 -o "$goal"

# The learned parts; the world model trains beside the reward and local models, each on one core.
( OMP_NUM_THREADS=1 "$bin/dmo-train-world-model" "$push" "$reach" --run-dir "$runs/world_model" --preset "$preset" \
    --steps "$wm_steps" --rollout-context "$rollout_context" --progress false > "$out/world_model.log" 2>&1 ) &
world_model_pid=$!
trap 'kill "$world_model_pid" 2>/dev/null || true' EXIT
export OMP_NUM_THREADS=1
# Each trainer prints its gate at the end; the policies train with --force-gates (a model below its gate is noted
# in the policy's run, not refused).
step "reward model" "$bin/dmo-train-reward" "$push" "$reach" --run-dir "$runs/reward" --preset "$preset" \
  --gate-task "$task" --progress false
step "local model" "$bin/dmo-train-local-model" "$push" "$reach" --reward-run "$runs/reward" --goal "$goal" \
  --run-dir "$runs/local_model" --preset "$preset" --gate-task "$task" --progress false

common=(--reward-run "$runs/reward" --goal "$goal" --task "$task" --preset "$preset" --max-samples "$samples"
        --force-gates --final-eval-episodes "$episodes" --progress false)
rung0=(--task "$task" --reward learned --reward-run "$runs/reward" --goal "$goal" --preset "$preset"
       --max-samples "$samples" --final-eval-episodes "$episodes" --no-progress)
step "rung 0, SAPO" "$bin/dmo-train-rung0" "$runs/r0_sapo" --method sapo "${rung0[@]}"
step "rung 0, PPO" "$bin/dmo-train-rung0" "$runs/r0_ppo" --method ppo "${rung0[@]}"
for seed in $seeds; do
  step "rung 1, DMO seed $seed" "$bin/dmo-train-policy" dmo "$push" "$reach" "${common[@]}" --forward simulator \
    --local-model "$runs/local_model" --finetune-steps 4 --seed "$seed" --run-dir "$runs/r1_dmo_s$seed"
done
step "rung 1, PPO" "$bin/dmo-train-policy" ppo "$reach" "${common[@]}" --forward simulator --run-dir "$runs/r1_ppo"

wait "$world_model_pid"
trap - EXIT
tail -n 8 "$out/world_model.log"
for seed in $seeds; do
  step "rung 2, DMO seed $seed" "$bin/dmo-train-policy" dmo "$reach" "${common[@]}" --world-model "$runs/world_model" \
    --local-model "$runs/local_model" --finetune-steps 4 --finetune-real-fraction 0.5 --seed "$seed" \
    --run-dir "$runs/r2_dmo_s$seed"
done
step "rung 2, No Diffusion" "$bin/dmo-train-policy" no-diffusion "$reach" "${common[@]}" \
  --local-model "$runs/local_model" --finetune-steps 4 --finetune-real-fraction 0.5 --run-dir "$runs/r2_nodiff"
step "rung 2, PPO" "$bin/dmo-train-policy" ppo "$reach" "${common[@]}" --world-model "$runs/world_model" \
  --run-dir "$runs/r2_ppo"

step "ladder table" "$bin/dmo-ladder-table" "$runs"/r0_sapo "$runs"/r0_ppo "$runs"/r1_dmo_s* "$runs"/r1_ppo \
  "$runs"/r2_dmo_s* "$runs"/r2_nodiff "$runs"/r2_ppo --out "$out/ladder_reach.md"
step "Fig. 3, rung 1" "$bin/dmo-compare" "$runs"/r1_dmo_s* "$runs"/r1_ppo --out "$out/fig3_rung1" --title "$task, rung 1"
step "Fig. 3, rung 2" "$bin/dmo-compare" "$runs"/r2_dmo_s* "$runs"/r2_nodiff "$runs"/r2_ppo --out "$out/fig3_rung2" \
  --title "$task, rung 2"
