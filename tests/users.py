"""Users of the tests (numbers with no passwd entries) and running a step as one."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ALICE, BOB, TEAM = 4321, 4322, 4400  # users and a group with no passwd entries


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    umask: int = 0o022


ROOT = User(0, 0)
alice = User(ALICE, ALICE)
bob = User(BOB, BOB)
alice_in_team = User(ALICE, ALICE, (TEAM,))


@dataclass(frozen=True)
class Seen:
    """What a step returns when its answer, not only its success, is to be compared."""

    value: object


def outcome(user: User, folder: Path, step: Callable[[], object]) -> str:
    """Run `step` in a child process as `user` inside `folder`: "ok" (or, for a step that
    returns `Seen`, the repr of what it saw) or the errno's name."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        answer = b"ok"
        try:
            os.close(read)
            os.chdir(folder)  # as root: pytest's tmp is 0700
            os.setgroups(list(user.groups))
            os.setgid(user.gid)
            os.setuid(user.uid)
            os.umask(user.umask)
            result = step()
            if isinstance(result, Seen):
                answer = repr(result.value).encode()
        except OSError as exc:
            answer = errno.errorcode.get(exc.errno or 0, "?").encode()
        finally:
            os.write(write, answer)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer
