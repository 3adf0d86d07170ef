"""Execute notebooks headless, each top to bottom in a fresh kernel, with a timing table.

    python -m course_lib run                          # every lesson in notebooks/, outputs stored
    python -m course_lib run notebooks/01_attention.ipynb --no-write   # check only
    python -m course_lib run --html                   # also export to build/html/ (hand-outs)

Each cell gets a time limit (``--timeout``, seconds). A cell that errors, runs past its limit, or
hangs (nbclient has been seen to wait forever after a widget cell with the kernel idle, see
jupyter/nbclient#312) ends that notebook with a failure that names the cell; the other notebooks
still run. A notebook in ``notebooks/`` that ran cleanly and was written back gets its wall time
recorded in ``notebooks/timings.json`` (the course map and the agenda read it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..settings import BUILD_DIR, NOTEBOOKS_DIR, PROFILE_ENV, PROFILES

TIMINGS = NOTEBOOKS_DIR / "timings.json"
DEFAULT_CELL_TIMEOUT = 1800  # lesson 05 trains in one cell: minutes on a slow laptop
# Beyond nbclient's own per-cell limit, our guard waits this much longer before calling it a hang.
HANG_GRACE = 30


class CellFailure(RuntimeError):
    """A cell errored, timed out or hung; ``str()`` names the notebook cell and what happened."""


@dataclass
class RunResult:
    notebook: str
    seconds: float
    ok: bool
    failure: str = ""


def lesson_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The lesson notebooks of a folder in order (``NN_name.ipynb``)."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def describe_cell(index: int, cell) -> str:
    """``cell 7 (code: 'model = train(...)')``: how a failure names the cell it happened in."""
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f"cell {index} ({cell.cell_type}: {first!r})"


async def execute_cells(client, nb, cell_timeout: float, progress=None) -> None:
    """Run every cell of ``nb`` in ``client``'s (already started) kernel, in order.

    nbclient enforces ``cell_timeout`` itself; around each cell we add our own deadline
    (``cell_timeout + HANG_GRACE``) so that a client stuck waiting on an idle kernel also ends.
    Raises ``CellFailure`` naming the cell.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    for index, cell in enumerate(nb.cells):
        try:
            await asyncio.wait_for(
                client.async_execute_cell(
                    cell, index, execution_count=client.code_cells_executed + 1
                ),
                timeout=cell_timeout + HANG_GRACE,
            )
        except (TimeoutError, CellTimeoutError) as exc:  # asyncio's is the builtin
            if isinstance(exc, CellTimeoutError):
                what = f"ran past the {cell_timeout:g} s cell limit"
            else:  # nbclient itself never gave up: the client was stuck, not the kernel
                what = f"hung: no reply from nbclient after {cell_timeout + HANG_GRACE:g} s"
            raise CellFailure(
                f"{describe_cell(index, cell)} {what}. Run the notebook in JupyterLab to see "
                f"where it stops, or raise --timeout."
            ) from exc
        except CellExecutionError as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            raise CellFailure(
                f"{describe_cell(index, cell)} raised {lines[-1] if lines else 'an error'}"
            ) from exc
        except DeadKernelError as exc:
            raise CellFailure(
                f"{describe_cell(index, cell)}: the kernel died (often out of memory): {exc}"
            ) from exc
        if progress is not None and cell.cell_type == "code":
            progress.update(1)


async def _run_notebook(nb, folder: Path, cell_timeout: float, progress) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    )
    client.reset_execution_trackers()
    async with client.async_setup_kernel():
        reply = await client.async_wait_for_reply(await _maybe_await(client.kc.kernel_info()))
        if reply is not None and "language_info" in reply["content"]:
            nb.metadata["language_info"] = reply["content"]["language_info"]
        await execute_cells(client, nb, cell_timeout, progress)
        client.set_widgets_metadata()


async def _maybe_await(value):
    return await value if asyncio.iscoroutine(value) else value


