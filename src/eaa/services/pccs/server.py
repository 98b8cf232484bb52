"""Running the eaa-pccs app under uvicorn: in the foreground (the daemon) or in a thread (tests, benchmarks).

The listening socket is bound here, before uvicorn starts, so port 0 works (the kernel picks a free
port and :attr:`PccsServer.port` reports it) and a port already in use fails at once with a clear error.
"""

from __future__ import annotations

import signal
import socket
import ssl
import threading
import time
from typing import Any

import uvicorn

from ...errors import ConfigError


def check_tls_files(certfile: str, keyfile: str) -> None:
    """Load the pair once before uvicorn does, so a missing file, swapped files or a key that does not
    match is one clear line instead of a traceback from the server thread (and an encrypted key is
    refused rather than prompted for)."""
    for path, what in ((certfile, "--cert"), (keyfile, "--key")):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise ConfigError(f"cannot read the TLS {'certificate' if what == '--cert' else 'key'} ({what}) "
                              f"{path}: {e.strerror}") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(certfile, keyfile, password=lambda: b"")
    except (ssl.SSLError, ValueError, OSError):
        raise ConfigError(f"the TLS certificate {certfile} and key {keyfile} do not load as a pair: --cert needs "
                          "the PEM certificate (chain) and --key its unencrypted PEM private key "
                          "(swapped files, or a key of another certificate?)") from None


class PccsServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, certfile: str | None = None,
                 keyfile: str | None = None, log_level: str = "warning", access_log: bool = False) -> None:
        if bool(certfile) != bool(keyfile):
            raise ConfigError("HTTPS needs both a certificate and its private key")
        if certfile and keyfile:
            check_tls_files(certfile, keyfile)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        self.sock.listen(1024)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.tls = bool(certfile)
        config = uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, log_level=log_level,
                                access_log=access_log, lifespan="off", timeout_keep_alive=30,
                                log_config=None)  # the daemon format (cli.common.setup_daemon_logging) applies
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def serve_forever(self) -> int:
        """Serve in this (main) thread until SIGINT/SIGTERM; returns that signal's number.

        uvicorn shuts down gracefully, then raises the signal again under the handlers it found: these
        record it, so the daemon exits with a status (0 for SIGTERM) instead of dying by the signal."""
        stopped: list[int] = []
        previous = {sig: signal.signal(sig, lambda s, _frame: stopped.append(s))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.server.run(sockets=[self.sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return stopped[0] if stopped else 0

    def start(self, timeout: float = 10.0) -> PccsServer:
        """Serve in a background thread; returns once the server accepts connections."""
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                        name=f"eaa-pccs:{self.port}")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("eaa-pccs did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> PccsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
