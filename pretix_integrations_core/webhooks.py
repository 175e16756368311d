"""
Authenticity of incoming webhooks: HMAC-SHA256 over the raw body, with an optional timestamp.

The services differ only in how they lay out the same primitive:

- Calendly: ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>`` over ``"<t>." + body`` (tolerance 180 s);
- DocuSeal: ``X-Docuseal-Signature: <unix>.<hex>`` over ``"<unix>." + body`` (tolerance 300 s);
- HelloAsso (partner mode): ``x-ha-signature: <hex>`` over the body, no timestamp;
- Mautic: ``Webhook-Signature: <base64 digest>`` over the body, no timestamp.

Always verify the bytes exactly as received, never re-serialised JSON. Comparison is constant-time.
"""
import base64
import hashlib
import hmac
import time

HEX = "hex"
BASE64 = "base64"


def _mac(secret: str, body: bytes, timestamp=None) -> bytes:
    msg = body if timestamp is None else str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()


def sign(secret: str, body: bytes, *, timestamp=None, encoding: str = HEX) -> str:
    digest = _mac(secret, body, timestamp)
    return digest.hex() if encoding == HEX else base64.b64encode(digest).decode()


def verify(secret: str, body: bytes, signatures, *, timestamp=None, tolerance: float = None, now: float = None,
           encoding: str = HEX) -> bool:
    """
    True if one of ``signatures`` (a string or a list, e.g. several ``v1`` values during a key
    rotation) is the HMAC of ``body``, and, when a ``timestamp`` is given, it is within ``tolerance``
    seconds of now (in the past or the future). A missing timestamp where one is required fails.
    """
    if not secret or body is None or not signatures:
        return False
    if isinstance(signatures, str):
        signatures = [signatures]
    if tolerance is not None:
        try:
            ts = int(str(timestamp))
        except (TypeError, ValueError):
            return False
        if abs((now if now is not None else time.time()) - ts) > tolerance:
            return False
    expected = sign(secret, body, timestamp=timestamp, encoding=encoding)
    ok = False
    for candidate in signatures:
        if isinstance(candidate, str) and hmac.compare_digest(expected.encode(), candidate.strip().encode()):
            ok = True  # keep looping: the time taken does not depend on which candidate matched
    return ok


def parse_keyed_header(header: str):
    """``t=123,v1=abc,v1=def`` -> (``"123"``, [``"abc"``, ``"def"``]) as used by Calendly."""
    timestamp, sigs = None, []
    for part in (header or "").split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value
        elif key == "v1":
            sigs.append(value)
    return timestamp, sigs


def parse_dotted_header(header: str):
    """``123.abc`` -> (``"123"``, [``"abc"``]) as used by DocuSeal."""
    timestamp, sep, sig = (header or "").strip().partition(".")
    if not sep:
        return None, []
    return timestamp, [sig]
