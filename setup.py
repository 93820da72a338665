"""Packaging for nnunetv2-mstkd.

``trainers/`` and ``plans/`` live at the top level of the repository (so a
newcomer sees them first) and are installed as the sub-packages
``nnunetv2_mstkd.trainers`` and ``nnunetv2_mstkd.plans``, so a plain
``pip install .`` carries them with the package.
"""
from setuptools import find_packages, setup

setup(
    name="nnunetv2-mstkd",
    version="0.1.0",
    description=(
        "MST-KDNet for nnU-Net v2: missing-modality brain-tumour segmentation with a frozen "
        "full-modality teacher, distillation and style losses, and modality dropout."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunetv2_mstkd", "nnunetv2_mstkd.*"])
    + ["nnunetv2_mstkd.trainers", "nnunetv2_mstkd.plans"],
    package_dir={"nnunetv2_mstkd.trainers": "trainers", "nnunetv2_mstkd.plans": "plans"},
    include_package_data=True,
    install_requires=[
        "nnunetv2>=2.8.1,<2.9",
        "torch",
        "numpy",
        "SimpleITK",
        "batchgenerators",
        "scipy",
        "matplotlib",
        "tqdm",
    ],
    # brats: BraTS's official lesion-wise metrics (mstkd_benchmark --brats-metrics); AGPL-3.0, so optional
    extras_require={"test": ["pytest", "ruff", "medpy"], "brats": ["brats-evaluation>=0.0.10"]},
    entry_points={
        "console_scripts": [
            "mstkd_trainers_dir = nnunetv2_mstkd.env:trainers_dir_entry",
            "mstkd_synth = nnunetv2_mstkd.data.synthetic:main",
            "mstkd_apply_plans = nnunetv2_mstkd.plans.plan_cpu:main",
            "mstkd_predict = nnunetv2_mstkd.inference.predict:main",
            "mstkd_benchmark = nnunetv2_mstkd.evaluation.benchmark_cli:main",
            "mstkd_subset_floor = nnunetv2_mstkd.evaluation.subset_floor_cli:main",
            "mstkd_rank_models = nnunetv2_mstkd.evaluation.rank_models:main",
            "mstkd_pretrained = nnunetv2_mstkd.training.pretrained:main",
            "mstkd_convert = nnunetv2_mstkd.data.convert.cli:main",
        ]
    },
)
