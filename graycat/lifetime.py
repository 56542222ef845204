"""Parts that do not outlive `graycat up`: each child is tied to the process that started it, so a `graycat up`
killed with SIGKILL (or by the OOM killer) takes its API, workers and Redis with it.

Linux: the kernel sends the child SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, set between fork and
exec, so it holds for redis-server too). Elsewhere the Python parts poll their parent (PARENT_ENV) once a second,
and stop the private Redis (REDIS_PID_ENV) when they find themselves orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PARENT_ENV = "GRAYCAT_PARENT_PID"
REDIS_PID_ENV = "GRAYCAT_REDIS_PID"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def tie_to_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that has the child get SIGTERM when this process dies (Linux);
    None where the kernel has no such signal (the child then polls with `watch_parent`)."""
    if _libc is None:
        return None
    parent = os.getpid()
    libc = _libc

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def watch_parent() -> None:
    """Where `tie_to_parent` cannot (not Linux): stop this process, and the Redis named in REDIS_PID_ENV, once
    the process named in PARENT_ENV is gone."""
    parent = os.environ.get(PARENT_ENV)
    if _libc is not None or not parent:
        return
    redis_pid = os.environ.get(REDIS_PID_ENV)

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        if redis_pid:
            _signal(int(redis_pid))
        _signal(os.getpid())

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _signal(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
