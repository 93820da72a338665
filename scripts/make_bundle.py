#!/usr/bin/env python3
"""Build an offline install bundle: this project's wheel and its dependencies' wheels in one tar.xz.

Hospital and HPC compute nodes often have no network. Run this on a connected machine where the
project is installed (``source scripts/setup_env.sh`` does that), copy the bundle over and install it
there with ``bash scripts/install_bundle.sh BUNDLE [PYTHON]``, which keeps a torch already installed.

The bundle holds exactly the versions installed here (the tested set): the dependency closure is read
from the installed packages' metadata, with environment markers evaluated for the target Python.
Wheels are fetched for the target (``--python-version``/``--platform``, default this machine); a
dependency published as source only is built into a wheel here, which must then be pure Python.
Wheels are rewritten uncompressed so that xz, which packs shared libraries far better than zip's
deflate, does the compression.

Examples:
    python scripts/make_bundle.py -o mstkd_bundle.tar.xz
    python scripts/make_bundle.py -o gpu.tar.xz --python-version 3.12 --platform manylinux_2_28_x86_64 \\
        --platform manylinux_2_17_x86_64 --lacking target_freeze.txt      # only what the target lacks
    (target_freeze.txt: ``python3 -m pip freeze --all`` on the target; --all also lists setuptools and pip)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "nnunetv2-mstkd"
#: torch and the packages that come with a torch build; left out unless --with-torch.
TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
#: Distributions of standard-library modules that old packages still require (unittest2 requires argparse): pip
#: never counts an installed copy, so the bundle carries them even for a target that has them.
STDLIB_BACKPORTS = {"argparse", "wsgiref"}


def normalize(name: str) -> str:
    """The canonical form of a distribution name (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def freeze_names(text: str) -> set[str]:
    """Distribution names in ``pip freeze`` output (``name==1.0``, ``name @ url``; ``-e`` lines skipped)."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            names.add(normalize(re.split(r"[=<>!~ @;\[]", line, maxsplit=1)[0]))
    return names


def closure(python_version: str, root: str = PROJECT) -> dict[str, str]:
    """``{name: installed version}`` of ``root`` and every dependency it needs on ``python_version``.

    Raises:
        SystemExit: If ``root`` or a dependency is not installed here.
    """
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    found: dict[str, str] = {}
    todo = [(root, "")]
    while todo:
        spec, extra = todo.pop()
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = normalize(req.name)
        if name in found:
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise SystemExit(f"{req.name} (needed by the bundle) is not installed here; install the project "
                             f"first: source scripts/setup_env.sh") from None
        found[name] = dist.version
        for child in dist.requires or []:
            todo.append((child, ""))
            todo.extend((child, e) for e in req.extras)
    return found


def select(packages: dict[str, str], with_torch: bool, lacking: set[str] | None) -> dict[str, str]:
    """The packages to bundle: torch's family only ``with_torch``; with ``lacking``, only names not in it."""
    return {n: v for n, v in packages.items() if (with_torch or not TORCH_FAMILY.match(n)) and
            (lacking is None or n not in lacking or n == PROJECT or n in STDLIB_BACKPORTS)}


def store_uncompressed(wheel: Path) -> None:
    """Rewrite a wheel with the same members, uncompressed (pip accepts stored members)."""
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)  # before the entry is marked stored: src reads through the same object
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    os.replace(tmp, wheel)


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch(name: str, version: str, dest: Path, python_version: str | None, platforms: list[str]) -> None:
    """Put ``name==version``'s wheel for the target into ``dest`` (built here if it is source only)."""
    if name == PROJECT:
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest), str(ROOT))
        return
    spec = f"{name}=={version}"
    if python_version is None and not platforms:
        _pip("wheel", "--no-deps", "-q", "-w", str(dest), spec)  # a wheel as published, or built from source
        return
    target = ["--only-binary=:all:", "--implementation", "cp"]
    target += ["--python-version", python_version] if python_version else []
    for p in platforms:
        target += ["--platform", p]
    try:
        _pip("download", "--no-deps", "-q", *target, "-d", str(dest), spec)
        return
    except subprocess.CalledProcessError:
        print(f"  {spec}: no wheel for the target; building one here (it must be pure Python)", flush=True)
    before = set(dest.iterdir())
    _pip("wheel", "--no-deps", "-q", "-w", str(dest), spec)
    for built in set(dest.iterdir()) - before:
        if not built.name.endswith("-none-any.whl"):
            raise SystemExit(f"{spec} has no wheel for the target and builds only a platform wheel here "
                             f"({built.name}); install it on the target by other means.")


def build_bundle(out: Path, python_version: str | None = None, platforms: list[str] | None = None,
                 with_torch: bool = False, lacking: set[str] | None = None) -> dict:
    """Write the bundle to ``out`` and return its manifest (also stored in it as ``bundle.json``)."""
    platforms = platforms or []
    target_python = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    chosen = select(closure(target_python), with_torch, lacking)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        for i, (name, version) in enumerate(sorted(chosen.items()), 1):
            print(f"[{i}/{len(chosen)}] {name}=={version}", flush=True)
            fetch(name, version, wheels, python_version, platforms)
        for wheel in wheels.glob("*.whl"):
            store_uncompressed(wheel)
        manifest = {"python_version": target_python, "platforms": platforms or ["this machine's"],
                    "with_torch": with_torch, "only_lacking": lacking is not None,
                    "packages": chosen, "wheels": sorted(w.name for w in wheels.glob("*.whl"))}
        (Path(tmp) / "bundle.json").write_text(json.dumps(manifest, indent=1))
        partial = out.with_name(f".{out.name}.partial")
        with tarfile.open(partial, "w:xz") as tar:
            tar.add(wheels, "wheels")
            tar.add(Path(tmp) / "bundle.json", "bundle.json")
        os.replace(partial, out)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", default="mstkd_bundle.tar.xz", help="bundle file (default: %(default)s)")
    parser.add_argument("--python-version", default=None, help="target Python, e.g. 3.12 (default: this one)")
    parser.add_argument("--platform", action="append", default=[],
                        help="target wheel platform tag, repeatable (default: this machine)")
    parser.add_argument("--with-torch", action="store_true", help="also bundle torch and its CUDA packages")
    parser.add_argument("--lacking", default=None,
                        help="the target's `pip freeze --all` output: bundle only what it lacks (and the project)")
    args = parser.parse_args(argv)
    lacking = freeze_names(Path(args.lacking).read_text()) if args.lacking else None
    out = Path(args.out).resolve()
    manifest = build_bundle(out, args.python_version, args.platform, args.with_torch, lacking)
    print(f"{out}: {len(manifest['wheels'])} wheels, {out.stat().st_size / 2**20:.1f} MiB; install on the "
          f"target with: bash scripts/install_bundle.sh {out.name} [PYTHON]")


if __name__ == "__main__":
    main()
