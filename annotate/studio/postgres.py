"""The local Label Studio's database: SQLite (the default) or PostgreSQL, as a team's server runs.

Label Studio behaves differently on PostgreSQL (it saves predictions in one transaction, orders
querysets and locks differently), so ``studio up --database postgresql`` runs a team's setup on
this machine: a PostgreSQL cluster owned by the project in ``.studio/postgres``, made and run with
the distribution's own server programs (Debian's ``postgresql`` package: the same server a team
installs, patched by the distribution, with nothing downloaded at run time). It listens on
127.0.0.1 only, on a free port, and has no unix socket. Label Studio logs in with a generated
password as a role that owns its one database and nothing else; no other login is allowed, not
even the superuser's. ``--database-url`` points Label Studio at a database someone else runs
instead. The choice and the password live in ``.studio/database.json`` (owner only), so later
starts use the same database; the running cluster's pid and port in ``.studio/postgres.json``.

PostgreSQL refuses to run as root. As root (CI, containers) the cluster is made and run as
Debian's ``postgres`` account through ``setpriv``, and owns only its own folder. ``.studio/`` and
often the folders above it (``/root``, pytest's temporary folders) are root's alone, so that
account also gets CAP_DAC_READ_SEARCH, which lets it read and pass through folders but never
write outside its own. Label Studio's role is no superuser, so it cannot have the server read
files for it (``pg_read_file`` and the like are refused).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from annotate.corpus import atomic_write_text
from annotate.errors import StudioDatabaseError, redact_url

if TYPE_CHECKING:
    from annotate.studio.local import StudioPaths

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
ENGINES = (SQLITE, POSTGRESQL)
SQLITE_FILE = "label_studio.sqlite3"  # Label Studio's database in its data folder
LOOPBACK = "127.0.0.1"
ROLE = "label_studio"  # Label Studio's login and its database in the project's cluster
CLUSTER_ACCOUNT = "postgres"  # Debian's account for PostgreSQL; the cluster runs as it when we are root
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
CAP_DAC_READ_SEARCH = 2
# Every name Label Studio reads its database settings under (get_env tries LABEL_STUDIO_ and HEARTEX_ first).
SETTINGS = (
    "DJANGO_DB",
    "DATABASE_NAME",
    "POSTGRE_USER",
    "POSTGRE_PASSWORD",
    "POSTGRE_NAME",
    "POSTGRE_HOST",
    "POSTGRE_PORT",
)
PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "")
URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


@dataclass(frozen=True)
class DatabasePaths:
    """The database's files under ``.studio/``: the stored choice, the cluster, its pid and port, its log."""

    folder: Path
    config: Path
    cluster: Path
    state: Path
    log: Path

    @classmethod
    def under(cls, folder: Path) -> DatabasePaths:
        names = ("database.json", "postgres", "postgres.json", "postgres.log")
        return cls(folder, *(folder / name for name in names))


@dataclass(frozen=True)
class Database:
    """Where Label Studio keeps its data; ``local`` is the project's own cluster under ``.studio/``."""

    engine: str = SQLITE
    host: str = ""
    port: int = 0
    name: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    local: bool = False

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with Label Studio's database settings for this database, inherited ones of any name dropped."""
        names = {prefix + setting for prefix in PREFIXES for setting in SETTINGS}
        environment = {key: value for key, value in base.items() if key not in names}
        environment["DJANGO_DB"] = self.engine
        if self.engine == POSTGRESQL:
            environment.update(
                POSTGRE_HOST=self.host,
                POSTGRE_PORT=str(self.port),
                POSTGRE_NAME=self.name,
                POSTGRE_USER=self.user,
                POSTGRE_PASSWORD=self.password,
            )
        return environment

    def describe(self) -> str:
        if self.engine == SQLITE:
            return "SQLite in .studio/data"
        if self.local:
            return "the project's own PostgreSQL in .studio/postgres"
        return f"PostgreSQL database {self.name} on {self.host}:{self.port}, user {self.user}"


@dataclass(frozen=True)
class Prepared:
    """The database ready for Label Studio, and whether Label Studio starts on it for the first time."""

    database: Database
    first_start: bool


