"""Environment check for a participant's laptop: ``python -m course_lib doctor``.

Prints one line per check (PASS / WARN / FAIL) with a one-line fix for each failure, and
returns a non-zero exit status when anything fails. A participant's table lists what the lessons
run on; the tools that test and lint the course (pytest, ruff, nbval, Playwright, ...) are pinned
in requirements.txt too, but only ``--maintainer`` checks them.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata

from ..models import MODEL_PACKAGE, MODEL_PIP_NAME, ModelNotAvailable, packaged_model_dir
from ..settings import REPO_ROOT, REQUIREMENTS, pinned, read_pins

MIN_PYTHON = (3, 11)
MIN_MEMORY_GB = 4
MIN_DISK_GB = 2
# Pinned in requirements.txt for the test suite and the lint, never imported by a lesson.
DEVELOPER_TOOLS = frozenset(
    {
        "hypothesis",
        "import-linter",
        "nbval",
        "playwright",
        "pytest",
        "pytest-timeout",
        "pytest-xdist",
        "ruff",
        "schemathesis",
    }
)


@dataclass
class Check:
    name: str
    status: str  # "pass" | "warn" | "fail"
    detail: str
    fix: str = ""


def check_python(version: tuple[int, ...] | None = None) -> Check:
    """3.11 passes (what the course is tested on and a bundle serves); 3.12 warns (every pin has
    a 3.12 wheel, measured with tools/platform_support.py, but the course is not tested there);
    anything older fails."""
    version = tuple(version or sys.version_info[:3])
    found = ".".join(map(str, version))
    if version[:2] == MIN_PYTHON:
        return Check("python", "pass", found)
    if version[:2] > MIN_PYTHON:
        measured = "every pin has a wheel for it, " if version[:2] == (3, 12) else ""
        return Check(
            "python",
            "warn",
            f"{found}: {measured}but the course is tested on Python 3.11 only",
            "install Python 3.11 if anything fails (an offline bundle serves 3.11 only)",
        )
    return Check(
        "python", "fail", f"{found}, need 3.11", "install Python 3.11 and re-run `make setup`"
    )


def check_platform(system: str | None = None, machine: str | None = None) -> Check:
    """The OS and CPU, against the wheels the pinned torch publishes (docs/setup.md's table)."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    found = f"{system} {machine}"
    if system == "Darwin" and machine in ("x86_64", "amd64", "i386"):
        return Check(
            "platform",
            "fail",
            f"{found}: macOS on Intel; PyTorch publishes no wheels of the pinned "
            f"{pinned('torch')} for it (its last Intel-Mac wheels were 2.2), so the course "
            f"cannot be installed on this laptop",
            "use the room: open the address the instructor gives you in a browser and log in "
            "with the workshop code (nothing to install)",
        )
    return Check("platform", "pass", found)


def check_packages(pins: dict[str, str]) -> list[Check]:
    checks = []
    for name, wanted in sorted(pins.items()):
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(
                Check(name, "fail", f"missing (want {wanted})", f"pip install {name}=={wanted}")
            )
            continue
        if found.split("+")[0] == wanted:
            checks.append(Check(name, "pass", found))
        else:
            checks.append(
                Check(name, "warn", f"{found}, pinned {wanted}", f"pip install {name}=={wanted}")
            )
    return checks


def check_model() -> Check:
    try:
        folder = packaged_model_dir()
    except ModelNotAvailable as exc:
        return Check(
            "pretrained model",
            "fail",
            str(exc).split(". Fix")[0],
            f"pip install {pinned(MODEL_PIP_NAME)}",
        )
    try:
        from ..runtime.environment import quiet_libraries, set_offline

        set_offline()
        quiet_libraries()
        from transformers import AutoModel

        model = AutoModel.from_pretrained(folder)
        params = sum(p.numel() for p in model.parameters()) / 1e6
    except Exception as exc:  # any failure to load is the thing we report
        return Check(
            "pretrained model",
            "fail",
            f"{MODEL_PACKAGE} does not load: {type(exc).__name__}: {exc}",
            f"pip install --force-reinstall {pinned(MODEL_PIP_NAME)}",
        )
    return Check("pretrained model", "pass", f"MiniLM loads offline ({params:.1f} M parameters)")


def check_data() -> Check:
    from ..data import DATA_PACKAGE, DataNotAvailable, corpus_path

    try:
        path = corpus_path()
    except DataNotAvailable as exc:
        missing = "not installed" in str(exc)
        return Check(
            "tweet corpus",
            "fail",
            f"package {DATA_PACKAGE} missing" if missing else str(exc).split(". Fix")[0],
            f"pip install {'' if missing else '--force-reinstall '}{pinned(DATA_PACKAGE)}",
        )
    return Check("tweet corpus", "pass", f"{path.name} ({path.stat().st_size / 1e6:.1f} MB)")


def check_machine() -> list[Check]:
    checks = []
    cores = os.cpu_count() or 1
    checks.append(
        Check(
            "cpu cores",
            "pass" if cores >= 2 else "warn",
            f"{cores}",
            "" if cores >= 2 else "fine-tuning will be slow on one core",
        )
    )
    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**30
        ok = mem >= MIN_MEMORY_GB
        checks.append(
            Check(
                "memory",
                "pass" if ok else "warn",
                f"{mem:.1f} GiB",
                "" if ok else f"close other programs; {MIN_MEMORY_GB} GiB is comfortable",
            )
        )
    except ImportError:
        checks.append(Check("memory", "warn", "psutil missing, cannot tell", "pip install psutil"))
    free = shutil.disk_usage(REPO_ROOT).free / 2**30
    ok = free >= MIN_DISK_GB
    checks.append(
        Check(
            "free disk",
            "pass" if ok else "fail",
            f"{free:.1f} GiB",
            "" if ok else f"free at least {MIN_DISK_GB} GiB for the fine-tuned models",
        )
    )
    try:
        import torch

        if torch.cuda.is_available():
            checks.append(Check("gpu", "pass", torch.cuda.get_device_name(0)))
        else:
            checks.append(Check("gpu", "pass", "none (the course runs on CPU)"))
    except ImportError:
        checks.append(Check("gpu", "fail", "torch missing", f"pip install {pinned('torch')}"))
    return checks


def run_checks(load_model: bool = True, maintainer: bool = False) -> list[Check]:
    """Every check, in table order; the developer tools' versions only with ``maintainer``."""
    checks = [check_platform(), check_python()]
    if REQUIREMENTS.is_file():
        pins = read_pins()
        checks += check_packages(
            pins if maintainer else {k: v for k, v in pins.items() if k not in DEVELOPER_TOOLS}
        )
    else:
        checks.append(
            Check("requirements.txt", "warn", "not found next to course_lib; versions not compared")
        )
    checks.append(
        check_model() if load_model else Check("pretrained model", "warn", "not loaded (skipped)")
    )
    checks.append(check_data())
    checks += check_machine()
    return checks


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  status  detail"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status.upper():<6}  {c.detail}")
        if c.status != "pass" and c.fix:
            lines.append(f"{'':<{width}}  {'':<6}  fix: {c.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    lines.append(
        f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"
        + ("" if counts["fail"] == 0 else "  -> fix the FAIL lines, then run the doctor again")
    )
    return "\n".join(lines)


