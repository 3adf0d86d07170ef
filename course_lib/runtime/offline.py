"""Refuse network connections to anything but loopback.

The course must run with no internet. The tests prove it: they set ``COURSE_OFFLINE_GUARD=1``,
and every process that imports ``course_lib`` (pytest itself, each notebook kernel, each server
a notebook starts) then installs this guard. A refused attempt raises ``OfflineViolation`` and is
appended to the file named by ``COURSE_OFFLINE_LOG``, so that an attempt swallowed by a broad
``except`` in some library still fails the test run.
"""

from __future__ import annotations

import ipaddress
import os
import socket

from ..settings import env_flag

GUARD_ENV = "COURSE_OFFLINE_GUARD"
LOG_ENV = "COURSE_OFFLINE_LOG"

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
_original = {}


class OfflineViolation(RuntimeError):
    """Raised when code tries to reach a non-loopback address while the guard is on."""


def is_loopback(host) -> bool:
    """True for 127.0.0.0/8, ::1, 'localhost' and Unix-socket paths."""
    if isinstance(host, (bytes, bytearray)):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str, host) -> None:
    message = (
        f"course_lib offline guard: {what} to {host!r} refused. The course runs offline; "
        f"only loopback addresses (127.0.0.1, ::1, localhost) are allowed."
    )
    log = os.environ.get(LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"pid {os.getpid()}: {what} {host!r}\n")
    raise OfflineViolation(message)


def _check_address(what: str, family, address) -> None:
    if family in (getattr(socket, "AF_UNIX", None),):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not is_loopback(host):
        _refuse(what, host)


def _guarded_connect(self, address):
    _check_address("connect", self.family, address)
    return _original["connect"](self, address)


def _guarded_connect_ex(self, address):
    _check_address("connect", self.family, address)
    return _original["connect_ex"](self, address)


def _guarded_sendto(self, data, *args):
    address = args[-1]
    _check_address("sendto", self.family, address)
    return _original["sendto"](self, data, *args)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if host is not None and not is_loopback(host):
        _refuse("name lookup", host)
    return _original["getaddrinfo"](host, *args, **kwargs)


def install_guard() -> None:
    """Install the guard in this process (idempotent)."""
    if _original:
        return
    _original.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        sendto=socket.socket.sendto,
        getaddrinfo=socket.getaddrinfo,
    )
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.socket.sendto = _guarded_sendto
    socket.getaddrinfo = _guarded_getaddrinfo


def guard_requested() -> bool:
    return env_flag(GUARD_ENV)


def install_guard_if_requested() -> bool:
    if guard_requested():
        install_guard()
        return True
    return False
