"""Real servers for the tests, on 127.0.0.1 and free ports: OpenSSH sshd and moto's S3.

Each is started by a fixture and stopped by it, by its own PID or handle.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class SshServer:
    """An sshd with its own host key, one authorised client key, SFTP enabled."""

    dir: Path
    port: int
    client_key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path) -> SshServer:
        root.mkdir(parents=True, exist_ok=True)
        for name in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(root / name)], check=True)
        (root / "authorized_keys").write_bytes((root / "client.pub").read_bytes())
        port = free_port()
        host_pub = (root / "host.pub").read_text().split()
        known = root / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host'}",
            f"PidFile {root / 'sshd.pid'}", f"AuthorizedKeysFile {root / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "Subsystem sftp internal-sftp", "MaxStartups 100", "MaxSessions 100", ""]))
        return cls(root, port, root / "client", known)

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - lives as long as sshd
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop sshd and the per-connection processes it forked (as a server going down)."""
        if self.proc is not None:
            subprocess.run(["pkill", "-KILL", "-P", str(self.proc.pid)], check=False)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def url(self, path: Path) -> str:
        return (f"sftp://root@127.0.0.1:{self.port}{path}?key_file={self.client_key}"
                f"&known_hosts={self.known_hosts}")


class S3Server:
    """moto's S3 in server mode, in this process, on its own port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()
        wait_for_port(self.port)
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}&region=us-east-1"


def s3_env() -> None:
    """Credentials for moto through boto3's usual chain (inherited by the daemons)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (make test installs it)")
    return found[-1]


class PostgresServer:
    """A throw-away PostgreSQL cluster (initdb into a temp dir, run as `postgres`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def _as_postgres(self, *args: str) -> list[str]:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *args]

    def start(self) -> None:
        (self.root / "sock").mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root, "postgres", "postgres")
        shutil.chown(self.root / "sock", "postgres", "postgres")
        subprocess.run(self._as_postgres(_pg_bin("initdb"), "-D", str(self.root / "data"),
                                         "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                         "--no-sync"), check=True, capture_output=True)
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - lives as long as it
        self.proc = subprocess.Popen(self._as_postgres(
            _pg_bin("postgres"), "-D", str(self.root / "data"), "-h", "127.0.0.1", "-p",
            str(self.port), "-k", str(self.root / "sock"), "-c", "fsync=off"),
            stdout=log, stderr=log)
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def connect(self, dbname: str = "postgres") -> object:
        import psycopg

        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}",
                               autocommit=True)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


class MariaServer:
    """A throw-away MariaDB (mariadb-install-db into a temp dir, `mariadbd --no-defaults`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for sub in ("data", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["chown", "-R", "mysql:", str(self.root)], check=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql",
                        f"--datadir={self.root / 'data'}", "--skip-test-db",
                        "--auth-root-authentication-method=normal"],
                       check=True, capture_output=True)
        log = open(self.root / "mariadb.log", "ab")  # noqa: SIM115 - lives as long as it
        self.proc = subprocess.Popen([
            "/usr/sbin/mariadbd", "--no-defaults", "--user=mysql",
            f"--datadir={self.root / 'data'}", "--bind-address=127.0.0.1",
            f"--port={self.port}", f"--socket={self.root / 'run' / 'mysqld.sock'}",
            f"--pid-file={self.root / 'run' / 'mysqld.pid'}",
            f"--log-error={self.root / 'error.log'}", "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M"],
            stdout=log, stderr=log)
        wait_for_port(self.port, 60)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def connect(self, database: str | None = None) -> object:
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                               database=database, autocommit=True, charset="utf8mb4")

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"
