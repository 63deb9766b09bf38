"""The HTTP exchange: one keep-alive connection to the endpoint, through requests' adapter.

A POST goes straight to ``HTTPAdapter.send``: no ``Session`` (its hooks, redirect handling and
per-send walk of the environment cost a tenth of a call and would follow a redirect with a
sealed body). What a session would add and hvjob needs is done here once: proxies from the
environment (read when the channel is made, ``no_proxy`` honoured), the CA bundle, cookies a
load balancer sets. Bodies are streamed and capped. Every call into requests and urllib3 runs
inside the exception boundary.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import requests
import requests.adapters
import requests.cookies
import requests.utils
import urllib3.exceptions

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


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies the environment names for ``url``, as requests would use them.

    Looking the variables up first spares the walk of the whole environment that requests does
    (and repeats for ``no_proxy``) when, as usually, none is set.
    """
    if not any(name.lower() in _PROXY_VARIABLES for name in os.environ):
        return {}
    return dict(requests.utils.get_environ_proxies(url))


class HttpChannel:
    """POSTs to one endpoint URL over one keep-alive connection (re-opened by urllib3 when the
    server closed it; an authenticated session notices by the ``401`` that follows)."""

    def __init__(self, url: str, options: ConnectionOptions, *, host: str, client_certificate: bool = False) -> None:
        self.url = url
        self.host = host
        self.https = url.lower().startswith("https:")
        with foreign_errors("connect", host=host):
            self._adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            template = requests.PreparedRequest()
            template.prepare_method("POST")
            template.prepare_url(url, None)
        self._template = template
        self._timeout = (options.connect_timeout, options.read_timeout)
        self._limit = options.max_response_bytes
        self._insecure = options.insecure
        self._verify: bool | str = (
            False
            if options.insecure
            else options.ca_trust_path  # an explicit path always wins over REQUESTS_CA_BUNDLE
            or os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or True
        )
        self._cert = (
            (options.cert_pem, options.cert_key_pem)
            if client_certificate and options.cert_pem and options.cert_key_pem
            else None
        )
        self._proxies = (
            {"http": options.proxy, "https": options.proxy} if options.proxy is not None else environment_proxies(url)
        )
        self._headers = {"User-Agent": USER_AGENT, "Connection": "Keep-Alive"}
        self._cookies = requests.cookies.RequestsCookieJar()

    def __repr__(self) -> str:
        return f"HttpChannel(url={self.url!r})"

    def close(self) -> None:
        self._adapter.close()

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
        prepared = self._template.copy()
        prepared.prepare_headers({**self._headers, **headers})
        prepared.prepare_body(body, None)
        if len(self._cookies):
            prepared.prepare_cookies(self._cookies)
        with foreign_errors("send", host=self.host, request=request, progress=progress):
            if self._insecure:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)  # logged once
                    response = self._send(prepared)
            else:
                response = self._send(prepared)
        progress.sent = True
        with foreign_errors("receive", host=self.host, request=request, progress=progress):
            certificate = self._peer_certificate(response) if peer_certificate and self.https else None
            content = self._read_capped(response)
            if "set-cookie" in response.headers:  # load-balancer affinity, kept for the next request
                requests.cookies.extract_cookies_to_jar(self._cookies, prepared, response.raw)  # type: ignore[no-untyped-call]
        return HttpReply(response.status_code, response.headers, content, certificate)

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response:
        return self._adapter.send(
            prepared, stream=True, timeout=self._timeout, verify=self._verify, cert=self._cert, proxies=self._proxies
        )

    @staticmethod
    def _peer_certificate(response: requests.Response) -> bytes | None:
        """The certificate of the connection that carried ``response`` (urllib3's public
        ``HTTPResponse.connection``, then the socket's ``getpeercert``)."""
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        getpeercert = getattr(sock, "getpeercert", None)
        if getpeercert is None:
            return None
        der = getpeercert(binary_form=True)
        return der if isinstance(der, bytes) else None

    def _read_capped(self, response: requests.Response) -> bytes:
        limit = self._limit
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            response.close()
            raise ResponseTooLarge(f"response of {length} bytes exceeds the limit of {limit} bytes", host=self.host)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(65536):
            total += len(chunk)
            if total > limit:
                response.close()
                raise ResponseTooLarge(f"response exceeds the limit of {limit} bytes", host=self.host)
            chunks.append(chunk)
        return b"".join(chunks)
