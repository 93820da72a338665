"""nnUNetPlannerCPU (CPU-sized plans by nnU-Net's own rules) and ``mstkd_apply_plans``, which runs it."""