def run_notebook(path: Path, cell_timeout: float = DEFAULT_CELL_TIMEOUT, write: bool = True):
    """Execute one notebook in a fresh kernel started in its folder; return ``(RunResult, nb)``.

    With ``write``, a notebook that ran cleanly is saved in place with its new outputs."""
    import nbformat
    from nbclient.util import run_sync
    from tqdm.auto import tqdm

    nb = nbformat.read(path, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    start = time.perf_counter()
    with tqdm(total=code_cells, desc=path.name, unit="cell", leave=False) as progress:
        try:
            run_sync(_run_notebook)(nb, path.resolve().parent, cell_timeout, progress)
            result = RunResult(path.name, time.perf_counter() - start, True)
        except CellFailure as exc:
            result = RunResult(path.name, time.perf_counter() - start, False, str(exc))
    if result.ok and write:
        nbformat.write(nb, path)
    return result, nb


def export_html(nb, name: str, out: Path = BUILD_DIR / "html") -> Path:
    """Write the executed notebook as a standalone HTML page ``out/NAME.html``."""
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    body, _ = HTMLExporter().from_notebook_node(nb)
    target = out / (Path(name).stem + ".html")
    target.write_text(body, encoding="utf-8")
    return target


def record_timing(result: RunResult, path: Path = TIMINGS) -> None:
    """Store a clean run's wall time in ``timings.json`` (kept sorted by notebook name)."""
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[result.notebook] = {
        "seconds": round(result.seconds, 1),
        "cores": os.cpu_count(),
        "measured": time.strftime("%Y-%m-%d"),
    }
    path.write_text(json.dumps(dict(sorted(timings.items())), indent=1) + "\n")


def timing_table(results: list[RunResult]) -> str:
    """A Markdown table: notebook, seconds, OK/FAIL and the failure, then the total."""
    rows = ["| notebook | seconds | result |", "| --- | ---: | --- |"]
    for r in results:
        rows.append(
            f"| {r.notebook} | {r.seconds:.1f} | {'ok' if r.ok else 'FAIL: ' + r.failure} |"
        )
    total = sum(r.seconds for r in results)
    failed = sum(not r.ok for r in results)
    rows.append(f"| **total** | {total:.1f} | {len(results) - failed} ok, {failed} failed |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib run",
        description="Execute notebooks headless in fresh kernels and print a timing table.",
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: every lesson in notebooks/"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="check only: keep the files as they are"
    )
    parser.add_argument(
        "--html", action="store_true", help="also export each notebook to build/html/"
    )
    parser.add_argument("--html-dir", type=Path, default=BUILD_DIR / "html", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="full",
        help="the run profile of the kernels (default full; a slow laptop: --profile quick "
        "--no-write)",
    )
    args = parser.parse_args(argv)
    if args.profile != "full" and not args.no_write:
        parser.error(
            "the stored outputs are the full profile's: --profile quick needs --no-write "
            "(a check that changes no file)"
        )
    saved = os.environ.get(PROFILE_ENV)
    os.environ[PROFILE_ENV] = args.profile  # the kernels inherit it
    try:
        os.environ.setdefault("COURSE_OFFLINE_GUARD", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        paths = args.notebooks or lesson_notebooks()
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            parser.error(f"no such notebook: {', '.join(missing)}")
        results = []
        for path in paths:
            result, nb = run_notebook(path, args.timeout, write=not args.no_write)
            results.append(result)
            status = "ok" if result.ok else f"FAIL: {result.failure}"
            print(f"{path.name}: {result.seconds:.1f} s, {status}", flush=True)
            if result.ok and not args.no_write and path.resolve().parent == NOTEBOOKS_DIR:
                record_timing(result)
            if args.html:
                print(f"  html: {export_html(nb, path.name, args.html_dir)}")
    finally:
        if saved is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = saved
    print("\n" + timing_table(results))
    return 0 if all(r.ok for r in results) else 1
