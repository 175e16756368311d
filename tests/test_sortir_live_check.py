import time

import pytest
from django.test import Client

from tests.sortir_utils import VALID, VALID2, add_to_cart, base, csrf_token, questions


def check(client, event, position, card, **extra):
    token = csrf_token(client, event)
    return client.post(f"{base(event)}/sortir/check/", {"position": str(position.pk), "card": card},
                       HTTP_X_CSRFTOKEN=token, **extra)


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


@pytest.mark.django_db
def test_live_check_accepts_and_step_does_not_call_apras_again(csrf_client, sortir_event, sortir_item, fake_apras):
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    r = check(csrf_client, sortir_event, cp, "1000-0000-01")
    assert r.status_code == 200 and r.json()["valid"] is True and r.json()["last4"] == "0001"
    assert VALID not in r.content.decode()
    page = csrf_client.get(f"{base(sortir_event)}/checkout/questions/").content.decode()
    assert 'data-sortir-card="/demo/concert/sortir/check/"' in page
    assert "pretix_sortir/checkout.js" in page
    assert len(fake_apras.received("GET")) == 1


@pytest.mark.django_db
def test_live_check_without_csrf_token_is_refused(csrf_client, sortir_event, sortir_item):
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    r = csrf_client.post(f"{base(sortir_event)}/sortir/check/", {"position": str(cp.pk), "card": VALID})
    assert r.status_code == 403


@pytest.mark.django_db
def test_live_check_only_for_own_cart(csrf_client, sortir_event, sortir_item, fake_apras):
    other = Client()
    their_cp = add_to_cart(other, sortir_event, sortir_item)[0]
    add_to_cart(csrf_client, sortir_event, sortir_item)
    r = check(csrf_client, sortir_event, their_cp, VALID)
    assert r.status_code == 404 and fake_apras.received("GET") == []


@pytest.mark.django_db
def test_live_check_404_when_plugin_disabled(csrf_client, sortir_event, sortir_item):
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    sortir_event.disable_plugin("pretix_sortir")
    sortir_event.save()
    assert check(csrf_client, sortir_event, cp, VALID).status_code == 404


@pytest.mark.django_db
def test_failed_attempts_rate_limited_per_client_ip_successes_do_not_count(csrf_client, sortir_event, sortir_item, fake_apras):
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    for i in range(12):  # successes never count
        assert check(csrf_client, sortir_event, cp, VALID if i % 2 == 0 else VALID2).json()["valid"] is True
    for i in range(10):
        r = check(csrf_client, sortir_event, cp, f"99999999{i:02d}")
        assert r.json()["code"] == "unknown"
    r = check(csrf_client, sortir_event, cp, "9999999988")
    assert r.status_code == 429 and r.json()["code"] == "too_many_attempts"
    # another client address is not affected
    assert check(csrf_client, sortir_event, cp, VALID, REMOTE_ADDR="10.1.2.3").json()["valid"] is True


@pytest.mark.django_db
def test_unknown_card_remembered_per_organiser_by_full_hash(csrf_client, sortir_event, sortir_item, fake_apras):
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    assert check(csrf_client, sortir_event, cp, "9999990001").json()["code"] == "unknown"
    assert check(csrf_client, sortir_event, cp, "9999990001").json()["code"] == "unknown"
    assert len(fake_apras.received("GET")) == 1
    # same last four digits, another card: not confused with the unknown one
    fake_apras.valid_cards.add("1111110001")
    assert check(csrf_client, sortir_event, cp, "1111110001").json()["valid"] is True


@pytest.mark.django_db
def test_check_never_blocks_longer_than_timeout(csrf_client, sortir_event, sortir_item, fake_apras, organizer):
    organizer.settings.set("pretix_sortir_timeout", 1)
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    # What a check costs on this machine right now when APRAS answers at once (a loaded CI machine is slower).
    t0 = time.monotonic()
    check(csrf_client, sortir_event, cp, "1000000099")
    own_cost = time.monotonic() - t0
    fake_apras.fail_next(path="/api/partners/", delay=3, times=5)
    t0 = time.monotonic()
    r = check(csrf_client, sortir_event, cp, VALID)
    elapsed = time.monotonic() - t0
    assert r.json()["code"] == "unavailable"
    assert elapsed < 1 + 2 * own_cost + 0.5, (elapsed, own_cost)  # the 1 s timeout, not APRAS's 3 s


@pytest.mark.django_db
def test_breaker_per_organiser_fails_fast(csrf_client, sortir_event, sortir_item, fake_apras):
    fake_apras.fail_next(path="/api/partners/", status=500, times=100)
    cp = add_to_cart(csrf_client, sortir_event, sortir_item)[0]
    for i in range(5):
        assert check(csrf_client, sortir_event, cp, f"100000000{i}").json()["code"] == "unavailable"
    sent = len(fake_apras.received("GET"))
    assert check(csrf_client, sortir_event, cp, "1000000009").json()["code"] == "unavailable"
    assert len(fake_apras.received("GET")) == sent


@pytest.mark.django_db
def test_step_submit_with_masked_value_keeps_card(client, sortir_event, sortir_item, fake_apras):
    cp = add_to_cart(client, sortir_event, sortir_item)[0]
    questions(client, sortir_event, {cp: VALID})
    page = client.get(f"{base(sortir_event)}/checkout/questions/").content.decode()
    assert VALID not in page and "•••••• 0001" in page
    r = questions(client, sortir_event, {cp: "•••••• 0001"})
    assert b"enter the Sortir! card number again" not in r.content
    assert len(fake_apras.received("GET")) == 1
