"""Fetching `voice_url` without SSRF: public http(s) addresses only, every redirect re-checked,
the connection pinned to the checked address, the body size-capped."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from tts_studio.errors import InvalidRequest, PayloadTooLarge

Resolver = Callable[[str, int], list[str]]
MAX_REDIRECTS = 3


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def refusal(address: str) -> str | None:
    """Why `address` must not be fetched, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for label, test in (
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata)", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return label
    return None if ip.is_global else "non-public"


def _checked_target(url: str, resolver: Resolver) -> tuple[str, str, str]:
    """(url with the host replaced by a checked IP, original host, scheme) or a 400."""
    try:
        parts = urlsplit(url)
        explicit_port = parts.port  # raises on a malformed or out-of-range port
        host = parts.hostname
    except ValueError:
        raise InvalidRequest("'voice_url' is not a valid URL.", param="voice_url", code="invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("'voice_url' must be an http(s) URL.", param="voice_url", code="invalid_url")
    if not host:
        raise InvalidRequest("'voice_url' has no host.", param="voice_url", code="invalid_url")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal address needs no lookup
    except ValueError:
        addresses = []
    try:
        addresses = addresses or resolver(host, port)
    except OSError:
        raise InvalidRequest(f"'voice_url' host '{host}' cannot be resolved.", param="voice_url") from None
    if not addresses:
        raise InvalidRequest(f"'voice_url' host '{host}' cannot be resolved.", param="voice_url")
    for address in addresses:
        why = refusal(address)
        if why is not None:
            raise InvalidRequest(
                f"'voice_url' refused: '{host}' is a {why} address ({address}); only public addresses are fetched.",
                param="voice_url",
                code="url_not_allowed",
            )
    ip = addresses[0]
    netloc = f"[{ip}]" if ":" in ip else ip
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host, parts.scheme


def fetch_audio(
    url: str,
    max_bytes: int,
    *,
    resolver: Resolver = system_resolver,
    transport: httpx.BaseTransport | None = None,
    timeout: float = 15.0,
) -> bytes:
    """The body at `url` (at most `max_bytes`), following up to 3 redirects, each checked again."""
    with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            pinned, host, scheme = _checked_target(url, resolver)
            extensions = {"sni_hostname": host} if scheme == "https" else {}
            try:
                with client.stream("GET", pinned, headers={"Host": host}, extensions=extensions) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise InvalidRequest(f"'voice_url' answered HTTP {response.status_code}.", param="voice_url")
                    body = bytearray()
                    for part in response.iter_bytes():
                        body += part
                        if len(body) > max_bytes:
                            raise PayloadTooLarge(f"'voice_url' is larger than {max_bytes} bytes.", param="voice_url")
                    return bytes(body)
            except httpx.HTTPError as exc:
                raise InvalidRequest(
                    f"'voice_url' could not be fetched ({type(exc).__name__}).", param="voice_url"
                ) from None
    raise InvalidRequest(f"'voice_url' redirected more than {MAX_REDIRECTS} times.", param="voice_url")
