"""Prospects feed Mautic only with consent (the answer to the organiser's consent question), against both fakes over HTTP."""
import datetime
from datetime import timedelta

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from pretix_crm_bridge.calendly.models import Prospect
from pretix_crm_bridge.webhook_secrets import path_secret

from .calendly_utils import connection, org_url, pat_connect
from .crm_utils import connect_mautic, make_order, pay

SOON = datetime.datetime.now(datetime.timezone.utc) + timedelta(days=3)
QUESTION = "Send me news about your events"


@pytest.fixture
def feeding(admin_client, organizer, calendly, fake_mautic, django_capture_on_commit_callbacks):
    connect_mautic(organizer, fake_mautic)
    pat_connect(admin_client, organizer, django_capture_on_commit_callbacks)
    r = admin_client.post(org_url(organizer, "crm/calendly/options/"), {
        "sync_interval": 30, "retention_months": 0, "consent_question": QUESTION, "mautic_segments_created": "2",
        "mautic_segments_converted": "1"})
    assert r.status_code == 302
    fake_mautic.reset()
    return calendly, fake_mautic


def book(calendly, conn, email, answer, capture):
    ev = calendly.add_event("Discovery call", SOON)
    questions = [{"question": QUESTION, "answer": answer, "position": 0}] if answer is not None else []
    inv = calendly.add_invitee(ev, email, email.split("@")[0].title(), questions=questions)
    body, headers = calendly.build_delivery("invitee.created", ev, inv, signing_key=conn.secret("webhook_signing_key"))
    with capture(execute=True):
        r = Client().post(f"/_crm/calendly/{conn.organizer.slug}/{path_secret(conn.organizer, 'calendly')}/", data=body,
                          content_type="application/json", headers={"Calendly-Webhook-Signature": headers["Calendly-Webhook-Signature"]})
    assert r.status_code == 202


def members(fake_mautic, segment_id):
    return {fake_mautic.contacts[cid]["values"]["email"] for cid in fake_mautic.segments[segment_id]["members"]}


@pytest.mark.django_db
def test_only_consenting_prospects_reach_mautic(organizer, feeding, django_capture_on_commit_callbacks, event, item):
    calendly, mautic = feeding
    conn = connection(organizer)
    book(calendly, conn, "yes@example.org", "Yes", django_capture_on_commit_callbacks)
    book(calendly, conn, "no@example.org", "No", django_capture_on_commit_callbacks)
    book(calendly, conn, "silent@example.org", None, django_capture_on_commit_callbacks)
    assert members(mautic, 2) == {"yes@example.org"}
    assert {c["values"]["email"] for c in mautic.contacts.values()} == {"yes@example.org"}
    with scopes_disabled():
        p = Prospect.objects.get(email="yes@example.org")
        assert p.marketing_consent and not Prospect.objects.get(email="no@example.org").marketing_consent
        assert p.all_logentries().filter(action_type="pretix_crm_bridge.prospect.mautic").exists()
        assert p.all_logentries().filter(action_type="pretix_crm_bridge.prospect.consent_given").count() == 1
        assert not Prospect.objects.get(email="no@example.org").all_logentries().filter(action_type__contains="consent").exists()
    # they buy: the consenting one joins the "converted" segment, the other one still never reaches Mautic
    event.enable_plugin("pretix_crm_bridge")
    event.save()
    with django_capture_on_commit_callbacks(execute=True):
        pay(make_order(event, item, email="yes@example.org", consent=False))
        pay(make_order(event, item, email="no@example.org", consent=False))
    assert members(mautic, 1) == {"yes@example.org"}
    assert {c["values"]["email"] for c in mautic.contacts.values()} == {"yes@example.org"}


@pytest.mark.django_db
def test_nothing_reaches_mautic_without_a_consent_question(admin_client, organizer, feeding, django_capture_on_commit_callbacks):
    calendly, mautic = feeding
    admin_client.post(org_url(organizer, "crm/calendly/options/"), {
        "sync_interval": 30, "retention_months": 0, "consent_question": "", "mautic_segments_created": "2", "mautic_segments_converted": ""})
    conn = connection(organizer)
    book(calendly, conn, "yes@example.org", "Yes", django_capture_on_commit_callbacks)
    assert not mautic.contacts and not mautic.received("POST")


@pytest.mark.django_db
def test_segment_ids_are_validated(admin_client, organizer, feeding):
    r = admin_client.post(org_url(organizer, "crm/calendly/options/"), {
        "sync_interval": 30, "retention_months": 0, "consent_question": QUESTION, "mautic_segments_created": "news",
        "mautic_segments_converted": ""})
    assert r.status_code == 400 and "segment ids" in r.content.decode()


@pytest.mark.django_db
def test_a_later_booking_without_consent_takes_it_back_and_says_so(admin_client, organizer, feeding, django_capture_on_commit_callbacks):
    calendly, mautic = feeding
    conn = connection(organizer)
    book(calendly, conn, "yes@example.org", "Yes", django_capture_on_commit_callbacks)
    book(calendly, conn, "yes@example.org", "No", django_capture_on_commit_callbacks)
    with scopes_disabled():
        p = Prospect.objects.get(email="yes@example.org")
        assert not p.marketing_consent
        assert list(p.all_logentries().filter(action_type__contains="consent").order_by("pk").values_list("action_type", flat=True)) == [
            "pretix_crm_bridge.prospect.consent_given", "pretix_crm_bridge.prospect.consent_withdrawn"]
    page = admin_client.get(org_url(organizer, f"prospects/{p.pk}/")).content.decode()
    assert "Marketing consent given in the Calendly booking Discovery call" in page
    assert "Marketing consent refused in the Calendly booking Discovery call" in page
