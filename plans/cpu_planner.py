"""``nnUNetPlannerCPU``: nnU-Net's experiment planner with CPU-sized settings.

The planner is nnU-Net's own ``ExperimentPlanner``: spacing, normalisation,
transpose, kernel sizes and strides come from nnU-Net's rules
(``get_pool_and_conv_props``), so an anisotropic dataset gets anisotropic
kernels and strides exactly as in ``nnUNetPlans``. Only the planner's own
settings are smaller:

- patches of 32³ (3d) and 64² (2d) whatever the image size (nnU-Net pads
  smaller images, as it does for any patch), handed to nnU-Net's planner as
  the shape its initial patch must fit;
- a feature map of at least 8 voxels per edge at the bottleneck (nnU-Net: 4),
  which gives a 32³ patch three stages;
- 16 base features, at most 64 (3d) and 128 (2d) per stage;
- the batch size of nnU-Net's floor: 2 (3d) and 4 (2d); a CPU iteration's time
  grows with the batch;
- no 3d_lowres/cascade: a 32³ patch is always under nnU-Net's 25 % threshold,
  and a cascade of CPU-sized networks helps nobody.

3d_fullres and 2d use nnU-Net's default spacing and normalisation, so they share
the preprocessed data of ``nnUNetPlans`` (the data identifier names nnUNetPlans,
as nnU-Net's residual-encoder planners do).

``nnUNetPlannerResEncCPU`` is the same with nnU-Net's residual-encoder planner
(``ResEncUNetPlanner``, the family of ``nnUNetPlannerResEncM/L/XL``): a
``ResidualEncoderUNet`` with nnU-Net's blocks per stage (1, 3, 4, ...), CPU-sized as above,
saved as ``nnUNetResEncUNetPlansCPU``.
"""
from __future__ import annotations

import json
import os

import numpy as np
from nnunetv2.experiment_planning.experiment_planners import default_experiment_planner
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    ResEncUNetPlanner,
)

PLANS_IDENTIFIER = "nnUNetPlansCPU"
RESENC_PLANS_IDENTIFIER = "nnUNetResEncUNetPlansCPU"


class nnUNetPlannerCPU(ExperimentPlanner):
    """Plans CPU-sized 3d_fullres and 2d configurations with nnU-Net's own rules.

    Example::

        planner = nnUNetPlannerCPU(501)   # writes nnUNetPlansCPU.json next to nnUNetPlans.json
        planner.plan_experiment()
    """

    patch_size_3d = (32, 32, 32)
    patch_size_2d = (64, 64)
    batch_size_3d = 2
    batch_size_2d = 4

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = PLANS_IDENTIFIER,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_base_num_features = 16
        self.UNet_max_features_3d = 64
        self.UNet_max_features_2d = 128
        self.UNet_featuremap_min_edge_length = 8
        # nnU-Net caps the batch at 5 % of the dataset's voxels and never goes below its minimum batch size:
        # with no cap the minimum is what remains, which is the batch we want on a CPU.
        self.max_dataset_covered = 0
        self.lowres_creation_threshold = 0

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier, approximate_n_voxels_dataset,
                                    _cache) -> dict:
        dims = len(spacing)
        patch = self.patch_size_3d if dims == 3 else self.patch_size_2d
        self.UNet_min_batch_size = self.batch_size_3d if dims == 3 else self.batch_size_2d
        # nnU-Net fits its initial patch into the shape it is given (the median shape); handing it the CPU patch
        # instead fixes the patch, and nnU-Net's topology rules then choose stages, kernels and strides for it.
        plan = super().get_plans_for_configuration(spacing, np.asarray(patch), data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        plan["median_image_size_in_voxels"] = median_shape
        return plan

    def generate_data_identifier(self, configuration_name: str) -> str:
        # same spacing and normalisation as nnU-Net's default planner: reuse its preprocessed data
        return "nnUNetPlans_" + configuration_name

    def save_plans(self, plans: dict) -> None:
        """Check configurations kept from an existing plans file, then save as nnU-Net does.

        nnU-Net keeps every configuration of an existing plans file that the planner
        does not produce. One that ``inherits_from`` (or names as ``previous_stage``)
        a configuration that no longer exists would break ``nnUNetv2_train`` later,
        so it is refused now, by name.

        Raises:
            ValueError: Naming the configuration, the missing one and the plans file.
        """
        # the folder nnU-Net's save_plans writes to
        folder = os.path.join(str(default_experiment_planner.nnUNet_preprocessed), self.dataset_name)
        path = os.path.join(folder, self.plans_identifier + ".json")
        merged = dict(plans["configurations"])
        if os.path.isfile(path):
            with open(path) as f:
                kept = json.load(f)["configurations"]
            merged.update({k: v for k, v in kept.items() if k not in merged})
        for name, conf in merged.items():
            for key in ("inherits_from", "previous_stage"):
                ref = conf.get(key)
                if ref is not None and ref not in merged:
                    raise ValueError(
                        f"Configuration {name!r} in {path} has {key} {ref!r}, which the CPU plans do not contain "
                        f"(they plan {sorted(plans['configurations'])}). Remove {name!r} from {path}, or point it "
                        f"at one of those, then plan again.")
        super().save_plans(plans)


class nnUNetPlannerResEncCPU(nnUNetPlannerCPU, ResEncUNetPlanner):
    """``nnUNetPlannerCPU``'s sizes with nnU-Net's residual-encoder U-Net (as ``nnUNetPlannerResEncM`` plans it).

    Example::

        nnUNetPlannerResEncCPU(501).plan_experiment()   # writes nnUNetResEncUNetPlansCPU.json
    """

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = RESENC_PLANS_IDENTIFIER,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