def doctor(load_model: bool = True, print_report: bool = True, maintainer: bool = False) -> bool:
    """Check this machine for the course; print the table; return True when nothing failed.
    ``maintainer=True`` also checks the tools that test and lint the course."""
    checks = run_checks(load_model=load_model, maintainer=maintainer)
    if print_report:
        print(f"course_lib doctor on {platform.system()} {platform.machine()}")
        print(format_report(checks))
    return not any(c.status == "fail" for c in checks)


def check_bundle(folder) -> list[Check]:
    """Can this machine install from the bundle in ``folder``? (Standard library only: it runs
    before anything is installed.)"""
    from .bundle import bundle_problems

    checks = [check_platform(), check_python()]
    problems = bundle_problems(folder)
    if problems:
        checks += [Check("bundle", "fail", p) for p in problems]
    else:
        checks.append(Check("bundle", "pass", f"{folder} serves this machine"))
    return checks


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib doctor [--skip-model] [--maintainer] [--bundle DIR]``: exit
    status 1 when a check fails."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m course_lib doctor", description=__doc__)
    parser.add_argument(
        "--skip-model", action="store_true", help="do not load the model (faster, less thorough)"
    )
    parser.add_argument(
        "--maintainer",
        action="store_true",
        help="also check the tools that test and lint the course (pytest, ruff, nbval, ...)",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="only check that this offline bundle (make bundle) fits this machine, before "
        "installing from it; works with a bare Python",
    )
    args = parser.parse_args(argv)
    if args.bundle is not None:
        checks = check_bundle(args.bundle)
        print(f"course_lib doctor --bundle {args.bundle}")
        print(format_report(checks))
        return 0 if not any(c.status == "fail" for c in checks) else 1
    return 0 if doctor(load_model=not args.skip_model, maintainer=args.maintainer) else 1
