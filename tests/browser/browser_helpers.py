"""Helpers for the real-browser tests: find Chromium, run servers, drive JupyterLab.

The tests drive Debian's ``chromium`` with the PyPI ``playwright`` package (never a browser that
Playwright downloads). JupyterLab runs on a free loopback port with an empty token, with its
settings, workspaces, config and runtime files in a temporary folder, so a test run neither
reads nor changes the user's own JupyterLab setup.

Set ``COURSE_SKIP_BROWSER_TESTS=1`` to skip these tests (the only way they are skipped).
``COURSE_CHROMIUM=/path/to/chromium`` picks another Chromium or Chrome binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

from course_lib.runtime.offline import is_loopback
from course_lib.serving.processes import ChildProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SCREENSHOTS_DIR = REPO_ROOT / "build" / "screenshots"

SKIP_ENV = "COURSE_SKIP_BROWSER_TESTS"
CHROMIUM_ENV = "COURSE_CHROMIUM"
WIDGET_STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"
WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"

# Root user, no network, no GPU: the flags the course machines need (see COURSE_DESIGN.md).
# --host-resolver-rules makes every name but localhost unresolvable, so nothing in the page can
# reach the internet even if it tried; the tests also record and fail on such requests.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

INSTALL_HINT = (
    "The real-browser tests need Debian's Chromium: install it with\n"
    "    sudo apt-get install chromium\n"
    f"(or point {CHROMIUM_ENV} at a Chromium/Chrome binary). To skip the browser tests on "
    f"purpose, set {SKIP_ENV}=1."
)


def skip_requested() -> bool:
    """True when the user asked to skip the browser tests (``COURSE_SKIP_BROWSER_TESTS=1``)."""
    return os.environ.get(SKIP_ENV, "").strip().lower() not in ("", "0", "false", "no")


def find_chromium() -> str | None:
    """Path of the Chromium binary to drive, or None when there is none."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        return override if Path(override).is_file() and os.access(override, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    default = Path("/usr/bin/chromium")
    return str(default) if default.is_file() else None


def is_loopback_url(url: str) -> bool:
    """True for URLs that stay on this machine (loopback hosts, data:, blob:, about:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension", "devtools"):
        return True
    return bool(parts.hostname) and is_loopback(parts.hostname)


# Lab settings for the test run only. Windowing "none" puts every cell in the page (otherwise
# JupyterLab only renders the cells near the viewport); autosave off so running notebooks in the
# browser never writes to the committed files; no news or update checks (offline).
LAB_USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "scrollPastEnd": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

# The server imports the offline guard before JupyterLab, like every other process of the tests.
_GUARDED_LAB = (
    "import sys; from course_lib.runtime.offline import install_guard_if_requested; "
    "install_guard_if_requested(); from jupyterlab.labapp import main; sys.exit(main())"
)


def start_jupyterlab(root_dir: Path, work_dir: Path, *, startup_timeout: float = 120.0):
    """Start JupyterLab serving ``root_dir``; return ``(process, base_url)``.

    Everything JupyterLab writes (settings, workspaces, checkpoints, runtime files) goes under
    ``work_dir``.
    """
    work_dir = Path(work_dir)
    settings_dir = work_dir / "user-settings"
    for relative, values in LAB_USER_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
    for sub in ("workspaces", "runtime", "config", "checkpoints"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)

    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(work_dir / "runtime"),
        JUPYTER_CONFIG_DIR=str(work_dir / "config"),  # ignore the user's ~/.jupyter
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        # Lessons that train load the model the notebook tests just trained with the same
        # settings (nbval proved the training); see course_lib.finetuned.train_and_save.
        COURSE_REUSE_MODELS="1",
    )
    port = free_port()
    argv = [
        sys.executable,
        "-c",
        _GUARDED_LAB,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={work_dir / 'workspaces'}",
        # checkpoints too: nothing is written next to the course's notebooks
        f"--FileCheckpoints.root_dir={work_dir / 'checkpoints'}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    server = ChildProcess(argv, work_dir / "jupyterlab.log", env=env, cwd=root_dir).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        server.wait_for_http(base_url + "/api/status", startup_timeout, "JupyterLab")
    except BaseException:
        server.stop()
        raise
    return server, base_url


def tagged_cells(path: Path, tag: str = "widget") -> list[int]:
    """Indices (among all cells) of the code cells that carry ``tag``."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return [
        i
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code" and tag in cell.get("metadata", {}).get("tags", [])
    ]


