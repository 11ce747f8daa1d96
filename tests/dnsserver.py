"""A small authoritative DNS server on 127.0.0.1 (UDP) for tests; dnspython builds the answers.

``records`` maps ``"name TYPE"`` to record texts (``{"example.test MX": ["10 mx.example.test."]}``);
a name with some records answers "no data" for other types, an unknown name NXDOMAIN with
an SOA. Names in ``silent`` never get an answer: the resolver times out; names in
``failing`` get SERVFAIL.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 300


class DnsServer:
    """Answers UDP queries on 127.0.0.1:``port`` from a dict of records."""

    def __init__(
        self,
        records: dict[str, list[str]],
        *,
        silent: frozenset[str] = frozenset(),
        failing: frozenset[str] = frozenset(),
    ):
        self.records = records
        self.silent = silent
        self.failing = failing
        self.queries: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def config(self, **extra: object) -> dict[str, object]:
        """The relay's ``dns:`` section pointing at this server."""
        return {"nameservers": ["127.0.0.1"], "port": self.port, "timeout": 0.5, **extra}

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            answer = self._answer(dns.message.from_wire(data))
            if answer is not None:
                self._socket.sendto(answer, peer)

    def _answer(self, query: dns.message.Message) -> bytes | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        texts = self.records.get(f"{name} {rdtype}")
        if texts:
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", rdtype, *texts))
        else:
            if not any(key.split()[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            zone = name.rsplit(".", 1)[-1] + "."
            soa = f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 60"
            response.authority.append(dns.rrset.from_text(zone, 60, "IN", "SOA", soa))
        return response.to_wire()
