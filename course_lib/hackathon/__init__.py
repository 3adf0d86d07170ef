"""Lesson 10, the hackathon: the challenge set, submissions, scoring and the leaderboard.

Modules, one idea each:

- ``challenge``: which tweets teams label (``data/challenge.json``), their answers, the
  ``challenge.csv`` teams get, an instructor's own set (``--answers``).
- ``submissions``: reading and checking a team's ``id,label`` file, never crashing.
- ``services``: scoring a team's running ``/predict`` (answers and p95 latency); a tiny local
  stand-in service for demos and tests.
- ``scoring``: the rule (macro-F1 + latency bonus) and scoring every team.
- ``leaderboard``: text table, bar chart, self-reloading HTML page.
- ``starter``: a valid baseline submission in well under 2 minutes.
- ``cli``: ``python -m course_lib score SUBMISSIONS_DIR [--answers FILE] [--service NAME=URL]
  [--out DIR]`` (also ``python -m course_lib.hackathon``).
"""

from .challenge import Challenge, ChallengeError, course_challenge, read_answers, write_challenge
from .cli import main
from .leaderboard import format_table, html_leaderboard, plot_leaderboard, write_leaderboard
from .scoring import latency_bonus, macro_f1, score_all
from .services import LocalService, labels_responder, query_service
from .starter import starter_submission
from .submissions import read_submission, write_submission

__all__ = [
    "Challenge",
    "ChallengeError",
    "LocalService",
    "course_challenge",
    "format_table",
    "html_leaderboard",
    "labels_responder",
    "latency_bonus",
    "macro_f1",
    "main",
    "plot_leaderboard",
    "query_service",
    "read_answers",
    "read_submission",
    "score_all",
    "starter_submission",
    "write_challenge",
    "write_leaderboard",
    "write_submission",
]
