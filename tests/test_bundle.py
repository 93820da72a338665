"""The offline bundle: built from the installed packages, installed with no package index."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("make_bundle", ROOT / "scripts" / "make_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bundle = _load()


def test_closure_is_read_from_the_installed_packages():
    packages = bundle.closure(f"{sys.version_info.major}.{sys.version_info.minor}")
    for name in ("nnunetv2-mstkd", "nnunetv2", "torch", "simpleitk", "dynamic-network-architectures",
                 "batchgenerators", "numpy"):
        assert name in packages, name
    from importlib.metadata import version
    assert packages["nnunetv2"] == version("nnunetv2")
    assert "pytest" not in packages  # an extra of ours, not a requirement


def test_selection_leaves_torch_out_and_keeps_only_what_the_target_lacks():
    packages = {"nnunetv2-mstkd": "0.1.0", "nnunetv2": "2.8.1", "torch": "2.14.1", "nvidia-cublas": "13",
                "triton": "3", "simpleitk": "2.5", "numpy": "2.3"}
    assert set(bundle.select(packages, False, None)) == {"nnunetv2-mstkd", "nnunetv2", "simpleitk", "numpy"}
    assert "torch" in bundle.select(packages, True, None)
    lacking = bundle.freeze_names("numpy==2.3.0\nSimpleITK @ file:///x.whl\n-e git+https://x#egg=y\n"
                                  "nnunetv2_mstkd==0.1.0\n")
    assert lacking == {"numpy", "simpleitk", "nnunetv2-mstkd"}
    # the project itself is always bundled
    assert set(bundle.select(packages, False, lacking)) == {"nnunetv2-mstkd", "nnunetv2"}


def test_wheels_are_rewritten_uncompressed_with_the_same_members(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("demo/__init__.py", "x = 1\n" * 100)
        z.writestr("demo-1.0.dist-info/RECORD", "")
    bundle.store_uncompressed(wheel)
    with zipfile.ZipFile(wheel) as z:
        assert [i.filename for i in z.infolist()] == ["demo/__init__.py", "demo-1.0.dist-info/RECORD"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert z.read("demo/__init__.py") == b"x = 1\n" * 100


@pytest.mark.e2e
def test_a_bundle_installs_without_an_index_next_to_an_existing_torch(tmp_path):
    """A target that has everything but the project gets only the project's wheel, installed offline."""
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    (tmp_path / "freeze.txt").write_text(freeze)
    out = tmp_path / "bundle.tar.xz"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_bundle.py"), "-o", str(out),
                    "--lacking", str(tmp_path / "freeze.txt")], check=True, cwd=tmp_path)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    wheels = sorted(n for n in names if n.endswith(".whl"))
    # the project, and argparse: pip never counts an installed copy of a standard-library backport
    assert "bundle.json" in names and len(wheels) == 2 and "nnunetv2_mstkd" in wheels[1] and "argparse" in wheels[0]

    # The target: a fresh environment that sees this one's packages (torch, nnU-Net, ...) but not the project.
    target = tmp_path / "target"
    # without its own pip and setuptools: one consistent set of packages, as on a real target
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    py = target / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    shared = tmp_path / "shared_site"
    shared.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("nnunetv2_mstkd", "__editable__", "_nnunetv2_mstkd")):
            os.symlink(entry, shared / entry.name)
    (site / "shared.pth").write_text(f"{shared}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_NO_INDEX"] = "1"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "install_bundle.sh"), str(out), str(py)],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    where = subprocess.run([str(py), "-c", "import nnunetv2_mstkd, torch; print(nnunetv2_mstkd.__file__); "
                            "print(torch.__file__)"], check=True, capture_output=True, text=True,
                           cwd=tmp_path).stdout.split()
    assert where[0].startswith(str(target)) and where[1].startswith(str(shared))  # torch kept, not reinstalled
    assert (target / "bin" / "mstkd_predict").exists()
