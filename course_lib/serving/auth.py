"""The bearer token of ``POST /predict`` (RFC 6750), when the server was started with one.

FastAPI's ``HTTPBearer`` reads the ``Authorization: Bearer <token>`` header; ``check_token``
compares the token in constant time and answers as RFC 6750 section 3.1 says: 401 with
``WWW-Authenticate: Bearer`` when the request carries no bearer token, 401 with
``WWW-Authenticate: Bearer error="invalid_token"`` when it carries a wrong one.
"""

import hmac
from typing import Annotated

from .validation import ApiError

CHALLENGE = "Bearer"  # no token: the scheme alone, no error code (RFC 6750 section 3.1)
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'
CHALLENGES = [CHALLENGE, INVALID_TOKEN_CHALLENGE]  # every WWW-Authenticate value a 401 carries


def check_token(expected: str | None, given: str | None) -> None:
    """Raise ``ApiError`` 401 unless ``given`` (the bearer token of the request, None when it
    has none) is ``expected``. A no-op when the server has no token."""
    if not expected:
        return
    if not given:
        raise ApiError(
            401,
            "missing_token",
            "this server needs a token: send the header 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": CHALLENGE},
        )
    # Compare bytes in constant time; headers arrive latin-1 decoded, so this cannot fail.
    given_bytes = given.strip().encode("latin-1", "replace")
    if not hmac.compare_digest(given_bytes, expected.encode("utf-8")):
        raise ApiError(
            401,
            "invalid_token",
            "the token does not match",
            {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
        )


def token_dependency(expected: str | None):
    """A FastAPI dependency that lets a request through only with ``Bearer <expected>``."""
    from fastapi import Depends
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    # auto_error=False: no header, another scheme, or an empty token give None, and the
    # service answers with its own JSON error rather than FastAPI's.
    bearer = HTTPBearer(auto_error=False)

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        check_token(expected, credentials.credentials if credentials else None)

    return require_token
