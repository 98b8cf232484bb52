"""shelter's client side: attest one or many inclavared nodes and judge what comes back.

For each node: an attested TLS connection (inclavared's own evidence is verified during the
handshake), a fresh nonce, then shelter verifies the workload's evidence itself (nonce in the claims,
claims hashed into the quote, quote against collateral and trusted roots) and appraises it against
the policy and reference values. inclavared's verdict is reported but never relied on.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, EaaError, PolicyViolation, ProtocolError, UnsupportedEvidence, VerificationError
from ..policy import Policy
from ..tls.config import TlsConfig
from ..tls.peercert import parse_certificate
from ..tls.session import EnclaveTls
from ..verify.registry import verifier_for_evidence
from ..verify.result import TcbStatus, VerificationResult
from ..verify.verifier import Verifier
from . import protocol
from .address import dial, parse_address


@dataclass
class ShelterOptions:
    """How shelter attests nodes: the TLS that verifies inclavared, the policy for workloads, and the v1 opt-ins."""

    tls: TlsConfig  # verifies inclavared's certificate (its policy: statuses/debug/expiry, no reference values)
    policy: Policy = field(default_factory=Policy)  # appraises the workload, with the reference values
    v1: bool = False
    # Protocol v1 answers carry no nonce: a captured answer can be replayed. Speaking v1 is refused
    # unless the caller accepts that explicitly.
    allow_replay: bool = False
    # False only with shelter --no-reference: a v1 run that verified no evidence at all (nullverifier)
    # then passes, reported as such, instead of failing.
    require_verified: bool = True
    timeout: float = 10.0
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    randbytes: Callable[[int], bytes] = os.urandom  # what secrets.token_bytes calls, without importing hmac


class NothingVerified(VerificationError):
    """A run whose every identity was unchecked: nullverifier for inclavared and a self-reported v1 answer."""

    code = "NOTHING_VERIFIED"


@dataclass
class NodeReport:
    """The outcome of attesting one node: whether it passed, why not, and what each side's evidence verified to."""

    address: str
    ok: bool
    error_code: str | None = None
    error: str | None = None
    error_check: str | None = None  # the check that failed (eaa.checks), when one did
    inclavared: VerificationResult | None = None
    inclavared_evidence: str | None = None
    workload: VerificationResult | None = None
    workload_evidence: str | None = None
    inclavared_verdict: dict[str, Any] | None = None
    v1_info: dict[str, Any] | None = None
    verified_nothing: bool = False  # v1 with nullverifier under --no-reference: passed, but nothing was checked

    @property
    def simulated(self) -> bool:
        return any(r is not None and r.simulated for r in (self.inclavared, self.workload))

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "ok": self.ok,
            "error_code": self.error_code,
            "error_check": self.error_check,
            "error": self.error,
            "simulated": self.simulated,
            "inclavared": self.inclavared.to_dict() if self.inclavared else None,
            "inclavared_evidence": self.inclavared_evidence,
            "workload": self.workload.to_dict() if self.workload else None,
            "workload_evidence": self.workload_evidence,
            "inclavared_verdict": self.inclavared_verdict,
            "v1": self.v1_info,
            "replayable": self.v1_info is not None,
            "verified_nothing": self.verified_nothing,
        }


