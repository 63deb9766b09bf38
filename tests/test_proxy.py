"""Proxies: from the environment by default (``http_proxy``, ``no_proxy``), or named with ``proxy=``.

A real forwarding proxy on 127.0.0.1 carries NTLM with message encryption: requests go to it with
absolute URIs, and it keeps one upstream connection per client connection, as NTLM (which
authenticates the connection) needs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest

from conftest import job_id, options
from hvjob.jobs import JobClient
from hvjob.testing import FakeWinRMServer
from hvjob.transport import WsmanSession

KILLABLE = job_id(0x100)
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def _read_message(reader: BinaryIO) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) with a Content-Length body; None at end of stream."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head, reader.read(length) if length else b""


class ForwardProxy:
    """A forward proxy for ``http://`` targets, enough for WS-Man: it rewrites each request's
    absolute URI to its path and relays request and response on a paired upstream connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.request_lines: list[str] = []
        self.client_connections = 0
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.client_connections += 1
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            from_client = stack.enter_context(client.makefile("rb"))
            while (message := _read_message(from_client)) is not None:
                head, body = message
                request_line, _, rest = head.partition(b"\r\n")
                method, uri, version = request_line.decode("ascii").split(" ")
                self.request_lines.append(f"{method} {uri}")
                target = urlsplit(uri)
                if upstream is None:
                    assert target.port is not None
                    upstream = stack.enter_context(socket.create_connection((target.hostname, target.port)))
                    from_upstream = stack.enter_context(upstream.makefile("rb"))
                upstream.sendall(f"{method} {target.path} {version}\r\n".encode() + rest + body)
                reply = _read_message(from_upstream)
                if reply is None:
                    return
                client.sendall(reply[0] + reply[1])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for thread in [self._accepting, *self._threads]:
            thread.join(timeout=5)
            assert not thread.is_alive(), "proxy thread still running"


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    running = ForwardProxy()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARIABLES, "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _kill(server: FakeWinRMServer, **kw: object) -> None:
    with WsmanSession(server.url, options(scheme="http", **kw)) as session:
        result = JobClient(session).kill(KILLABLE)
    assert result.ok and result.return_value == 0, result.error


def test_the_environment_proxy_carries_the_whole_session(
    http_server: FakeWinRMServer, proxy: ForwardProxy, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv("http_proxy", proxy.url)
    _kill(http_server)
    # the NTLM negotiate and authenticate legs, then the sealed KillJob
    assert proxy.request_lines == [f"POST {http_server.url}"] * 3
    assert proxy.client_connections == 1


def test_no_proxy_sends_the_host_direct(
    http_server: FakeWinRMServer, proxy: ForwardProxy, clean_environment: pytest.MonkeyPatch
) -> None:
    clean_environment.setenv("http_proxy", proxy.url)
    clean_environment.setenv("no_proxy", "127.0.0.1")
    _kill(http_server)
    assert proxy.request_lines == [] and http_server.stats.invokes == 1


def test_a_named_proxy_is_used_without_any_environment(
    http_server: FakeWinRMServer, proxy: ForwardProxy, clean_environment: pytest.MonkeyPatch
) -> None:
    _kill(http_server, proxy=proxy.url)
    assert proxy.request_lines == [f"POST {http_server.url}"] * 3
