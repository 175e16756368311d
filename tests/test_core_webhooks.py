import base64
import hashlib
import hmac

from pretix_integrations_core import webhooks

SECRET = "whsec_test"
BODY = b'{"event":"invitee.created","payload":{"uri":"https://x/1"}}'


def test_hex_signature_without_timestamp_matches_reference():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert webhooks.sign(SECRET, BODY) == expected
    assert webhooks.verify(SECRET, BODY, expected)
    assert not webhooks.verify(SECRET, BODY + b" ", expected)  # body altered
    assert not webhooks.verify("other", BODY, expected)  # wrong key
    assert not webhooks.verify(SECRET, BODY, "")  # missing


def test_base64_signature_as_mautic():
    expected = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()).decode()
    assert webhooks.verify(SECRET, BODY, expected, encoding=webhooks.BASE64)
    assert not webhooks.verify(SECRET, BODY, expected)  # hex expected by default


def test_timestamp_tolerance_past_and_future():
    now = 1_800_000_000
    sig = webhooks.sign(SECRET, BODY, timestamp=now)
    assert webhooks.verify(SECRET, BODY, sig, timestamp=now, tolerance=180, now=now + 179)
    assert not webhooks.verify(SECRET, BODY, sig, timestamp=now, tolerance=180, now=now + 181)  # stale
    assert not webhooks.verify(SECRET, BODY, sig, timestamp=now, tolerance=180, now=now - 181)  # from the future
    assert not webhooks.verify(SECRET, BODY, sig, timestamp=now + 1, tolerance=180, now=now)  # timestamp is signed too
    assert not webhooks.verify(SECRET, BODY, sig, timestamp=None, tolerance=180, now=now)  # required but missing
    assert not webhooks.verify(SECRET, BODY, sig, timestamp="abc", tolerance=180, now=now)


def test_calendly_header_with_rotated_keys():
    now = 1_800_000_000
    good = webhooks.sign(SECRET, BODY, timestamp=now)
    ts, sigs = webhooks.parse_keyed_header(f"t={now},v1=deadbeef,v1={good}")
    assert ts == str(now) and sigs == ["deadbeef", good]
    assert webhooks.verify(SECRET, BODY, sigs, timestamp=ts, tolerance=180, now=now)
    assert webhooks.parse_keyed_header("garbage") == (None, [])


def test_docuseal_dotted_header():
    now = 1_800_000_000
    header = f"{now}.{webhooks.sign(SECRET, BODY, timestamp=now)}"
    ts, sigs = webhooks.parse_dotted_header(header)
    assert webhooks.verify(SECRET, BODY, sigs, timestamp=ts, tolerance=300, now=now + 10)
    assert webhooks.parse_dotted_header("nodot") == (None, [])
