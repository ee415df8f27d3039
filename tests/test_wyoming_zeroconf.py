"""Home Assistant discovery: the Wyoming server announced over zeroconf, seen by zeroconf's own browser.

Every mDNS packet stays inside a network namespace the test creates (`unshare --net`, as root or with a
mapped root user) whose only interface is `lo`, brought up with multicast on and a route for 224.0.0.0/4:
multicast on this machine's real interfaces would be traffic to an outside address. The namespace's child
refuses to run if it sees any other interface. In it, real `python -m tts_studio serve --wyoming ...`
processes run as users start them, and a `Zeroconf(interfaces=["127.0.0.1"])` browser watches."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tts_studio.cli import load_settings
from tts_studio.config import Settings
from tts_studio.wyoming_zeroconf import SERVICE_TYPE, announce, instance_name

ROOT = Path(__file__).resolve().parent.parent
LO_WITH_MULTICAST = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
MDNS_PORT = 5353
WAIT = 120.0  # a studio starting on two busy cores; a wait ends as soon as what it waits for happens
ONE = "10.77.0.1"  # an address only the namespace's lo has
QUIET = 3.0  # how long a fresh browser listens for answers that must not come (they come in ~0.1 s)


# -- the namespace ------------------------------------------------------------------------------------------
def _namespace_command() -> list[str] | None:
    """How this machine makes a private network namespace (root, else a user namespace), or None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for command in (["unshare", "--net"], ["unshare", "--user", "--map-root-user", "--net"]):
        probe = subprocess.run([*command, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    return None


def _in_namespace(scenario: str, work: Path, *, network: str = LO_WITH_MULTICAST) -> dict[str, Any]:
    """Run `scenario` of this module in a new network namespace set up by `network`; its JSON report."""
    command = _namespace_command()
    if command is None:
        pytest.skip("no private network namespace here (unshare --net, also with --map-root-user, fails)")
    report = work / f"{scenario}.json"
    code = "import sys; from tests.test_wyoming_zeroconf import namespace_main; sys.exit(namespace_main(sys.argv[1:]))"
    child = subprocess.Popen(
        [*command, "sh", "-c", f'{network} && exec "$0" -c "$1" "$2" "$3"', sys.executable, code, scenario, work],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the child and its studios: one group to end if it hangs
    )
    try:
        output, _ = child.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(work.glob("*.log")))
    assert child.returncode == 0 and report.exists(), f"namespace child failed:\n{output[-5000:]}\n{logs}"
    result: dict[str, Any] = json.loads(report.read_text())
    return result


@pytest.fixture(scope="module")
def discovery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _in_namespace("discovery", tmp_path_factory.mktemp("zeroconf"))


# -- what the namespace showed --------------------------------------------------------------------------------
@pytest.mark.slow
def test_home_assistant_finds_the_studio_on_all_interfaces(discovery: dict[str, Any]) -> None:
    """Bound to 0.0.0.0: a browser sees `_wyoming._tcp` with the Wyoming port and the interface's address,
    and Home Assistant's next step (describe over TCP at that address) answers."""
    found = discovery["announced"]
    assert found["name"] == f"{instance_name()}.{SERVICE_TYPE}"
    assert found["port"] == 10200
    assert found["addresses"] == ["127.0.0.1"]  # the namespace's only interface
    assert found["properties"]["version"]
    assert found["describe"] == "tts-studio"
    assert found["fresh_browser_sees"] == found["name"]
    assert found["mdns_sockets"] > 0  # the control for the "off" checks below


@pytest.mark.slow
def test_the_announcement_is_withdrawn_on_shutdown(discovery: dict[str, Any]) -> None:
    gone = discovery["stopped"]
    assert gone["browser_saw"] == "Removed"
    assert gone["exit"] in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert gone["fresh_query_resolves"] is False
    assert gone["fresh_browser_sees"] is None


@pytest.mark.slow
def test_nothing_is_announced_when_off_or_on_loopback(discovery: dict[str, Any]) -> None:
    """--no-zeroconf, TTS_STUDIO_WYOMING_ZEROCONF=false and a loopback bind: the Wyoming server answers, it
    opened no mDNS socket, and no browser sees it."""
    quiet = discovery["quiet"]
    assert set(quiet["studios"]) == {"--no-zeroconf", "env", "loopback"}
    for how, studio in quiet["studios"].items():
        assert studio["describe"] == "tts-studio", how
        assert studio["mdns_sockets"] == 0, how
        assert studio["exit"] in (0, -signal.SIGTERM), how
    assert quiet["fresh_browser_sees"] is None
    assert quiet["browser_saw_since_removal"] == []


@pytest.mark.slow
def test_bound_to_one_address_it_announces_that_address(tmp_path: Path) -> None:
    """Bound to 10.77.0.1 (a second address on the namespace's lo): announced with that address only."""
    result = _in_namespace("one-address", tmp_path, network=f"{LO_WITH_MULTICAST} && ip addr add {ONE}/32 dev lo")
    assert result["port"] == 10200 and result["addresses"] == [ONE]
    assert result["describe"] == "tts-studio"
    assert result["browser_saw"] == "Removed" and result["exit"] in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_a_machine_that_cannot_announce_still_serves(tmp_path: Path) -> None:
    """No interface to announce on (lo down, nothing else): the studio starts, listens, and stops cleanly."""
    result = _in_namespace("cannot-announce", tmp_path, network="true")
    assert result["listening"] == {"http": True, "wyoming": True}
    assert result["mdns_sockets"] == 0
    assert result["exit"] in (0, -signal.SIGTERM)


# -- without a network ------------------------------------------------------------------------------------------
def test_no_zeroconf_flag_and_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_STUDIO_WYOMING_ZEROCONF", raising=False)
    assert load_settings(argparse.Namespace()).wyoming_zeroconf is True
    assert load_settings(argparse.Namespace(no_zeroconf=True)).wyoming_zeroconf is False
    monkeypatch.setenv("TTS_STUDIO_WYOMING_ZEROCONF", "false")
    assert Settings().wyoming_zeroconf is False


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_is_never_announced(host: str) -> None:
    assert announce(host, 10200) is None  # returns before any socket exists


def test_instance_name_is_one_dns_label() -> None:
    assert instance_name("nas.example.lan") == "TTS Studio on nas"
    long = instance_name("ü" * 80)
    assert len(long.encode()) <= 63 and long.startswith("TTS Studio on ü")


# -- inside the namespace (run by `namespace_main`, never by pytest) --------------------------------------------
class _Studio:
    """A real `python -m tts_studio serve --no-ui --wyoming ...` in the namespace, logging to a file."""

    def __init__(self, work: Path, label: str, http_port: int, wyoming: str, *flags: str, **env: str) -> None:
        self.work, self.http_port, self.wyoming_port = work, http_port, int(wyoming.rpartition(":")[2])
        home = work / label
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TTS_STUDIO_")}
        environment = {
            **clean,
            "HF_HUB_OFFLINE": "1",
            "TTS_STUDIO_DATA_DIR": str(home / "d"),
            "TTS_STUDIO_CACHE_DIR": str(home / "c"),
            "TTS_STUDIO_LOG_DIR": str(home / "l"),
            **env,
        }
        home.mkdir(parents=True, exist_ok=True)
        self.log = (work / f"{label}.log").open("w")
        argv = ["serve", "--no-ui", "--port", str(http_port), "--wyoming", wyoming, *flags]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tts_studio", *argv],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=home,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Any) -> None:
        """Until `ready()` (the studio exiting first, or WAIT passing, fails the run)."""
        deadline = time.monotonic() + WAIT
        while not ready():
            if not self.alive():
                raise RuntimeError(f"the studio exited with {self.proc.returncode}; see {self.log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the studio was not ready within {WAIT} s; see {self.log.name}")
            time.sleep(0.1)  # polling for readiness, as a user's script would

    def answers_http(self) -> bool:
        import httpx

        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def listening(self) -> dict[str, bool]:
        ports = _listening_tcp_ports()
        return {"http": self.http_port in ports, "wyoming": self.wyoming_port in ports}

    def mdns_sockets(self) -> int:
        """UDP sockets on port 5353 this process holds (zeroconf's), from /proc."""
        held = set()
        for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
            try:
                held.add(str(fd.readlink()))
            except OSError:
                continue
        return sum(f"socket:[{inode}]" in held for inode in _udp_inodes_on(MDNS_PORT))

    def signal_stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def exit_code(self) -> int:
        code = self.proc.wait(timeout=WAIT)
        self.log.close()
        return code

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def _proc_net(kind: str) -> Iterator[list[str]]:
    for name in (kind, f"{kind}6"):
        path = Path("/proc/net") / name
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                yield line.split()


def _listening_tcp_ports() -> set[int]:
    return {int(f[1].rpartition(":")[2], 16) for f in _proc_net("tcp") if f[3] == "0A"}  # 0A: LISTEN


def _udp_inodes_on(port: int) -> set[str]:
    return {f[9] for f in _proc_net("udp") if int(f[1].rpartition(":")[2], 16) == port}


async def _describe(host: str, port: int) -> str:
    """What Home Assistant does with a discovered service: connect and ask `describe`."""
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), WAIT)
            assert event is not None
            if Info.is_type(event.type):
                return Info.from_event(event).tts[0].name


