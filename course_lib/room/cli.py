"""``python -m course_lib room``: start the workshop's JupyterHub, print how to join, stop
everything (hub, proxy, participants' servers and kernels) on Ctrl+C or SIGTERM.

    sudo .venv/bin/python -m course_lib room                       # loopback, port 8000
    sudo .venv/bin/python -m course_lib room --host 0.0.0.0 --certfile cert.pem --keyfile key.pem
    sudo .venv/bin/python -m course_lib room --remove-accounts     # after the workshop

Checks first, and says what is wrong before anything starts: root (one account per person),
the proxy installed (``npm ci``), the course reachable by other accounts, the workshop code.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from ..artifacts import DEFAULT_MODEL_NAME, FULL_MODEL_NAME, is_complete_model_folder
from ..runtime.offline import GUARD_ENV
from ..serving.processes import ChildProcess, free_port
from ..settings import (
    BUILD_DIR,
    NOTEBOOKS_DIR,
    PROFILE_ENV,
    REPO_ROOT,
    artifacts_dir,
)
from ..tooling.packing import ArchiveError, unpack_model
from . import access, accounts
from .config import MIN_CODE_LENGTH, RoomConfig, new_admin_password, new_workshop_code
from .names import ADMIN_NAME, NAME_RULE

PROXY = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
MIN_NODE = 20  # configurable-http-proxy 5.3.0's package.json: "engines": {"node": ">= 20"}
DEFAULT_DATA = BUILD_DIR / "room"
# Handed from the room's environment to participants' servers when set (the test suite's
# offline guard and profile; the thread count is the room's own --threads).
PASS_ENV = [PROFILE_ENV, GUARD_ENV, "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"]


class RoomError(RuntimeError):
    """The room cannot start; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def publish(model: Path, shared: Path) -> Path:
    """A copy of the model folder ``model`` in ``shared`` that every account can read (the
    instructor's own files may be private: safetensors writes its weights with mode 0600).
    Copied once; a copy whose files have the same sizes and times is reused."""
    target = shared / model.name

    def listing(folder: Path) -> dict:
        return {p.name: (p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir()}

    if not (target.is_dir() and listing(target) == listing(model)):
        staged = shared / f".{model.name}.copying"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(model, staged)  # copy2: sizes and times kept, for the check above
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    for path in [target, *target.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def shared_models(data: Path) -> list[Path]:
    """The hand-out models to share read-only, published in ``DATA/shared-models``: each
    complete model folder in the artifacts folder, else the one a ``pack-model`` archive in
    build/ holds."""
    found = []
    shared = data / "shared-models"
    for name in (DEFAULT_MODEL_NAME, FULL_MODEL_NAME):
        own, copy, archive = artifacts_dir() / name, shared / name, BUILD_DIR / f"{name}.zip"
        if is_complete_model_folder(own):
            found.append(publish(own, shared))
            continue
        if archive.is_file() and not is_complete_model_folder(copy):
            try:
                unpack_model(archive, shared, force=True)
            except (ArchiveError, OSError) as exc:
                print(f"not sharing {archive}: {exc}", file=sys.stderr)
        if is_complete_model_folder(copy):
            found.append(publish(copy, shared))
    return found


def node_major() -> int | None:
    """The major version of the ``node`` the proxy runs on (None: no node, or no answer)."""
    import subprocess

    node = shutil.which("node")
    if node is None:
        return None
    try:
        answer = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
        return int(answer.stdout.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def check_can_start(args) -> None:
    """Every reason the room cannot start, as a RoomError with the fix."""
    if not accounts.running_as_root():
        raise RoomError(
            "The room must run as root: it gives every participant a system account of their "
            "own, so that their servers run as them and nobody can read another participant's "
            "files. Run as your own user, every server would run as you and every participant "
            "could read everything of everybody. Start it with sudo: "
            "sudo .venv/bin/python -m course_lib room"
        )
    if not os.access(PROXY, os.X_OK):
        raise RoomError(
            f"JupyterHub's proxy is not installed ({PROXY} is missing). Run `make setup` (or "
            f"`npm ci` in {REPO_ROOT}); it needs Node.js 20 or newer and npm "
            f"(Debian/Ubuntu: apt-get install nodejs npm)."
        )
    node = node_major()
    if node is None or node < MIN_NODE:
        found = "no `node` on PATH" if node is None else f"Node.js {node}"
        raise RoomError(
            f"JupyterHub's proxy (configurable-http-proxy 5.3.0) needs Node.js {MIN_NODE} or "
            f"newer; this machine has {found}. Install a newer nodejs (Debian 13's package, or "
            f"NodeSource's on Debian 12) and run `make setup` again."
        )
    if len(args.code) < MIN_CODE_LENGTH:
        raise RoomError(f"--code must be at least {MIN_CODE_LENGTH} characters long")
    if args.max_users < 1:
        raise RoomError("--max-users must be at least 1")
    if bool(args.certfile) != bool(args.keyfile):
        raise RoomError("--certfile and --keyfile go together (both, or neither)")
    for path in filter(None, (args.certfile, args.keyfile)):
        if not Path(path).is_file():
            raise RoomError(f"{path} does not exist")


def room_config(args, data: Path, models: list[Path]) -> RoomConfig:
    return RoomConfig(
        data=str(data),
        code=args.code,
        admin_password=new_admin_password(),
        host=args.host,
        port=args.port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        max_users=args.max_users,
        idle_timeout=args.idle_timeout,
        threads=args.threads,
        certfile=str(Path(args.certfile).resolve()) if args.certfile else None,
        keyfile=str(Path(args.keyfile).resolve()) if args.keyfile else None,
        python=sys.executable,
        source=str(NOTEBOOKS_DIR),
        proxy_command=str(PROXY),
        shared_models=[str(m) for m in models],
        pass_env=[name for name in PASS_ENV if name in os.environ],
    )


class Room:
    """The hub (with its proxy, services and participants' servers) as one child process."""

    def __init__(self, config: RoomConfig):
        self.config = config
        self.process: ChildProcess | None = None

    def start(self, timeout: float = 120.0) -> Room:
        config_file = self.config.write()
        command = [sys.executable, "-m", "jupyterhub", "-f", str(config_file)]
        log = self.config.hub_dir / "hub.log"
        self.process = ChildProcess(command, log, cwd=self.config.hub_dir).start()
        try:
            self.process.wait_for_http(
                f"http://127.0.0.1:{self.config.hub_port}/hub/health", timeout, "JupyterHub"
            )
            self._wait_for_proxy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_proxy(self, timeout: float) -> None:
        """Until the public address (through the proxy) answers the hub's log-in page."""
        import httpx

        deadline = time.monotonic() + timeout
        url = self.config.url + "hub/login"
        while time.monotonic() < deadline:
            if not self.process.running():
                raise RoomError(f"JupyterHub exited:\n{self.process.log()[-3000:]}")
            try:
                if httpx.get(url, timeout=2, verify=False, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RoomError(
            f"{url} did not answer within {timeout:.0f} s:\n{self.process.log()[-3000:]}"
        )

    def stop(self) -> None:
        """SIGTERM the hub (it stops every participant's server and the proxy), then end
        whatever is left of its process tree."""
        if self.process is not None:
            self.process.stop(grace=30)

    def leftovers(self) -> list[int]:
        return self.process.leftovers() if self.process else []


def banner(config: RoomConfig) -> str:
    return "\n".join(
        [
            "",
            "The room is open.",
            f"  address        {config.url}",
            f"  workshop code  {config.code}",
            f"  places         {config.max_users}",
            "Participants open the address, type a name of their choice and the workshop code.",
            f"  {NAME_RULE}",
            f"The instructor logs in as '{ADMIN_NAME}' with the password {config.admin_password}",
            f"  and finds the admin page at {config.url}hub/admin",
            f"Hub log: {config.hub_dir / 'hub.log'}. Stop everything with Ctrl+C.",
        ]
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m course_lib room",
        description="Start the workshop's JupyterHub: one account and the learner copies per "
        "participant, the course's environment as the kernel. Stop with Ctrl+C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--code", default=None, help="the workshop code (default: a new one)")
    parser.add_argument("--max-users", type=int, default=30, help="participants at most")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="default build/room")
    parser.add_argument("--certfile", help="TLS certificate (PEM), for --host 0.0.0.0")
    parser.add_argument("--keyfile", help="TLS private key (PEM)")
    parser.add_argument("--idle-timeout", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--threads", type=int, default=2, help="threads per participant kernel")
    parser.add_argument(
        "--grant-traverse",
        action="store_true",
        help="let other accounts pass through (not list) directories on the way to the course "
        "while the room runs (needed when Python is installed under /root)",
    )
    parser.add_argument(
        "--remove-accounts",
        action="store_true",
        help="remove every participant account and home the room created, then exit",
    )
    args = parser.parse_args(argv)
    args.code = args.code or new_workshop_code()
    return args


def remove_all_accounts() -> int:
    names = accounts.room_accounts()
    for name in names:
        accounts.remove_account(name)
    print(f"removed {len(names)} participant accounts and their homes: {', '.join(names) or '-'}")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the room the way Ctrl+C does


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.remove_accounts:
        if not accounts.running_as_root():
            print("--remove-accounts needs root", file=sys.stderr)
            return 2
        return remove_all_accounts()
    try:
        check_can_start(args)
    except RoomError as exc:
        print(f"room: {exc}", file=sys.stderr)
        return 2
    data = args.data.resolve()
    for folder, mode in ((data, 0o711), (data / "homes", 0o711), (data / "shared-models", 0o755)):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, mode)
    models = shared_models(data)
    blocked = access.blocking_directories(
        access.paths_participants_need(REPO_ROOT, data / "homes", models)
    )
    if blocked and not args.grant_traverse:
        print(f"room: {access.blocked_message(blocked)}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        scheme = "HTTPS" if args.certfile else "plain HTTP"
        print(
            f"Warning: the room listens on {args.host}, reachable from the venue network, over "
            f"{scheme}."
            + (
                ""
                if args.certfile
                else " Anyone on that network can read the workshop code as people type it. "
                "Pass --certfile and --keyfile for HTTPS (docs/instructor.md says how)."
            ),
            file=sys.stderr,
        )
    config = room_config(args, data, models)
    modes = access.grant_traverse(blocked)
    room = Room(config)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        room.start()
        print(banner(config), flush=True)
        while room.process.running():
            time.sleep(0.5)
        print(f"JupyterHub stopped by itself:\n{room.process.log()[-3000:]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the room (participants' servers, kernels, proxy, hub)...", flush=True)
        return 0
    except (RoomError, RuntimeError, TimeoutError) as exc:  # the hub exited or never answered
        print(f"room: {exc}", file=sys.stderr)
        return 1
    finally:
        room.stop()
        # The hub stops each server it spawned, but a server slow to end its kernels can leave
        # one behind: whatever still runs as a participant's account ends here.
        for account in accounts.room_accounts():
            entry = accounts.lookup(account)
            if entry is not None:
                accounts.end_processes_of(entry.pw_uid)
        access.restore_modes(modes)
        print(f"Stopped. Participants' files stay in {data / 'homes'}.", flush=True)
