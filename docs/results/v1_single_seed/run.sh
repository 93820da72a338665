#!/usr/bin/env bash
# The exact commands behind docs/results.md. CPU only, 2 cores; each step is skipped when done.
# Usage: [STAGE2=0] bash docs/results/run.sh [WORKDIR] [SCHEDULE]   (STAGE2=0: skip the ablations)
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
# 40 training cases (5-fold split; fold 0 trains on 32 and validates on 8), 20 spare test cases, 48³ voxels
[ -d "$nnUNet_raw/Dataset${ID}_SynthBraTS" ] || mstkd_synth -d $ID --cases 40 --test-cases 20 --size 48 --seed 7
[ -f "$nnUNet_preprocessed/Dataset${ID}_SynthBraTS/nnUNetPlansCPU.json" ] || {
    nnUNetv2_plan_and_preprocess -d $ID -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity > "$WORK/logs/plan.log"
    mstkd_apply_plans -d $ID; }
train() {  # train TRAINER unless finished; continue an interrupted run
    local TR="$1" FOLD="$nnUNet_results/Dataset${ID}_SynthBraTS/${1}__nnUNetPlansCPU__3d_fullres/fold_0" C=""
    [ -f "$FOLD/checkpoint_final.pth" ] && return 0
    [ -f "$FOLD/checkpoint_latest.pth" ] && C="--c"
    echo "[$(date +%T)] training $TR"
    nnUNet_n_proc_DA=0 nnUNetv2_train $ID 3d_fullres 0 -p nnUNetPlansCPU -tr "$TR" -device cpu $C \
        > "$WORK/logs/train_$TR.log" 2>&1
}
bench() {  # bench OUT TRAINER...: all 15 subsets on the 8 fold-0 validation cases, unless done
    local OUT="$1"; shift
    [ -f "$OUT/summary.json" ] && return 0
    echo "[$(date +%T)] benchmark -> $OUT"
    # nnU-Net's predictor caps torch's threads at nnUNet_def_n_proc; the benchmark starts no worker pools
    nnUNet_def_n_proc=2 mstkd_benchmark -d $ID -c 3d_fullres -f 0 -p nnUNetPlansCPU -tr "$@" -o "$OUT" -device cpu --disable_tta \
        --reference "nnUNetTrainerMSTKD_${SCHEDULE}"
}
# Stage 1: the baselines, the teacher and the student.
MAIN=""
for T in nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerMSTKDTeacher nnUNetTrainerMSTKD; do
    train "${T}_${SCHEDULE}"; MAIN="$MAIN ${T}_${SCHEDULE}"
done
bench "$WORK/benchmark" $MAIN
# Stage 2: the four ablations (same teacher, same schedule).
[ "${STAGE2:-1}" = 1 ] || exit 0
ABL=""
for T in nnUNetTrainerMSTKD_noMSTKD nnUNetTrainerMSTKD_noDMLD nnUNetTrainerMSTKD_noGSME nnUNetTrainerMSTKD_noKD; do
    train "${T}_${SCHEDULE}"; ABL="$ABL ${T}_${SCHEDULE}"
done
bench "$WORK/benchmark_ablations" $MAIN $ABL
echo "[$(date +%T)] done"
