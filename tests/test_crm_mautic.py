"""CRM bridge → Mautic through pretix's doors: checkout consent, order signals, pretix's data-sync queue, fake Mautic over HTTP."""
from datetime import timedelta

import pytest
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import Order

from pretix_crm_bridge import config
from pretix_crm_bridge.sync import MauticSync, has_consent

from .crm_utils import make_order, pay, queue_rows, results, run_queue, storefront_order
from .sortir_utils import add_to_cart, base

P = MauticSync.identifier


def the_contact(fake_mautic):
    assert len(fake_mautic.contacts) == 1
    return next(iter(fake_mautic.contacts.values()))


def log_actions(order):
    with scopes_disabled():
        return [(e.action_type, e.parsed_data) for e in order.all_logentries().order_by("pk")]


@pytest.mark.django_db
def test_checkout_checkbox_off_by_default_and_answer_kept(client, crm_event, item):
    crm_event.settings.set(config.CONSENT_LABEL, "Tenez-moi au courant")
    add_to_cart(client, crm_event, item)
    page = client.get(f"{base(crm_event)}/checkout/questions/").content.decode()
    assert "Tenez-moi au courant" in page
    assert f'name="{config.CONSENT_FIELD}"' in page and "checked" not in page.split(f'name="{config.CONSENT_FIELD}"')[1].split(">")[0]
    client.cookies.clear()
    order = storefront_order(client, crm_event, item, consent=True)
    assert has_consent(order)
    order2 = storefront_order(client, crm_event, item, consent=False, email="john@example.org")
    assert not has_consent(order2)


@pytest.mark.django_db
def test_no_checkbox_when_the_event_does_not_feed_mautic(client, crm_event, item):
    crm_event.settings.set(config.MAUTIC_ENABLED, False)
    add_to_cart(client, crm_event, item)
    assert config.CONSENT_FIELD not in client.get(f"{base(crm_event)}/checkout/questions/").content.decode()


@pytest.mark.django_db
def test_contact_upsert_tags_segments_and_no_duplicate(client, crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PAID, "2")
    order = storefront_order(client, crm_event, item)
    run_queue(django_capture_on_commit_callbacks)
    c = the_contact(fake_mautic)
    assert c["values"]["email"] == "jane@example.org" and c["values"]["preferred_locale"] == "en"
    assert c["tags"] == ["pretix-concert", "pretix-concert-ticket"]
    assert fake_mautic.segments[1]["members"] == {c["id"]} and fake_mautic.segments[2]["members"] == set()
    res = results(order, P)[1]
    assert res.sync_info["contact_id"] == c["id"] and res.external_link_href.endswith(f"/s/contacts/view/{c['id']}")
    assert queue_rows(order, P) == []

    pay(order)
    fake_mautic.reset()
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.contacts) == 1  # updated, not duplicated
    assert fake_mautic.segments[2]["members"] == {c["id"]}
    # the "order placed" segment was added by the first job: only the contact update and the new segment
    assert [r.path for r in fake_mautic.requests] == ["/api/contacts/new", f"/api/segments/2/contact/{c['id']}/add"]
    assert results(order, P)[1].sync_info["segments"] == [1, 2]

    # the same sync once more (e.g. "Sync now"): still one contact
    MauticSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.contacts) == 1
    assert [a for a, d in log_actions(order) if a == "pretix.event.order.data_sync.success"]


