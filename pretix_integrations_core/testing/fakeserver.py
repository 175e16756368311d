"""
Fake external services that speak real HTTP on 127.0.0.1, for tests and for the offline demo.

A :class:`FakeServer` is a threaded HTTP server with a route table. Every request it receives is
recorded (method, path, query, headers, raw body). Faults can be scripted per route pattern::

    server.fail_next(status=503, headers={"Retry-After": "1"}, times=2, path=r"^/api/")
    server.fail_next(delay=3)            # answer normally, but 3 s late
    server.fail_next(drop=True)          # close the connection without answering
    server.fail_next(malformed=True)     # 200 with a body that is not valid JSON
    server.fail_next(status=429, headers={"Retry-After": "2"})

``latency`` (seconds, a constructor argument or attribute) delays every answer, as a remote service would
(the benchmarks use 0.02); scripted delays come on top.

Subclasses declare routes with the :func:`route` decorator; handlers get a :class:`Request` and return
a :class:`Response` (use :func:`json_response`, :func:`text_response`, :func:`redirect_response`).

Fakes that send webhooks use :func:`deliver`, which POSTs with the standard library only (no redirects
followed, no pretix outbound guard involved) and returns a :class:`Delivery`.
"""
import base64
import binascii
import http.client
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    match: object = None
    received_at: float = 0.0

    @property
    def json(self):
        try:
            return json.loads(self.body.decode() or "null")
        except ValueError:
            return None

    @property
    def form(self):
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name, default=None):
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return default

    @property
    def bearer(self):
        """The token of an ``Authorization: Bearer <token>`` header, or None."""
        scheme, _, token = (self.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None

    @property
    def basic_auth(self):
        """``(user, password)`` of an ``Authorization: Basic`` header, or None."""
        scheme, _, value = (self.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def json_response(data, status=200, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return Response(status, json.dumps(data).encode(), h)


def text_response(text, status=200, headers=None, content_type="text/plain; charset=utf-8"):
    h = {"Content-Type": content_type}
    h.update(headers or {})
    return Response(status, text.encode(), h)


def redirect_response(location, status=302, headers=None):
    return Response(status, b"", {"Location": location, **(headers or {})})


@dataclass
class Delivery:
    """A webhook request sent by a fake service, and what the receiver answered."""
    url: str
    request_headers: dict
    request_body: bytes
    status: int = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    error: str = None

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300


def deliver(url, body: bytes, headers=None, method="POST", timeout=10.0) -> Delivery:
    """Send ``body`` exactly as given (the bytes that were signed). Never raises for HTTP or network errors."""
    headers = dict(headers or {})
    result = Delivery(url, headers, body)
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        result.status, result.headers, result.body = resp.status, dict(resp.getheaders()), resp.read()
    except (OSError, http.client.HTTPException) as e:
        result.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return result


@dataclass
class Fault:
    path: str = None
    method: str = None
    status: int = None
    body: bytes = None
    headers: dict = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    times: int = 1

    def matches(self, method, path):
        if self.method and self.method.upper() != method:
            return False
        return not self.path or re.search(self.path, path) is not None


def route(method, pattern):
    def decorator(fn):
        fn._fake_route = (method.upper(), re.compile(pattern))
        return fn
    return decorator


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that stopped waiting (its timeout is shorter than a slow answer) closes the connection: that is
        # the behaviour being simulated, not an error of the fake, so no traceback on the console.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeServer:
    #: shown in logs and in the demo, so nobody mistakes a simulator for the real service
    label = "fake service"
    #: short name in front of the lines given to :attr:`log`
    log_name = "SIMULATOR"
    #: a callable taking one line of text (the demo sets ``print``): what the fake received, as :meth:`describe`
    #: tells it. None (tests) prints nothing.
    log = None

    def __init__(self, host="127.0.0.1", port=0, latency=0.0):
        #: seconds added before every answer (a remote service's round trip); 0 answers at once
        self.latency = latency
        self.requests = []
        self._faults = []
        self._lock = threading.Lock()
        self.routes = []
        for name in dir(type(self)):
            fn = getattr(self, name, None)
            spec = getattr(fn, "_fake_route", None)
            if spec:
                self.routes.append((spec[0], spec[1], fn))
        self._httpd = _HTTPServer((host, port), self._handler_class())
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        # a short poll interval makes stop() (and so every test using a fake) return in ~50 ms instead of ~500 ms
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- scripting -------------------------------------------------------------------------------

    def fail_next(self, *, path=None, method=None, status=None, body=None, headers=None, delay=0.0, drop=False,
                  malformed=False, times=1):
        """Script the next ``times`` matching requests (see module docstring)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._faults.append(Fault(path, method, status, body, headers, delay, drop, malformed, times))

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def received(self, method=None, path=None):
        """Recorded requests, optionally filtered by method and path regex."""
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if (not method or r.method == method.upper()) and (not path or re.search(path, r.path))]

    def reset(self):
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def _take_fault(self, method, path):
        with self._lock:
            for f in self._faults:
                if f.matches(method, path):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f
        return None

    # -- dispatch --------------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Response:
        for method, pattern, fn in self.routes:
            if method != req.method:
                continue
            m = pattern.fullmatch(req.path)
            if m:
                req.match = m
                return fn(req)
        return self.not_found(req)

    def not_found(self, req):
        return json_response({"error": "not found"}, status=404)

    def describe(self, req: Request, resp: Response):
        """One line about a request worth showing in the demo's console, or None (the default: nothing shown)."""
        return None

    def _report(self, req, resp, client_gone=False):
        if self.log is None:
            return
        try:
            line = self.describe(req, resp)
        except Exception as e:  # describing must never break the answer
            line = f"{req.method} {req.path}: cannot describe it ({type(e).__name__})"
        if line is None:
            return
        if client_gone:
            line += " - answered too late, the client had stopped waiting"
        self.log(f"[{self.log_name}] {line}")

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per kept-alive request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              dict(self.headers.items()), body, received_at=time.time())
                with server._lock:
                    server.requests.append(req)
                fault = server._take_fault(req.method, req.path)
                if server.latency:
                    time.sleep(server.latency)
                if fault and fault.delay:
                    time.sleep(fault.delay)
                if fault and fault.drop:
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                if fault and (fault.status or fault.malformed):
                    resp = Response(fault.status or 200, fault.body if fault.body is not None else b"",
                                    {"Content-Type": "application/json", **(fault.headers or {})})
                    if fault.malformed:
                        resp.body = fault.body if fault.body is not None else b'{"truncated": '
                else:
                    try:
                        resp = server.dispatch(req)
                    except Exception as e:  # a bug in a fake must show up as a 500, not a hung client
                        resp = text_response(f"fake server error: {type(e).__name__}: {e}", status=500)
                try:
                    self.send_response(resp.status)
                    headers = dict(resp.headers)
                    headers.setdefault("Content-Length", str(len(resp.body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(resp.body)
                    self.wfile.flush()
                except ConnectionError:  # the client gave up (timeout) and closed the connection
                    self.close_connection = True
                    server._report(req, resp, client_gone=True)
                    return
                server._report(req, resp)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        return Handler
