#!/usr/bin/env bash
# The exact commands behind docs/results.md. CPU only, 2 cores; each step is skipped when done.
# Usage: bash docs/results/run.sh [WORKDIR] [SCHEDULE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
WORK="$(realpath -m "${1:-/tmp/mstkd_results}")"
SCHEDULE="${2:-10ep25it}"
export nnUNet_raw="$WORK/nnUNet_raw" nnUNet_preprocessed="$WORK/nnUNet_preprocessed" nnUNet_results="$WORK/nnUNet_results"
export nnUNet_extTrainer="$(mstkd_trainers_dir)${nnUNet_extTrainer:+:$nnUNet_extTrainer}"
export nnUNet_def_n_proc=1
mkdir -p "$WORK/logs"
ID=992
# 40 training cases (5-fold split; fold 0 trains on 32), 20 held-out test cases, 48³ voxels
[ -d "$nnUNet_raw/Dataset${ID}_SynthBraTS" ] || mstkd_synth -d $ID --cases 40 --test-cases 20 --size 48 --seed 7
[ -f "$nnUNet_preprocessed/Dataset${ID}_SynthBraTS/nnUNetPlansCPU.json" ] || {
    nnUNetv2_plan_and_preprocess -d $ID -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity > "$WORK/logs/plan.log"
    mstkd_apply_plans -d $ID; }
TRAINERS="nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerMSTKDTeacher nnUNetTrainerMSTKD
          nnUNetTrainerMSTKD_noMSTKD nnUNetTrainerMSTKD_noDMLD nnUNetTrainerMSTKD_noGSME nnUNetTrainerMSTKD_noKD"
MODELS=""
for T in $TRAINERS; do
    TR="${T}_${SCHEDULE}"
    MODELS="$MODELS $TR"
    FOLD="$nnUNet_results/Dataset${ID}_SynthBraTS/${TR}__nnUNetPlansCPU__3d_fullres/fold_0"
    [ -f "$FOLD/checkpoint_final.pth" ] && continue
    C=""; [ -f "$FOLD/checkpoint_latest.pth" ] && C="--c"
    echo "[$(date +%T)] training $TR"
    nnUNet_n_proc_DA=0 nnUNetv2_train $ID 3d_fullres 0 -p nnUNetPlansCPU -tr "$TR" -device cpu $C \
        > "$WORK/logs/train_$TR.log" 2>&1
done
echo "[$(date +%T)] benchmark"
mstkd_benchmark -d $ID -c 3d_fullres -f 0 -p nnUNetPlansCPU -tr $MODELS -o "$WORK/benchmark" -device cpu \
    --disable_tta -i "$nnUNet_raw/Dataset${ID}_SynthBraTS/imagesTs" -l "$nnUNet_raw/Dataset${ID}_SynthBraTS/labelsTs" \
    --reference "nnUNetTrainerMSTKD_${SCHEDULE}"
echo "[$(date +%T)] done: $WORK/benchmark"
