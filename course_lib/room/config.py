"""The room's settings, as one JSON file the hub process reads (``DATA/hub/room.json``, mode
0600: it holds the workshop code and the instructor's password).

``python -m course_lib room`` writes it and a two-line ``jupyterhub_config.py`` that hands it to
``course_lib.room.hub.configure``; JupyterHub is then started on that file. Nothing here imports
JupyterHub, so the command line starts fast and can check everything before the hub starts.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Readable codes: no 0/o, 1/l/i. SharedPasswordAuthenticator wants at least 8 characters.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MIN_CODE_LENGTH = 8


def new_workshop_code(length: int = 10) -> str:
    """A random workshop code people can read off a slide and type."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def new_admin_password() -> str:
    """The instructor's password: 32+ characters (the authenticator's minimum for admins)."""
    return secrets.token_urlsafe(30)


@dataclass
class RoomConfig:
    data: str  # the room's folder: hub/ (private state), homes/, shared-models/
    code: str
    admin_password: str
    host: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    max_users: int = 30
    idle_timeout: int = 3600  # seconds without activity before a server is culled
    threads: int = 2  # OMP_NUM_THREADS of each participant's kernels
    certfile: str | None = None
    keyfile: str | None = None
    python: str = ""  # the course environment's interpreter (the hub's own)
    source: str = ""  # the course's notebooks/, source of the learner copies
    proxy_command: str = ""  # node_modules/.bin/configurable-http-proxy
    shared_models: list[str] = field(default_factory=list)
    pass_env: list[str] = field(default_factory=list)  # variables handed to participants

    @property
    def hub_dir(self) -> Path:
        return Path(self.data) / "hub"

    @property
    def homes(self) -> Path:
        return Path(self.data) / "homes"

    @property
    def url(self) -> str:
        scheme = "https" if self.certfile else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{scheme}://{host}:{self.port}/"

    def write(self) -> Path:
        """``hub/room.json`` (0600) and ``hub/jupyterhub_config.py``; returns the config file."""
        self.hub_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.hub_dir, 0o700)
        settings = self.hub_dir / "room.json"
        handle = os.open(settings, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "w") as f:
            json.dump(asdict(self), f, indent=1)
        config = self.hub_dir / "jupyterhub_config.py"
        config.write_text(
            "# Written by `python -m course_lib room`; the settings are in room.json.\n"
            "from course_lib.room.hub import configure\n\n"
            f"configure(c, {str(settings)!r})  # noqa: F821 (c is JupyterHub's config object)\n"
        )
        return config

    @classmethod
    def read(cls, path: str | os.PathLike) -> RoomConfig:
        return cls(**json.loads(Path(path).read_text()))
