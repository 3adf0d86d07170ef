"""``python -m course_lib score``: score a hackathon (see ``course_lib.hackathon``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..settings import BUILD_DIR
from .challenge import ChallengeError, read_answers, write_challenge
from .scoring import FAST_P95_MS, OK_P95_MS
from .services import BUDGET_S, TIMEOUT_S

DEFAULT_OUT = BUILD_DIR / "leaderboard"


def parse_services(specs: list[str]) -> dict[str, str]:
    """``["team=http://host:port", ...]`` -> ``{team: url}``; ValueError naming a bad one."""
    services = {}
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"--service {spec!r}: expected NAME=http://HOST:PORT")
        services[name.strip()] = url.strip()
    return services


def parse_tokens(specs: list[str], services: dict[str, str]) -> dict[str, str]:
    """``["team=TOKEN", ...]`` -> ``{team: token}``, each for a team given with --service."""
    tokens = {}
    for spec in specs:
        name, sep, token = spec.partition("=")
        if not sep or name.strip() not in services or not token.strip():
            raise ValueError(
                f"--token {spec.split('=')[0]!r}=...: expected NAME=TOKEN for a --service NAME"
            )
        tokens[name.strip()] = token.strip()
    return tokens


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m course_lib score",
        description="Score the hackathon: every team's CSV in SUBMISSIONS_DIR and/or running "
        "services; print a leaderboard, write a PNG chart and a self-reloading HTML page.",
    )
    p.add_argument("submissions_dir", nargs="?", help="folder with one TEAM.csv per team")
    p.add_argument(
        "--answers",
        help="the answers: CSV id,label[,text], from `python -m course_lib hackathon answers "
        "FILE` or your own set",
    )
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a team's running service (POST URL/predict); may be repeated",
    )
    p.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="NAME=TOKEN",
        help="bearer token for NAME's service (when it sets COURSE_API_TOKEN)",
    )
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where the leaderboard files go")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per request")
    p.add_argument(
        "--fast-ms", type=float, default=FAST_P95_MS, help="p95 limit for the larger bonus"
    )
    p.add_argument("--ok-ms", type=float, default=OK_P95_MS, help="p95 limit for the smaller bonus")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per service in all")
    p.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="score again every SECONDS until Ctrl-C (for the projected HTML page)",
    )
    p.add_argument(
        "--write-challenge",
        metavar="DIR",
        help="write DIR/challenge.csv (id,text; no labels) for the teams, then stop",
    )
    p.add_argument(
        "--write-record",
        action="store_true",
        help="maintainers: rebuild data/challenge.json and data/dev.json from the corpus",
    )
    return p


def main(argv: list[str] | None = None, rounds: int | None = None) -> int:
    """The command. ``rounds`` caps the ``--every`` loop (for tests); None = until Ctrl-C."""
    from .challenge import write_challenge_record
    from .devset import write_dev_record
    from .leaderboard import format_table, write_leaderboard
    from .scoring import score_all

    args = build_parser().parse_args(argv)
    try:
        if args.write_record:
            record, dev = write_challenge_record(), write_dev_record()
            print(f"data/challenge.json: {record['size']} tweets; data/dev.json: {dev['size']}")
            return 0
        challenge = read_answers(args.answers) if args.answers else None
        if args.write_challenge:
            path = write_challenge(args.write_challenge, challenge)
            print(f"wrote {path} (the texts and ids, no labels)")
            return 0
        if challenge is None:
            raise ValueError(
                "give --answers FILE: the challenge's answers, which only your machine has "
                "(write them with `python -m course_lib hackathon answers FILE`)"
            )
        services = parse_services(args.service)
        tokens = parse_tokens(args.token, services)
    except (ChallengeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.submissions_dir is None and not services:
        print("error: give SUBMISSIONS_DIR, --service NAME=URL, or both", file=sys.stderr)
        return 2
    done = 0
    try:
        while True:
            board = score_all(
                args.submissions_dir,
                challenge,
                services,
                tokens,
                args.fast_ms,
                args.ok_ms,
                timeout=args.timeout,
                budget_s=args.budget,
            )
            print(format_table(board))
            paths = write_leaderboard(board, args.out, refresh_s=int(args.every or 30) or 1)
            print(f"\nwrote {', '.join(str(Path(p)) for p in paths.values())}")
            done += 1
            if not args.every or (rounds is not None and done >= rounds):
                return 0
            print(f"scoring again in {args.every:g} s (Ctrl-C stops)\n", flush=True)
            time.sleep(args.every)
    except KeyboardInterrupt:
        print("stopped")
        return 0