@pytest.mark.django_db
def test_names_company_and_address_from_the_order(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    from pretix.base.models import InvoiceAddress
    order = make_order(crm_event, item, name=("Camille", "Martin"))
    with scopes_disabled():
        InvoiceAddress.objects.create(order=order, company="Asso Demo", street="1 rue de la Paix", zipcode="35000", city="Rennes",
                                      country="FR", name_parts={"_scheme": "given_family", "given_name": "Camille", "family_name": "Martin"})
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    v = the_contact(fake_mautic)["values"]
    assert (v["firstname"], v["lastname"], v["company"], v["city"], v["zipcode"], v["country"]) == (
        "Camille", "Martin", "Asso Demo", "Rennes", "35000", "France")


@pytest.mark.django_db
def test_without_consent_nothing_goes_to_mautic(client, crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PAID, "2")
    order = storefront_order(client, crm_event, item, consent=False)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.requests == []
    assert queue_rows(order, P) == []


@pytest.mark.django_db
def test_test_mode_orders_are_not_sent(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    order = make_order(crm_event, item)
    with scopes_disabled():
        Order.objects.filter(pk=order.pk).update(testmode=True)
    order.refresh_from_db()
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.requests == []


def failed(order):
    rows = queue_rows(order, P)
    assert len(rows) == 1
    return rows[0]


@pytest.mark.django_db
def test_refused_credentials_end_in_a_visible_config_failure(crm_event, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    organizer.settings.set(config.MAUTIC_USERNAME, "someone-else")
    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    row = failed(order)
    assert row.need_manual_retry == "config"
    action, data = log_actions(order)[-1]
    assert action == "pretix.event.order.data_sync.failed.config"
    assert "Mautic refused our credentials" in data["error"][0] and "HTTP status 401" in data["error"][0]
    assert "invalid username or password" in data["error"][0]

    # fixed by the organiser, retried from pretix's failed-job list (re-enqueue): done
    organizer.settings.set(config.MAUTIC_USERNAME, "demo-mautic-api")
    MauticSync.enqueue_order(order, "retry")
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(fake_mautic.contacts) == 1


@pytest.mark.django_db
def test_unknown_segment_is_a_permanent_failure_with_the_reason(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "99")
    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert failed(order).need_manual_retry == "permanent"
    action, data = log_actions(order)[-1]
    assert "HTTP status 404" in data["error"][0] and "Item was not found." in data["error"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("status,body", [
    (422, {"errors": [{"code": 422, "message": "email: This value is not valid.", "details": {"email": ["This value is not valid."]}}]}),
    (400, {"errors": [{"code": 400, "message": "firstname: too long", "details": []}]}),
])
def test_validation_errors_are_permanent(crm_event, item, fake_mautic, django_capture_on_commit_callbacks, status, body):
    order = make_order(crm_event, item)
    pay(order)
    fake_mautic.fail_next(path=r"^/api/contacts/new$", status=status, body=body)
    run_queue(django_capture_on_commit_callbacks)
    assert failed(order).need_manual_retry == "permanent"
    assert body["errors"][0]["message"] in log_actions(order)[-1][1]["error"][0]


@pytest.mark.django_db
def test_rate_limit_server_error_and_lost_answer_are_retried(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    order = make_order(crm_event, item)
    pay(order)

    fake_mautic.fail_next(path=r"^/api/contacts/new$", status=429, headers={"Retry-After": "900"})
    run_queue(django_capture_on_commit_callbacks)
    row = failed(order)
    assert row.need_manual_retry is None and row.failed_attempts == 1
    assert row.not_before >= now() + timedelta(seconds=890)

    fake_mautic.fail_next(path=r"^/api/contacts/new$", status=429, body={"errors": [{"code": 429, "message": "You exceeded the rate limit"}]})
    run_queue(django_capture_on_commit_callbacks)
    row = failed(order)
    assert row.failed_attempts == 2 and row.not_before >= now() + timedelta(seconds=59)

    fake_mautic.fail_next(path=r"^/api/contacts/new$", status=502)
    run_queue(django_capture_on_commit_callbacks)
    assert failed(order).failed_attempts == 3

    # the contact is created, but the answer is lost: the retry upserts on the email, no second contact
    fake_mautic.fail_next(path=r"^/api/segments/", drop=True)
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")
    run_queue(django_capture_on_commit_callbacks)
    row = failed(order)
    assert row.failed_attempts == 4 and row.need_manual_retry is None

    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    c = the_contact(fake_mautic)
    assert fake_mautic.segments[1]["members"] == {c["id"]}


@pytest.mark.django_db
def test_retries_stop_after_max_attempts_with_a_visible_failed_job(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    order = make_order(crm_event, item)
    pay(order)
    fake_mautic.fail_next(path=r"^/api/contacts/new$", status=503, times=MauticSync.max_attempts)
    for _ in range(MauticSync.max_attempts):
        run_queue(django_capture_on_commit_callbacks)
    row = failed(order)
    assert row.need_manual_retry == "exceeded"
    action, data = log_actions(order)[-1]
    assert action == "pretix.event.order.data_sync.failed.exceeded"
    assert data["error"][0].startswith(("Mautic is unavailable", "Mautic failed several times in a row"))


@pytest.mark.django_db
def test_failed_jobs_list_shows_the_job(admin_client, crm_event, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    organizer.settings.set(config.MAUTIC_USERNAME, "nobody")
    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    page = admin_client.get("/control/event/demo/concert/datasync/failedjobs/").content.decode()
    assert order.code in page and "Mautic" in page
    page = admin_client.get(f"/control/event/demo/concert/orders/{order.code}/").content.decode()
    assert "Mautic" in page


@pytest.mark.django_db
def test_paid_orders_join_campaigns_once_per_order(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_CAMPAIGNS_PAID, "1")
    order = make_order(crm_event, item)
    MauticSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.received("POST", r"^/api/campaigns/") == []  # not paid yet
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    c = the_contact(fake_mautic)
    assert fake_mautic.campaigns[1]["members"] == {c["id"]}
    assert results(order, P)[1].sync_info["campaigns"] == [1]
    MauticSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.received("POST", r"^/api/campaigns/")) == 1  # not re-added (it could restart the campaign)


@pytest.mark.django_db
def test_consent_withdrawn_from_the_order_page(admin_client, crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")
    crm_event.settings.set(config.MAUTIC_CAMPAIGNS_PAID, "1")
    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    c = the_contact(fake_mautic)
    assert fake_mautic.segments[1]["members"] == {c["id"]} and fake_mautic.campaigns[1]["members"] == {c["id"]}
    page = admin_client.get(f"/control/event/demo/concert/orders/{order.code}/").content.decode()
    assert "The buyer withdraws their consent" in page

    url = f"/control/event/demo/concert/crm/orders/{order.code}/withdraw-consent/"
    r = admin_client.post(url, follow=True)
    assert r.status_code == 200
    order.refresh_from_db()
    assert not has_consent(order)
    assert fake_mautic.segments[1]["members"] == {c["id"]}  # nothing sent in the admin's request
    assert "Marketing consent withdrawn" in admin_client.get(f"/control/event/demo/concert/orders/{order.code}/").content.decode()

    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    c = the_contact(fake_mautic)
    assert fake_mautic.segments[1]["members"] == set() and fake_mautic.campaigns[1]["members"] == set()
    assert [d["reason"] for d in c["dnc"]] == [1]
    assert results(order, P)[1].sync_info["action"] == "consent_withdrawn"

    # later order signals change nothing any more for this order
    n = len(fake_mautic.requests)
    MauticSync.enqueue_order(order, "order_changed")
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.requests) == n


@pytest.mark.django_db
def test_withdraw_consent_needs_order_write_permission(client, crm_event, item, organizer):
    from pretix.base.models import Team, User
    order = make_order(crm_event, item)
    u = User.objects.create_user("viewer@example.org", "viewer-password")
    t = Team.objects.create(organizer=organizer, name="Viewers", all_events=True, limit_event_permissions={"event.orders:read": True})
    t.members.add(u)
    client.login(email="viewer@example.org", password="viewer-password")
    assert client.post(f"/control/event/demo/concert/crm/orders/{order.code}/withdraw-consent/").status_code == 403
    order.refresh_from_db()
    assert has_consent(order)


@pytest.mark.django_db
def test_oauth2_token_renewed_once_when_expired(crm_event, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    from pretix_integrations_core import crypto
    organizer.settings.set(config.MAUTIC_AUTH, config.AUTH_OAUTH2)
    organizer.settings.set(config.MAUTIC_CLIENT_ID, "demo-mautic-client-id")
    crypto.set_secret(organizer.settings, config.MAUTIC_CLIENT_SECRET, "demo-mautic-client-secret")
    first = make_order(crm_event, item)
    pay(first)
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.received("POST", r"^/oauth/v2/token$")) == 1
    second = make_order(crm_event, item, email="john@example.org")
    pay(second)
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.received("POST", r"^/oauth/v2/token$")) == 1  # the cached token is reused
    fake_mautic.expire_tokens()
    third = make_order(crm_event, item, email="anna@example.org")
    pay(third)
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_mautic.received("POST", r"^/oauth/v2/token$")) == 2
    assert queue_rows(third, P) == [] and len(fake_mautic.contacts) == 3
    assert not any(r.basic_auth for r in fake_mautic.received(path=r"^/api/"))


@pytest.mark.django_db
def test_unpaid_orders_close_to_expiry_join_the_reminder_segment_until_paid(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    from pretix.base.signals import periodic_task
    crm_event.settings.set(config.MAUTIC_SEGMENTS_REMINDER, "2")
    crm_event.settings.set(config.MAUTIC_REMINDER_DAYS, 3)
    soon, later, no_consent = make_order(crm_event, item), make_order(crm_event, item, email="l@example.org"), \
        make_order(crm_event, item, email="n@example.org", consent=False)
    with scopes_disabled():
        Order.objects.filter(pk__in=[soon.pk, no_consent.pk]).update(expires=now() + timedelta(days=1))
    soon.refresh_from_db()

    periodic_task.send(sender=None)  # pretix's cron: our receiver only enqueues (pretix's own sync runs with it, after commit)
    assert [q.triggered_by for q in queue_rows(soon, P)] == ["expiry_reminder"]
    assert queue_rows(later, P) == []
    fake_mautic.reset()
    run_queue(django_capture_on_commit_callbacks)
    c = the_contact(fake_mautic)
    assert fake_mautic.segments[2]["members"] == {c["id"]}
    assert results(soon, P)[1].sync_info["reminded"] is True

    from pretix_crm_bridge.triggers import enqueue_expiry_reminders
    assert enqueue_expiry_reminders() == 0  # reminded once

    pay(soon)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.segments[2]["members"] == set()
    assert results(soon, P)[1].sync_info["reminded"] is False


@pytest.mark.django_db
def test_welcome_campaign_for_a_first_purchase_only(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    crm_event.settings.set(config.MAUTIC_CAMPAIGNS_WELCOME, "1")
    first = make_order(crm_event, item)
    pay(first)
    run_queue(django_capture_on_commit_callbacks)
    c = the_contact(fake_mautic)
    assert fake_mautic.campaigns[1]["members"] == {c["id"]}
    fake_mautic.campaigns[1]["members"].clear()  # the contact finished the welcome campaign
    second = make_order(crm_event, item)
    pay(second)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.campaigns[1]["members"] == set()
    assert results(second, P)[1].sync_info["campaigns"] == []


@pytest.mark.django_db
def test_extra_fields_with_pretix_mapping_editor_and_copied_with_the_event(admin_client, crm_event, item, organizer, fake_mautic,
                                                                           django_capture_on_commit_callbacks):
    url = "/control/event/demo/concert/crm/mautic-fields/"
    assert "Mautic contact fields" in admin_client.get(url).content.decode()
    r = admin_client.post(url, {
        "mautic-TOTAL_FORMS": "1", "mautic-INITIAL_FORMS": "0", "mautic-MIN_NUM_FORMS": "0", "mautic-MAX_NUM_FORMS": "1000",
        "mautic-0-pretix_field": "order_code", "mautic-0-external_field": "pretix_last_order", "mautic-0-overwrite": "overwrite",
        "mautic-0-value_map": "", "mautic-0-ORDER": "0",
    }, follow=True)
    assert r.status_code == 200
    crm_event.settings.flush()
    assert crm_event.settings.get(config.MAUTIC_FIELD_MAPPINGS, as_type=list) == [
        {"pretix_field": "order_code", "external_field": "pretix_last_order", "value_map": "", "overwrite": "overwrite"}]

    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert the_contact(fake_mautic)["values"]["pretix_last_order"] == order.code

    from pretix.base.models import Event
    with scopes_disabled():
        copy = Event.objects.create(organizer=organizer, name="Copy", slug="copy", date_from=crm_event.date_from)
        copy.copy_data_from(crm_event)
        copy.settings.flush()
        assert copy.settings.get(config.MAUTIC_FIELD_MAPPINGS, as_type=list)[0]["external_field"] == "pretix_last_order"


@pytest.mark.django_db
def test_a_mapped_field_that_no_longer_exists_is_a_config_failure(crm_event, item, fake_mautic, django_capture_on_commit_callbacks):
    mapping = {"pretix_field": "question_gone", "external_field": "x", "value_map": "", "overwrite": "overwrite"}
    crm_event.settings.set(config.MAUTIC_FIELD_MAPPINGS, [mapping])
    order = make_order(crm_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert failed(order).need_manual_retry == "config"
    assert 'Field "question_gone" does not exist' in log_actions(order)[-1][1]["error"][0]