async def _next_change(changes: asyncio.Queue[tuple[str, str]], studio: _Studio) -> tuple[str, str]:
    """The browser's next (name, change), failing early if the studio exits first."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(changes.get(), 0.5)
        except TimeoutError:
            if not studio.alive() and studio.proc.returncode not in (0, -signal.SIGTERM):
                raise RuntimeError(f"the studio exited with {studio.proc.returncode}") from None
    raise RuntimeError(f"the browser saw nothing within {WAIT} s")


async def _fresh_browser_sees(within: float) -> str | None:
    """A new zeroconf instance (empty cache) browses `_wyoming._tcp`: the first name it sees, else None."""
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"])
    added: asyncio.Queue[str] = asyncio.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added:
            added.put_nowait(name)

    browser = AsyncServiceBrowser(zeroconf.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        return await asyncio.wait_for(added.get(), within)
    except TimeoutError:
        return None
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()


async def _fresh_query_resolves(name: str) -> bool:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        return await AsyncServiceInfo(SERVICE_TYPE, name).async_request(zeroconf.zeroconf, int(QUIET * 1000))
    finally:
        await zeroconf.async_close()


async def _discovery(work: Path) -> dict[str, Any]:
    """Four studios at once: one announced (0.0.0.0), three never (flag, environment, loopback bind)."""
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    report: dict[str, Any] = {}
    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"])
    changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        changes.put_nowait((name, state_change.name))

    browser = AsyncServiceBrowser(zeroconf.zeroconf, SERVICE_TYPE, handlers=[on_change])
    studio = _Studio(work, "announced", 8601, "0.0.0.0:10200")
    quiet = {
        "--no-zeroconf": _Studio(work, "flag", 8602, "0.0.0.0:10201", "--no-zeroconf"),
        "env": _Studio(work, "env", 8603, "0.0.0.0:10202", TTS_STUDIO_WYOMING_ZEROCONF="false"),
        "loopback": _Studio(work, "loopback", 8604, "127.0.0.1:10203"),
    }
    try:
        # announced: the browser sees it; resolved, it leads to the Wyoming server
        name, change = await _next_change(changes, studio)
        assert change == "Added", change
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(zeroconf.zeroconf, int(WAIT * 1000))
        addresses = info.parsed_addresses()
        report["announced"] = {
            "name": name,
            "port": info.port,
            "addresses": addresses,
            "properties": info.decoded_properties,
            "describe": await _describe(addresses[0], info.port or 0),
            "fresh_browser_sees": await _fresh_browser_sees(WAIT),
            "mdns_sockets": studio.mdns_sockets(),
        }
        # never announced: each Wyoming server answers, with no mDNS socket
        for each in quiet.values():
            await asyncio.to_thread(each.wait_until, each.answers_http)  # after its Wyoming server started
        found = {
            how: {"describe": await _describe("127.0.0.1", each.wyoming_port), "mdns_sockets": each.mdns_sockets()}
            for how, each in quiet.items()
        }
        # withdrawn: the browser sees it go; with the three others still serving, nothing answers any more
        studio.signal_stop()
        while change != "Removed":
            gone, change = await _next_change(changes, studio)
            assert gone == name, gone
        resolves, fresh = await asyncio.gather(_fresh_query_resolves(name), _fresh_browser_sees(QUIET))
        report["stopped"] = {
            "browser_saw": change,
            "exit": await asyncio.to_thread(studio.exit_code),
            "fresh_query_resolves": resolves,
            "fresh_browser_sees": fresh,
        }
        for how, each in quiet.items():
            each.signal_stop()
            found[how]["exit"] = await asyncio.to_thread(each.exit_code)
        since: list[tuple[str, str]] = []
        while not changes.empty():
            since.append(changes.get_nowait())
        report["quiet"] = {"studios": found, "fresh_browser_sees": fresh, "browser_saw_since_removal": since}
    finally:
        for each in (studio, *quiet.values()):
            each.kill()
        await browser.async_cancel()
        await zeroconf.async_close()
    return report


async def _one_address(work: Path) -> dict[str, Any]:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    zeroconf = AsyncZeroconf(interfaces=["127.0.0.1"])
    changes: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        changes.put_nowait((name, state_change.name))

    browser = AsyncServiceBrowser(zeroconf.zeroconf, SERVICE_TYPE, handlers=[on_change])
    studio = _Studio(work, "one-address", 8601, f"{ONE}:10200")
    try:
        name, change = await _next_change(changes, studio)
        assert change == "Added", change
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(zeroconf.zeroconf, int(WAIT * 1000))
        addresses = info.parsed_addresses()
        report = {"port": info.port, "addresses": addresses, "describe": await _describe(addresses[0], 10200)}
        studio.signal_stop()
        while change != "Removed":
            _, change = await _next_change(changes, studio)
        report.update(browser_saw=change, exit=await asyncio.to_thread(studio.exit_code))
        return report
    finally:
        studio.kill()
        await browser.async_cancel()
        await zeroconf.async_close()


def _cannot_announce(work: Path) -> dict[str, Any]:
    studio = _Studio(work, "cannot-announce", 8601, "0.0.0.0:10200")
    try:
        # uvicorn listens once the lifespan (and the Wyoming server with its announcement) has started
        studio.wait_until(lambda: all(studio.listening().values()))
        report = {"listening": studio.listening(), "mdns_sockets": studio.mdns_sockets()}
        studio.signal_stop()
        report["exit"] = studio.exit_code()
        return report
    finally:
        studio.kill()


def namespace_main(argv: list[str]) -> int:
    """Entry point inside the namespace: `<scenario> <work dir>`; writes `<work>/<scenario>.json`."""
    interfaces = [name for _, name in socket.if_nameindex()]
    if interfaces != ["lo"]:  # never announce on a real network
        print(f"refusing to run: interfaces {interfaces} (only lo expected)", file=sys.stderr)
        return 3
    scenario, work = argv[0], Path(argv[1])
    if scenario == "discovery":
        report = asyncio.run(_discovery(work))
    elif scenario == "one-address":
        report = asyncio.run(_one_address(work))
    else:
        report = _cannot_announce(work)
    (work / f"{scenario}.json").write_text(json.dumps(report))
    return 0
