"""Trainer classes discovered by nnU-Net through ``nnUNet_extTrainer`` (see ``mstkd_trainers_dir``)."""