def notebook_has_widgets(path: Path) -> bool:
    """True when any stored output of the notebook displays an ipywidgets widget."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            if WIDGET_MIMETYPE in (output.get("data") or {}):
                return True
    return False


# Widget models that only show something (progress bars, boxes, text): their saved state renders
# without a kernel. Any other model (a slider, a text box, a button) is a control a learner drives.
DISPLAY_ONLY_MODELS = {
    "BoxModel",
    "HBoxModel",
    "VBoxModel",
    "GridBoxModel",
    "FloatProgressModel",
    "IntProgressModel",
    "HTMLModel",
    "HTMLMathModel",
    "LabelModel",
    "OutputModel",
    "ImageModel",
    "LayoutModel",
    "ProgressStyleModel",
    "HTMLStyleModel",
    "HTMLMathStyleModel",
    "LabelStyleModel",
    "DescriptionStyleModel",
}


def interactive_widget_models(path: Path) -> set[str]:
    """Model names of the controls in the notebook's saved widget state (empty: none)."""
    metadata = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    state = metadata.get("widgets", {}).get(WIDGET_STATE_MIMETYPE, {}).get("state", {})
    names = {model.get("model_name", "") for model in state.values()}
    return {name for name in names if name and name not in DISPLAY_ONLY_MODELS}


def notebook_url(base_url: str, relative_path: str, workspace: str) -> str:
    """URL that opens one notebook in a fresh, named JupyterLab workspace."""
    return f"{base_url}/lab/workspaces/{quote(workspace)}/tree/{quote(relative_path)}?reset"


# --- JavaScript run in the JupyterLab page (window.jupyterapp is exposed by the server flag) ---

JS_PANEL = "window.jupyterapp && window.jupyterapp.shell.currentWidget"

JS_NOTEBOOK_READY = f"""() => {{
  const panel = {JS_PANEL};
  return !!(panel && panel.content && panel.context && panel.context.isReady
            && panel.content.widgets.length > 0);
}}"""

# Give the notebook the whole width (the file browser is open by default).
JS_COLLAPSE_SIDEBARS = (
    "() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }"
)

JS_KERNEL_IDLE = f"""() => {{
  const panel = {JS_PANEL};
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!(session && session.kernel && session.kernel.status === 'idle');
}}"""

JS_KERNEL_STATUS = f"""() => {{
  const panel = {JS_PANEL};
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return session && session.kernel ? session.kernel.status : 'no kernel';
}}"""

# The cells a notebook's widgets need carry this tag: the browser tests run only them (nbval runs
# every cell), on the models the notebook tests or a session fixture already made.
WIDGET_TAG = "widget"

# Runs the cells tagged WIDGET_TAG, in order, each to the end before the next; records in
# window.__courseRun which ran and whether JupyterLab reported success.
JS_START_TAGGED_RUN = """async (tag) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  window.__courseRun = {done: false, ran: []};
  try {
    for (let i = 0; i < notebook.widgets.length; i++) {
      const cell = notebook.widgets[i];
      const tags = cell.model.getMetadata('tags') || [];
      if (cell.model.type !== 'code' || !tags.includes(tag)) continue;
      notebook.activeCellIndex = i;
      const ok = await app.commands.execute('notebook:run-cell');
      window.__courseRun.ran.push({cell: i, ok: ok !== false,
                                   count: cell.model.executionCount});
      if (ok === false) break;
    }
    const ran = window.__courseRun.ran;
    window.__courseRun = {done: true, ok: ran.length > 0 && ran.every(r => r.ok), ran: ran};
  } catch (err) {
    window.__courseRun = {done: true, ok: false, error: String(err),
                          ran: window.__courseRun.ran};
  }
}"""

JS_RUN_FINISHED = "() => window.__courseRun && window.__courseRun.done"

# ipywidgets hides a widget's output (and blanks its model id) when the kernel closes the widget,
# e.g. a `tqdm.auto` bar with leave=False. That is the notebook's intent, not a display failure.
_JS_WIDGET_CLOSED = """
  const widgetClosed = (child) => {
    const out = child.querySelector(':scope > .jp-OutputArea-output');
    return !!(out && out.classList.contains('lm-mod-hidden')
              && !out.querySelector('.jupyter-widgets'));
  };"""

# True once every markdown cell is rendered, every image has loaded, and (when a kernel backs the
# widgets, ``widgetsLive``) every widget output shows a widget or an error.
# ranCells: the indices of the cells run in this page; only their widgets can be live (JupyterLab
# 4 does not restore stored widget state, jupyterlab/jupyterlab issue 15361).
JS_SETTLED = f"""(ranCells) => {{
  const panel = {JS_PANEL};{_JS_WIDGET_CLOSED}
  const cells = panel.content.widgets;
  for (let index = 0; index < cells.length; index++) {{
    const cell = cells[index];
    if (cell.model.type === 'markdown' && !cell.rendered) return false;
    if (cell.model.type !== 'code' || !ranCells.includes(index)) continue;
    const outputs = cell.model.outputs;
    const children = cell.outputArea.widgets;
    for (let i = 0; i < outputs.length; i++) {{
      if (!('{WIDGET_MIMETYPE}' in outputs.get(i).data)) continue;
      const node = children[i] && children[i].node;
      if (!node) return false;
      if (!node.querySelector('.jupyter-widgets')
          && !node.textContent.includes('Error displaying widget')
          && !widgetClosed(node))
        return false;
    }}
  }}
  return Array.from(panel.content.node.querySelectorAll('img')).every(img => img.complete);
}}"""

