"""The room's JupyterHub: its authenticator, its spawner, and ``configure`` (runs in the hub).

JupyterHub loads ``DATA/hub/jupyterhub_config.py``, which calls ``configure(c, room.json)``.
Everything is JupyterHub's own machinery, configured: the shared-password authenticator made
for workshops (with the name rule and the cap added), the local-process spawner (with the
``room-NAME`` accounts and the learner copies added), the real configurable-http-proxy, and
jupyterhub-idle-culler as a hub-managed service.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
from pathlib import Path

from jupyterhub import orm
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from tornado import web
from traitlets import Integer, List, Unicode

from ..settings import ARTIFACTS_ENV, BUILD_ENV
from .accounts import ensure_account
from .config import RoomConfig
from .names import ADMIN_NAME, NAME_RULE, account_name, is_valid_name
from .participant import ARTIFACTS

CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def refusal(status: int, reason: str, message: str) -> web.HTTPError:
    """An error JupyterHub shows on its error page with ``message`` in words."""
    error = web.HTTPError(status, reason=reason)
    error.jupyterhub_message = message
    return error


class RoomAuthenticator(SharedPasswordAuthenticator):
    """The workshop code for everybody, a password for the instructor, a name rule, a cap."""

    max_users = Integer(30, config=True, help="participants (the instructor aside) at most")

    async def authenticate(self, handler, data):
        name = self.normalize_username(data.get("username", ""))
        if not is_valid_name(name):
            raise refusal(403, "Name not accepted", f"That name cannot be used. {NAME_RULE}")
        user = await super().authenticate(handler, data)
        if user is None or name in self.admin_users:
            return user  # a wrong code: the log-in page says so
        known = {n for (n,) in handler.db.query(orm.User.name)} - set(self.admin_users)
        if name not in known and len(known) >= self.max_users:
            raise refusal(
                403,
                "The room is full",
                f"The room is full: all {self.max_users} places are taken, so '{name}' cannot "
                f"join. Ask the instructor, who can free a place on the admin page, or use your "
                f"own installation (docs/setup.md).",
            )
        return user


class RoomSpawner(LocalProcessSpawner):
    """Each participant's server runs as ``room-NAME`` in ``HOMES/NAME`` (created on first
    start), after their learner copies are built there, as them."""

    homes = Unicode(config=True, help="folder of the participants' homes")
    source = Unicode(config=True, help="the course's notebooks/ (learner copies are built from)")
    shared_models = List(Unicode(), config=True, help="read-only model folders to link")

    def make_preexec_fn(self, name):
        return set_user_setuid(account_name(name))

    def user_env(self, env):
        entry = pwd.getpwnam(account_name(self.user.name))
        env.update(USER=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell)
        env[ARTIFACTS_ENV] = str(Path(entry.pw_dir) / ARTIFACTS)
        env[BUILD_ENV] = str(Path(entry.pw_dir) / "build")  # lesson 10 writes its files there
        return env

    async def start(self):
        entry = await asyncio.to_thread(ensure_account, self.user.name, Path(self.homes))
        await self._prepare_home(entry)
        return await super().start()

    async def _prepare_home(self, entry: pwd.struct_passwd) -> None:
        """Run ``course_lib.room.participant`` as the participant, in their home."""
        command = [sys.executable, "-m", "course_lib.room.participant", "--home", entry.pw_dir]
        command += ["--source", self.source]
        for folder in self.shared_models:
            command += ["--shared", folder]
        env = {
            "HOME": entry.pw_dir,
            "USER": entry.pw_name,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=entry.pw_dir,
            env=env,
            preexec_fn=set_user_setuid(entry.pw_name),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"preparing {entry.pw_dir} failed:\n{text[-2000:]}")
        self.log.info("Prepared %s: %s", entry.pw_dir, "; ".join(text.splitlines()))


def configure(c, settings_path: str) -> None:
    """Fill JupyterHub's config object ``c`` from the room's ``room.json``."""
    room = RoomConfig.read(settings_path)
    hub = room.hub_dir
    c.JupyterHub.ip, c.JupyterHub.port = room.host, room.port
    c.JupyterHub.hub_ip, c.JupyterHub.hub_port = "127.0.0.1", room.hub_port
    c.JupyterHub.db_url = f"sqlite:///{hub / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(hub / "jupyterhub_cookie_secret")
    if room.certfile:
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = room.certfile, room.keyfile
    c.ConfigurableHTTPProxy.command = [room.proxy_command]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{room.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(hub / "proxy.pid")
    # Stop every participant's server (and so their kernels) when the hub stops.
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.active_server_limit = room.max_users + 1  # the instructor's own server too

    c.JupyterHub.authenticator_class = RoomAuthenticator
    c.RoomAuthenticator.user_password = room.code
    c.RoomAuthenticator.admin_password = room.admin_password
    c.RoomAuthenticator.admin_users = {ADMIN_NAME}
    c.RoomAuthenticator.allow_all = True
    c.RoomAuthenticator.max_users = room.max_users

    c.JupyterHub.spawner_class = RoomSpawner
    c.RoomSpawner.homes = str(room.homes)
    c.RoomSpawner.source = room.source
    c.RoomSpawner.shared_models = list(room.shared_models)
    c.Spawner.cmd = [room.python, "-m", "jupyterhub.singleuser"]
    c.Spawner.notebook_dir = "~"
    c.Spawner.default_url = "/lab"
    venv_bin = str(Path(room.python).parent)
    c.Spawner.environment = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",  # a terminal's python is the course's
        "VIRTUAL_ENV": str(Path(venv_bin).parent),
        "OMP_NUM_THREADS": str(room.threads),
        "HF_HUB_OFFLINE": "1",
    }
    c.Spawner.env_keep = ["LANG", "LC_ALL", *room.pass_env]
    # Two cores and several participants starting at once: give a server time to come up.
    c.Spawner.start_timeout, c.Spawner.http_timeout = 180, 120
    c.LocalProcessSpawner.interrupt_timeout = 5
    c.LocalProcessSpawner.term_timeout = 5

    c.JupyterHub.services = [
        {
            "name": "idle-culler",
            "command": [
                room.python,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={room.idle_timeout}",
            ],
        }
    ]
    c.JupyterHub.load_roles = [
        {"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]}
    ]
