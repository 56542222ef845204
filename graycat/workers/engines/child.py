"""What every engine child process does first and last: die with its parent, announce itself, wait."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import NoReturn

PR_SET_PDEATHSIG = 1
PARENT_ENV = "GRAYCAT_ENGINE_PARENT"  # the worker's pid, as the worker saw it
ERROR_PREFIX = "error: "  # a first line that starts so: the engine could not start, and why


def bind_to_parent() -> None:
    """Die with the worker that started this process (SIGKILL when it exits, however it exits), and leave
    SIGINT / SIGTERM to it: a Ctrl-C in a terminal or a stop of the whole process group must let the worker
    finish its jobs on this engine before it closes it."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if str(os.getppid()) != os.environ.get(PARENT_ENV, str(os.getppid())):  # it died before the lines above
        os._exit(1)


def announce(line: str) -> None:
    """Tell the worker this engine's address (its first line on stdout); from then on whatever writes to stdout
    (native libraries too) goes to stderr, so the pipe the worker no longer reads can never fill up."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def refuse(exc: Exception) -> NoReturn:
    """Tell the worker why the engine could not start, and exit."""
    announce(f"{ERROR_PREFIX}{exc}".replace("\n", " "))
    raise SystemExit(1) from exc


def wait_for_parent() -> None:
    """Block until the worker closes our stdin (it stops the engine) or dies, then exit at once: the engine's
    own teardown is not needed by anyone."""
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os._exit(0)
