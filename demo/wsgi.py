"""
WSGI application of the demo: pretix, plus the static and media files that nginx serves in production.

pretix does not serve ``/static/`` itself when debug is off; this wrapper does, from ``STATIC_ROOT`` (filled by
``collectstatic`` and ``compress``) and ``MEDIA_ROOT``, with the same exclusions as pretix's nginx example.
"""
import email.utils
import mimetypes
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

from django.conf import settings  # NOQA: E402
from django.core.wsgi import get_wsgi_application  # NOQA: E402

for _type, _ext in (("font/woff2", ".woff2"), ("font/woff", ".woff"), ("image/svg+xml", ".svg"),
                    ("text/javascript", ".js"), ("text/javascript", ".mjs"), ("application/json", ".map")):
    mimetypes.add_type(_type, _ext)


class StaticFiles:
    def __init__(self, app, mounts):
        """``mounts``: ``(url prefix, folder, max-age in seconds, refused sub-paths)``."""
        self.app = app
        self.mounts = [(prefix, os.path.realpath(root), max_age, refused) for prefix, root, max_age, refused in mounts]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        for prefix, root, max_age, refused in self.mounts:
            if path.startswith(prefix):
                rel = path[len(prefix):]
                if any(rel == r or rel.startswith(r + "/") for r in refused):
                    return self._error(start_response, "404 Not Found")
                return self.serve(environ, start_response, root, rel, max_age)
        return self.app(environ, start_response)

    @staticmethod
    def _error(start_response, status):
        body = status.encode()
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    def serve(self, environ, start_response, root, rel, max_age):
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._error(start_response, "405 Method Not Allowed")
        full = os.path.realpath(os.path.join(root, rel))
        if "\x00" in rel or not full.startswith(root + os.sep) or not os.path.isfile(full):
            return self._error(start_response, "404 Not Found")
        stat = os.stat(full)
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        headers = [("Last-Modified", last_modified), ("Cache-Control", f"public, max-age={max_age}")]
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if since:
            try:
                if int(stat.st_mtime) <= email.utils.parsedate_to_datetime(since).timestamp():
                    start_response("304 Not Modified", headers)
                    return []
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
        content_type, encoding = mimetypes.guess_type(full)
        content_type = content_type or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        headers += [("Content-Type", content_type), ("Content-Length", str(stat.st_size))]
        if encoding:
            headers.append(("Content-Encoding", encoding))
        start_response("200 OK", headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return []
        f = open(full, "rb")
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(f, 65536) if wrapper else iter(lambda: f.read(65536), b"")


def build_application():
    app = get_wsgi_application()
    return StaticFiles(app, [
        (settings.STATIC_URL, settings.STATIC_ROOT, 3600, ()),
        # as in pretix's nginx example: generated downloads and invoices are only served through pretix
        (settings.MEDIA_URL, settings.MEDIA_ROOT, 600, ("cachedfiles", "invoices")),
    ])


application = build_application()