def parse_url(url: str) -> Database:
    """A ``postgresql://`` URL as a :class:`Database`; messages show it without its password."""
    shown = redact_url(url)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("postgresql", "postgres"):
        raise StudioDatabaseError(f"--database-url {shown}: not a PostgreSQL URL ({URL_FORM})")
    if parts.query or parts.fragment:
        raise StudioDatabaseError(
            f"--database-url {shown}: Label Studio takes no options in the URL; set libpq's variables "
            "(PGSSLMODE, PGSSLROOTCERT, …) in the environment of `annotate studio up` instead"
        )
    try:
        port = parts.port or 5432
    except ValueError:
        raise StudioDatabaseError(f"--database-url {shown}: the port is not a number from 1 to 65535") from None
    name = unquote(parts.path.lstrip("/"))
    if not (parts.hostname and parts.username and name):
        raise StudioDatabaseError(f"--database-url {shown}: needs a user, a host and a database ({URL_FORM})")
    user, password = unquote(parts.username), unquote(parts.password or "")
    return Database(POSTGRESQL, parts.hostname, port, name, user, password)


def choose(folders: StudioPaths, engine: str | None = None, url: str | None = None) -> Database:
    """Label Studio's database: ``engine`` (``sqlite``, ``postgresql``) or ``url`` for a project that has
    none yet (stored in ``.studio/database.json``), else the one it has. A choice that would leave the
    project's data behind is refused, before anything starts.
    """
    if engine is not None and engine not in ENGINES:
        raise StudioDatabaseError(f"unknown database {engine!r}; choose {' or '.join(ENGINES)}")
    if url is not None and engine == SQLITE:
        raise StudioDatabaseError("--database sqlite and --database-url do not go together; choose one")
    paths, sqlite = DatabasePaths.under(folders.folder), folders.data / SQLITE_FILE
    stored = _read_config(paths)
    wanted = parse_url(url) if url is not None else None
    if stored is None:
        if wanted is None and engine != POSTGRESQL:
            return Database(SQLITE)
        if sqlite.exists():
            raise StudioDatabaseError(
                f"{sqlite}: this project's Label Studio keeps its data in SQLite, and on PostgreSQL it would start "
                f"empty; keep SQLite (no --database), or move {paths.folder} away first"
            )
        chosen = wanted or Database(POSTGRESQL, LOOPBACK, 0, ROLE, ROLE, secrets.token_urlsafe(24), local=True)
        _write_config(paths, chosen)
        return chosen
    if engine == SQLITE or (wanted is not None and stored.local):
        dropped = "--database sqlite" if engine == SQLITE else "--database-url"
        raise StudioDatabaseError(
            f"{paths.config}: this project's Label Studio keeps its data in {stored.describe()}; drop {dropped}, "
            "or move .studio/ away to start on another database"
        )
    if wanted is not None and wanted != stored:  # the same database under a new address or password
        _write_config(paths, wanted)
    return wanted or stored


def prepare(folders: StudioPaths, database: Database) -> Prepared:
    """Make the chosen database ready for Label Studio: the project's own cluster is made or started."""
    paths = DatabasePaths.under(folders.folder)
    if database.engine == SQLITE:
        return Prepared(database, first_start=not (folders.data / SQLITE_FILE).exists())
    if not database.local:
        _check_reachable(database)
        # A database Label Studio already uses keeps its accounts: without credentials here, we make them.
        return Prepared(database, first_start=not folders.credentials.exists())
    found = _running(paths)
    if found is not None:
        return Prepared(replace(database, port=found[1]), first_start=False)
    created = not paths.cluster.exists()
    if created:
        _make_cluster(paths, database.password)
    return Prepared(replace(database, port=_start_cluster(paths)), first_start=created)


def describe(folder: Path) -> str | None:
    """How this project's Label Studio reaches PostgreSQL, for ``studio up``; None for SQLite."""
    paths = DatabasePaths.under(folder)
    database = _read_config(paths)
    if database is None:
        return None
    if not database.local:
        return database.describe()
    found = _running(paths)
    if found is None:
        return f"{database.describe()} (not running)"
    return f"{database.describe()} ({LOOPBACK}:{found[1]}, database {database.name}, pid {found[0]})"


def running(folder: Path) -> tuple[int, int] | None:
    """The pid and port of the project's cluster if ``studio up`` started it and it still runs."""
    return _running(DatabasePaths.under(folder))


