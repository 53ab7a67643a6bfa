"""An authoritative DNS server on loopback for tests (dnspython's message API over UDP).

Tests must never ask the internet: the doctor is pointed at this server with
``TIDINGS_DNS_SERVER=127.0.0.1:PORT``. Records are given as ``{(name, type): [values]}`` in
zone-file text (``"10 mxa.mailgun.org."`` for MX, ``'"v=spf1 include:mailgun.org ~all"'`` for
TXT); a name with no records of the asked type answers NOERROR with no answer, an unknown
name NXDOMAIN, like a real server. Every question is recorded. ``LoopbackDns.serve`` swaps
the records while the server runs (a name that changes its address: DNS rebinding).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = Mapping[tuple[str, str], Sequence[str]]


def txt(value: str) -> str:
    """A TXT value in zone-file text, split in 255-byte strings as DNS requires."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + chunk.replace('"', '\\"') + '"' for chunk in chunks)


Zone = dict[tuple[dns.name.Name, int], list[str]]


def _zone(records: Records) -> Zone:
    zone: Zone = {}
    for (name, rdtype), values in records.items():
        key = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
        zone.setdefault(key, []).extend(values)
    return zone


@dataclass
class LoopbackDns:
    address: str  # "127.0.0.1:PORT", the value for TIDINGS_DNS_SERVER
    questions: list[tuple[str, str]] = field(default_factory=list)
    zone: Zone = field(default_factory=dict)

    def serve(self, records: Records) -> None:
        """Answer with ``records`` from now on (one assignment: a query sees old or new)."""
        self.zone = _zone(records)


def _answer(query: dns.message.Message, zone: dict[tuple[dns.name.Name, int], list[str]]) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    names = {name for name, _ in zone}
    values = zone.get((question.name, question.rdtype))
    if values:
        response.answer.append(
            dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, question.rdtype, values)
        )
    elif question.name not in names:
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


@contextlib.contextmanager
def serve_dns(records: Records) -> Iterator[LoopbackDns]:
    """Serve ``records`` on 127.0.0.1 (UDP, a free port) until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server = LoopbackDns(f"127.0.0.1:{sock.getsockname()[1]}", zone=_zone(records))
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            data, peer = sock.recvfrom(4096)
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            if query.question:
                question = query.question[0]
                server.questions.append(
                    (
                        question.name.to_text(omit_final_dot=True),
                        dns.rdatatype.to_text(question.rdtype),
                    )
                )
            sock.sendto(_answer(query, server.zone), peer)

    thread = threading.Thread(target=run, daemon=True, name="loopback-dns")
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