# What the page shows, cell by cell: error outputs, widget outputs and whether they rendered.
JS_REPORT = f"""() => {{
  const panel = {JS_PANEL};{_JS_WIDGET_CLOSED}
  const report = {{cells: 0, codeCells: 0, executed: 0, errors: [], widgets: [], brokenImages: 0,
                   tracebacks: [], kernel: null}};
  const session = panel.sessionContext && panel.sessionContext.session;
  report.kernel = session && session.kernel ? session.kernel.status : null;
  panel.content.widgets.forEach((cell, index) => {{
    report.cells += 1;
    if (cell.model.type !== 'code') return;
    report.codeCells += 1;
    const source = cell.model.sharedModel.getSource();
    const head = source.split('\\n').slice(0, 2).join(' | ').slice(0, 120);
    if (cell.model.executionCount !== null) report.executed += 1;
    const outputs = cell.model.outputs;
    const children = cell.outputArea.widgets;
    for (let i = 0; i < outputs.length; i++) {{
      const out = outputs.get(i).toJSON();
      if (out.output_type === 'error') {{
        report.errors.push({{cell: index, source: head, ename: out.ename,
                             evalue: String(out.evalue).slice(0, 500)}});
      }}
      if (out.data && out.data['{WIDGET_MIMETYPE}']) {{
        const node = children[i] && children[i].node;
        const text = node ? node.textContent : '';
        report.widgets.push({{cell: index, source: head,
          model_id: out.data['{WIDGET_MIMETYPE}'].model_id,
          rendered: !!(node && node.querySelector('.jupyter-widgets')),
          closed: !!(node && widgetClosed(node)),
          error: (text.includes('Error displaying widget')
                  || (node && node.querySelector('.jupyter-widgets-error-widget')))
                 ? (text.replace(/\\s+/g, ' ').trim() || 'ipywidgets error view').slice(0, 300)
                 : null}});
      }}
    }}
    // Tracebacks shown anywhere in the cell's output, including inside Output widgets
    // (an exception in a widget callback lands there, not in the cell's own outputs).
    const shown = cell.node.querySelector('.jp-OutputArea');
    if (shown && shown.textContent.includes('Traceback (most recent call last)')) {{
      report.tracebacks.push({{cell: index, source: head}});
    }}
  }});
  const whole = panel.content.node.textContent;
  // Anywhere on the page, nested widgets included: ipywidgets' two ways of showing a failure.
  report.widgetErrorText = whole.includes('Error displaying widget')
      || !!panel.content.node.querySelector('.jupyter-widgets-error-widget');
  report.brokenImages = Array.from(panel.content.node.querySelectorAll('img'))
      .filter(img => !(img.complete && img.naturalWidth > 0)).length;
  return report;
}}"""

JS_SHUTDOWN_KERNELS = """async () => {
  const services = window.jupyterapp && window.jupyterapp.serviceManager;
  if (!services) return;
  await services.sessions.refreshRunning();
  await services.sessions.shutdownAll();
  await services.kernels.refreshRunning();
  await services.kernels.shutdownAll();
}"""

JS_NOTEBOOK_HEIGHT = f"""() => {{
  const panel = {JS_PANEL};
  const outer = panel.content.node.closest('.jp-WindowedPanel-outer')
      || panel.content.node.querySelector('.jp-WindowedPanel-outer') || panel.content.node;
  return {{scroll: outer.scrollHeight, client: outer.clientHeight}};
}}"""

JS_SCROLL_TO_TOP = f"""() => {{
  const panel = {JS_PANEL};
  const windows = panel.content.node.querySelectorAll('.jp-WindowedPanel-outer');
  for (const node of [panel.content.node, ...windows]) {{
    node.scrollTop = 0;
  }}
  const outer = panel.content.node.closest('.jp-WindowedPanel-outer');
  if (outer) outer.scrollTop = 0;
}}"""


def screenshot_whole_notebook(page, path: Path, *, max_height: int = 16000) -> None:
    """Grow the viewport to the notebook's height (capped) and save a screenshot of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    with contextlib.suppress(Exception):
        heights = page.evaluate(JS_NOTEBOOK_HEIGHT)
        extra = max(0, heights["scroll"] - heights["client"])
        if extra:
            page.set_viewport_size(
                {"width": size["width"], "height": min(max_height, size["height"] + extra)}
            )
            page.wait_for_timeout(500)  # let JupyterLab lay out the taller page
        page.evaluate(JS_SCROLL_TO_TOP)
        page.wait_for_timeout(200)
    page.screenshot(path=str(path))