def stop(folder: Path, timeout: float = 30.0) -> int | None:
    """Stop the project's cluster (only the process ``studio up`` started, by its pid); returns that pid.

    A fast shutdown first (SIGINT: clients are disconnected, everything written is kept), an
    immediate one (SIGQUIT) if that does not finish in ``timeout`` seconds, SIGKILL last.
    """
    paths = DatabasePaths.under(folder)
    found = _running(paths)
    if found is not None:
        pid = found[0]
        lock = paths.cluster / "postmaster.pid"  # PostgreSQL removes it when it has shut down
        for sent in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sent)
            except ProcessLookupError:
                break
            if _wait(lambda: not lock.exists() or not _alive(pid), timeout):
                break
        _wait(lambda: not _alive(pid), timeout)
    paths.state.unlink(missing_ok=True)
    return found[0] if found else None


def postgres_binaries() -> Path:
    """The folder of PostgreSQL's server programs: Debian's newest ``/usr/lib/postgresql/N/bin``, else PATH's."""
    found = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda p: _version(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise StudioDatabaseError(
        "PostgreSQL is not installed: apt-get install postgresql (Debian and Ubuntu put its server programs "
        "in /usr/lib/postgresql/N/bin), or give a database that runs elsewhere with --database-url"
    )


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of ``password`` (SCRAM-SHA-256, RFC 5803), so the password itself never
    reaches the server's statements or logs."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    encoded = [base64.b64encode(part).decode() for part in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{encoded[0]}${encoded[1]}:{encoded[2]}"


# --- the choice, kept in .studio/database.json -------------------------------------------------


def _read_config(paths: DatabasePaths) -> Database | None:
    """The stored choice; a file others can read is refused (it holds the database password)."""
    try:
        mode = paths.config.stat().st_mode
        raw = json.loads(paths.config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError):
        raise StudioDatabaseError(f"{paths.config}: cannot read the database settings") from None
    if mode & 0o077:
        raise StudioDatabaseError(
            f"{paths.config}: readable by other users (mode {mode & 0o777:o}); it holds the database password, "
            "so run chmod 600 on it"
        )
    try:
        fields = (str(raw["host"]), int(raw["port"]), str(raw["name"]), str(raw["user"]), str(raw["password"]))
        return Database(POSTGRESQL, *fields, local=raw["local"] is True)
    except (KeyError, TypeError, ValueError):
        raise StudioDatabaseError(f"{paths.config}: lacks host, port, name, user, password or local") from None


def _write_config(paths: DatabasePaths, database: Database) -> None:
    keys = ("engine", "host", "port", "name", "user", "password", "local")
    text = json.dumps({key: getattr(database, key) for key in keys}, indent=1)
    atomic_write_text(paths.config, text + "\n", mode=0o600)


def _check_reachable(database: Database, timeout: float = 5.0) -> None:
    try:
        socket.create_connection((database.host, database.port), timeout=timeout).close()
    except OSError as exc:
        raise StudioDatabaseError(
            f"cannot reach PostgreSQL at {database.host}:{database.port} ({exc.strerror or exc}); "
            "is it running, and is --database-url right?"
        ) from None


# --- the project's own cluster ------------------------------------------------------------------


def _make_cluster(paths: DatabasePaths, password: str, timeout: float = 300.0) -> None:
    """initdb into a folder beside the cluster's, add Label Studio's role and database, then move it in place,
    so an interrupted set-up leaves no half-made cluster behind."""
    binaries = postgres_binaries()
    building = paths.folder / "postgres.new"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(mode=0o700)
    owner = _cluster_account()
    if owner is not None:
        os.chown(building, owner[0], owner[1])
    initdb = [str(binaries / "initdb"), "-D", str(building), "--auth=reject", "--encoding=UTF8", "--locale=C"]
    _run_as_owner([*initdb, "--no-instructions"], paths.log, timeout, "initdb")
    with open(building / "postgresql.conf", "a", encoding="utf-8") as settings:
        settings.write(
            "\n# annotate: loopback only, no unix socket (annotate/studio/postgres.py)\n"
            f"listen_addresses = '{LOOPBACK}'\nunix_socket_directories = ''\n"
        )
    (building / "pg_hba.conf").write_text(
        "# annotate: Label Studio's role, its one database, over loopback, with its password; nothing else.\n"
        f"host {ROLE} {ROLE} {LOOPBACK}/32 scram-sha-256\n",
        encoding="utf-8",
    )
    statements = (
        f"CREATE ROLE {ROLE} LOGIN PASSWORD '{scram_verifier(password)}';\n"
        f"CREATE DATABASE {ROLE} OWNER {ROLE} ENCODING 'UTF8';\n"
    )
    single_user = [str(binaries / "postgres"), "--single", "-D", str(building), "postgres"]
    output = _run_as_owner(single_user, paths.log, timeout, "creating Label Studio's database", statements)
    if "ERROR:" in output:
        raise StudioDatabaseError(f"creating Label Studio's database in the new cluster failed; see {paths.log}")
    building.rename(paths.cluster)


def _start_cluster(paths: DatabasePaths, timeout: float = 120.0) -> int:
    """Start the cluster on a free loopback port, record its pid and port, and wait until it accepts connections."""
    binaries = postgres_binaries()
    port = _free_port()
    command = _as_owner([str(binaries / "postgres"), "-D", str(paths.cluster), "-p", str(port)])
    with _log_file(paths.log, "ab") as log:  # its own session: a Ctrl-C in `studio up` does not reach it
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    atomic_write_text(paths.state, json.dumps({"pid": process.pid, "port": port}) + "\n", mode=0o600)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            paths.state.unlink(missing_ok=True)
            raise StudioDatabaseError(
                f"PostgreSQL exited with code {process.returncode} while starting; see {paths.log}"
            )
        if _accepts_connections(paths, process.pid):
            return port
        time.sleep(0.3)
    stop(paths.folder)
    raise StudioDatabaseError(f"PostgreSQL did not accept connections within {timeout:.0f} s; see {paths.log}")


def _accepts_connections(paths: DatabasePaths, pid: int) -> bool:
    """What ``pg_ctl start -w`` waits for: the lock file names this postmaster and says "ready" on its 8th line."""
    try:
        lines = (paths.cluster / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _run_as_owner(command: list[str], log: Path, timeout: float, step: str, stdin: str = "") -> str:
    """Run a PostgreSQL program as the cluster's owner; its output goes to ``log`` and is returned."""
    try:
        finished = subprocess.run(
            _as_owner(command), input=stdin, capture_output=True, text=True, timeout=timeout, cwd="/"
        )
    except subprocess.TimeoutExpired:
        raise StudioDatabaseError(f"{step} took longer than {timeout:.0f} s") from None
    output = finished.stdout + finished.stderr
    with _log_file(log, "a") as file:
        file.write(output)
    if finished.returncode != 0:
        raise StudioDatabaseError(f"{step} failed with code {finished.returncode}; see {log}")
    return output


def _log_file(path: Path, mode: str) -> IO[Any]:
    """``path`` opened for appending, made readable by its owner only."""
    return open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), mode)


