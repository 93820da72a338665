#!/usr/bin/env bash
# The exact commands behind docs/results.md. CPU only, 2 cores; each step is skipped when done.
# Usage: bash docs/results/run.sh [WORKDIR [SECTION...]]
#   SECTION: tuning, heldout, heldout_init, heldout_ablations, tuning_floor, heldout_floor, heldout_dedicated
#   (default: all, in this order)
#
# Two synthetic datasets, generated with different seeds:
#   992 (seed 7)    tuning: every choice of weights and remedies was made on its fold 0;
#   993 (seed 2026) held out: never used while choosing; 42 cases, 3-fold cross-validation
#                   (nnU-Net's own split helper), every model trained on each fold, each fold's
#                   model benchmarked on its own 14 validation cases (42 cases in all).
# The paper's student is nnUNetTrainerMSTKD_paper; folders committed before the default's change of teacher
# (docs/results/README.md) name it nnUNetTrainerMSTKD_10ep25it, as the class was then called.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
WORK="$(realpath -m "${1:-/tmp/mstkd_results}")"
S=10ep25it
export nnUNet_raw="$WORK/nnUNet_raw" nnUNet_preprocessed="$WORK/nnUNet_preprocessed" nnUNet_results="$WORK/nnUNet_results"
export nnUNet_extTrainer="$(mstkd_trainers_dir)${nnUNet_extTrainer:+:$nnUNet_extTrainer}"
export nnUNet_def_n_proc=1
mkdir -p "$WORK/logs"
shift || true
SECTIONS="${*:-tuning heldout heldout_init heldout_ablations tuning_floor heldout_floor heldout_dedicated}"
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
prepare() {  # prepare ID SEED CASES TEST_CASES
    [ -d "$nnUNet_raw/Dataset${1}_SynthBraTS" ] || mstkd_synth -d "$1" --cases "$3" --test-cases "$4" --size 48 --seed "$2"
    [ -f "$nnUNet_preprocessed/Dataset${1}_SynthBraTS/nnUNetPlansCPU.json" ] || {
        nnUNetv2_plan_and_preprocess -d "$1" -c 3d_fullres -np 1 -npfp 1 --verify_dataset_integrity > "$WORK/logs/plan_$1.log"
        mstkd_apply_plans -d "$1"; }
}
train() {  # train ID FOLD TRAINER, unless finished; continue an interrupted run
    local FOLD="$nnUNet_results/Dataset${1}_SynthBraTS/${3}__nnUNetPlansCPU__3d_fullres/fold_$2" C=""
    [ -f "$FOLD/checkpoint_final.pth" ] && return 0
    [ -f "$FOLD/checkpoint_latest.pth" ] && C="--c"
    echo "[$(date +%T)] training $3 on $1 fold $2"
    nnUNet_n_proc_DA=0 nnUNetv2_train "$1" 3d_fullres "$2" -p nnUNetPlansCPU -tr "$3" -device cpu $C \
        > "$WORK/logs/train_$1_$2_$3.log" 2>&1
}
bench() {  # bench OUT ID "FOLDS" TRAINER...
    local OUT="$1" ID="$2" FOLDS="$3"; shift 3
    [ -f "$OUT/summary.json" ] && return 0
    echo "[$(date +%T)] benchmark -> $OUT"
    # nnU-Net's predictor caps torch's threads at nnUNet_def_n_proc; the benchmark starts no worker pools
    local TR=(-tr); [[ "$1" == --* ]] && TR=()  # a dedicated zoo alone: no -tr
    nnUNet_def_n_proc=2 mstkd_benchmark -d "$ID" -c 3d_fullres -f $FOLDS -p nnUNetPlansCPU "${TR[@]}" "$@" -o "$OUT" \
        -device cpu --disable_tta --disable_progress_bar
}
# Tuning dataset, fold 0: the student from the teacher's weights and from random weights.
if want tuning; then
    prepare 992 7 40 20
    for T in nnUNetTrainerMSTKDTeacher nnUNetTrainerMSTKD_paper nnUNetTrainerMSTKD_noInit; do train 992 0 "${T}_$S"; done
    bench "$WORK/tuning" 992 0 "nnUNetTrainerMSTKD_paper_$S" "nnUNetTrainerMSTKD_noInit_$S"
fi
# Tuning dataset, the subset-floor experiment (docs/results/subset_floor/PLAN.md): fold 0's models on
# the 20 test cases of 992; the paper's teacher is benchmarked too (its complete-input row is the cap).
FLOOR="nnUNetTrainerModalityDropout nnUNetTrainerMSTKD_noKD nnUNetTrainerMSTKD_paper nnUNetTrainerMSTKD_mdTeacher"
if want tuning_floor; then
    prepare 992 7 40 20
    for T in nnUNetTrainerMSTKDTeacher $FLOOR; do train 992 0 "${T}_$S"; done
    bench "$WORK/tuning_floor" 992 0 $(for T in nnUNetTrainerMSTKDTeacher $FLOOR; do echo "${T}_$S"; done) \
        -i "$nnUNet_raw/Dataset992_SynthBraTS/imagesTs" -l "$nnUNet_raw/Dataset992_SynthBraTS/labelsTs"
