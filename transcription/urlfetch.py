"""Fetch a caller's audio URL without letting it reach our own network.

Names are checked before connecting, and the address each socket actually
connected to is checked again, so DNS tricks (a name that resolves to a public
address first and a private one next) gain nothing. Redirects are followed by
hand, each hop checked the same way. Proxies from the environment are ignored.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from jptranscribe.errors import FileTooLarge, InvalidRequest

CHUNK = 64 * 1024
RECEIVER_BODY_READ = 64 * 1024


class ForbiddenAddress(InvalidRequest):
    param = "url"


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.JPT_URL_FETCH_ALLOWED_NETWORKS]


def check_address(address: str) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _allowed_networks()):
        return
    if not ip.is_global or ip.is_multicast or ip.is_reserved or _is_tunnel_or_site_local(ip):
        raise ForbiddenAddress("The URL points to a private or internal address; use a public URL.")


SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _is_tunnel_or_site_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """IPv6 ranges Python counts as global that can still lead inside: 6to4 (2002::/16 wraps any
    IPv4 address, a private one too) and the deprecated site-local fec0::/10."""
    return isinstance(ip, ipaddress.IPv6Address) and (ip in SIX_TO_FOUR or ip.is_site_local)


# Lookups run here so that one can be given up on: getaddrinfo itself has no timeout, and a
# name server that never answers would hold the request thread for as long as the resolver
# keeps retrying. A lookup given up on finishes in the background, holding one of these.
_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="url-fetch-dns")


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, each one allowed, within JPT_URL_FETCH_DNS_TIMEOUT_SECONDS."""
    lookup = _lookups.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=settings.JPT_URL_FETCH_DNS_TIMEOUT_SECONDS)
    except FutureTimeout:
        lookup.cancel()
        raise InvalidRequest(
            f"Looking up the URL's host {host!r} took over {settings.JPT_URL_FETCH_DNS_TIMEOUT_SECONDS:g} s; "
            "try again, or upload the file.",
            param="url",
        )
    except (socket.gaierror, UnicodeError):
        raise InvalidRequest(f"Could not resolve the URL's host {host!r}.", param="url")
    addresses = [str(info[4][0]) for info in infos]  # IP addresses: str for the INET families asked for
    for address in addresses:
        check_address(address)
    return addresses


def _connect(conn: HTTPConnection) -> socket.socket:
    """urllib3's connect, with the lookup above in place of its own: the addresses connected to
    are the ones just checked, found within the DNS timeout (TLS still names the host)."""
    error: OSError | None = None
    for address in resolve(conn._dns_host, conn.port):
        try:
            sock = create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from exc
        except OSError as exc:
            error = exc
            continue
        return _checked_peer(sock)
    raise NewConnectionError(conn, f"Failed to establish a new connection: {error}")


