"""Hosts on one machine: network namespaces on a bridge, each with an address of its own.

:class:`Network` makes a bridge in this (the root) namespace with the address
``10.R.S.1/24`` of a subnet no interface of the machine uses, and for each host
a network namespace joined to the bridge by a veth pair, holding ``10.R.S.(10+i)``.
A program started with :meth:`Network.command` runs inside a host's namespace:
the only address it can reach is the bridge's (where the test's PostgreSQL
server listens), never the machine's own network. :meth:`Network.partition`
takes a host's link down (its packets go nowhere, nothing tells the other
side), :meth:`Network.heal` brings it back. Every name carries this process's
id and a counter, and everything is removed at the end.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
import shutil
import subprocess
from typing import Self

__all__ = ["Network", "NetworkUnavailable"]

_made = itertools.count(1)


class NetworkUnavailable(RuntimeError):  # noqa: N818 - a reason to skip, not a failure
    """Network namespaces cannot be made here: the message says why."""


def _ip(*arguments: str) -> str:
    done = subprocess.run(  # noqa: S603 - iproute2 with our own arguments
        ["ip", *arguments],  # noqa: S607 - iproute2, found on PATH
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if done.returncode != 0:
        message = f"ip {' '.join(arguments)}: {done.stderr.strip()}"
        raise NetworkUnavailable(message)
    return done.stdout


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that overlaps no address or route of this machine."""
    used = [
        ipaddress.ip_network(word, strict=False)
        for line in (_ip("-4", "addr") + _ip("-4", "route")).splitlines()
        for word in line.split()
        if "/" in word and word[0].isdigit()
    ]
    draw = random.Random()
    for _ in range(100):
        candidate = ipaddress.ip_network(
            f"10.{draw.randrange(200, 250)}.{draw.randrange(256)}.0/24"
        )
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise NetworkUnavailable("no free 10.x.y.0/24 subnet")


class Network:
    """A bridge and ``hosts`` namespaces on it (see the module's docstring)."""

    def __init__(self, hosts: int) -> None:
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetworkUnavailable("iproute2's ip is not installed")
        tag = f"{os.getpid() % 100000}x{next(_made)}"
        self.hosts = hosts
        self.subnet = _free_subnet()
        addresses = list(self.subnet.hosts())
        #: The bridge's address: the server listens here, and hosts reach nothing else.
        self.server_address = str(addresses[0])
        self.bridge = f"rb{tag}"
        self.namespaces = [f"rn{tag}h{i}" for i in range(hosts)]
        self.outside = [f"ro{tag}h{i}" for i in range(hosts)]
        self.inside = [f"ri{tag}h{i}" for i in range(hosts)]
        self.addresses = [str(addresses[9 + i]) for i in range(hosts)]
        self._made: list[tuple[str, str]] = []

    def create(self) -> None:
        """Make the bridge, the namespaces, the links and the addresses."""
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        _ip("addr", "add", f"{self.server_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for namespace, outside, inside, address in zip(
            self.namespaces, self.outside, self.inside, self.addresses, strict=True
        ):
            _ip("netns", "add", namespace)
            self._made.append(("netns", namespace))
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self._made.append(("link", outside))
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("link", "set", inside, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")

    def command(self, host: int, *argv: str) -> list[str]:
        """``argv`` run inside host ``host``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def partition(self, host: int) -> None:
        """Cut host ``host`` off: its link goes down, silently for both sides."""
        _ip("-n", self.namespaces[host], "link", "set", self.inside[host], "down")

    def heal(self, host: int) -> None:
        """Bring host ``host``'s link back up."""
        _ip("-n", self.namespaces[host], "link", "set", self.inside[host], "up")

    def remove(self) -> None:
        """Remove everything made, last first; a namespace takes its end of the veth with it."""
        for kind, name in reversed(self._made):
            try:
                if kind == "netns":
                    _ip("netns", "del", name)
                else:
                    _ip("link", "del", name)
            except NetworkUnavailable:
                continue  # already gone with its peer
        self._made.clear()

    def __enter__(self) -> Self:
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
