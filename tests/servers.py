"""Real servers for the tests, on 127.0.0.1 and free ports: OpenSSH sshd and moto's S3.

Each is started by a fixture and stopped by it, by its own PID or handle.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def stop_with_children(proc: subprocess.Popen[bytes]) -> None:
    """A server we started, and the per-connection processes it forked, by PID."""
    subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
            stop_with_children(self.proc)
            self.proc = None

    def url(self, path: Path) -> str:
        return (f"sftp://root@127.0.0.1:{self.port}{path}?key_file={self.client_key}"
                f"&known_hosts={self.known_hosts}")


class S3Endpoint:
    """What tests need of any S3 server: a client of it and source URLs for it."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def url(self, bucket: str, prefix: str = "") -> str:
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}&region=us-east-1"


class S3Server(S3Endpoint):
    """moto's S3 in server mode, in this process, on its own port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    def start(self) -> None:
        self._server.start()
        wait_for_port(self.port)
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False


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
        if not (self.root / "data").exists():  # (a restart keeps the cluster)
            subprocess.run(self._as_postgres(
                _pg_bin("initdb"), "-D", str(self.root / "data"), "-U", "postgres",
                "--auth=trust", "-E", "UTF8", "--no-sync"), check=True, capture_output=True)
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - lives as long as it
        self.proc = subprocess.Popen(self._as_postgres(
            _pg_bin("postgres"), "-D", str(self.root / "data"), "-h", "127.0.0.1", "-p",
            str(self.port), "-k", str(self.root / "sock"), "-c", "fsync=off"),
            stdout=log, stderr=log)
        wait_for_port(self.port, 30)
        self._wait_accepting(30)

    def _wait_accepting(self, timeout: float) -> None:
        """Until it accepts a connection (a port that answers may still be "starting up")."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres "
                                "dbname=postgres").close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def restart(self, down: Callable[[], object] = lambda: None) -> None:
        """A fast shutdown (every client's connection cut), `down()` while it is down,
        then the same cluster on the same port again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self.proc = None
        try:
            down()
        finally:
            self.start()

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


class StallingProxy:
    """A TCP proxy to a server on 127.0.0.1 that can be made to hang: while stalled it
    accepts connections and holds them open, but passes no byte either way — a server
    that stopped answering, without stopping anything but this test's own proxy."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self.pause_s = 0.0  # after each piece forwarded: > 0 makes a slow server
        self._refusing = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stall(self) -> None:
        self._stalled.set()

    def cut(self) -> None:
        """The server is gone: every connection closed, new ones closed at once."""
        self._refusing = True
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets = []

    def restore(self) -> None:
        self._refusing = False

    def resume(self) -> None:
        self._stalled.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        import threading

        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server behind is gone (the end of a test)
                client.close()
                continue
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        import select

        while not self._closed.is_set():
            if self._stalled.is_set():
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready or self._stalled.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if self.pause_s:
                    time.sleep(self.pause_s)
            except (OSError, ValueError):  # (ValueError: a socket `cut` closed)
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class SeaweedServer(S3Endpoint):
    """SeaweedFS (`weed server` with its S3 gateway), a real S3 server, in a temp dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = _free_ports_with_grpc_twins(5)
        self.port = self.ports[0]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import sys

        weed = Path(sys.executable).parent / "weed"
        s3, master, volume, filer, _ = self.ports
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 - lives as long as it
        self.proc = subprocess.Popen([
            str(weed), f"-logdir={self.root}", "server", f"-dir={self.root}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3", f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # every bucket is a collection with volumes of its own: small ones, many
            "-master.volumeSizeLimitMB=128", "-volume.max=1000"],
            stdout=log, stderr=log, cwd=self.root)
        self._wait_ready()

    def _wait_ready(self) -> None:
        client: Any = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="ready-probe")
                return
            except Exception:
                if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                    log = self.root / "weed.log"
                    raise RuntimeError(f"SeaweedFS did not start: see {log}") from None
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)  # (weed may ignore SIGTERM for long: its data is
                # thrown away, so it is killed soon)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            for port in self.ports:  # its local gRPC sockets, named by port
                for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock") + glob.glob(
                        f"/tmp/seaweedfs-*-{port + 10000}.sock"):
                    Path(sock).unlink(missing_ok=True)


def _free_ports_with_grpc_twins(count: int) -> list[int]:
    """Free ports whose +10000 twins are free too (SeaweedFS opens both)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


SMBD = "/usr/sbin/smbd"


