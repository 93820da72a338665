"""nnunetv2-mstkd: MST-KDNet (Zhu et al., MICCAI 2025) as nnU-Net v2 trainers.

Sub-packages, by role:

* ``nnunetv2_mstkd.data``: synthetic BraTS-like data and dataset converters.
* ``nnunetv2_mstkd.network``: the transformer-augmented nnU-Net and the discriminator.
* ``nnunetv2_mstkd.losses``: MS-TKD, DMLD and GSME losses (pure functions + thin modules).
* ``nnunetv2_mstkd.training``: modality dropout, teacher handling and trainer mix-ins.
* ``nnunetv2_mstkd.inference``: prediction with absent modalities.
* ``nnunetv2_mstkd.evaluation``: Dice/HD95 and the 15-subset benchmark.
* ``nnunetv2_mstkd.trainers`` (top-level ``trainers/``): the classes nnU-Net discovers.
* ``nnunetv2_mstkd.plans`` (top-level ``plans/``): the CPU-sized planner (nnUNetPlannerCPU) and ``mstkd_apply_plans``.
"""

__version__ = "0.1.0"
