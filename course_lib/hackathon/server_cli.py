"""``python -m course_lib hackathon answers|serve``: the instructor's side of the competition.

    python -m course_lib hackathon answers OUT
    python -m course_lib hackathon serve --teams FILE --answers FILE --data DIR
        [--host H] [--port P] [--limit-per-hour N] [--final]

``answers`` writes the challenge's answers (``id,label,text``) from the corpus on this machine:
the file teams never get. ``serve`` runs the submission server (``server.py``) on them; ``DIR``
keeps every submission, the tokens and the admin token, and a restart goes on where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..serving.cli import DEFAULT_HOST, exit_when_parent_dies
from .challenge import ChallengeError, course_challenge, write_answers
from .fairplay import DEFAULT_LIMIT_PER_HOUR, LOOKUP_AGREEMENT
from .scoring import FAST_P95_MS, OK_P95_MS
from .store import StoreError, write_durably
from .teams import TeamsError

DEFAULT_PORT = 8100
ANSWERS_DIGEST = "answers.sha256"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_lib hackathon",
        description="The hackathon's submission server, and the answers it scores against.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("answers", help="write the challenge's answers (id,label,text) to OUT")
    a.add_argument("out", help="where to write them; keep this file on your machine")
    s = sub.add_parser("serve", help="run the submission server")
    s.add_argument("--teams", required=True, help="one team per line: TEAM or TEAM,HOST")
    s.add_argument("--answers", required=True, help="the answers file (from `answers OUT`)")
    s.add_argument("--data", required=True, help="folder for submissions, tokens, admin token")
    s.add_argument(
        "--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}; the venue: 0.0.0.0"
    )
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    s.add_argument(
        "--limit-per-hour",
        type=int,
        default=DEFAULT_LIMIT_PER_HOUR,
        help=f"scored submissions per team per hour (default {DEFAULT_LIMIT_PER_HOUR})",
    )
    s.add_argument("--fast-ms", type=float, default=FAST_P95_MS, help="p95 for the larger bonus")
    s.add_argument("--ok-ms", type=float, default=OK_P95_MS, help="p95 for the smaller bonus")
    s.add_argument("--final", action="store_true", help="reveal the final ranking (private split)")
    s.add_argument("--refresh", type=int, default=15, help="seconds between page refreshes")
    s.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    return p


def check_same_answers(folder: Path, digest: str) -> None:
    """A data folder is scored against one answers file for its whole life."""
    path = folder / ANSWERS_DIGEST
    if not path.exists():
        write_durably(path, (digest + "\n").encode())
    elif path.read_text().strip() != digest:
        raise StoreError(
            f"{folder} holds submissions scored against another answers file (SHA-256 "
            f"{path.read_text().strip()[:12]}...). Start with that file, or with a new --data "
            f"folder."
        )


def open_competition(args):
    """Teams, tokens, answers and store from the options; prints what a instructor must know."""
    from .competition import Competition, load_answers
    from .store import SubmissionStore
    from .teams import admin_token, read_teams, team_tokens, token_table

    folder = Path(args.data)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    teams = read_teams(args.teams)
    answers = load_answers(args.answers)
    check_same_answers(folder, answers.sha256)
    tokens, new = team_tokens(folder, teams)
    admin = admin_token(folder)
    if new:
        print(
            f"Tokens of the new teams (printed once; all of them are in {folder / 'tokens.csv'}):"
        )
        print(token_table(tokens, new))
    print(f"{len(teams)} teams; the admin token (final reveal) is in {folder / 'admin-token'}")
    store = SubmissionStore(folder)
    for line in store.recovered:
        print(f"recovered after a crash: {line}")
    competition = Competition(
        answers, teams, tokens, admin, store, args.limit_per_hour, args.fast_ms, args.ok_ms
    )
    flag = (
        f"on (agreement with the corpus labels > {LOOKUP_AGREEMENT:.3f})"
        if answers.reference
        else "off (these answers are not the course challenge's)"
    )
    print(
        f"answers {answers.source}: {len(answers.ids)} tweets, {len(answers.public)} public, "
        f"{len(answers.private)} private; {len(store.records)} submissions kept; limit "
        f"{args.limit_per_hour} per team per hour; lookup flag {flag}"
    )
    return competition


def print_final(competition) -> None:
    board = competition.reveal()
    print(f"Final ranking (private split, {board.size} tweets; public beside it):")
    for row in board.rows:
        score = "-" if row.score is None else f"{row.score:.3f}"
        public = "-" if row.public is None else f"{row.public + row.bonus:.3f}"
        rank = "-" if row.rank is None else str(row.rank)
        print(f"  {rank:>3}  {row.team[:30]:<30}  private {score}  public {public}")


def serve(args) -> int:
    if args.exit_with_parent:
        exit_when_parent_dies()
    if not 0 <= args.port <= 65535:
        print(f"--port must be in 0..65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        competition = open_competition(args)
    except (ChallengeError, TeamsError, StoreError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.final:
        print_final(competition)
    import uvicorn

    from .server import create_app

    print(
        f"course_lib hackathon: http://{args.host}:{args.port}/ (Ctrl+C stops it; a restart "
        f"keeps every submission)",
        flush=True,
    )
    try:
        uvicorn.run(
            create_app(competition, args.refresh),
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_keep_alive=5,
            server_header=False,
        )
    finally:
        competition.store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "answers":
        try:
            path = write_answers(args.out, course_challenge())
        except (ChallengeError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(
            f"wrote {path}: the challenge's answers. Keep it on your machine; teams never get it."
        )
        return 0
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
