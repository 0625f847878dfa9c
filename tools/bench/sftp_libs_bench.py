"""SFTP clients side by side (not a test): one 256 MiB file downloaded and uploaded
over the same local sshd by markfs's backend (SFTP framed in Python over an OpenSSH
`ssh` process), paramiko's getfo/putfo, asyncssh, ssh2-python (libssh2), OpenSSH's own
`sftp` and, where installed, sshfs + cp. Each row also gives the CPU seconds this
process spent (the daemon's share of the two cores, in a mount).

    .venv/bin/pip install paramiko asyncssh ssh2-python   (measurement only, not dependencies)
    .venv/bin/python tools/bench/sftp_libs_bench.py [--mib N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from servers import SshServer

from markfs.backends.sftp import SftpBackend
from markfs.namespace.files.urls import parse_source_url


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def timed(label: str, size: int, action: Callable[[], object]) -> None:
    try:
        start, cpu = time.perf_counter(), cpu_seconds()
        action()
        seconds = time.perf_counter() - start
        print(f"| {label} | {seconds:.2f} | {size / seconds / 1e6:,.0f} | "
              f"{cpu_seconds() - cpu:.2f} |", flush=True)
    except Exception as exc:  # a library that is missing or fails is reported, not fatal
        print(f"| {label} | - | ({type(exc).__name__}: {str(exc)[:60]}) |", flush=True)


def markfs_read(server: SshServer, root: Path, name: str) -> None:
    backend = SftpBackend(parse_source_url(server.url(root)).location)  # type: ignore[arg-type]
    size = (root / name).stat().st_size
    for _ in backend.read_stream(name.encode(), 0, size, None):
        pass


def markfs_write(server: SshServer, root: Path, local: Path) -> None:
    backend = SftpBackend(parse_source_url(server.url(root)).location)  # type: ignore[arg-type]
    backend.upload(b"up-markfs.bin", str(local))
    backend.close()


def openssh_sftp(server: SshServer, command: str) -> None:
    subprocess.run(["sftp", "-q", "-b", "-", "-P", str(server.port), "-i",
                    str(server.client_key), "-o", f"UserKnownHostsFile={server.known_hosts}",
                    "root@127.0.0.1"], input=command.encode(), check=True,
                   stdout=subprocess.DEVNULL)


def paramiko_client(server: SshServer) -> tuple[object, object]:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(server.known_hosts))
    client.connect("127.0.0.1", server.port, "root", key_filename=str(server.client_key),
                   allow_agent=False, look_for_keys=False)
    return client, client.open_sftp()


def paramiko_get(server: SshServer, remote: str) -> None:
    client, sftp = paramiko_client(server)
    sftp.getfo(remote, io.BytesIO())  # type: ignore[attr-defined]
    client.close()  # type: ignore[attr-defined]


def paramiko_put(server: SshServer, data: bytes, remote: str) -> None:
    client, sftp = paramiko_client(server)
    sftp.putfo(io.BytesIO(data), remote)  # type: ignore[attr-defined]
    client.close()  # type: ignore[attr-defined]


def asyncssh_transfer(server: SshServer, local: Path, remote: str, upload: bool) -> None:
    import asyncssh

    async def run() -> None:
        async with asyncssh.connect(
                "127.0.0.1", server.port, username="root", client_keys=[str(server.client_key)],
                known_hosts=str(server.known_hosts)) as conn, conn.start_sftp_client() as sftp:
            if upload:
                await sftp.put(str(local), remote)
            else:
                await sftp.get(remote, str(local))
    asyncio.run(run())


def ssh2_session(server: SshServer) -> tuple[socket.socket, object, object]:
    from ssh2.session import Session

    sock = socket.create_connection(("127.0.0.1", server.port))
    session = Session()
    session.handshake(sock)
    session.userauth_publickey_fromfile("root", str(server.client_key))
    return sock, session, session.sftp_init()


def ssh2_get(server: SshServer, remote: str) -> None:
    from ssh2.sftp import LIBSSH2_FXF_READ

    sock, _session, sftp = ssh2_session(server)
    with sftp.open(remote, LIBSSH2_FXF_READ, 0) as f:  # type: ignore[attr-defined]
        for _size, _data in f:
            pass
    sock.close()


def ssh2_put(server: SshServer, data: bytes, remote: str) -> None:
    from ssh2.sftp import LIBSSH2_FXF_CREAT, LIBSSH2_FXF_TRUNC, LIBSSH2_FXF_WRITE

    sock, _session, sftp = ssh2_session(server)
    flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC
    with sftp.open(remote, flags, 0o644) as f:  # type: ignore[attr-defined]
        view = memoryview(data)
        for start in range(0, len(data), 1 << 20):
            f.write(bytes(view[start : start + (1 << 20)]))
    sock.close()


def sshfs_copy(server: SshServer, root: Path, tmp: Path, name: str, upload: bool) -> None:
    if shutil.which("sshfs") is None:
        raise FileNotFoundError("sshfs is not installed (tools/bench/setup.sh)")
    point = tmp / "sshfs"
    point.mkdir(exist_ok=True)
    subprocess.run(["sshfs", f"root@127.0.0.1:{root}", str(point), "-p", str(server.port),
                    "-o", f"IdentityFile={server.client_key}",
                    "-o", f"UserKnownHostsFile={server.known_hosts}"], check=True)
    try:
        if upload:
            shutil.copyfile(tmp / "local.bin", point / "up-sshfs.bin")
        else:
            shutil.copyfile(point / name, tmp / "down-sshfs.bin")
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    size = parser.parse_args().mib << 20
    tmp = Path(tempfile.mkdtemp(prefix="sftp-libs-"))
    server = SshServer.create(tmp / "sshd")
    server.start()
    try:
        root = tmp / "root"
        root.mkdir()
        data = os.urandom(1 << 20) * (size >> 20)
        (root / "big.bin").write_bytes(data)
        (tmp / "local.bin").write_bytes(data)
        remote = str(root / "big.bin")
        table = "| client | seconds | MB/s | CPU s here |\n|---|---|---|---|"
        print(f"download of {size >> 20} MiB\n\n{table}")
        timed("markfs SftpBackend.read_stream (OpenSSH ssh, own SFTP framing)", size,
              lambda: markfs_read(server, root, "big.bin"))
        timed("OpenSSH sftp get", size,
              lambda: openssh_sftp(server, f"get {remote} {tmp / 'down-o.bin'}\n"))
        timed("paramiko SFTPClient.getfo", size, lambda: paramiko_get(server, remote))
        timed("asyncssh get (its defaults: limits negotiated with the server)", size,
              lambda: asyncssh_transfer(server, tmp / "down-a.bin", remote, False))
        timed("ssh2-python (libssh2) read", size, lambda: ssh2_get(server, remote))
        timed("sshfs + cp", size, lambda: sshfs_copy(server, root, tmp, "big.bin", False))
        print(f"\nupload of {size >> 20} MiB\n\n{table}")
        timed("markfs SftpBackend.upload (OpenSSH ssh, own SFTP framing)", size,
              lambda: markfs_write(server, root, tmp / "local.bin"))
        timed("OpenSSH sftp put", size,
              lambda: openssh_sftp(server, f"put {tmp / 'local.bin'} {root / 'up-o.bin'}\n"))
        timed("paramiko SFTPClient.putfo", size,
              lambda: paramiko_put(server, data, str(root / "up-p.bin")))
        timed("asyncssh put (its defaults)", size,
              lambda: asyncssh_transfer(server, tmp / "local.bin", str(root / "up-a.bin"),
                                        True))
        timed("ssh2-python (libssh2) write", size,
              lambda: ssh2_put(server, data, str(root / "up-s.bin")))
        timed("sshfs + cp", size, lambda: sshfs_copy(server, root, tmp, "big.bin", True))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