def _checked_peer(sock: socket.socket) -> socket.socket:
    """The socket, once the address it actually connected to is allowed; closed otherwise."""
    try:
        check_address(sock.getpeername()[0])
    except ForbiddenAddress:
        sock.close()
        raise
    deadline = getattr(_Deadline.current, "deadline", None)
    if deadline is not None:
        deadline.sockets.append(sock)
    return sock


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def _session(user_agent: str = "JPTranscribe-fetch/1.3") -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never go through an environment proxy that could reach inside
    adapter = _CheckedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def _check_url(url: str, what: str = "audio URL") -> None:
    parts = urlsplit(url)
    schemes = ("https", "http") if settings.JPT_URL_FETCH_ALLOW_HTTP else ("https",)
    if parts.scheme not in schemes:
        raise InvalidRequest(f"The {what} must use https.", param="url")
    if not parts.hostname:
        raise InvalidRequest(f"The {what} has no host.", param="url")
    if parts.username or parts.password:
        raise InvalidRequest(f"The {what} must not contain credentials.", param="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest(f"The {what} has an invalid port.", param="url")
    resolve(parts.hostname, port)


def check_webhook_url(url: str) -> None:
    """A webhook URL passes the same guard as an audio URL, when it is named (and again at each
    connection, where a name that now leads inside is refused)."""
    try:
        _check_url(url, what="webhook URL")
    except InvalidRequest as exc:
        exc.param = "webhook_url"
        exc.message = str(exc.message).replace("The URL", "The webhook URL")
        raise


class Posted:
    """What a receiver answered: its status and its Retry-After header (None if it gave none)."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        self.status = status
        self.retry_after = retry_after


def post(session: requests.Session, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Posted:
    """POST to a public URL through the guard; redirects are not followed (a 3xx is an answer).
    Raises OSError-like `requests.RequestException` or ForbiddenAddress when nothing was answered."""
    _check_url(url, what="webhook URL")
    with _Deadline(timeout):
        response = session.post(
            url, data=body, headers=headers, allow_redirects=False, stream=True, timeout=(5, timeout)
        )
        with response:
            read = 0
            for chunk in response.iter_content(CHUNK):  # an answer's body is not needed: a little of it
                read += len(chunk)  # is read so the connection can serve the next delivery
                if read > RECEIVER_BODY_READ:
                    break
            return Posted(response.status_code, response.headers.get("Retry-After"))


def webhook_session() -> requests.Session:
    """A session for deliveries (one per delivering thread: it keeps connections to receivers open)."""
    return _session("JPTranscribe-webhooks/1.3")


class _Deadline:
    """A wall-clock limit on a whole fetch. At the deadline the sockets the fetch opened are shut,
    so a server that drips a byte at a time (each read within its own timeout) is cut off on time."""

    current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.passed = False
        self.sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _Deadline.current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _Deadline.current.deadline = None

    def _cut(self) -> None:
        self.passed = True
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def check(self) -> None:
        if self.passed or time.monotonic() > self.at:
            raise InvalidRequest("Fetching the audio URL took too long.", param="url")


def fetch_audio(url: str, *, max_bytes: int) -> tuple[bytes, str]:
    """Download at most `max_bytes` from a public URL. Returns (body, content type)."""
    timeout = settings.JPT_URL_FETCH_TIMEOUT_SECONDS
    with _Deadline(timeout * 2) as deadline:
        return _fetch(url, max_bytes=max_bytes, timeout=timeout, deadline=deadline)


def _fetch(url: str, *, max_bytes: int, timeout: float, deadline: _Deadline) -> tuple[bytes, str]:
    with _session() as session:
        for _ in range(settings.JPT_URL_FETCH_MAX_REDIRECTS + 1):
            _check_url(url)
            try:
                response = session.get(url, stream=True, allow_redirects=False, timeout=(5, timeout))
            except ForbiddenAddress:
                raise
            except requests.RequestException as exc:
                if isinstance(exc.__context__, ForbiddenAddress) or "private or internal" in str(exc):
                    raise ForbiddenAddress("The URL points to a private or internal address; use a public URL.")
                raise InvalidRequest(f"Could not fetch the audio URL ({exc.__class__.__name__}).", param="url")
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if response.status_code != 200:
                    raise InvalidRequest(
                        f"Fetching the audio URL failed: it answered HTTP {response.status_code}.", param="url"
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FileTooLarge(
                        f"The audio at the URL is over the {max_bytes // 1_048_576} MB limit.", param="url"
                    )
                body = bytearray()
                try:
                    for chunk in response.iter_content(CHUNK):
                        body += chunk
                        if len(body) > max_bytes:
                            raise FileTooLarge(
                                f"The audio at the URL is over the {max_bytes // 1_048_576} MB limit.", param="url"
                            )
                        deadline.check()
                except requests.RequestException as exc:
                    deadline.check()
                    raise InvalidRequest(f"Could not fetch the audio URL ({exc.__class__.__name__}).", param="url")
                deadline.check()  # a cut connection can also read as the body's end
                return bytes(body), response.headers.get("Content-Type", "")
    raise InvalidRequest("The audio URL redirected too many times.", param="url")