@dataclass
class SambaServer:
    """smbd in the foreground on a free loopback port, every folder it keeps state in
    under `dir`, one user (root) with a password; the shares are smb.conf text."""

    dir: Path
    port: int
    password: str = "markfs-test"
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path, shares: str) -> SambaServer:
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        folders = {key: root / name for key, name in (
            ("private dir", "private"), ("lock directory", "lock"),
            ("state directory", "state"), ("cache directory", "cache"),
            ("pid directory", "pid"), ("ncalrpc dir", "ncalrpc"),
            ("binddns dir", "binddns"))}
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
        settings = {
            "server role": "standalone server", "interfaces": "127.0.0.1",
            "bind interfaces only": "yes", "disable netbios": "yes", "smb ports": str(port),
            "passdb backend": f"tdbsam:{root / 'passdb.tdb'}", "load printers": "no",
            "printing": "bsd", "printcap name": "/dev/null", "disable spoolss": "yes",
            "rpc start on demand helpers": "no", "map to guest": "never",
            "log file": str(root / "log.%m"), **{k: str(v) for k, v in folders.items()}}
        conf = "[global]\n" + "".join(f"   {k} = {v}\n" for k, v in settings.items())
        (root / "smb.conf").write_text(conf + "\n" + shares)
        server = cls(root, port)
        subprocess.run(["smbpasswd", "-c", str(root / "smb.conf"), "-s", "-a", "root"],
                       input=f"{server.password}\n{server.password}\n".encode(),
                       check=True, capture_output=True)
        return server

    def start(self) -> None:
        log = open(self.dir / "smbd.log", "ab")  # noqa: SIM115 - lives as long as smbd
        self.proc = subprocess.Popen(
            [SMBD, "--foreground", "--no-process-group", "--debug-stdout",
             "-s", str(self.dir / "smb.conf")], stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, start_new_session=True)  # at exit smbd signals its
        # whole process group: that must not be the test's
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        """smbd and the process it forked for each connection."""
        if self.proc is not None:
            stop_with_children(self.proc)
            self.proc = None

    def client(self, share: str, *commands: str) -> subprocess.CompletedProcess[str]:
        """smbclient running `commands` on a share (its output, whatever the status)."""
        return subprocess.run(
            ["smbclient", "-p", str(self.port), f"//127.0.0.1/{share}",
             "-U", f"root%{self.password}", "-c", "; ".join(commands)],
            capture_output=True, text=True, timeout=120, check=False)


GANESHA = "/usr/bin/ganesha.nfsd"


@dataclass
class GaneshaServer:
    """nfs-ganesha in the foreground: NFSv3 and v4 over TCP on free loopback ports,
    no NLM, rquota or UDP, its state under `dir`; the exports are config text."""

    dir: Path
    nfs_port: int
    mount_port: int
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path, exports: str) -> GaneshaServer:
        root.mkdir(parents=True, exist_ok=True)
        (root / "recovery").mkdir(exist_ok=True)
        nfs_port, mount_port = free_port(), free_port()
        (root / "ganesha.conf").write_text(
            "NFS_CORE_PARAM {\n    Protocols = 3, 4;\n"
            f"    NFS_Port = {nfs_port};\n    MNT_Port = {mount_port};\n"
            "    Bind_addr = 127.0.0.1;\n    Enable_NLM = false;\n"
            "    Enable_RQUOTA = false;\n    Enable_UDP = false;\n}\n"
            "NFSV4 {\n    Graceless = true;\n    RecoveryBackend = fs;\n"
            f"    RecoveryRoot = {root / 'recovery'};\n}}\n" + exports)
        return cls(root, nfs_port, mount_port)

    def start(self) -> None:
        log = open(self.dir / "ganesha.out", "ab")  # noqa: SIM115 - lives as long as it
        self.proc = subprocess.Popen(
            [GANESHA, "-F", "-f", str(self.dir / "ganesha.conf"), "-L",
             str(self.dir / "ganesha.log"), "-p", str(self.dir / "ganesha.pid")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for_port(self.nfs_port, timeout=30)
        wait_for_port(self.mount_port, timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


RPCBIND = "/usr/sbin/rpcbind"


class Rpcbind:
    """The portmapper NFSv3 servers register with (port 111, the only port it can have):
    started in the foreground unless one already answers there, stopped by its PID."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with contextlib.suppress(RuntimeError):
            wait_for_port(111, timeout=0.3)
            return  # the machine's own: used, never stopped
        self.proc = subprocess.Popen([RPCBIND, "-f", "-w"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_for_port(111)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
