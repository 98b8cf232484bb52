"""The connection limits of the attested-TLS daemons, their flags and the checks on their values.

Kept apart from the connection server so that parsing a command line imports no TLS code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from ..records import record


@record
class ServerLimits:
    """The connection limits of one attested-TLS daemon, as its flags set them; :meth:`validate` checks their ranges."""

    max_connections: int = 4096
    max_per_source: int = 256
    handshake_timeout: float = 5.0
    workers: int = 64
    backlog: int = 1024
    report_every: float = 10.0

    def validate(self) -> ServerLimits:
        """The limits, or a ConfigError naming the flag that is out of range."""
        checks = (
            (1 <= self.max_connections <= 1_000_000, "--max-connections must be 1..1000000"),
            (1 <= self.max_per_source <= 1_000_000, "--max-per-source must be 1..1000000"),
            (0 < self.handshake_timeout <= 3600, "--handshake-timeout must be more than 0 and at most 3600 seconds"),
            (1 <= self.workers <= 1024, "--workers must be 1..1024"),
            (128 <= self.backlog <= 65535, "--backlog must be 128..65535"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def divided(self, processes: int) -> ServerLimits:
        """Each of ``processes`` processes' share, so the totals the flags name still hold for the daemon:
        connections in all, per address and requests served at once are divided (rounded up, at least 1);
        the backlog is each listener's, the timeout each connection's."""
        def share(total: int) -> int:
            return max(1, -(-total // processes))

        return replace(self, max_connections=share(self.max_connections),
                       max_per_source=share(self.max_per_source), workers=share(self.workers))


def add_limit_arguments(parser: Any, defaults: ServerLimits = ServerLimits()) -> None:
    """The connection-limit flags both daemons take (long names only: the short ones are the C tools')."""
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections, metavar="N",
                        help=f"open connections in all; more sheds the least recently active idle one "
                             f"(default {defaults.max_connections})")
    parser.add_argument("--max-per-source", type=int, default=defaults.max_per_source, metavar="N",
                        help=f"open connections per client address (default {defaults.max_per_source})")
    parser.add_argument("--handshake-timeout", type=float, default=defaults.handshake_timeout, metavar="S",
                        help="seconds a client has, from connecting, to finish the TLS handshake (including its "
                             "own check of this server's evidence) and send its request "
                             f"(default {defaults.handshake_timeout:g})")
    parser.add_argument("--workers", type=int, default=defaults.workers, metavar="N",
                        help=f"requests served at once (default {defaults.workers})")
    parser.add_argument("--backlog", type=int, default=defaults.backlog, metavar="N",
                        help=f"listen backlog, at least 128 (default {defaults.backlog})")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="processes serving the port (TCP only), so verification uses N cores; the "
                             "limits above are divided among them (default 1)")


def limits_from_args(args: Any) -> ServerLimits:
    return ServerLimits(max_connections=args.max_connections, max_per_source=args.max_per_source,
                        handshake_timeout=args.handshake_timeout, workers=args.workers,
                        backlog=args.backlog).validate()