fi
want heldout || want heldout_init || want heldout_ablations || want heldout_floor || want heldout_dedicated || {
    echo "[$(date +%T)] done"; exit 0; }
# Held-out dataset, three folds.
prepare 993 2026 42 0
SPLITS="$nnUNet_preprocessed/Dataset993_SynthBraTS/splits_final.json"
[ -f "$SPLITS" ] || python - "$nnUNet_raw/Dataset993_SynthBraTS/labelsTr" "$SPLITS" <<'PY'
import json, os, sys
from nnunetv2.utilities.crossval_split import generate_crossval_split
ids = sorted(f[:-len(".nii.gz")] for f in os.listdir(sys.argv[1]) if f.endswith(".nii.gz"))
json.dump(generate_crossval_split(ids, seed=12345, n_splits=3), open(sys.argv[2], "w"), indent=1)
PY
MAIN="nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerMSTKD_noKD nnUNetTrainerMSTKD_paper"
ABL="nnUNetTrainerMSTKD_paper nnUNetTrainerMSTKD_noMSTKD nnUNetTrainerMSTKD_noDMLD nnUNetTrainerMSTKD_noGSME"
if want heldout || want heldout_init || want heldout_ablations; then
    for F in 0 1 2; do train 993 $F "nnUNetTrainerMSTKDTeacher_$S"; done
fi
if want heldout; then
    for F in 0 1 2; do for T in $MAIN; do train 993 $F "${T}_$S"; done; done
    bench "$WORK/heldout" 993 "0 1 2" $(for T in $MAIN; do echo "${T}_$S"; done)
fi
if want heldout_init; then
    for F in 0 1 2; do for T in nnUNetTrainerMSTKD_paper nnUNetTrainerMSTKD_initOnly; do train 993 $F "${T}_$S"; done; done
    bench "$WORK/heldout_init" 993 "0 1 2" "nnUNetTrainerMSTKD_paper_$S" "nnUNetTrainerMSTKD_initOnly_$S"
fi
# The three family ablations, each against the full student trained on the same folds and teachers.
if want heldout_ablations; then
    for F in 0 1 2; do for T in $ABL; do train 993 $F "${T}_$S"; done; done
    bench "$WORK/heldout_ablations" 993 "0 1 2" $(for T in $ABL; do echo "${T}_$S"; done)
fi
# The subset-floor experiment on held-out data: the two baselines and the student chosen on the tuning
# data (FLOOR_STUDENT; the rule is in docs/results/subset_floor/PLAN.md), whose teacher is _noKD.
HF="nnUNetTrainerModalityDropout nnUNetTrainerMSTKD_noKD ${FLOOR_STUDENT:-nnUNetTrainerMSTKD_mdTeacher}"
if want heldout_floor; then
    [[ "$HF" == *_mdTeacher ]] || for F in 0 1 2; do train 993 $F "nnUNetTrainerMSTKDTeacher_$S"; done
    for F in 0 1 2; do for T in $HF; do train 993 $F "${T}_$S"; done; done
    bench "$WORK/heldout_floor" 993 "0 1 2" $(for T in $HF; do echo "${T}_$S"; done)
fi
# One model against fifteen (docs/results/dedicated/PLAN.md): the dedicated zoo, all 15 subsets, each
# fold; then per fold one benchmark of the unified rows (HF, the subset-floor models) and the zoo as one row,
# with BraTS's lesion-wise metrics, merged with merge_folds.py.
DED="T1 T1ce T2 FLAIR T1_T1ce T1_T2 T1_FLAIR T1ce_T2 T1ce_FLAIR T2_FLAIR T1_T1ce_T2 T1_T1ce_FLAIR T1_T2_FLAIR T1ce_T2_FLAIR T1_T1ce_T2_FLAIR"
if want heldout_dedicated; then
    for F in 0 1 2; do  # fold by fold, so that each fold's result exists as soon as its zoo is trained
        for D in $DED; do train 993 $F "nnUNetTrainerDedicated_${D}_$S"; done
        bench "$WORK/heldout_dedicated_f$F" 993 "$F" $(for T in $HF; do echo "${T}_$S"; done) \
            --dedicated "nnUNetTrainerDedicated_{subset}_$S" --brats-metrics gli
    done
    python "$ROOT/docs/results/merge_folds.py" "$WORK/heldout_dedicated" $(for F in 0 1 2; do echo "$WORK/heldout_dedicated_f$F"; done)
fi
echo "[$(date +%T)] done"
