"""Listening and dialing on the address forms the original tools take: ``ip:port`` or a Unix socket path."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat

from ..errors import ConfigError, TransportError
from ..records import record

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


@record
class Address:
    """An address as the original tools take it: a TCP host and port, or a Unix socket path."""

    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.kind == "tcp" else self.path


def parse_address(text: str) -> Address:
    """``ip:port``, ``[v6]:port``, ``tcp://host:port``, ``unix://path`` or a bare path (Unix socket)."""
    if not text:
        raise ConfigError("empty address")
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path:
            raise ConfigError(f"bad address {text!r}: no socket path")
        return Address("unix", path=path)
    body = text[len("tcp://"):] if text.startswith("tcp://") else text
    host, sep, port = body.rpartition(":")
    if sep and port.isdigit():
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not text.startswith("tcp://"):
                return Address("unix", path=text)  # as the original: not ip:port, so a socket path
            if not _HOSTNAME.fullmatch(host):
                raise ConfigError(f"bad address {text!r}: {host!r} is neither an IP address nor a host name") \
                    from None
        p = int(port)
        if not 0 <= p <= 65535:
            raise ConfigError(f"bad address {text!r}: port out of range")
        return Address("tcp", host=host, port=p)
    if text.startswith("tcp://"):
        raise ConfigError(f"bad address {text!r}: use tcp://IP:PORT")
    return Address("unix", path=text)


def listen(addr: Address, backlog: int = 128) -> socket.socket:
    try:
        if addr.kind == "tcp":
            family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
            return socket.create_server((addr.host, addr.port), family=family, backlog=backlog)
        try:
            if stat.S_ISSOCK(os.stat(addr.path).st_mode):
                os.unlink(addr.path)  # a stale socket from a previous run, as the original did
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr.path)
        s.listen(backlog)
        return s
    except OSError as e:
        raise TransportError(f"cannot listen on {addr}: {e.strerror or e}") from None


def dial(addr: Address, timeout: float) -> socket.socket:
    try:
        if addr.kind == "tcp":
            # An ASCII name as bytes (typeshed says str; getaddrinfo takes both): a str makes it load the IDNA codec
            # (unicodedata, stringprep), milliseconds of every one-shot client, to encode it to the same bytes.
            host = addr.host.encode("ascii") if addr.host.isascii() else addr.host
            return socket.create_connection((host, addr.port), timeout=timeout)  # type: ignore[arg-type]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(addr.path)
        except BaseException:
            s.close()
            raise
        return s
    except TimeoutError:
        raise TransportError(f"timed out connecting to {addr}") from None
    except OSError as e:
        raise TransportError(f"cannot connect to {addr}: {e.strerror or e}") from None
