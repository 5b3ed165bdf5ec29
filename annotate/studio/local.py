"""The local Label Studio server behind ``annotate studio up | down | status``.

Everything lives in ``.studio/`` inside the project (git-ignored): the server's data folder, its
log, the admin login and API token (a file only the user can read), and the running server's pid.
The server is kept offline (no version check, analytics or error reporting) and on 127.0.0.1.

The server runs ``label-studio start``'s own start-up and then serves from several gunicorn
processes (:mod:`annotate.studio.launch`), so one busy request does not hold up an annotator's.
Label Studio silently moves to port+1 when its port is busy, so ``up`` checks the port first and
then that the process it started is the one answering. ``down`` stops only that process group.
No SDK here: health and version are plain HTTP.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from annotate.corpus import atomic_write_text
from annotate.errors import PortBusyError, StudioAuthError, StudioServerError
from annotate.studio import postgres
from annotate.studio.launch import DEFAULT_WORKERS, LAUNCHER

STUDIO_DIR = ".studio"
DEFAULT_PORT = 8080
HOST = "127.0.0.1"
ADMIN_EMAIL = "admin@annotate.local"
BATCHED_PREDICTION_IMPORT = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"
ML_TIMEOUT_PREDICT_S = 3600  # an hour of /predict: ~16,000 seed-length articles at 4.6 per second
PID_MAX = 4_194_304  # the largest pid Linux hands out (2**22)
# One request may run this long before gunicorn replaces its process: a Data Manager "Retrieve
# predictions" waits up to ML_TIMEOUT_PREDICT for the backend.
REQUEST_TIMEOUT_S = ML_TIMEOUT_PREDICT_S + 60


@dataclass(frozen=True)
class StudioPaths:
    """Where the local server keeps its things, under the project root."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root.resolve() / STUDIO_DIR

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def credentials(self) -> Path:
        return self.folder / "credentials.json"

    @property
    def state(self) -> Path:
        return self.folder / "server.json"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"


@dataclass(frozen=True)
class Credentials:
    """The local admin login and its API token (a preset legacy token, 40 hex characters)."""

    email: str
    password: str
    token: str

    def __repr__(self) -> str:
        return f"Credentials(email={self.email!r}, password=***, token=***)"


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int
    port: int
    data: Path
    email: str
    first_start: bool = False
    already_running: bool = False
    workers: int | None = None  # None: a server started before `up` recorded it


def read_credentials(path: Path) -> Credentials:
    """Read the credentials file; one that others can read is refused, like ssh refuses such keys."""
    try:
        mode = path.stat().st_mode
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioAuthError(f"{path}: no local credentials (run `annotate studio up` first)") from None
    except (OSError, ValueError, RecursionError):
        raise StudioAuthError(f"{path}: cannot read the local credentials") from None
    if mode & 0o077:
        raise StudioAuthError(f"{path}: readable by other users (mode {mode & 0o777:o}); run chmod 600 on it")
    try:
        return Credentials(str(raw["email"]), str(raw["password"]), str(raw["token"]))
    except (KeyError, TypeError):
        raise StudioAuthError(f"{path}: credentials lack email, password or token") from None


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def check_private(paths: StudioPaths) -> None:
    """Refuse a ``.studio/`` (or its data folder) others can enter: the database holds the API token too."""
    for folder in (paths.folder, paths.data):
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:
            continue
        if mode & 0o077:
            raise StudioAuthError(
                f"{folder}: readable by other users (mode {mode & 0o777:o}); it holds the API token, "
                f"so run chmod -R go-rwx {paths.folder}"
            )


def client_url(host: str, port: int) -> str:
    """The URL this machine uses to reach a server listening on ``host`` (all addresses: via loopback)."""
    reachable = HOST if host in ("0.0.0.0", "::", "") else host
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


def same_server(url: str, other: str) -> bool:
    """Whether two URLs name the same server: ``localhost``, ``127.0.0.1`` and ``::1`` count as one host."""
    from urllib.parse import urlsplit

    first, second = urlsplit(url.strip()), urlsplit(other.strip())
    hosts = [(part.hostname or "").lower() for part in (first, second)]
    hosts = ["127.0.0.1" if host in LOOPBACK else host for host in hosts]
    try:
        ports = [part.port or (443 if part.scheme == "https" else 80) for part in (first, second)]
    except ValueError:
        return False
    return first.scheme == second.scheme and hosts[0] == hosts[1] and ports[0] == ports[1]


def _create_credentials(path: Path) -> Credentials:
    credentials = Credentials(ADMIN_EMAIL, secrets.token_urlsafe(18), secrets.token_hex(20))
    text = json.dumps({"email": credentials.email, "password": credentials.password, "token": credentials.token})
    atomic_write_text(path, text + "\n")
    path.chmod(0o600)
    return credentials


