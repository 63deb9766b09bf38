"""The HTTP exchange: one keep-alive connection to the endpoint, through a urllib3 connection pool.

A POST goes straight to urllib3's pool (``urlopen`` without retries or redirects): neither
requests' ``Session`` nor its adapter, whose hooks, redirect handling, per-send proxy selection and
``Response`` building cost a fifth of the client's CPU per exchange, and would follow a redirect
with a sealed body. What they would add and hvjob needs is set up here once per channel, with
requests' own helpers: proxies from the environment (``no_proxy`` honoured) and the proxy's
credentials, the CA bundle (``REQUESTS_CA_BUNDLE``), cookies a load balancer sets. Bodies are
streamed and capped. Every call into urllib3, requests and ssl runs inside the exception boundary.
"""

from __future__ import annotations

import functools
import os
import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import requests
import requests.cookies
import requests.utils
import urllib3
import urllib3.exceptions
import urllib3.util

from hvjob.errors import ResponseTooLarge
from hvjob.transport.boundary import Progress, foreign_errors
from hvjob.transport.options import ConnectionOptions
from hvjob.wire.build import WsmanRequest

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})
try:
    USER_AGENT = f"hvjob/{version('hvjob')}"
except PackageNotFoundError:  # running from a source tree without installation
    USER_AGENT = "hvjob"


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    peer_certificate: bytes | None = None  # the server's certificate (DER), when asked for over HTTPS


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, as requests would choose it.

    Looking the variables up first spares the walk of the whole environment that requests does
    (and repeats for ``no_proxy``) when, as usually, none is set.
    """
    if not any(name.lower() in _PROXY_VARIABLES for name in os.environ):
        return None
    proxy: str | None = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    return proxy


def _verify_path(options: ConnectionOptions) -> str | None:
    """The CA bundle to trust: ``ca_trust_path`` (which always wins), else ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` as requests reads them, else None for the system's store."""
    return options.ca_trust_path or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


@functools.lru_cache(maxsize=8)
def _trust_context(ca_path: str | None, stamp: tuple[int, int], insecure: bool) -> ssl.SSLContext:
    """A TLS client context that trusts ``ca_path`` (or the system store), made once per CA file
    and its modification (``stamp``), not for every connection: loading a CA bundle costs
    milliseconds. It holds no credential; contexts with a client certificate are never cached."""
    del stamp  # part of the cache key only
    context = ssl.create_default_context(cafile=ca_path)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_context(options: ConnectionOptions, client_certificate: bool) -> ssl.SSLContext:
    ca_path = None if options.insecure else _verify_path(options)
    if client_certificate and options.cert_pem and options.cert_key_pem:
        context = ssl.create_default_context(cafile=ca_path)  # with the key in it: this channel's alone
        if options.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(options.cert_pem, options.cert_key_pem)
        return context
    stamp = (0, 0)
    if ca_path is not None:
        status = os.stat(ca_path)
        stamp = (status.st_mtime_ns, status.st_size)
    return _trust_context(ca_path, stamp, options.insecure)


class HttpChannel:
    """POSTs to one endpoint URL over one keep-alive connection (re-opened by urllib3 when the
    server closed it; an authenticated session notices by the ``401`` that follows)."""

    def __init__(self, url: str, options: ConnectionOptions, *, host: str, client_certificate: bool = False) -> None:
        self.url = url
        self.host = host
        self.https = url.lower().startswith("https:")
        self._limit = options.max_response_bytes
        self._insecure = options.insecure
        self._headers = {"User-Agent": USER_AGENT, "Connection": "Keep-Alive"}
        self._cookies: requests.cookies.RequestsCookieJar | None = None  # made when a server sets one
        self._cookie_request: requests.PreparedRequest | None = None
        with foreign_errors("connect", host=host):
            self._timeout = urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout)
            pool_options: dict[str, Any] = {"maxsize": 1, "retries": False}
            if self.https:
                pool_options["ssl_context"] = _tls_context(options, client_certificate)
                pool_options["cert_reqs"] = "CERT_NONE" if options.insecure else "CERT_REQUIRED"
            proxy = options.proxy if options.proxy is not None else environment_proxy(url)
            self._proxies: urllib3.ProxyManager | None = None
            if proxy is not None:
                user, password = requests.utils.get_auth_from_url(proxy)
                headers = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
                self._proxies = urllib3.ProxyManager(proxy, num_pools=1, proxy_headers=headers, **pool_options)
                self._pool = self._proxies.connection_from_url(url)
            else:
                self._pool = urllib3.connection_from_url(url, **pool_options)  # no PoolManager: one pool, one host
            # Through a proxy, a plain-HTTP request names the whole URL; otherwise (or in a tunnel) the path.
            self._target = url if proxy is not None and not self.https else (urllib3.util.parse_url(url).request_uri)

    def __repr__(self) -> str:
        return f"HttpChannel(url={self.url!r})"

    def close(self) -> None:
        self._pool.close()
        if self._proxies is not None:
            self._proxies.clear()

    def post(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        request: WsmanRequest | None = None,
        progress: Progress | None = None,
        peer_certificate: bool = False,
    ) -> HttpReply:
        """POST ``body``; the reply with its body read (capped). ``progress.sent`` is set once the
        request may have reached the server. ``peer_certificate``: also return the server's
        certificate (for channel binding), read from this connection."""
        progress = progress if progress is not None else Progress()
        send_headers = {**self._headers, **headers}
        if self._cookies is not None and self._cookie_request is not None:
            cookie = requests.cookies.get_cookie_header(self._cookies, self._cookie_request)  # type: ignore[no-untyped-call]
            if cookie:
                send_headers["Cookie"] = cookie
        with foreign_errors("send", host=self.host, request=request, progress=progress):
            if self._insecure:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)  # logged once
                    response = self._urlopen(body, send_headers)
            else:
                response = self._urlopen(body, send_headers)
        progress.sent = True
        with foreign_errors("receive", host=self.host, request=request, progress=progress):
            certificate = self._peer_certificate(response) if peer_certificate and self.https else None
            content = self._read_capped(response)
            if "set-cookie" in response.headers:  # load-balancer affinity, kept for the next request
                self._keep_cookies(response)
        return HttpReply(response.status, response.headers, content, certificate)

    def _urlopen(self, body: bytes, headers: Mapping[str, str]) -> urllib3.BaseHTTPResponse:
        return self._pool.urlopen(
            "POST",
            self._target,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            timeout=self._timeout,
        )

    def _keep_cookies(self, response: urllib3.BaseHTTPResponse) -> None:
        if self._cookies is None or self._cookie_request is None:
            self._cookies = requests.cookies.RequestsCookieJar()
            self._cookie_request = requests.Request("POST", self.url).prepare()
        requests.cookies.extract_cookies_to_jar(self._cookies, self._cookie_request, response)  # type: ignore[no-untyped-call]

    @staticmethod
    def _peer_certificate(response: urllib3.BaseHTTPResponse) -> bytes | None:
        """The certificate of the connection that carried ``response`` (urllib3's public
        ``HTTPResponse.connection``, then the socket's ``getpeercert``)."""
        sock = getattr(response.connection, "sock", None)
        getpeercert = getattr(sock, "getpeercert", None)
        if getpeercert is None:
            return None
        der = getpeercert(binary_form=True)
        return der if isinstance(der, bytes) else None

    def _read_capped(self, response: urllib3.BaseHTTPResponse) -> bytes:
        limit = self._limit
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            response.close()
            raise ResponseTooLarge(f"response of {length} bytes exceeds the limit of {limit} bytes", host=self.host)
        chunks: list[bytes] = []
        total = 0
        while chunk := response.read(65536):
            total += len(chunk)
            if total > limit:
                response.close()
                raise ResponseTooLarge(f"response exceeds the limit of {limit} bytes", host=self.host)
            chunks.append(chunk)
        response.release_conn()  # back to the pool: the next request reuses this authenticated connection
        return b"".join(chunks)
