"""CURVE encryption and authentication with ZeroMQ's own tools (zmq.auth certificates and its
ThreadAuthenticator): no hand-written ZAP handler.

A key folder holds ``server.key``/``server.key_secret`` and ``client.key``/``client.key_secret``
(``streamseg keys generate DIR``). Servers (PUB, control ROUTER) use the server secret and admit the
public keys found in the folder; clients use the client secret and the server's public key.
"""
from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from streamseg.errors import ConfigError


def generate_keys(folder: str | Path) -> list[Path]:
    """Write a server and a client certificate pair into ``folder`` (created if missing)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("server", "client"):
        if (path / f"{name}.key_secret").exists():
            raise ConfigError(f"{path / (name + '.key_secret')} exists; refusing to overwrite keys")
    written = []
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(str(path), name)
        written += [Path(public), Path(secret)]
    return written


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise ConfigError(f"CURVE key file not found: {path} (make one with `streamseg keys generate DIR`)")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"CURVE key file {path} is unreadable: {exc}") from None
    if secret and not secret_key:
        raise ConfigError(f"{path} holds no secret key")
    return public, secret_key


class CurveServer:
    """Runs one ThreadAuthenticator per context, admitting the public keys in ``folder``."""

    def __init__(self, folder: str | Path, context: zmq.Context | None = None) -> None:
        self.folder = Path(folder)
        self.public, self.secret = _load(self.folder / "server.key_secret", secret=True)
        self._auth = ThreadAuthenticator(context or zmq.Context.instance())
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.folder))

    def make_server(self, socket: zmq.Socket) -> None:
        """Call before bind."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def close(self) -> None:
        self._auth.stop()


class CurveClient:
    """The client side: the client's key pair and the server's public key from ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.public, self.secret = _load(self.folder / "client.key_secret", secret=True)
        self.server_public, _ = _load(self.folder / "server.key", secret=False)

    def make_client(self, socket: zmq.Socket) -> None:
        """Call before connect."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_serverkey = self.server_public


def curve_client(keys: str | Path | CurveClient | None) -> CurveClient | None:
    """A client from a key folder (or an existing client, or None)."""
    if keys is None or isinstance(keys, CurveClient):
        return keys
    return CurveClient(keys)
