"""A hub-shaped HTTP server on 127.0.0.1 that tests can turn hostile, one reply at a time.

Honest, it answers as the Hugging Face hub does: `HEAD|GET /{repo}/resolve/{rev}/{file}` gives a
regular file with its git blob SHA-1 as ETag, or, for `.safetensors`/`.bin` files (LFS), a 302 to
`/lfs/{sha256}` on another origin (`localhost` instead of `127.0.0.1`, as the hub's CDN is another
host) with `X-Linked-Etag`/`X-Linked-Size`; the storage honours Range requests. A test sets
`hub.rewrite = f(request, reply) -> reply` to change any reply (headers, status, body, or a raw
`writer` that puts bytes on the socket itself); every request is recorded with its headers.

Bounded: bodies that drip or never end stop when the client goes away, after `MAX_REPLY_S`, or
when the server closes; handler threads are daemons and the server never waits for them.
"""

import dataclasses
import hashlib
import http.server
import threading
import time
from typing import Callable, Iterable, Optional

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MAX_REPLY_S = 10.0


def git_blob_sha1(content):
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def is_lfs(filename):
    return filename.endswith((".safetensors", ".bin"))


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict
    kind: str = ""  # "resolve", "lfs" or "" (anything else)
    repo: str = ""
    revision: str = ""
    filename: str = ""


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict = dataclasses.field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""
    length: Optional[int] = -1  # Content-Length: -1 = len(body), None = none (the body ends at close)
    writer: Optional[Callable] = None  # writer(wfile, hub): puts the whole reply on the socket itself

    def with_headers(self, **changes):
        """A copy with headers changed; a value of None removes the header. Names use '_' for '-'."""
        headers = dict(self.headers)
        for name, value in changes.items():
            name = name.replace("_", "-")
            headers.pop(name, None)
            if value is not None:
                headers[name] = value
        return dataclasses.replace(self, headers=headers)


class HubServer:
    def __init__(self, repos, *, commit=COMMIT):
        self.repos = repos  # repo_id -> {filename: bytes}
        self.commit = commit
        self.requests = []
        self.rewrite = None
        self.stopping = threading.Event()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body):
                request = hub.parse(self.command, self.path, dict(self.headers.items()))
                hub.requests.append(request)
                reply = hub.honest(request)
                if hub.rewrite is not None:
                    reply = hub.rewrite(request, reply) or reply
                try:
                    self.send(reply, body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def send(self, reply, body):
                if reply.writer is not None:
                    self.close_connection = True
                    return reply.writer(self.wfile, hub)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                content = reply.body if isinstance(reply.body, bytes) else None
                length = len(content) if reply.length == -1 and content is not None else reply.length
                if length is None or length == -1:
                    self.close_connection = True  # the body ends when the connection closes
                else:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if not body:
                    return
                for chunk in [content] if content is not None else reply.body:
                    if hub.stopping.is_set():
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if length is not None and content is not None and len(content) < length:
                    self.close_connection = True  # cut short: close where the announced body would go on

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.storage = f"http://localhost:{self.port}"  # same server, another origin
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def parse(self, method, path, headers):
        parts = path.split("?", 1)[0].lstrip("/").split("/")
        if parts[0] == "lfs" and len(parts) == 2:
            return Request(method, path, headers, kind="lfs", filename=parts[1])
        if "resolve" in parts and parts.index("resolve") + 2 < len(parts):
            i = parts.index("resolve")
            repo, revision, filename = "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2 :])
            return Request(method, path, headers, "resolve", repo, revision, filename)
        return Request(method, path, headers)

    def content(self, request):
        if request.kind == "resolve":
            return self.repos.get(request.repo, {}).get(request.filename)
        if request.kind == "lfs":
            for files in self.repos.values():
                for content in files.values():
                    if hashlib.sha256(content).hexdigest() == request.filename:
                        return content
        return None

    def honest(self, request):
        content = self.content(request)
        if content is None:
            return Reply(404)
        if request.kind == "lfs":
            return self.storage_reply(content, request.headers.get("Range"))
        if is_lfs(request.filename):
            sha = hashlib.sha256(content).hexdigest()
            return Reply(302, {
                "Location": f"{self.storage}/lfs/{sha}",
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(content)),
                "X-Repo-Commit": self.commit,
            })
        return Reply(200, {"ETag": f'"{git_blob_sha1(content)}"', "X-Repo-Commit": self.commit}, content)

    @staticmethod
    def storage_reply(content, range_header):
        if not range_header:
            return Reply(200, {}, content)
        start = int(range_header.split("=")[1].split("-")[0])
        return Reply(206, {"Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}"}, content[start:])

    def seen(self, method=None, kind=None):
        return [r for r in self.requests if (method is None or r.method == method) and (kind is None or r.kind == kind)]


def drip(data, every_s, hub):
    """`data` one byte at a time, `every_s` apart, for at most MAX_REPLY_S."""
    end = time.monotonic() + MAX_REPLY_S
    for i in range(len(data)):
        if hub.stopping.is_set() or time.monotonic() > end:
            return
        time.sleep(every_s)
        yield data[i : i + 1]


def endless(prefix, hub, chunk=b"\xff" * 65536):
    """`prefix`, then `chunk` again and again until the client leaves or MAX_REPLY_S passes."""
    yield prefix
    end = time.monotonic() + MAX_REPLY_S
    while not hub.stopping.is_set() and time.monotonic() < end:
        yield chunk
