"""Our trainers are found by the stock nnU-Net commands through nnUNet_extTrainer."""
import os
import subprocess
import sys
import zipfile

import pytest

from nnunetv2_mstkd.env import trainers_dir, with_trainers_dir

from conftest import bin_path

TRAINERS = ["nnUNetTrainerMSTKD", "nnUNetTrainerMSTKDTeacher", "nnUNetTrainerModalityDropout",
            "nnUNetTrainerMSTKD_noMSTKD", "nnUNetTrainerMSTKD_noDMLD", "nnUNetTrainerMSTKD_noGSME",
            "nnUNetTrainerMSTKD_noKD", "nnUNetTrainer_1ep10it", "nnUNetTrainerMSTKD_5ep25it",
            "nnUNetTrainerMSTKDTeacher_2ep10it", "nnUNetTrainerModalityDropout_10ep25it",
            "nnUNetTrainerMSTKD_initOnly_10ep25it", "nnUNetTrainerMSTKD_paper",
            "nnUNetTrainerDedicated_T1ce_FLAIR", "nnUNetTrainerDedicated_T1_T1ce_T2_FLAIR_10ep25it"]


def clean_env(**extra) -> dict:
    """A fresh shell's environment: no nnU-Net variables, only PATH and HOME."""
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
    env.update(extra)
    return env


def test_documented_export_line_keeps_user_folders(tmp_path):
    other = str(tmp_path)
    line = subprocess.run([bin_path("mstkd_trainers_dir"), "--export"], env=clean_env(nnUNet_extTrainer=other),
                          capture_output=True, text=True, check=True).stdout.strip()
    assert line == f'export nnUNet_extTrainer="{trainers_dir()}{os.pathsep}{other}"'
    assert with_trainers_dir(with_trainers_dir(other)) == with_trainers_dir(other)


def test_fresh_shell_finds_every_trainer_after_the_one_export():
    script = ('export nnUNet_extTrainer="$(mstkd_trainers_dir)${nnUNet_extTrainer:+:$nnUNet_extTrainer}"\n'
              'python -c "import sys\nfrom nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name'
              ' as f\nfor n in sys.argv[1:]: print(n, f(n).__name__)" ' + " ".join(TRAINERS))
    proc = subprocess.run(["bash", "-c", script], env=clean_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = dict(line.split() for line in proc.stdout.splitlines() if line.split()[0] in TRAINERS)
    assert found == {n: n for n in TRAINERS}


def test_without_the_export_the_stock_command_cannot_find_them(tmp_path):
    proc = subprocess.run([bin_path("nnUNetv2_train"), "1", "3d_fullres", "0", "-tr", "nnUNetTrainerMSTKD"],
                          env=clean_env(nnUNet_raw=str(tmp_path), nnUNet_preprocessed=str(tmp_path),
                                        nnUNet_results=str(tmp_path)), capture_output=True, text=True)
    assert proc.returncode != 0 and "Could not find requested nnunet trainer nnUNetTrainerMSTKD" in proc.stderr


def test_trainer_modules_import_cheaply_and_by_bare_name():
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import mstkd_student, mstkd_teacher, "
            "mstkd_baselines; print(len([n for n in dir(mstkd_student) if n.startswith('nnUNetTrainerMSTKD')]))")
    out = subprocess.run([sys.executable, "-c", code, trainers_dir()], capture_output=True, text=True, check=True)
    # 9 students, each also at 10ep25it and 1ep10it; the default one at 5ep25it, 2ep10it, and so its teacher _noKD
    assert int(out.stdout) == 9 + 9 * 2 + 2 + 2


def test_every_trainer_class_is_written_out():
    """A search for a class name finds its definition: no class is generated at import time."""
    folder = trainers_dir()
    sources = "".join(open(os.path.join(folder, f)).read() for f in os.listdir(folder) if f.endswith(".py"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import mstkd_student, mstkd_teacher, mstkd_baselines as b\n"
            "import mstkd_dedicated as d\n"
            "for m in (mstkd_student, mstkd_teacher, b, d):\n"
            "    print(*[n for n, v in vars(m).items() if isinstance(v, type) and v.__module__ == m.__name__])")
    out = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, check=True)
    names = out.stdout.split()
    assert len(names) == 42 + 15 * 2 + 2 and all(f"class {n}(" in sources for n in names)  # + the dedicated zoo


@pytest.mark.e2e
def test_non_editable_wheel_carries_trainers_and_plans(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), root], check=True, capture_output=True)
    wheel = next(tmp_path.glob("nnunetv2_mstkd-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("nnunetv2_mstkd/trainers/mstkd_student.py", "nnunetv2_mstkd/trainers/mstkd_teacher.py",
                     "nnunetv2_mstkd/trainers/mstkd_baselines.py", "nnunetv2_mstkd/plans/cpu_planner.py",
                     "nnunetv2_mstkd/plans/plan_cpu.py", "nnunetv2_mstkd/modalities.py"):
        assert expected in names, f"{expected} missing from {wheel.name}"