def server_environment(data: Path, credentials: Credentials, host: str = HOST) -> dict[str, str]:
    """Environment for every ``label-studio`` call: data in ``data``, offline, admin and token preset.

    The token and admin only take effect on the first start (an empty data folder). A server that
    listens only on loopback accepts an ML backend and webhooks on loopback; one listening on
    another ``host`` keeps Label Studio's SSRF protection (its admin decides, see docs/studio.md).
    """
    environment = dict(os.environ)
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        environment.pop(name, None)
    environment.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
            "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "XDG_CONFIG_HOME": str(data / "config"),
            "TMPDIR": str(data / "tmp"),
            "LABEL_STUDIO_USERNAME": credentials.email,
            "LABEL_STUDIO_PASSWORD": credentials.password,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_USER_TOKEN": credentials.token,
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        }
    )
    if host in LOOPBACK:
        # The model in the loop (`annotate serve`) runs on loopback too; Label Studio refuses
        # backend and webhook URLs on loopback and private addresses unless told otherwise.
        # Safe only while nobody else can reach this server.
        environment.update({"ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"})
    # Label Studio sends a Data Manager "Retrieve predictions" as one /predict of every selected task
    # and drops all of it after ML_TIMEOUT_PREDICT (100 s: ~460 seed-length articles here). Our
    # backend predicts any request in bounded batches, so waiting for it is what keeps the work.
    environment["ML_TIMEOUT_PREDICT"] = str(ML_TIMEOUT_PREDICT_S)
    # Label Studio 1.23's default prediction import recounts every task of the project on each
    # request, so a refresh's uploads slow down as the project fills (bench/bench_import.py, 4,000
    # tasks: 87 s against 17 s); the import behind this flag recounts only the tasks it imported into.
    environment.setdefault(BATCHED_PREDICTION_IMPORT, "true")
    return environment


