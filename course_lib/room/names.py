"""The names participants log in with, and the system accounts they map to.

A participant types a short name on the hub's log-in page. It becomes part of a URL
(``/user/NAME/``), of a system account and of a home folder, so only plain names are accepted:
no path characters, no markup, no spaces. Each name maps to the system account ``room-NAME``,
so that no name can ever select an account the room did not create (``root``, ``daemon``, the
instructor's own login).
"""

from __future__ import annotations

import re

NAME_PATTERN = r"[a-z][a-z0-9_-]{0,19}"
NAME_RULE = (
    "A name is 1 to 20 characters: lowercase letters, digits, '-' or '_', starting with a "
    "letter (for example 'ada' or 'team3-lin'). Spaces, dots, slashes and markup are refused."
)
ACCOUNT_PREFIX = "room-"
# The comment (GECOS field) of every account the room creates: how removal recognises them.
ACCOUNT_COMMENT = "course room participant"
ADMIN_NAME = "instructor"

_NAME = re.compile(NAME_PATTERN)


def is_valid_name(name: str) -> bool:
    """True when ``name`` (already lower-cased) may be a participant's name."""
    return bool(_NAME.fullmatch(name))


def account_name(name: str) -> str:
    """The system account of the participant ``name``: ``room-NAME``; ValueError for a name the
    room refuses (so no caller can build an account from unchecked input)."""
    if not is_valid_name(name):
        raise ValueError(f"{name!r} is not a participant name. {NAME_RULE}")
    return ACCOUNT_PREFIX + name
