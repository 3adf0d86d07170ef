"""Hand the fine-tuned model to a slow laptop: one archive out, one archive in, no training.

    python -m course_lib pack-model [--model minilm-tweets] [--out build/minilm-tweets.zip]
    python -m course_lib unpack-model build/minilm-tweets.zip [--force]

Lessons 06-10 call ``finetuned.finetuned_model()``, which trains the model (lesson 05's few minutes)
only when ``artifacts/minilm-tweets`` is missing; unpacking the archive there lets them skip it.

The archive is a zip (every OS opens one) holding the model folder and ``course-model.json``:
the SHA-256 and size of every file, and the torch/transformers versions that wrote it. Unpacking
checks every name (nothing outside the model folder) and every checksum, extracts beside the
target and renames, so a broken archive never leaves a half-written model that later lessons
would take for a finished one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from ..artifacts import DEFAULT_MODEL_NAME as DEFAULT_MODEL
from ..artifacts import REQUIRED_FILES as REQUIRED
from ..artifacts import atomic_folder
from ..data import file_sha256
from ..settings import BUILD_DIR, artifacts_dir

MANIFEST = "course-model.json"


class ArchiveError(ValueError):
    """The archive is not a model archive written by ``pack-model``, or it is damaged."""


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "transformers"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def pack_model(folder: Path, archive: Path) -> Path:
    """Write ``folder`` (a saved model) into the zip ``archive`` with a checksum manifest."""
    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a finished model folder (missing {', '.join(missing)}). Train it "
            f"first: run lesson 05, or python -m course_lib train."
        )
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "model": folder.name,
        "files": {
            p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in files
        },
        "versions": _versions(),
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        for p in files:
            zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    partial.replace(archive)
    return archive


def read_manifest(archive: Path) -> dict:
    """The manifest of a model archive; ``ArchiveError`` when it is not one."""
    try:
        with zipfile.ZipFile(archive) as zf:
            return json.loads(zf.read(MANIFEST))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ArchiveError(
            f"{archive} is not a model archive from `python -m course_lib pack-model` ({exc})"
        ) from None


def _check_names(zf: zipfile.ZipFile, model: str, manifest: dict) -> None:
    """Every member is the manifest or a file of the manifest inside ``model/``, nothing else."""
    if not model or "/" in model or "\\" in model or model in (".", ".."):
        raise ArchiveError(f"the archive names a bad model folder {model!r}")
    expected = {f"{model}/{name}" for name in manifest["files"]} | {MANIFEST}
    for name in zf.namelist():
        parts = PurePosixPath(name).parts
        if name not in expected or name.startswith("/") or ".." in parts or "\\" in name:
            raise ArchiveError(f"unexpected member {name!r} in the archive (refused)")
    absent = expected - set(zf.namelist())
    if absent:
        raise ArchiveError(f"the archive lacks {', '.join(sorted(absent))}")


def unpack_model(archive: Path, dest: Path | None = None, force: bool = False) -> Path:
    """Unpack ``archive`` into ``dest`` (default: the artifacts folder); return the model folder.

    Refuses to replace an existing model folder unless ``force``; raises ``ArchiveError`` for a
    damaged or foreign archive (bad names, wrong checksums, missing files)."""
    dest = Path(dest) if dest is not None else artifacts_dir()
    manifest = read_manifest(archive)
    model = manifest.get("model", "")
    target = dest / model
    with zipfile.ZipFile(archive) as zf:
        _check_names(zf, model, manifest)
        missing = [name for name in REQUIRED if name not in manifest["files"]]
        if missing:
            raise ArchiveError(f"the archive's model lacks {', '.join(missing)}")
        if target.exists() and not force:
            raise FileExistsError(
                f"{target} exists already; pass --force to replace it with the archive's model"
            )
        with atomic_folder(target) as staged:  # a damaged archive leaves the target as it was
            for name, info in manifest["files"].items():
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(f"{model}/{name}") as src, open(staged / name, "wb") as out:
                    shutil.copyfileobj(src, out)
                if file_sha256(staged / name) != info["sha256"]:
                    raise ArchiveError(f"{name} in {archive} is damaged (checksum differs)")
    return target


def pack_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib pack-model",
        description="Pack the fine-tuned model from artifacts/ into one zip for slow laptops.",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="folder name in artifacts/")
    parser.add_argument("--out", type=Path, help="archive path (default build/MODEL.zip)")
    args = parser.parse_args(argv)
    out = args.out or BUILD_DIR / f"{args.model}.zip"
    try:
        archive = pack_model(artifacts_dir() / args.model, out)
    except FileNotFoundError as exc:
        print(exc)
        return 1
    print(
        f"{archive} ({archive.stat().st_size / 1e6:.0f} MB). On each slow laptop:\n"
        f"  python -m course_lib unpack-model {archive.name}"
    )
    return 0


def unpack_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib unpack-model",
        description="Unpack a pack-model archive into artifacts/, so lessons 06-10 skip training.",
    )
    parser.add_argument("archive", type=Path)
    parser.add_argument("--force", action="store_true", help="replace a model already there")
    parser.add_argument("--dest", type=Path, help="default: the artifacts folder")
    args = parser.parse_args(argv)
    try:
        target = unpack_model(args.archive, args.dest, args.force)
    except (ArchiveError, FileExistsError, FileNotFoundError) as exc:
        print(exc)
        return 1
    print(f"Unpacked into {target}. Lessons 06-10 will use it instead of training.")
    return 0
