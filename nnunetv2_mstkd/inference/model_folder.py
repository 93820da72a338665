"""Check a trained model's folder before any work, naming what it lacks."""
from __future__ import annotations

import os


def check_model_folder(model_folder, folds, checkpoint_name: str = "checkpoint_final.pth") -> None:
    """Raise ``FileNotFoundError`` naming what a model folder lacks (dataset.json, plans.json, checkpoints).

    Args:
        model_folder: ``Trainer__Plans__configuration`` folder with ``fold_X`` subfolders.
        folds: Folds that must have ``checkpoint_name`` (None: not checked; nnU-Net then uses every
            fold that has one).
        checkpoint_name: The checkpoint file in each fold folder.
    """
    model_folder = str(model_folder)
    for name in ("dataset.json", "plans.json"):
        if not os.path.isfile(os.path.join(model_folder, name)):
            raise FileNotFoundError(f"{os.path.join(model_folder, name)} not found; {model_folder} is not a trained "
                                    f"nnU-Net model folder (it should hold dataset.json, plans.json and fold_X/).")
    absent = [os.path.join(model_folder, f"fold_{f}", checkpoint_name) for f in (folds or ())
              if not os.path.isfile(os.path.join(model_folder, f"fold_{f}", checkpoint_name))]
    if absent:
        raise FileNotFoundError(f"Checkpoint(s) not found: {', '.join(absent)}. Train those folds, choose others "
                                f"with -f, or another checkpoint with -chk.")
