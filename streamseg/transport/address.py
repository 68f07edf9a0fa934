"""ZeroMQ endpoint checks done before binding: ZeroMQ itself wraps tcp ports past 65535 (99999 bound
34463) instead of refusing them, and an empty address must not fall back to a default."""
from __future__ import annotations

import re

from streamseg.errors import ConfigError

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]*\]|[^:/\[\]]*):(?P<port>[^:/]*)$")


def check_endpoint(address: str, what: str = "publish address") -> None:
    """Raise a one-line ConfigError unless ``address`` (optionally ``>``-prefixed: connect) is usable."""
    target = address[1:] if address.startswith(">") else address
    if not target.strip():
        raise ConfigError(f"{what} is empty (expected e.g. tcp://127.0.0.1:5555 or ipc:///tmp/seg)")
    scheme, sep, rest = target.partition("://")
    if not sep or not rest:
        raise ConfigError(f"{what} {address!r} must look like tcp://host:port, ipc://path or inproc://name")
    if scheme != "tcp":
        return  # ipc, inproc, ...: ZeroMQ's own checks give clear errors for these
    m = _TCP.match(target)
    if not m or not m.group("host"):
        raise ConfigError(f"{what} {address!r} must look like tcp://host:port")
    port = m.group("port")
    if port == "*":
        return  # any free port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {address!r}: port {port!r} is out of range (0..65535, or * for any)")
