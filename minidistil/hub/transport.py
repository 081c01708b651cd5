"""HTTP(S) for the downloader: one request at a time, redirects followed by hand, every wait bounded.

urllib's default opener would follow a redirect to any host with the `Authorization` header copied,
follow it to `file:` URLs, and bound only each socket read. Here the opener has just three handlers:
proxies from the environment (as urllib honours them), HTTP and HTTPS. Redirects are followed by
`open_following`, only to http(s) URLs, and the token is dropped for good once the origin (scheme,
host, port) changes. A `Deadline` bounds a whole request, headers and body, by shutting its socket
down when time is up; a `RateFloor` refuses a body that trickles in below a minimum rate.
"""

import functools
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import TransferError

REDIRECTS = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How long a download may take. The defaults let a 1 GB file arrive over a 20 kB/s link."""

    read_timeout: float = 10.0  # seconds one socket operation may wait (huggingface_hub's default)
    head_deadline: float = 30.0  # seconds for a HEAD and its relative redirects, headers included
    min_rate: float = 20_000.0  # bytes per second, averaged over each rate_window seconds of a body
    rate_window: float = 30.0
    grace: float = 60.0  # a transfer of n bytes must end within grace + n / min_rate seconds
    max_redirects: int = 10

    def deadline_for(self, nbytes):
        return self.grace + nbytes / self.min_rate


def origin(url):
    """(scheme, host, port) of `url`, the default port filled in: what credentials are tied to."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise TransferError(f"URL {url!r} has an invalid port") from None
    return parts.scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(parts.scheme)


def check_http_url(url, field):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise TransferError(f"{field} {url!r} is not an http(s) URL with a host")
    origin(url)
    return url


class Deadline:
    """An overall time limit on one or more requests, headers and body included.

    Per-read timeouts alone let a server that sends a byte every few seconds hold a download
    forever; a timer that shuts the socket down ends whatever read is in progress, and `check`
    turns what that read saw (an EOF or a reset) into this error.
    """

    def __init__(self, seconds, what):
        self.seconds, self.what = seconds, what
        self._expires = time.monotonic() + seconds
        self._timers = []
        self._expired = False

    def watch(self, sock):
        timer = threading.Timer(max(0.0, self._expires - time.monotonic()), self._expire, (sock,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _expire(self, sock):
        self._expired = True
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass

    def check(self):
        if self._expired or time.monotonic() > self._expires:
            raise TransferError(f"{self.what}: not done within its deadline of {self.seconds:.1f} s")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for timer in self._timers:
            timer.cancel()


class RateFloor:
    """Refuses a body whose bytes arrive slower than `min_rate` on average over any `window` seconds."""

    def __init__(self, min_rate, window, what):
        self.min_rate, self.window, self.what = min_rate, window, what
        self._start, self._bytes = time.monotonic(), 0

    def add(self, nbytes):
        self._bytes += nbytes
        now = time.monotonic()
        elapsed = now - self._start
        if elapsed < self.window:
            return
        if self._bytes < self.min_rate * elapsed:
            raise TransferError(
                f"{self.what}: {self._bytes} bytes in {elapsed:.1f} s, below the minimum rate of"
                f" {self.min_rate:.0f} bytes/s"
            )
        self._start, self._bytes = now, 0


class _Watched:
    """A connection that hands its socket to the request's Deadline as soon as it is connected."""

    def __init__(self, *args, deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self):
        super().connect()
        self._deadline.watch(self.sock)


class _HTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(functools.partial(_HTTPConnection, deadline=req.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(functools.partial(_HTTPSConnection, deadline=req.deadline), req, context=self._context)


def _opener():
    # Built per request so that proxy variables set after import count, as they do for urlopen.
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _HTTPHandler(), _HTTPSHandler()):
        opener.add_handler(handler)
    return opener


def send(method, url, *, headers, deadline, timeout):
    """One request, no redirect followed; the response is returned whatever its status."""
    check_http_url(url, "URL")
    request = urllib.request.Request(url, method=method, headers=headers)
    request.deadline = deadline
    try:
        response = _opener().open(request, timeout=timeout)
    except (OSError, http.client.HTTPException):
        deadline.check()
        raise
    try:
        # Headers cut by the deadline's shutdown look complete to http.client: refuse them here.
        deadline.check()
    except TransferError:
        response.close()
        raise
    return response


def redirect_target(url, response):
    """(absolute target, whether the Location was relative) of a redirect response; http(s) only."""
    location = response.headers.get("Location")
    if not location:
        raise TransferError(f"{url}: HTTP {response.status} redirect without a Location header")
    target = check_http_url(urllib.parse.urljoin(url, location), f"{url}: redirect Location")
    return target, not urllib.parse.urlsplit(location).netloc


def open_following(url, *, token, headers, deadline, limits):
    """(final url, response) of a GET of `url`, following up to `limits.max_redirects` redirects.

    `token` goes only to URLs of `url`'s origin and is dropped for the rest of the chain as soon as
    a redirect leaves it: a storage redirect is signed and needs no token; another host must not see it.
    """
    for _ in range(limits.max_redirects + 1):
        sent = dict(headers, **({"Authorization": f"Bearer {token}"} if token else {}))
        response = send("GET", url, headers=sent, deadline=deadline, timeout=limits.read_timeout)
        if response.status not in REDIRECTS:
            return url, response
        target, _ = redirect_target(url, response)
        response.close()
        if origin(target) != origin(url):
            token = None
        url = target
    raise TransferError(f"{url}: more than {limits.max_redirects} redirects")


def copy_body(response, out, nbytes, *, deadline, floor, on_chunk):
    """Copy at most `nbytes` of `response`'s body into `out` and return how many came.

    Never asks for a byte past `nbytes`, so an endless body cannot write past the announced size.
    `read1` returns whatever one socket read brings, so the deadline and the rate are checked
    between reads instead of after a 1 MiB read that a trickle could take hours to fill.
    """
    done = 0
    while done < nbytes:
        try:
            chunk = response.read1(min(_CHUNK, nbytes - done))
        except (OSError, http.client.HTTPException):
            deadline.check()
            raise
        deadline.check()
        if not chunk:
            break
        out.write(chunk)
        done += len(chunk)
        floor.add(len(chunk))
        on_chunk(len(chunk))
    return done