def _cluster_account() -> tuple[int, int] | None:
    """The uid and gid the cluster runs as when we are root (PostgreSQL refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        account = pwd.getpwnam(CLUSTER_ACCOUNT)
    except KeyError:
        raise StudioDatabaseError(
            f"running as root, PostgreSQL needs an unprivileged account to run as, and there is no "
            f"{CLUSTER_ACCOUNT!r} (Debian's postgresql package makes it); or run `annotate studio up` as yourself"
        ) from None
    return account.pw_uid, account.pw_gid


def _as_owner(command: list[str]) -> list[str]:
    """``command`` as the cluster's owner: unchanged, or as root through ``setpriv`` (see the module's docstring)."""
    owner = _cluster_account()
    if owner is None:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StudioDatabaseError("running as root, starting PostgreSQL needs setpriv (Debian's util-linux)")
    prefix = [setpriv, f"--reuid={owner[0]}", f"--regid={owner[1]}", "--init-groups"]
    if _has_capability(CAP_DAC_READ_SEARCH):
        prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return [*prefix, "--", *command]


def _has_capability(number: int) -> bool:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return False
    effective = next((line.split()[1] for line in lines if line.startswith("CapEff:")), "0")
    return bool(int(effective, 16) >> number & 1)


def _running(paths: DatabasePaths) -> tuple[int, int] | None:
    """The pid and port in ``postgres.json`` if that pid is alive and is PostgreSQL serving this cluster."""
    try:
        state = json.loads(paths.state.read_text(encoding="utf-8"))
        pid, port = state["pid"], state["port"]
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 1 for n in (pid, port)):
        return None
    ours = Path(os.fsdecode(arguments[0])).name == "postgres" and os.fsencode(paths.cluster) in arguments
    return (pid, port) if ours and _alive(pid) else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not); a child of ours that exited is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _wait(done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())
