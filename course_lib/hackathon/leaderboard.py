"""Showing the scores: a text table, a bar chart (PNG) and a self-contained HTML page.

The HTML page is one file with inline CSS and no script or outside asset (its
Content-Security-Policy forbids loading anything), reloads itself every ``refresh_s`` seconds
(so a projector shows the newest run of the scorer), and escapes every team name and message.
"""

from __future__ import annotations

import html
import json
import time
import unicodedata
from pathlib import Path

from .scoring import FAST_BONUS, OK_BONUS, Leaderboard, TeamRow

REFRESH_S = 30


def display_name(name: str, width: int = 30) -> str:
    """A team name safe for a terminal: control characters replaced by ``?``, cut to ``width``."""
    clean = "".join("?" if unicodedata.category(c).startswith("C") else c for c in name)
    return clean if len(clean) <= width else clean[: width - 1] + "~"


def _fmt(value, spec: str, empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def _row_cells(row: TeamRow) -> dict[str, str]:
    file, service = row.entry("file"), row.entry("service")
    return {
        "rank": _fmt(row.rank, "d"),
        "team": row.team,
        "score": _fmt(row.score, ".3f", "rejected"),
        "file F1": _fmt(file.macro_f1 if file else None, ".3f"),
        "service F1": _fmt(service.macro_f1 if service else None, ".3f"),
        "p95 ms": _fmt(service.p95_ms if service else None, ".1f"),
        "bonus": _fmt(service.bonus if service and service.macro_f1 is not None else None, "+.2f"),
    }


def problems_of(row: TeamRow) -> list[str]:
    return [f"{e.kind}: {p}" for e in row.entries for p in e.problems]


def format_table(board: Leaderboard) -> str:
    """The leaderboard as fixed-width text, each team's problems listed under the table."""
    cells = [_row_cells(r) for r in board.rows]
    for c in cells:
        c["team"] = display_name(c["team"])
    heads = ["rank", "team", "score", "file F1", "service F1", "p95 ms", "bonus"]
    widths = {h: max([len(h)] + [len(c[h]) for c in cells]) for h in heads}

    def line(c: dict) -> str:
        return "  ".join(
            c[h].ljust(widths[h]) if h == "team" else c[h].rjust(widths[h]) for h in heads
        )

    out = [f"Leaderboard: {len(board.rows)} teams, {board.challenge_size} tweets ({board.source})"]
    out += [line({h: h for h in heads}), line({h: "-" * widths[h] for h in heads})]
    out += [line(c) for c in cells]
    for row in board.rows:
        for p in problems_of(row):
            out.append(f"  {display_name(row.team)}: {display_name(p, 200)}")
    out += [f"  note: {n}" for n in board.notes]
    return "\n".join(out)


def leaderboard_records(board: Leaderboard) -> list[dict]:
    """One JSON-ready dict per team (for ``leaderboard.json``)."""
    return [
        {
            "rank": r.rank,
            "team": r.team,
            "score": r.score,
            "entries": [
                {
                    "kind": e.kind,
                    "macro_f1": e.macro_f1,
                    "answered": e.answered,
                    "p95_ms": e.p95_ms,
                    "bonus": e.bonus,
                    "problems": e.problems,
                }
                for e in r.entries
            ],
        }
        for r in board.rows
    ]


def plot_leaderboard(board: Leaderboard, path: str | Path | None = None):
    """Horizontal bars: macro-F1 plus the latency bonus stacked on it; rejected teams marked."""
    import matplotlib.pyplot as plt

    rows = board.rows[::-1]  # best at the top
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    f1 = [(r.best.macro_f1 if r.best else 0.0) for r in rows]
    bonus = [(r.best.bonus if r.best else 0.0) for r in rows]
    y = range(len(rows))
    ax.barh(y, f1, color="#4c72b0", label="macro-F1")
    ax.barh(y, bonus, left=f1, color="#dd8452", label="latency bonus (served model)")
    for i, r in enumerate(rows):
        text = "rejected" if r.score is None else f"{r.score:.3f}"
        ax.text(f1[i] + bonus[i] + 0.01, i, text, va="center", fontsize=9)
    # "$" would start matplotlib math mode inside a team name
    ax.set_yticks(list(y), [display_name(r.team, 24).replace("$", r"\$") for r in rows])
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("score = macro-F1 on the challenge set + latency bonus")
    ax.set_ylabel("team")
    ax.set_title(f"Hackathon leaderboard ({board.challenge_size} tweets)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;background:#fafafa;color:#222}
table{border-collapse:collapse;min-width:60%}th,td{padding:.35rem .7rem;text-align:right}
th{border-bottom:2px solid #444}td.team{text-align:left;font-weight:600}
tr:nth-child(even){background:#eee}.bar{height:.9rem;display:inline-block;vertical-align:middle}
.f1{background:#4c72b0}.bonus{background:#dd8452}.barcell{text-align:left;width:30%}
ul{font-size:.9rem;color:#7a2c00}.small{color:#666;font-size:.85rem}
"""


def html_leaderboard(board: Leaderboard, refresh_s: int = REFRESH_S) -> str:
    """The leaderboard as one self-contained HTML page that reloads itself."""
    esc = html.escape
    heads = ["rank", "team", "score", "file F1", "service F1", "p95 ms", "bonus"]
    body = []
    for r in board.rows:
        c = _row_cells(r)
        f1 = r.best.macro_f1 if r.best else 0.0
        bonus = r.best.bonus if r.best else 0.0
        bar = (
            f'<span class="bar f1" style="width:{100 * f1:.1f}%"></span>'
            f'<span class="bar bonus" style="width:{100 * bonus:.1f}%"></span>'
        )
        tds = "".join(
            f'<td class="team">{esc(c[h])}</td>' if h == "team" else f"<td>{esc(c[h])}</td>"
            for h in heads
        )
        body.append(f'<tr>{tds}<td class="barcell">{bar}</td></tr>')
    problems = "".join(
        f"<li><b>{esc(r.team)}</b>: {esc(p)}</li>" for r in board.rows for p in problems_of(r)
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in board.notes)
    stamp = time.strftime("%H:%M:%S")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta http-equiv="refresh" content="{int(refresh_s)}">
<title>Hackathon leaderboard</title><style>{_CSS}</style></head>
<body><h1>Hackathon leaderboard</h1>
<p class="small">{board.challenge_size} tweets, {esc(board.source)}. Score = macro-F1, plus for a
served model +{FAST_BONUS:g} when p95 &le; {board.fast_ms:g} ms or +{OK_BONUS:g} when p95 &le;
{board.ok_ms:g} ms.
Scored at {stamp}; this page reloads every {int(refresh_s)} s.</p>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}<th></th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
{f"<h2>Problems</h2><ul>{problems}</ul>" if problems else ""}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def write_leaderboard(board: Leaderboard, out_dir: str | Path, refresh_s: int = REFRESH_S) -> dict:
    """Write ``leaderboard.txt``, ``.json``, ``.png`` and ``.html`` into ``out_dir``."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"leaderboard.{k}" for k in ("txt", "json", "png", "html")}
    paths["txt"].write_text(format_table(board) + "\n", encoding="utf-8")
    paths["json"].write_text(
        json.dumps({"source": board.source, "teams": leaderboard_records(board)}, indent=1),
        encoding="utf-8",
    )
    plt.close(plot_leaderboard(board, paths["png"]))
    # Written next to the old page and then renamed, so a reloading browser never sees half a page.
    tmp = paths["html"].with_suffix(".html.tmp")
    tmp.write_text(html_leaderboard(board, refresh_s), encoding="utf-8")
    tmp.replace(paths["html"])
    return paths
