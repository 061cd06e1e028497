"""Test servers listen on loopback only."""

import socket


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now (a server started right after gets it, almost always)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
