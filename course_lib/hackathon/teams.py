"""The teams, their tokens, and the instructor's admin token.

The instructor names the teams in a UTF-8 text file, one per line: ``TEAM`` or ``TEAM,HOST``,
where ``HOST`` is the address of the team's laptop at the venue: the only host the scorer will
call for that team's service (``services.check_registered``). Blank lines and lines starting
with ``#`` are skipped. A team name is shown everywhere as text (escaped), and never used as a
file name, so any printable name of at most ``MAX_NAME`` characters works.

On the first start each team gets a random token, printed once as a table and written to
``DIR/tokens.csv`` (one ``team,token`` line per team, readable by the owner only); later starts
reuse those tokens and make tokens only for teams added to the file. The admin token (for the
final reveal) is in ``DIR/admin-token``.
"""

from __future__ import annotations

import csv
import io
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .store import write_durably

MAX_NAME = 40
TOKENS_FILE = "tokens.csv"
ADMIN_FILE = "admin-token"


class TeamsError(ValueError):
    """The teams file is unusable (the message says which line and why)."""


@dataclass(frozen=True)
class Team:
    name: str
    host: str | None = None  # where its service may be called; None: no service


def check_name(name: str) -> str | None:
    """What is wrong with a team name, or None when it is fine."""
    if not name:
        return "the name is empty"
    if len(name) > MAX_NAME:
        return f"the name has {len(name)} characters; at most {MAX_NAME}"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "the name contains a control character"
    return None


def read_teams(path: str | Path) -> list[Team]:
    """The teams of the instructor's file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise TeamsError(f"cannot read the teams file {path}: {err}") from err
    teams: list[Team] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = next(csv.reader([line]))
        name = cells[0].strip()
        host = cells[1].strip() if len(cells) > 1 and cells[1].strip() else None
        problem = check_name(name)
        if problem is None and len(cells) > 2:
            problem = "expected TEAM or TEAM,HOST"
        if problem is None and host and ("/" in host or " " in host):
            problem = f"the host {host!r} must be an address or a name, like 192.168.1.23"
        if problem is None and name.lower() in {t.name.lower() for t in teams}:
            problem = f"the team {name!r} is named twice"
        if problem:
            raise TeamsError(f"{path}, line {n}: {problem}")
        teams.append(Team(name, host))
    if not teams:
        raise TeamsError(f"{path} names no team: write one team name per line")
    return teams


def read_tokens(folder: Path) -> dict[str, str]:
    """``{team: token}`` from ``folder/tokens.csv`` (empty when there is none yet)."""
    path = folder / TOKENS_FILE
    if not path.exists():
        return {}
    rows = csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    return {row[0]: row[1] for row in rows if len(row) == 2}


def team_tokens(folder: str | Path, teams: list[Team]) -> tuple[dict[str, str], list[str]]:
    """``({team: token}, new teams)``: the tokens of ``folder/tokens.csv``, with a new token
    made (and the file rewritten) for each team not in it yet."""
    folder = Path(folder)
    tokens = read_tokens(folder)
    new = [t.name for t in teams if t.name not in tokens]
    if new:
        tokens.update({name: secrets.token_urlsafe(16) for name in new})
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\n").writerows(tokens.items())
        write_durably(folder / TOKENS_FILE, out.getvalue().encode("utf-8"))
    return tokens, new


def admin_token(folder: str | Path) -> str:
    """The admin token in ``folder/admin-token``, made on first use."""
    path = Path(folder) / ADMIN_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_urlsafe(24)
    write_durably(path, (token + "\n").encode())
    return token


def token_table(tokens: dict[str, str], names: list[str]) -> str:
    """The tokens of ``names`` as a fixed-width table, to print once."""
    width = max(len("team"), *(len(n) for n in names))
    lines = [f"{'team':<{width}}  token", f"{'-' * width}  {'-' * 22}"]
    return "\n".join(lines + [f"{n:<{width}}  {tokens[n]}" for n in names])
