"""The POC waits for its server's port before the first login (no connection errors in the terminal)."""

from __future__ import annotations

import socket
from pathlib import Path

from flareflow.local.poc import NVFlarePOC


def test_waiting_ends_once_the_server_port_listens(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        poc = NVFlarePOC(tmp_path / "poc", ["site-a"], {}, port=server.getsockname()[1])
        assert poc.wait_until_listening(timeout_s=5)


def test_waiting_says_so_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    poc = NVFlarePOC(tmp_path / "poc", ["site-a"], {}, port=port)
    assert not poc.wait_until_listening(timeout_s=2)
