"""One system account and one private home per participant (root only).

JupyterHub's local-process spawner runs each participant's server as a system user, so each
participant gets ``room-NAME`` with the home ``HOMES/NAME`` (mode 0700: nobody else can list or
read it, from a terminal, a notebook or the contents API). Accounts are created with
``useradd`` the first time a participant's server starts and removed with ``userdel`` (home
included) by ``room --remove-accounts`` or by the tests. Only accounts carrying the room's
comment are ever removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import threading
from pathlib import Path

from .names import ACCOUNT_COMMENT, ACCOUNT_PREFIX, account_name

# Servers of several participants start at once, each from a thread of the hub: useradd locks
# /etc/passwd and fails ("cannot lock") when two run together, so they take turns.
_USERADD = threading.Lock()


class AccountError(RuntimeError):
    """An account could not be created or removed (the message says what the system said)."""


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def lookup(account: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(account)
    except KeyError:
        return None


def is_room_account(entry: pwd.struct_passwd) -> bool:
    """True for an account this room created (its prefix and its comment)."""
    return entry.pw_name.startswith(ACCOUNT_PREFIX) and entry.pw_gecos == ACCOUNT_COMMENT


def ensure_account(name: str, homes: Path) -> pwd.struct_passwd:
    """The system account of participant ``name``, created with a private home under ``homes``
    when missing. Refuses to reuse an account of the same name that the room did not create."""
    account = account_name(name)
    entry = lookup(account)
    if entry is not None:
        if not is_room_account(entry):
            raise AccountError(
                f"the system account {account!r} exists but was not created by the room "
                f"(its comment is {entry.pw_gecos!r}, expected {ACCOUNT_COMMENT!r}); refusing "
                f"to run a participant's server as it"
            )
        return entry
    home = Path(homes) / name
    command = [
        "useradd",
        "--create-home",
        "--home-dir",
        str(home),
        "--shell",
        "/bin/bash",
        "--comment",
        ACCOUNT_COMMENT,
        "--user-group",
        "--no-log-init",
        account,
    ]
    with _USERADD:
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise AccountError(f"useradd failed for {account!r}: {done.stderr.strip()}")
    os.chmod(home, 0o700)  # useradd's HOME_MODE varies between systems; private, always
    return pwd.getpwnam(account)


def room_accounts() -> list[str]:
    """Names of the system accounts this room created (``room-*`` with the room's comment)."""
    return sorted(e.pw_name for e in pwd.getpwall() if is_room_account(e))


def end_processes_of(uid: int) -> None:
    """Kill every process running as ``uid`` (a participant's leftover kernels, terminals)."""
    import psutil

    mine = []
    for process in psutil.process_iter(["uids"]):
        uids = process.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective):
            mine.append(process)
    for process in mine:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(mine, timeout=5)


def remove_account(account: str) -> None:
    """Remove a room account, its processes and its home. Refuses any other account."""
    entry = lookup(account)
    if entry is None:
        return
    if not is_room_account(entry):
        raise AccountError(f"{account!r} was not created by the room; not removing it")
    end_processes_of(entry.pw_uid)
    done = subprocess.run(["userdel", "--remove", account], capture_output=True, text=True)
    if lookup(account) is not None:
        raise AccountError(f"userdel failed for {account!r}: {done.stderr.strip()}")
    shutil.rmtree(entry.pw_dir, ignore_errors=True)  # userdel leaves it when it holds others' files
