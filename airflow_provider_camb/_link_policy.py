"""Which links the provider may fetch: one rule for every link a CAMB reply hands it.

CAMB's result replies carry links (previews, ``output_url``, ``audio_url``, ``video_url``) that the
provider fetches from a worker, which usually sits inside a private network with a cloud metadata
service. A spoofed or compromised reply must not turn it into a proxy, so a link is fetched only when

- its scheme is ``https``, or ``http`` to the loopback address the API base URL itself uses (the stand-in);
- it is connected to an address that is public: not loopback, link-local, private, shared (CGNAT),
  multicast, reserved or unspecified, IPv4 or IPv6, and IPv6 forms that carry an IPv4 address
  (mapped, 6to4, Teredo, NAT64) judged by that address too. The one exception: when the API base
  URL is itself on such an address, as the stand-in is, links to that same address pass, and no other.

A redirect is a new link, checked by the same rule, and may not go from ``https`` to ``http``. The
host is resolved once per connection and the connection is made to an address that passed
(``hooks/_sync_http.py``), so a second DNS answer cannot move it. A refusal is
``CambLinkNotAllowedError``, which names the link's host only, never the link.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import SplitResult, urlsplit

from airflow_provider_camb.exceptions import CambLinkNotAllowedError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``socket.getaddrinfo``'s answer: (family, type, proto, canonname, sockaddr) per address.
AddrInfo = tuple[Any, ...]
Resolver = Callable[[str, int], Sequence[AddrInfo]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _refused(host: str, reason: str) -> CambLinkNotAllowedError:
    return CambLinkNotAllowedError(
        f"A link to host {host!r} was not fetched: {reason}. CAMB links only to public https storage, so "
        "the reply did not come from CAMB as sent: check the connection's base URL and any proxy in between."
    )


def _getaddrinfo(host: str, port: int) -> Sequence[AddrInfo]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def parse_address(text: str) -> Address:
    """An address as ``getaddrinfo`` gives it (an IPv6 scope such as ``%eth0`` is dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def _carried_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): a packet may end there."""
    carried = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64:
        carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in carried if ipv4 is not None]


def is_public_address(address: Address) -> bool:
    """Whether a link may be fetched from ``address``: a public unicast address and nothing it carries is not."""
    if isinstance(address, ipaddress.IPv6Address):
        if carried := _carried_ipv4(address):  # mapped, 6to4, Teredo, NAT64: judged by where they lead
            return all(is_public_address(ipv4) for ipv4 in carried)
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


@dataclass(frozen=True)
class LinkPolicy:
    """The link rule for one API base URL (its own non-public addresses are the one exception).

    :param api_base_url: The connection's API base URL.
    :param resolve: Resolves a host and port (``socket.getaddrinfo`` by default; tests pass their own).
    """

    api_base_url: str
    resolve: Resolver = field(default=_getaddrinfo, compare=False, repr=False)

    @cached_property
    def _api(self) -> SplitResult:
        return urlsplit(self.api_base_url)

    @cached_property
    def api_addresses(self) -> frozenset[Address]:
        """The API host's own addresses that are not public (e.g. 127.0.0.1 for the stand-in); usually none."""
        host = self._api.hostname
        if not host:
            return frozenset()
        try:
            found = {parse_address(str(info[4][0])) for info in self.resolve(host, self._api.port or 443)}
        except (OSError, ValueError):
            return frozenset()
        return frozenset(address for address in found if not is_public_address(address))

    def check_url(self, url: str, *, redirected_from: str | None = None) -> SplitResult:
        """Refuse a link by its scheme before anything is resolved or sent; return it split."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018  # a port that is not a number raises here
        except ValueError:
            raise _refused("?", "it is not a valid URL") from None
        if not host:
            raise _refused("?", "it names no host")
        if parts.scheme == "http" and redirected_from is not None and urlsplit(redirected_from).scheme == "https":
            raise _refused(host, "a redirect from https to plain http is never followed")
        if parts.scheme not in ("https", "http"):
            raise _refused(host, f"only https links are fetched, not {parts.scheme!r}")
        if parts.scheme == "http" and not self._api_is_local_http:
            raise _refused(host, "plain http links are fetched only from a local API's own address")
        return parts

    @property
    def _api_is_local_http(self) -> bool:
        return self._api.scheme == "http" and bool(self.api_addresses)

    def allows(self, address: Address, scheme: str) -> bool:
        """The rule on one resolved address: public (https only), or the API's own non-public address."""
        if scheme == "https" and is_public_address(address):
            return True
        return address in self.api_addresses  # resolved only when a link is not public

    def addresses(self, host: str, port: int, scheme: str) -> list[AddrInfo]:
        """Resolve ``host`` and keep the addresses the rule allows, in the resolver's order.

        Raises ``CambLinkNotAllowedError`` when none is allowed (nothing may be sent then) and lets the
        resolver's ``OSError`` (e.g. ``socket.gaierror``) through, as a passing network fault.
        """
        found = list(self.resolve(host, port))
        allowed = [info for info in found if self.allows(parse_address(str(info[4][0])), scheme)]
        if not allowed:
            shown = ", ".join(sorted({str(info[4][0]) for info in found})[:3])
            raise _refused(host, f"it resolves only to addresses that are not public ({shown})")
        return allowed
