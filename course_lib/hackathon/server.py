"""The submission server's HTTP side: a FastAPI app around a ``Competition``.

=========================  =============  ====================================================
endpoint                   token          what
=========================  =============  ====================================================
``GET /``                  -              the page: upload, messages, history, the board
``POST /api/submissions``  team           multipart field ``file`` (and optionally ``team``,
                                          checked against the token): checked, scored, kept
``GET /api/submissions``   team           the team's history, and which submission counts
``POST /api/choice``       team           ``{"submission": N}``: the submission that counts
``POST /api/service``      team           ``{"url", "token"}``: score the team's service now
``GET /api/leaderboard``   - (admin)      the board: public split, or private once revealed;
                                          the admin token adds flags, ``?final=true`` previews
``POST /api/admin/reveal`` admin          reveal the final ranking (submissions close)
``GET /api/health``        -              ``{"status": "ok"}``
=========================  =============  ====================================================

Every error is ``{"error": code, "message": text}`` with its status: 401 (and ``WWW-Authenticate:
Bearer``) for a missing or unknown token, 403 for a token of another team or an unregistered
service address, 413 for a body over the limit, 422 for a rejected file (kept, with the
checker's messages) or a malformed request, 429 (and ``Retry-After``) over the hourly limit.
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations, which
# name types imported inside create_app, when each endpoint is defined.
import datetime as dt
import time
from typing import Annotated

from pydantic import BaseModel, Field

from ..serving.app import PAGE_POLICY, BodySizeLimit, static_page
from ..serving.validation import error_body
from .competition import Board, Competition, Refused
from .fairplay import HOUR_S
from .ranking import LEVEL, ROUNDS
from .scoring import FAST_BONUS, OK_BONUS
from .store import Record
from .submissions import MAX_BYTES

MULTIPART_SLACK = 64 * 1024  # the form's own bytes around the file


def iso(t: float | None) -> str | None:
    return (
        None if t is None else dt.datetime.fromtimestamp(t).astimezone().isoformat("T", "seconds")
    )


class Problem(BaseModel):
    error: str
    message: str
    retry_at: str | None = None


class SubmissionOut(BaseModel):
    id: int
    team: str
    time: str
    kind: str = Field(description="file | service")
    name: str = Field(description="the uploaded file's name, or the service URL")
    rejected: bool
    problems: list[str]
    public: float | None = Field(description="macro-F1 on the public split (None: rejected)")
    bonus: float
    p95_ms: float | None
    counted: bool = False


class History(BaseModel):
    team: str
    counted: int | None
    limit_per_hour: int
    scored_last_hour: int
    submissions: list[SubmissionOut]


class ChoiceIn(BaseModel):
    submission: int = Field(ge=1)


class ServiceIn(BaseModel):
    url: str = Field(max_length=300, description="http://HOST:PORT of the team's service")
    token: str | None = Field(default=None, max_length=300, description="its bearer token")


class RowOut(BaseModel):
    rank: int | None
    team: str
    score: float | None
    public: float | None
    private: float | None
    kind: str | None
    bonus: float
    p95_ms: float | None
    submissions: int
    last: str | None
    flagged: bool | None = Field(default=None, description="admin only: labels looked up?")


class BoardOut(BaseModel):
    final: bool
    split: str
    size: int
    public_share: float
    rule: str
    rows: list[RowOut]


def submission_out(record: Record, counted: int | None) -> SubmissionOut:
    return SubmissionOut(
        id=record.id,
        team=record.team,
        time=iso(record.time),
        kind=record.kind,
        name=record.name,
        rejected=record.rejected,
        problems=record.problems,
        public=record.public,
        bonus=record.bonus,
        p95_ms=record.p95_ms,
        counted=record.id == counted,
    )


def board_out(board: Board, competition: Competition, admin: bool) -> BoardOut:
    rule = (
        f"macro-F1 on the {board.split} split ({board.size} tweets), plus for a served model "
        f"+{FAST_BONUS:g} at p95 <= {competition.fast_ms:g} ms or +{OK_BONUS:g} at p95 <= "
        f"{competition.ok_ms:g} ms. Teams share a rank unless the first of their group scores "
        f"higher on {LEVEL:.1%} of {ROUNDS} bootstrap resamples of the split."
    )
    rows = [
        RowOut(
            rank=r.rank,
            team=r.team,
            score=r.score,
            public=r.public,
            private=r.private,
            kind=r.kind,
            bonus=r.bonus,
            p95_ms=r.p95_ms,
            submissions=r.submissions,
            last=iso(r.last),
            flagged=r.flagged if admin else None,
        )
        for r in board.rows
    ]
    share = len(competition.answers.public) / len(competition.answers.ids)
    return BoardOut(
        final=board.final,
        split=board.split,
        size=board.size,
        public_share=round(share, 3),
        rule=rule,
        rows=rows,
    )


def create_app(competition: Competition, refresh_s: int = 15):
    """The FastAPI app (wrapped in the body-size limit) serving ``competition``."""
    from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(
        title="course_lib hackathon submission server",
        docs_url=None,  # the docs pages load scripts from a CDN; /openapi.json is enough
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False, description="a team's token, or the admin token")

    def refused(exc: Refused) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.retry_at is not None:
            headers["Retry-After"] = str(max(1, int(exc.retry_at - time.time()) + 1))
        body = error_body(exc.code, exc.message)
        if exc.retry_at is not None:
            body["retry_at"] = iso(exc.retry_at)
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(Refused)
    async def refused_error(request, exc: Refused):
        return refused(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc):
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(error_body("invalid_request", where[:500]), status_code=422)

    def token_of(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str | None:
        return credentials.credentials if credentials else None

    Token = Annotated[str | None, Depends(token_of)]

    def team_of(token: Token) -> str:
        if token is None:
            raise Refused(401, "missing_token", "send your team's token: Authorization: Bearer ...")
        team = competition.team_of(token)
        if team is None:
            what = "the admin token is not a team's" if competition.is_admin(token) else "unknown"
            raise Refused(401, "bad_token", f"this token is {what}: use your team's token")
        return team

    TeamOf = Annotated[str, Depends(team_of)]

    def admin(token: Token) -> bool:
        if not competition.is_admin(token):
            raise Refused(401, "admin_only", "this needs the admin token (DIR/admin-token)")
        return True

    def same_team(team: str, named: str | None) -> None:
        if named is not None and named != team:
            raise Refused(
                403, "wrong_team", "this token belongs to another team: submit with your own token"
            )

    def answer(record: Record, team: str) -> JSONResponse:
        body = submission_out(record, competition.counted(team)).model_dump()
        return JSONResponse(body, status_code=422 if record.rejected else 200)

    @app.get("/", response_class=HTMLResponse)
    def page():
        html = static_page("hackathon.html").replace("{{REFRESH_S}}", str(int(refresh_s)))
        headers = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"}
        return HTMLResponse(html, headers=headers)

    @app.get("/api/health")
    def health():
        return {"status": "ok"}

    @app.post(
        "/api/submissions",
        response_model=SubmissionOut,
        responses={s: {"model": Problem} for s in (401, 403, 409, 413, 422, 429)},
    )
    def submit(
        file: Annotated[UploadFile, File(description="the team's id,label CSV")],
        team: TeamOf,
        team_name: Annotated[str | None, Form(alias="team", max_length=200)] = None,
    ):
        same_team(team, team_name)
        content = file.file.read(MAX_BYTES + 1)
        if len(content) > MAX_BYTES:
            raise Refused(413, "file_too_large", f"the file is over {MAX_BYTES:,} bytes")
        return answer(competition.submit_file(team, file.filename, content), team)

    @app.get("/api/submissions", response_model=History, responses={401: {"model": Problem}})
    def history(team: TeamOf, team_name: Annotated[str | None, Query(alias="team")] = None):
        same_team(team, team_name)
        counted = competition.counted(team)
        own = competition.store.of_team(team)
        now = competition.clock()
        return History(
            team=team,
            counted=counted,
            limit_per_hour=competition.limit,
            scored_last_hour=sum(not r.rejected and now - r.time < HOUR_S for r in own),
            submissions=[submission_out(r, counted) for r in own],
        )

    @app.post("/api/choice", response_model=History, responses={401: {"model": Problem}})
    def choose(choice: ChoiceIn, team: TeamOf):
        competition.choose(team, choice.submission)
        return history(team)

    @app.post(
        "/api/service",
        response_model=SubmissionOut,
        responses={s: {"model": Problem} for s in (401, 403, 409, 422, 429)},
    )
    def service(body: ServiceIn, team: TeamOf):
        return answer(competition.submit_service(team, body.url, body.token), team)

    @app.get("/api/leaderboard", response_model=BoardOut)
    def leaderboard(token: Token, final: bool = False):
        is_admin = competition.is_admin(token)
        if final and not (is_admin or competition.store.revealed):
            raise Refused(
                401, "admin_only", "the final ranking needs the admin token until revealed"
            )
        board = competition.board(final or competition.store.revealed, is_admin)
        return board_out(board, competition, is_admin)

    @app.post("/api/admin/reveal", response_model=BoardOut)
    def reveal(_: Annotated[bool, Depends(admin)]):
        return board_out(competition.reveal(), competition, True)

    @app.middleware("http")
    async def no_cache(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return BodySizeLimit(app, max_bytes=MAX_BYTES + MULTIPART_SLACK)