def require_label_studio() -> None:
    """Check that Label Studio and gunicorn (the ``studio`` extra) can be imported by this Python."""
    missing = [name for name in ("label_studio", "gunicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise StudioServerError(
            f"not installed in this environment ({sys.executable}): {', '.join(missing)}; "
            "pip install -e '.[studio]' (or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to use another server)"
        )


def launch_command(host: str, port: int, data: Path, workers: int) -> list[str]:
    """The command line of the server process: :mod:`annotate.studio.launch` with label-studio's start options."""
    command = [sys.executable, "-m", LAUNCHER, "--workers", str(workers), "--timeout", str(REQUEST_TIMEOUT_S)]
    return command + ["start", "--no-browser", "--internal-host", host, "--port", str(port), "--data-dir", str(data)]


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether nothing listens on ``port`` (SO_REUSEADDR: closed connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def health(url: str, timeout: float = 2.0) -> bool:
    """True when ``url/health`` answers ``{"status": "UP"}`` (no key needed)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError, RecursionError, urllib.error.URLError, http.client.HTTPException):
        return False  # nothing there, or something that is not Label Studio (an SSH server's banner, …)
    return isinstance(answer, dict) and answer.get("status") == "UP"


def server_version(url: str, timeout: float = 5.0) -> str:
    """The server's Label Studio version from ``/api/version``, or "" when it does not say."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/version", timeout=timeout) as response:
            info = json.loads(response.read())
    except (OSError, ValueError, RecursionError, urllib.error.URLError, http.client.HTTPException):
        return ""
    if not isinstance(info, dict):
        return ""
    package = info.get("label-studio-os-package")
    release = info.get("release") or (package.get("version") if isinstance(package, dict) else "") or ""
    return str(release)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/stat")
    if status.is_file():
        fields = status.read_text().rsplit(")", 1)[-1].split()
        if fields and fields[0] == "Z":
            return False
    return True


def _is_our_server(pid: int | None, data: Path) -> bool:
    """The pid is alive, leads its own process group and runs our launcher with our data folder.

    A server that an earlier version started with ``label-studio start`` counts too, so that
    ``down`` still stops it.

    A pid that cannot be identified so (no /proc, a reused pid, this very process) is not ours,
    so nothing is ever signalled on the word of ``server.json`` alone.
    """
    if pid is None or not _alive(pid):
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        leads_group = os.getpgid(pid) == pid
    except OSError:
        return False
    launched = LAUNCHER.encode() in arguments or any(b"label-studio" in a for a in arguments)
    ours = launched and str(data).encode() in arguments
    return ours and leads_group


def _state_pid(state: dict | None) -> int | None:
    """The pid in ``server.json`` if it is a plausible one we started: an integer above 1, not us or our group."""
    pid = state.get("pid") if isinstance(state, dict) else None
    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 < pid <= PID_MAX:
        return None
    if pid in (os.getpid(), os.getpgrp()):
        return None
    return pid


def _read_state(paths: StudioPaths) -> dict | None:
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return state if isinstance(state, dict) else None


def local_url(root: Path) -> str | None:
    """The URL of the server ``annotate studio up`` started here, if it is still running."""
    paths = StudioPaths(root)
    state = _read_state(paths)
    if state and _is_our_server(_state_pid(state), paths.data) and isinstance(state.get("url"), str):
        return str(state["url"])
    return None


def up(
    root: Path,
    port: int = DEFAULT_PORT,
    timeout: float = 180.0,
    host: str = HOST,
    database: str | None = None,
    database_url: str | None = None,
    workers: int = DEFAULT_WORKERS,
) -> ServerInfo:
    """Start the local server (or find it running) and wait until it answers on its own port.

    ``host`` is the address it listens on: 127.0.0.1 (this machine only) unless another is given
    for annotators on other machines. ``.studio/`` is made readable by its owner only, and
    refused if others can read it. ``database`` (``sqlite``, ``postgresql``) or ``database_url``
    choose where a new project's server keeps its data (:mod:`annotate.studio.postgres`).
    ``workers`` is how many processes serve requests, each one at a time.
    """
    if not 1 <= port <= 65535:
        raise StudioServerError(f"port {port} is not a TCP port (1 to 65535); choose another with --port")
    if workers < 1:
        raise StudioServerError(f"--workers {workers}: Label Studio needs at least one process to serve requests")
    paths = StudioPaths(root)
    paths.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(paths)
    chosen = postgres.choose(paths, database, database_url)
    state = _read_state(paths)
    pid = _state_pid(state)
    if state and _is_our_server(pid, paths.data) and isinstance(state.get("port"), int):
        email = read_credentials(paths.credentials).email
        running = state.get("workers") if isinstance(state.get("workers"), int) else None
        return ServerInfo(
            str(state.get("url")), pid, state["port"], paths.data, email, already_running=True, workers=running
        )
    if not port_is_free(port, host):
        raise PortBusyError(
            f"port {port} on {host} is already in use; stop what uses it or choose another with --port "
            f"(Label Studio would silently move to port {port + 1})"
        )
    require_label_studio()
    backing = postgres.prepare(paths, chosen)
    first_start = backing.first_start
    credentials = _create_credentials(paths.credentials) if first_start else read_credentials(paths.credentials)
    for folder in (paths.data, paths.data / "config", paths.data / "tmp"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = client_url(host, port)
    command = launch_command(host, port, paths.data, workers)
    with open(os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=backing.database.environment(server_environment(paths.data, credentials, host)),
            cwd=paths.folder,
            start_new_session=True,
            umask=0o077,  # the database, exports and uploads it writes: owner only
        )
    recorded = {"pid": process.pid, "port": port, "url": url, "host": host, "workers": workers}
    atomic_write_text(paths.state, json.dumps(recorded) + "\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            paths.state.unlink(missing_ok=True)
            postgres.stop(paths.folder)
            code = process.returncode
            raise StudioServerError(f"Label Studio exited with code {code} while starting; see {paths.log}")
        if health(url, timeout=1.0) and _listens_on(process.pid, port):
            email = credentials.email
            return ServerInfo(url, process.pid, port, paths.data, email, first_start=first_start, workers=workers)
        time.sleep(0.5)
    _stop_pid(process.pid)
    paths.state.unlink(missing_ok=True)
    postgres.stop(paths.folder)
    raise StudioServerError(f"Label Studio did not answer on {url} within {timeout:.0f} s; see {paths.log}")


def _listens_on(pid: int, port: int) -> bool:
    """Whether the process group ``pid`` leads owns the listening socket on ``port`` (Linux /proc)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    for task in Path("/proc").iterdir():
        if not task.name.isdigit():
            continue
        try:
            if os.getpgid(int(task.name)) != pid:
                continue
            for descriptor in (task / "fd").iterdir():
                target = os.readlink(descriptor)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return True
        except OSError:
            continue
    return False


def _listening_inodes(port: int) -> set[str] | None:
    table = Path("/proc/net/tcp")
    if not table.is_file():
        return None
    inodes = set()
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
            inodes.add(inode)
    return inodes


def _stop_pid(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the server's process group (it was started in a session of its own), then SIGKILL."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sent)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = 0 if _alive(pid) else pid
            if finished == pid or not _alive(pid):
                return
            time.sleep(0.1)


def down(root: Path) -> int | None:
    """Stop the server ``up`` started here, then its PostgreSQL if it has one; returns the server's pid, or None."""
    paths = StudioPaths(root)
    stopped = _stop_label_studio(paths)
    postgres.stop(paths.folder)
    return stopped


def _stop_label_studio(paths: StudioPaths) -> int | None:
    if not paths.state.exists():
        return None
    state = _read_state(paths)
    pid = _state_pid(state)
    if pid is None:
        raise StudioServerError(
            f"{paths.state}: holds no valid pid of a server `annotate studio up` started; nothing was stopped "
            "(stop the server by hand if one runs, then delete this file)"
        )
    if not _is_our_server(pid, paths.data):
        paths.state.unlink(missing_ok=True)
        return None
    _stop_pid(pid)
    paths.state.unlink(missing_ok=True)
    return pid


@dataclass(frozen=True)
class ServerStatus:
    url: str
    answering: bool
    version: str
    local_pid: int | None


def status(url: str, root: Path) -> ServerStatus:
    """Whether ``url`` answers and which Label Studio version it runs."""
    paths = StudioPaths(root)
    check_private(paths)
    state = _read_state(paths)
    pid = _state_pid(state) if _is_our_server(_state_pid(state), paths.data) else None
    answering = health(url)
    return ServerStatus(url, answering, server_version(url) if answering else "", pid)