class Shelter:
    def __init__(self, options: ShelterOptions) -> None:
        if options.v1 and not options.allow_replay:
            raise ConfigError("protocol v1 answers carry no nonce, so a captured answer can be replayed; "
                              "accept that explicitly (shelter --allow-replay) or use protocol v2 (without --v1)")
        self.options = options
        self.endpoint = EnclaveTls(options.tls, server=False)

    def _verifier(self, evidence_type: str) -> Verifier:
        """The verifier for the workload's evidence: the named one when it checks this type, else the one
        named after the type. Never ``nullverifier``: checking the workload is what shelter is for."""
        pv = self.endpoint.peer_verifier
        assert pv is not None  # a client endpoint always verifies its peer
        tls = self.options.tls
        named = tls.verifier if isinstance(tls.verifier, str) and tls.verifier else None
        for name in (named, verifier_for_evidence(evidence_type)):
            if name and name != "nullverifier":
                v = pv.verifier(name)
                if evidence_type in v.evidence_types:
                    return v
        raise UnsupportedEvidence(f"the workload sent {evidence_type!r} evidence, which shelter cannot verify")

    def attest(self, address: str) -> NodeReport:
        report = NodeReport(address, ok=False)
        try:
            self._attest(address, report)
            report.ok = True
        except EaaError as e:
            report.error_code, report.error, report.error_check = e.code, str(e), e.check
        except Exception as e:  # noqa: BLE001 - one node's surprise must not hide the others' results
            report.error_code, report.error = "INTERNAL", f"{type(e).__name__}: {e}"
            report.error_check = "INTERNAL"
        return report

    def _attest(self, address: str, report: NodeReport) -> None:
        opts = self.options
        addr = parse_address(address)
        sock = dial(addr, opts.timeout)
        with self.endpoint.wrap(sock, address=address, timeout=opts.timeout) as session:
            if session.peer is not None:
                report.inclavared = session.peer.result
                report.inclavared_evidence = session.peer.evidence_type
            if opts.v1:
                session.send(protocol.make_request(None))
                data = session.recv(2047, timeout=opts.timeout)
                report.v1_info = info = protocol.parse_enclaveinfo_v1(data)
                # Protocol v1 carries only the workload's self-reported identity: compare what there is.
                claimed = VerificationResult(tee="sgx", status=TcbStatus.SELF_REPORTED, advisory_ids=(),
                                             report_data=b"", measurements={"mrenclave": info["mrenclave"],
                                                                            "mrsigner": info["mrsigner"]})
                if report.inclavared is None or report.inclavared.tee == "none":
                    if opts.require_verified:
                        raise NothingVerified("nothing was verified: inclavared's evidence was not checked "
                                              "(nullverifier) and protocol v1 carries only a self-reported, "
                                              "replayable identity of the workload")
                    report.verified_nothing = True
                problems = opts.policy.reference.mismatches(claimed)
                if problems:
                    raise PolicyViolation("; ".join(problems) + " (self-reported over protocol v1)")
                return
            nonce = opts.randbytes(protocol.NONCE_SIZE)
            session.send(protocol.make_request(nonce))
            line = session.recv_line(protocol.MAX_REPLY, timeout=opts.timeout)
        if not line:
            raise ProtocolError("inclavared closed the connection without a reply")
        obj = protocol.parse_json_line(line, "inclavared reply")
        error = protocol.error_of(obj)
        if error is not None:
            raise error
        reply = protocol.parse_enclaveinfo_v2(line)
        report.inclavared_verdict = {"ok": reply.verdict.ok, "error_code": reply.verdict.error_code,
                                     "error": reply.verdict.error}
        if reply.nonce != nonce:
            raise ProtocolError("inclavared answered for another nonce")
        if reply.workload is None:
            raise ProtocolError(f"no workload evidence: [{reply.verdict.error_code}] {reply.verdict.error}")
        w = reply.workload
        report.workload_evidence = w.evidence_type
        spki = parse_certificate(w.certificate).spki if w.certificate else None
        result = w.verify(self._verifier(w.evidence_type), nonce, at=opts.clock(), expected_spki=spki)
        report.workload = result
        opts.policy.appraise(result)

    def attest_many(self, addresses: list[str], max_workers: int = 16) -> list[NodeReport]:
        """Every node's report, in order, at most ``max_workers`` at once.

        The workers are daemon threads and the caller waits on a semaphore, which Ctrl-C interrupts: an
        interrupted run returns at once instead of waiting for every node's timeout (a thread pool
        would be joined at exit, holding the process until the slowest node gives up)."""
        if len(addresses) == 1:
            return [self.attest(addresses[0])]
        reports: list[NodeReport | None] = [None] * len(addresses)
        todo: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        for item in enumerate(addresses):
            todo.put(item)
        finished = threading.Semaphore(0)

        def work() -> None:
            while True:
                try:
                    i, address = todo.get_nowait()
                except queue.Empty:
                    return
                reports[i] = self.attest(address)
                finished.release()

        for n in range(min(max(1, max_workers), len(addresses))):
            threading.Thread(target=work, name=f"shelter-node-{n}", daemon=True).start()
        for _ in addresses:
            finished.acquire()
        return [r for r in reports if r is not None]
