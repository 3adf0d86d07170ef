"""Lesson 10, the hackathon: the challenge and dev sets, submissions, scoring, the submission
server and its fair leaderboard.

Modules, one idea each:

- ``challenge``: which tweets teams label (``data/challenge.json``), ``challenge.csv`` (texts,
  no labels) for the teams, the answers (``hackathon answers OUT``) for the instructor only.
- ``devset``: the labelled dev set drawn like the challenge (``data/dev.json``); lesson 10's
  practice set.
- ``split``: stratified, seeded splits (the dev set; the challenge's public and private parts).
- ``submissions``: reading and checking a team's ``id,label`` file, never crashing.
- ``services``: scoring a team's running ``/predict`` (answers and p95 latency), only at a
  registered address; a tiny local stand-in service for demos and tests.
- ``scoring``: the rule (macro-F1 + latency bonus) and scoring a folder of files.
- ``ranking``: the counted submission, and ties within the bootstrap noise of the score.
- ``fairplay``: the hourly submission limit and the flag for looked-up labels.
- ``store``: every submission kept, append-only and crash-safe.
- ``teams``: the instructor's teams file, the tokens, the admin token.
- ``competition``: all of that together, as the server runs it.
- ``server``, ``server_cli``: the FastAPI submission server, ``python -m course_lib hackathon``.
- ``client``: submitting over HTTP; a local server as a child process.
- ``priors``: the prior shift from lesson 05's data to the challenge, and its correction.
- ``leaderboard``: text table, bar chart, self-reloading HTML page of ``score``.
- ``starter``: a valid submission from the tuned baseline, or from a fine-tuned model.
- ``cli``: ``python -m course_lib score SUBMISSIONS_DIR --answers FILE [--service NAME=URL]
  [--out DIR]`` (also ``python -m course_lib.hackathon``).
"""

from .challenge import (
    Challenge,
    ChallengeError,
    challenge_texts,
    read_answers,
    write_answers,
    write_challenge,
)
from .cli import main
from .client import (
    SubmissionServer,
    fetch_board,
    fetch_history,
    format_board,
    register_service,
    submit_file,
)
from .devset import dev_set, write_dev_csv
from .leaderboard import format_table, html_leaderboard, plot_leaderboard, write_leaderboard
from .scoring import latency_bonus, macro_f1, score_all
from .services import LocalService, labels_responder, query_service
from .starter import model_submission, starter_submission
from .submissions import read_submission, write_submission

__all__ = [
    "Challenge",
    "ChallengeError",
    "LocalService",
    "SubmissionServer",
    "challenge_texts",
    "dev_set",
    "format_board",
    "format_table",
    "html_leaderboard",
    "labels_responder",
    "latency_bonus",
    "fetch_board",
    "fetch_history",
    "macro_f1",
    "main",
    "model_submission",
    "plot_leaderboard",
    "query_service",
    "read_answers",
    "read_submission",
    "register_service",
    "score_all",
    "starter_submission",
    "submit_file",
    "write_answers",
    "write_challenge",
    "write_dev_csv",
    "write_leaderboard",
    "write_submission",
]
