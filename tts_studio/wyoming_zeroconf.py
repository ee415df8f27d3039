"""Home Assistant finds the Wyoming server by itself: `_wyoming._tcp.local.` announced over mDNS (zeroconf).

Only when the Wyoming server listens beyond loopback (Home Assistant on another machine could not reach a
loopback address anyway), and only while it listens: the announcement is withdrawn (goodbye packets) when it
stops. Bound to a wildcard (0.0.0.0, ::) it is announced on every interface with their addresses; bound to
one address, on that address only. It never holds up the studio: probing and announcing run in a task on
the event loop, withdrawing is bounded, and a machine that cannot announce (no multicast interface) logs
one warning and serves on, found by host and port as before."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from tts_studio.config import is_loopback_host

if TYPE_CHECKING:
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_wyoming._tcp.local."
WITHDRAW_SECONDS = 3.0  # goodbyes take about 0.25 s; a stuck network stack never holds up shutdown
MAX_LABEL_BYTES = 63  # a DNS label


def instance_name(hostname: str | None = None) -> str:
    """The name Home Assistant's discovery shows: `TTS Studio on <host>` (within one DNS label)."""
    host = (hostname if hostname is not None else socket.gethostname()).split(".")[0] or "localhost"
    name = f"TTS Studio on {host}"
    return name.encode()[:MAX_LABEL_BYTES].decode(errors="ignore")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _interface_addresses(ip_version: IPVersion) -> list[str]:
    """The interfaces' addresses zeroconf announces on; loopback ones only when there is nothing else
    (another machine must never be sent to 127.0.0.1)."""
    import ifaddr  # zeroconf's own interface lister
    from zeroconf import IPVersion

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for address in adapter.ips:
            if isinstance(address.ip, str):
                if ip_version != IPVersion.V6Only:
                    found.append(address.ip)
            elif ip_version != IPVersion.V4Only and not ipaddress.IPv6Address(address.ip[0]).is_link_local:
                found.append(address.ip[0])  # link-local ones need a scope Home Assistant does not keep
    unique = list(dict.fromkeys(found))
    reachable = [a for a in unique if not ipaddress.ip_address(a).is_loopback]
    return reachable or unique


class Announcement:
    """One service announced while the Wyoming server listens; `withdraw()` takes it back."""

    def __init__(self, zeroconf: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        self._zeroconf = zeroconf
        self.info = info
        self._task = asyncio.create_task(self._register(), name="wyoming-zeroconf")

    async def _register(self) -> None:
        try:
            await self._zeroconf.async_register_service(self.info, allow_name_change=True)
        except Exception as exc:
            log.warning("Home Assistant cannot discover the Wyoming server: zeroconf failed (%s).", exc)
        else:
            log.info(
                "Announced to Home Assistant over zeroconf as '%s'.", self.info.name.removesuffix(f".{SERVICE_TYPE}")
            )

    async def withdraw(self) -> None:
        """Goodbye packets for the service, then the sockets close; bounded."""
        self._task.cancel()  # still probing: the service was never announced
        await asyncio.wait({self._task})  # (a cancel of this caller still reaches it)
        try:
            async with asyncio.timeout(WITHDRAW_SECONDS):
                await self._zeroconf.async_close()  # unregisters every service (goodbyes) first
        except Exception as exc:
            log.warning("Withdrawing the zeroconf announcement failed (%s).", exc)


def announce(host: str, port: int, name: str | None = None) -> Announcement | None:
    """Announce the Wyoming server on `host:port` (call on the event loop); None when it listens on loopback
    only or zeroconf cannot start (one warning)."""
    if is_loopback_host(host):
        return None
    from zeroconf import InterfaceChoice, IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    from tts_studio import __version__

    ip = _ip(host)
    try:
        if ip is None or ip.is_unspecified:  # a wildcard (or a host name): every interface
            version = IPVersion.All if ip is not None and ip.version == 6 else IPVersion.V4Only
            zeroconf = AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=version)
            addresses = _interface_addresses(version)
        else:
            zeroconf = AsyncZeroconf(interfaces=[str(ip)])
            addresses = [str(ip)]
    except Exception as exc:  # no interface that can join the mDNS group, sockets refused, ...
        log.warning("Home Assistant cannot discover the Wyoming server: zeroconf cannot start (%s).", exc)
        return None
    label = name or instance_name()
    info = AsyncServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        port=port,
        properties={"version": __version__},
        parsed_addresses=addresses,
    )
    return Announcement(zeroconf, info)
