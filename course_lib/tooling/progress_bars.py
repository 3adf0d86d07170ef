"""Stored progress bars that show where they finished, not where they started.

tqdm's notebook bar is a widget (an HBox of an HTML label, a FloatProgress and an HTML label)
whose plain-text form is computed once, when it is displayed. A stored notebook therefore says
"0%" wherever the widget state is not drawn (GitHub, nbconvert, a text diff). The widget state
that nbclient saves in the notebook's metadata holds the bar's final labels and value, so
``finish_progress_bars`` rebuilds the text tqdm would print at the end and stores that instead.
"""

from __future__ import annotations

import re
from html import unescape

from tqdm.std import Bar

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10  # characters: tqdm's text bar when it has no terminal width to fill
TQDM_PARTS = ["HTMLModel", "FloatProgressModel", "HTMLModel"]
# A widget that is not tqdm's bar stores its repr, e.g. "HBox(children=(HTML(value='a'), ..."
WIDGET_REPR = re.compile(r"^\w+\(")


def _widget(state: dict, ref: str) -> dict:
    return state.get(ref.removeprefix("IPY_MODEL_"), {})


def progress_bar_text(state: dict, model_id: str) -> str | None:
    """The plain text of tqdm's notebook bar ``model_id`` in its saved (final) state, as tqdm
    prints it (``fine-tuning: 100%|██████████| 250/250 [02:14<00:00, 1.75it/s]``); ``""`` for a
    bar hidden when it closed (``leave=False``); None when the widget is not shaped like one.

    tqdm splits its line at the bar into the two labels, HTML-escaped and with figure spaces for
    spaces. A bar without a total has no percentage left of the bar (the widget draws it full);
    its text gets no bar (``reading: 4/? [00:01<00:00, 3.2it/s]``)."""
    box = state.get(model_id, {})
    children = [_widget(state, ref) for ref in box.get("state", {}).get("children", [])]
    if box.get("model_name") != "HBoxModel" or [c.get("model_name") for c in children] != (
        TQDM_PARTS
    ):
        return None
    layout = _widget(state, box["state"].get("layout", "")).get("state", {})
    if layout.get("visibility") == "hidden":
        return ""
    left, bar, right = (child.get("state", {}) for child in children)
    left_text, right_text = left.get("value", ""), right.get("value", "")
    if not left_text.endswith("%"):  # no total: tqdm's text has no percentage and no bar
        line = left_text + right_text.lstrip("\u2007 ")
    else:
        low, high = bar.get("min") or 0, bar.get("max") or 1
        share = min(max(((bar.get("value") or 0) - low) / ((high - low) or 1), 0), 1)
        line = f"{left_text}|{format(Bar(share, default_len=BAR_WIDTH), '')}|{right_text}"
    return unescape(line).replace("\u2007", " ")


def finish_progress_bars(nb) -> int:
    """Give every tqdm bar output of an executed notebook the text of its final state (read from
    the widget state saved in ``nb.metadata``) and remove the outputs of bars hidden when they
    closed, as JupyterLab shows nothing for them. Other widgets keep their text. Returns how many
    outputs were changed or removed: 0 for a notebook whose bars are finished already."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.cells:
        if "outputs" not in cell:
            continue
        kept = []
        for output in cell.outputs:
            data = output.get("data", {})
            view = data.get(WIDGET_VIEW)
            stored = data.get("text/plain", "")
            text = None
            if view and not WIDGET_REPR.match(stored):
                text = progress_bar_text(state, view.get("model_id", ""))
            changed += text is not None and text != stored
            if text == "":
                continue
            if text is not None:
                data["text/plain"] = text
            kept.append(output)
        cell.outputs = kept
    return changed
