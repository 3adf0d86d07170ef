"""An install bundle for a venue with no internet: every pinned requirement as a wheel, one folder.

    python -m course_lib bundle                # this machine's OS and Python -> build/wheelhouse
    python -m course_lib bundle --platform win_amd64 --python-version 3.11
    python -m course_lib bundle --platform macosx_11_0_arm64 --python-version 3.11

Then, on each laptop (no network needed)::

    make setup WHEELHOUSE=build/wheelhouse
    python -m course_lib setup --wheelhouse build/wheelhouse     # the same, without make

Both check the bundle's manifest (``course-bundle.json``: the Python version, OS and CPU it
serves, the hash of the requirements it was made from) first: ``python -m course_lib doctor
--bundle build/wheelhouse`` says what does not match this laptop.

A bundle serves one operating system, one CPU architecture and one Python version (wheels are
built for exactly one of each). For this machine's platform the bundle uses ``pip wheel``, which
also turns any source-only package into a wheel; for another platform it uses ``pip download
--platform ... --python-version ... --only-binary=:all:`` (no building is possible there, so a
package without a wheel for that platform is reported by pip and stops the bundle).

torch on Linux: PyPI's Linux torch depends on several GB of CUDA libraries (``nvidia-*``). The
bundle fetches torch alone first, from PyTorch's CPU index (``--torch-index``, by default
https://download.pytorch.org/whl/cpu), then resolves everything else against that exact wheel,
and refuses a Linux bundle that still contains an ``nvidia-*`` wheel. On Windows and macOS PyPI's
torch is already the CPU build, so no special index is used there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform as platform_module
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

from ..settings import BUILD_DIR, REQUIREMENTS

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What a bundle serves, written beside its wheels and checked by `doctor --bundle DIR` and
# `setup --wheelhouse DIR` before anything is installed from it.
MANIFEST = "course-bundle.json"
# Building the course package itself (pip install -e .) needs its build backend offline too.
BUILD_TOOLS = ["setuptools>=70.1", "wheel"]


def requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, without comments and blank lines."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if line:
            lines.append(line)
    return lines


def is_linux_target(platform: str | None) -> bool:
    """True when the bundle is for Linux (this machine's platform when ``platform`` is None)."""
    tag = platform or sysconfig.get_platform()
    return "linux" in tag


def wheel_requires(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines in a wheel's METADATA (its dependencies, with markers)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode("utf-8", errors="replace")
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def cuda_wheels(folder: Path) -> list[str]:
    """Names of the NVIDIA CUDA runtime wheels in ``folder`` (a CPU bundle has none)."""
    return sorted(p.name for p in folder.glob("*.whl") if p.name.lower().startswith("nvidia"))


def _pip(args: list[str], env: dict | None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"pip failed (exit status {done.returncode}): {' '.join(command)}")


def _download_torch_cpu(
    pin: str, dest: Path, torch_index: str | None, pip_args: list[str], env: dict | None
) -> Path:
    """Fetch the CPU build of ``pin`` (``torch==X``) alone; return the wheel's path."""
    before = set(dest.glob("torch-*.whl"))
    index = ["--index-url", torch_index] if torch_index else []  # after pip_args: it wins
    _pip(
        ["download", pin, "--no-deps", "--only-binary=:all:", "-d", str(dest), *pip_args, *index],
        env,
    )
    wheels = sorted(set(dest.glob("torch-*.whl")) - before) or sorted(dest.glob("torch-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip reported success but no torch wheel is in {dest}")
    wheel = wheels[-1]
    cuda = [r for r in wheel_requires(wheel) if r.lower().startswith("nvidia")]
    if cuda:
        raise RuntimeError(
            f"{wheel.name} is a CUDA build (it requires {', '.join(cuda[:3])}, ...). "
            f"Expected the CPU build: pass --torch-index {TORCH_CPU_INDEX} (or a mirror of it)."
        )
    return wheel


def requirements_sha256(path: Path = REQUIREMENTS) -> str:
    """SHA-256 of requirements.txt, line endings normalised (a Windows checkout hashes the same)."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_OS_OF_TAG = (("win", "Windows"), ("macosx", "macOS"), ("linux", "Linux"))
_CPU_OF_TAG = (
    ("amd64", "x86_64"),
    ("x86_64", "x86_64"),
    ("aarch64", "arm64"),
    ("arm64", "arm64"),
    ("universal2", "arm64 and x86_64"),
)


def describe_tag(tag: str) -> tuple[str, str]:
    """``(OS, CPU)`` of a pip platform tag: ``win_amd64`` -> ``("Windows", "x86_64")``."""
    tag = tag.lower()
    system = next((name for key, name in _OS_OF_TAG if key in tag), tag)
    cpu = next((name for key, name in _CPU_OF_TAG if tag.endswith(key)), "?")
    return system, cpu


def this_machine() -> tuple[str, str, str]:
    """``(Python "3.11", OS, CPU)`` of the running interpreter, named as ``describe_tag`` does."""
    system = {"Darwin": "macOS"}.get(platform_module.system(), platform_module.system())
    machine = platform_module.machine().lower()
    cpu = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64"}.get(machine, machine)
    return f"{sys.version_info.major}.{sys.version_info.minor}", system, cpu


def wheel_platform_tags(folder: Path) -> list[str]:
    """The platform tags of the binary wheels in ``folder`` (pure-Python wheels have none)."""
    tags = set()
    for wheel in folder.glob("*.whl"):
        for tag in wheel.stem.split("-")[-1].split("."):
            if tag != "any":
                tags.add(tag)
    return sorted(tags)


def write_manifest(
    dest: Path, requirements: Path, python_version: str | None, platform: str | None
) -> dict:
    """``course-bundle.json``: the Python version and the OS/CPU the bundle serves (with the
    wheels' platform tags) and the hash of the requirements it was made from."""
    python = python_version or this_machine()[0]
    tags = wheel_platform_tags(dest)
    system, cpu = describe_tag(platform) if platform else this_machine()[1:]
    manifest = {
        "python": python,
        "implementation": "CPython",
        "os": system,
        "cpu": cpu,
        "platform_tags": tags,
        "requirements_sha256": requirements_sha256(requirements),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def bundle_problems(folder: Path, requirements: Path = REQUIREMENTS) -> list[str]:
    """What stops this machine from installing from the bundle in ``folder``, in words (empty:
    nothing). Checks the manifest: Python version, OS and CPU, and the requirements' hash."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return [
            f"{folder} has no {MANIFEST}: it was not made by `python -m course_lib bundle` (or "
            f"by an older version). Make the bundle again with `make bundle`."
        ]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        wanted = (manifest["python"], manifest["os"], manifest["cpu"])
    except (ValueError, KeyError) as exc:
        return [f"{path} is damaged ({exc}); make the bundle again with `make bundle`"]
    here = this_machine()
    problems = []
    if wanted != here and not (wanted[:2] == here[:2] and wanted[2] == "arm64 and x86_64"):
        problems.append(
            f"this bundle is for CPython {wanted[0]} on {wanted[1]} {wanted[2]}; this machine is "
            f"{platform_module.python_implementation()} {here[0]} on {here[1]} {here[2]}. Ask for "
            f"the bundle made for this laptop, or install with internet (docs/setup.md)."
        )
    if requirements.is_file() and manifest.get("requirements_sha256") != requirements_sha256(
        requirements
    ):
        problems.append(
            f"this bundle was made for another requirements.txt than {requirements} (the course "
            f"changed since): make the bundle again with `make bundle` from this version."
        )
    return problems


def build_wheelhouse(
    requirements: Path = REQUIREMENTS,
    dest: Path = BUILD_DIR / "wheelhouse",
    platform: str | None = None,
    python_version: str | None = None,
    torch_index: str | None = TORCH_CPU_INDEX,
    pip_args: list[str] | None = None,
    env: dict | None = None,
    build_tools: list[str] = BUILD_TOOLS,
) -> list[Path]:
    """Put a wheel for every line of ``requirements`` (and their dependencies) into ``dest``.

    ``platform``/``python_version``: build for another machine (``win_amd64``,
    ``macosx_11_0_arm64``, ``manylinux2014_x86_64``; ``3.11``); None means this machine.
    ``torch_index``: where a Linux bundle gets the CPU torch (None: pip's configured sources).
    ``pip_args``: passed to every pip call (for example ``--index-url URL`` of a local mirror).
    ``build_tools``: added to the requirements so that ``pip install -e .`` works offline too.
    Returns the files in ``dest``.
    """
    pip_args = list(pip_args or [])
    dest.mkdir(parents=True, exist_ok=True)
    lines = requirement_lines(requirements) + list(build_tools)
    cross = platform is not None or python_version is not None
    torch_pins = [line for line in lines if line.lower().replace(" ", "").startswith("torch==")]
    if torch_pins and is_linux_target(platform) and not cross:
        wheel = _download_torch_cpu(torch_pins[0], dest, torch_index, pip_args, env)
        # Resolve everything else against this exact wheel, so no CUDA torch can sneak in.
        lines = [str(wheel) if line in torch_pins else line for line in lines]
    elif torch_pins and is_linux_target(platform):
        index = ["--extra-index-url", torch_index] if torch_index else []
        pip_args = pip_args + index
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if cross:
            target = ["--only-binary=:all:", "--implementation", "cp"]
            target += ["--platform", platform] if platform else []
            target += ["--python-version", python_version] if python_version else []
            _pip(["download", "-r", str(reqs), "-d", str(dest), *target, *pip_args], env)
        else:
            _pip(["wheel", "-r", str(reqs), "-w", str(dest), *pip_args], env)
    if is_linux_target(platform) and torch_pins and cuda_wheels(dest):
        raise RuntimeError(
            f"the Linux bundle in {dest} contains CUDA wheels ({', '.join(cuda_wheels(dest)[:3])}, "
            f"...): torch came from an index with the CUDA build. Delete {dest} and run again "
            f"with --torch-index {TORCH_CPU_INDEX}."
        )
    (dest / "requirements.txt").write_text(
        requirements.read_text(encoding="utf-8"), encoding="utf-8"
    )
    write_manifest(dest, requirements, python_version, platform)
    return sorted(p for p in dest.iterdir() if p.is_file())


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib bundle",
        description="Download every pinned requirement into a wheelhouse for an offline install.",
        epilog=(
            "Install from it: python -m pip install --no-index --find-links build/wheelhouse "
            "-r requirements.txt"
        ),
    )
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--dest", type=Path, default=BUILD_DIR / "wheelhouse")
    parser.add_argument("--platform", help="pip platform tag, e.g. win_amd64, macosx_11_0_arm64")
    parser.add_argument("--python-version", help="e.g. 3.11 (with --platform)")
    parser.add_argument(
        "--torch-index",
        default=os.environ.get("COURSE_TORCH_INDEX", TORCH_CPU_INDEX),
        help=f"index with the CPU torch for Linux (default {TORCH_CPU_INDEX}; "
        "'none' = pip's configured sources)",
    )
    args, pip_args = parser.parse_known_args(argv)
    torch_index = None if args.torch_index.lower() == "none" else args.torch_index
    start = time.perf_counter()
    files = build_wheelhouse(
        args.requirements, args.dest, args.platform, args.python_version, torch_index, pip_args
    )
    seconds = time.perf_counter() - start
    size = folder_size(args.dest)
    print(
        f"\n{len(files)} files, {size / 1e6:.0f} MB in {args.dest} ({seconds:.0f} s).\n"
        f"Install on a laptop of the same OS and Python:\n"
        f"  python -m pip install --no-index --find-links {args.dest} -r requirements.txt"
    )
    return 0
