"""eaa-pccs: a Provisioning Certificate Caching Service for Intel SGX/TDX collateral and AMD KDS certificates.

Layout: :mod:`.records` (what is stored and how it is validated), :mod:`.store` with SQLite and
PostgreSQL backends, :mod:`.upstream` (LAZY fills), :mod:`.platforms` (registrations), :mod:`.refresh`
(re-fetching the cache), :mod:`.service` (the logic), :mod:`.app` (the HTTP API), :mod:`.server`
(uvicorn), :mod:`.setup` (building a service from command-line options).
"""

from __future__ import annotations

from .app import create_app
from .records import Record
from .server import PccsServer
from .service import Mode, PccsService
from .store import Store, open_store
from .upstream import Upstream

__all__ = ["Mode", "PccsServer", "PccsService", "Record", "Store", "Upstream", "create_app", "open_store"]
