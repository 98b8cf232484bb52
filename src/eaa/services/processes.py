"""Several processes serving one port, so the daemons' verification work uses every core.

Verifying evidence is CPU work done in Python under one interpreter lock per process: the worker
threads of :class:`~.server.ConnectionServer` overlap waiting, not computing. ``--processes N``
runs N copies of the server instead, forked from a parent that has already checked the
configuration, made the daemon's attested-TLS endpoint (one key and one evidence for all of them)
and opened the listeners.

The parent opens one listening socket per child, all bound to the same address with
``SO_REUSEPORT``: the kernel spreads incoming connections across them by their addresses. The
parent keeps every socket open and never accepts, so connections queued for a child that has
died wait in its socket's queue for the replacement instead of being reset, and the port stays
bound while children come and go. (Where ``SO_REUSEPORT`` does not exist the children share one
socket and race to accept.) Only processes of the same user can join a ``SO_REUSEPORT`` group on
Linux.

The parent supervises: it starts a new child in place of one that exits while serving (after a
delay that grows while children keep dying young, so a child that cannot start does not make the
parent spin), forwards SIGTERM and SIGINT to its children, waits for them and exits 0 (SIGTERM) or
130 (SIGINT). Children ask the kernel for SIGTERM when the parent dies, so none is orphaned even if
the parent is killed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .address import Address

MAX_PROCESSES = 256
STOP_GRACE = 15.0  # seconds children get to finish after SIGTERM before SIGKILL
YOUNG = 1.0  # a child that lived less than this many seconds died young
FIRST_RESTART_DELAY = 0.1
MAX_RESTART_DELAY = 5.0
_PR_SET_PDEATHSIG = 1
_SIGNALS = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)

log = logging.getLogger("eaa.server")


def check_processes(processes: int, address: Address | None) -> int:
    """``--processes`` in range, and 1 for a Unix-socket listener (its path is one file, which each
    child would unlink on exit)."""
    if not 1 <= processes <= MAX_PROCESSES:
        raise ConfigError(f"--processes must be 1..{MAX_PROCESSES}")
    if processes > 1 and address is not None and address.kind != "tcp":
        raise ConfigError("--processes above 1 needs a TCP listener (ip:port), not a Unix socket")
    return processes


def listen_shared(addr: Address, backlog: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``addr`` (the same port, also when ``addr.port`` is 0), one per child;
    a single shared socket where ``SO_REUSEPORT`` is missing."""
    from ..errors import TransportError
    from .address import listen

    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        return [listen(addr, backlog=backlog)] * count
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    socks: list[socket.socket] = []
    port = addr.port
    try:
        for _ in range(count):
            socks.append(socket.create_server((addr.host, port), family=family, backlog=backlog, reuse_port=True))
            port = socks[0].getsockname()[1]
    except OSError as e:
        for s in socks:
            s.close()
        raise TransportError(f"cannot listen on {addr}: {e.strerror or e}") from None
    return socks


def _die_with_parent(parent: int) -> None:
    """SIGTERM this child when its parent dies (Linux); exit now if that already happened."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(0)


@dataclass
class _Slot:
    """One listening socket and the child serving it (pid 0: none), with the growing delay that paces its restarts."""

    sock: socket.socket
    pid: int = 0
    started: float = 0.0
    restart_at: float | None = None
    delay: float = FIRST_RESTART_DELAY


class Supervisor:
    """Fork one child per listening socket, each running ``serve(sock)`` (it returns the child's exit
    status), and keep them running until SIGTERM or SIGINT.

    Fork only from a process without threads: a child inherits no thread but every lock another
    thread may have held. Each child builds its own connection server (selector, worker threads)
    after the fork.
    """

    def __init__(self, socks: Sequence[socket.socket], serve: Callable[[socket.socket], int],
                 logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = [_Slot(s) for s in socks]
        self.serve = serve
        self.log = logger
        self.clock = clock

    # ---- children ----
    def _start(self, slot: _Slot, mask: set[int]) -> None:
        if threading.active_count() != 1:
            raise RuntimeError("the supervisor must not fork with threads running")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            code = 70
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                _die_with_parent(parent)
                for other in {id(s.sock): s.sock for s in self.slots if s.sock is not slot.sock}.values():
                    other.close()
                code = self.serve(slot.sock)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException as e:  # noqa: BLE001 - a child reports and exits; it never unwinds into the parent's loop
                self.log.error("process %d failed: %s: %s", os.getpid(), type(e).__name__, e)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, self.clock(), None

    def _reap(self, stopping: bool) -> None:
        """Collect children that exited; schedule a replacement for each unless stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for slot in self.slots:
                if slot.pid != pid:
                    continue
                slot.pid = 0
                if stopping:
                    break
                now = self.clock()
                wait, slot.delay = restart_delay(now - slot.started, slot.delay)
                slot.restart_at = now + wait
                self.log.warning("process %d %s; starting another", pid, describe_status(status))
                break

    # ---- the parent ----
    def run(self) -> int:
        """Serve until SIGTERM (exit 0) or SIGINT (exit 130); then exit the process: the signals stay blocked."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        received = 0
        try:
            for slot in self.slots:
                self._start(slot, mask)
            self.log.info("serving with %d processes (pids %s); supervisor pid %d", len(self.slots),
                          " ".join(str(s.pid) for s in self.slots), os.getpid())
            while not received:
                info = signal.sigtimedwait(_SIGNALS, self._wait_time())
                if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                    received = info.si_signo
                    break
                self._reap(stopping=False)
                now = self.clock()
                for slot in self.slots:
                    if slot.pid == 0 and slot.restart_at is not None and now >= slot.restart_at:
                        self._start(slot, mask)
                        self.log.info("process %d started in place of the one that exited", slot.pid)
            self._stop_children(received)
        finally:
            self._kill_remaining()
            # The signals stay blocked: the process is about to exit, and a repeated SIGTERM or SIGINT,
            # already acted on, must not turn its exit status into death by that signal.
            for sock in {id(s.sock): s.sock for s in self.slots}.values():
                sock.close()
        self.log.info("stopped (signal %d)", received)
        return 130 if received == signal.SIGINT else 0

    def _wait_time(self) -> float:
        pending = [s.restart_at for s in self.slots if s.pid == 0 and s.restart_at is not None]
        return max(0.01, min([0.5, *(t - self.clock() for t in pending)]))

    def _stop_children(self, sig: int) -> None:
        """Pass ``sig`` on and wait for every child to finish what it is serving."""
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = self.clock() + STOP_GRACE
        while any(s.pid for s in self.slots) and self.clock() < deadline:
            self._reap(stopping=True)
            if any(s.pid for s in self.slots):
                signal.sigtimedwait([signal.SIGCHLD], 0.1)

    def _kill_remaining(self) -> None:
        for slot in self.slots:
            if slot.pid:
                self.log.warning("process %d did not stop in time; killing it", slot.pid)
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                slot.pid = 0


def restart_delay(lived: float, delay: float) -> tuple[float, float]:
    """How long to wait before replacing a child that lived ``lived`` seconds, and the next delay: at once
    after a long life; after a delay doubling up to MAX_RESTART_DELAY while children keep dying young."""
    if lived >= YOUNG:
        return 0.0, FIRST_RESTART_DELAY
    delay = min(MAX_RESTART_DELAY, delay * 2)
    return delay, delay


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


__all__ = ["MAX_PROCESSES", "Supervisor", "check_processes", "describe_status", "listen_shared", "restart_delay"]
