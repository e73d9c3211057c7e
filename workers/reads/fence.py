"""Which URLs, hosts, addresses and buckets the probe may read (pure policy, no I/O).

Manifests, queue messages and stream entries name what ingestd then fetches. Without a fence a
message could make the daemon read its own cloud metadata (169.254.169.254), a loopback admin
port or a private network. The fence answers three questions, each with ``None`` (go on) or a
:class:`Refusal` naming the rule, the host and the reason:

* :meth:`Fence.url`: before a request (and before following each redirect): the scheme is
  http(s), the host is allowed by name, and an IP-literal host is an allowed address (IP
  literals are never resolved, so this is their only check).
* :meth:`Fence.address`: after DNS, for every address a name resolved to; the connection is
  made only to addresses that pass (the resolver hands the connector the checked addresses:
  no second lookup, so no rebinding window).
* :meth:`Fence.bucket`: an S3 bucket named by a message.

Allowed-host entries: ``"*"`` (any host whose addresses are public), ``"name.example.com"``
(that name), ``"*.example.com"`` (its subdomains), ``"10.1.2.3"`` (that address), or
``"10.0.0.0/8"`` (a network). A private, loopback, link-local, reserved or multicast address is
refused unless its address or network is listed, or the host name is listed exactly (naming a
host is trusting what it resolves to; a wildcard is not). ``trusted`` hosts are the ones the
configuration itself names (the S3 endpoint): always allowed, with their subdomains
(virtual-hosted buckets).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RULE = "url.fenced"
ANY = "*"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a URL, address or bucket was refused: ``rule`` is ``url.fenced``."""

    host: str
    reason: str
    rule: str = RULE

    def __str__(self) -> str:
        return f"{self.rule}: {self.host}: {self.reason}"


def host_entry_problem(entry: str) -> str | None:
    """Why an ``allowed_hosts`` entry is not understood, or None (config validation)."""
    e = entry.strip()
    if not e:
        return "empty entry"
    if e == ANY:
        return None
    if "/" in e:
        try:
            ipaddress.ip_network(e, strict=False)
        except ValueError as err:
            return f"{e!r}: not a network: {err}"
        return None
    name = e[2:] if e.startswith("*.") else e
    if _literal(name) is not None:
        return None if not e.startswith("*.") else f"{e!r}: a wildcard of an address"
    if any(c in name for c in ":/@?#[] *") or name.startswith(".") or ".." in name:
        return f"{e!r}: not a host name, address, network or '*'"
    return None


def address_kind(ip: IpAddress) -> str | None:
    """What makes an address non-public (``loopback``, ``link-local``...), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return kind
    if not ip.is_global:
        return "non-global"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _norm(host: str) -> str:
    return host.strip().rstrip(".").lower()


class Fence:
    """See the module docstring. ``hosts``/``buckets`` are the configured allow-lists."""

    def __init__(
        self,
        *,
        hosts: Iterable[str] = (ANY,),
        buckets: Iterable[str] = (ANY,),
        trusted: Iterable[str] = (),
        setting: str = "probe.allowed_hosts",
    ) -> None:
        self.setting = setting
        self.any_public = False
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[IpNetwork] = []
        for entry in (_norm(h) for h in hosts):
            if entry == ANY:
                self.any_public = True
            elif "/" in entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            elif (ip := _literal(entry)) is not None:
                self.networks.append(ipaddress.ip_network(ip))
            elif entry.startswith("*."):
                self.suffixes.append(entry[1:])
            else:
                self.names.add(entry)
        self.trusted = {_norm(t) for t in trusted if t}
        bucket_list = [b.strip() for b in buckets]
        self.any_bucket = ANY in bucket_list
        self.buckets = frozenset(b for b in bucket_list if b != ANY)

    # -- names ---------------------------------------------------------------------------------
    def _trusted(self, host: str) -> bool:
        return host in self.trusted or any(host.endswith("." + t) for t in self.trusted)

    def _listed(self, host: str) -> bool:
        return host in self.names or any(host.endswith(s) for s in self.suffixes)

    def _listed_address(self, ip: IpAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped: IpAddress = ip.ipv4_mapped
            return any(mapped in n or ip in n for n in self.networks)
        return any(ip in n for n in self.networks)

    def url(self, url: str) -> Refusal | None:
        """Check a URL before it is requested (also each redirect's target)."""
        try:
            parts = urlsplit(url)
            host = _norm(parts.hostname or "")
        except ValueError as e:
            return Refusal(host="?", reason=f"not a valid URL: {e}")
        if parts.scheme not in ("http", "https"):
            return Refusal(host=host or "?", reason=f"scheme {parts.scheme!r} is not http(s)")
        if not host:
            return Refusal(host="?", reason="the URL names no host")
        if parts.username is not None or parts.password is not None:
            return Refusal(host=host, reason="credentials in the URL are not allowed")
        if self._trusted(host):
            return None
        ip = _literal(host)
        if ip is not None:
            return self.address(host, str(ip))
        if host.replace(".", "").isdigit():
            return Refusal(host=host, reason="a numeric host that is not a canonical address")
        if not (self.any_public or self._listed(host)):
            return Refusal(host=host, reason=f"host not in {self.setting}")
        return None

    # -- addresses (after DNS) -----------------------------------------------------------------
    def address(self, host: str, address: str) -> Refusal | None:
        """Check one address ``host`` resolved to (or an IP-literal host itself)."""
        host = _norm(host)
        ip = _literal(address)
        if ip is None:
            return Refusal(host=host, reason=f"resolved to {address!r}, not an address")
        if self._trusted(host) or self._listed_address(ip):
            return None
        kind = address_kind(ip)
        literal = _literal(host) is not None
        if kind is None:
            if literal and not self.any_public:
                return Refusal(host=host, reason=f"address not in {self.setting}")
            return None
        if host in self.names and not literal:
            return None  # the operator named this host: its private resolution is trusted
        where = "is" if literal else f"resolves to {ip}, which is"
        article = "an" if kind[0] in "aeiou" else "a"
        return Refusal(
            host=host, reason=f"{where} {article} {kind} address (list it in {self.setting} to allow)"
        )

    # -- buckets -------------------------------------------------------------------------------
    def bucket(self, bucket: str) -> Refusal | None:
        if self.any_bucket or bucket in self.buckets:
            return None
        return Refusal(host=f"s3://{bucket}", reason="bucket not in probe.allowed_buckets")
