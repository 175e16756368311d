"""CRM bridge → DocuSeal through pretix's doors: order services, the data-sync queue, fake DocuSeal over HTTP, its webhooks."""
import json
import re
import time
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django_scopes import scope, scopes_disabled

from pretix.base.models import Event, Order, Organizer, Team, User
from pretix.base.services.orders import cancel_order

from pretix_crm_bridge import config
from pretix_crm_bridge.docuseal import DocuSealSync, external_id
from pretix_crm_bridge.models import SignatureProduct, SignatureRequest
from pretix_crm_bridge.webhook_secrets import ensure_path_secret, path_secret
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.docuseal import DEMO_API_KEY, DEMO_HMAC_SECRET, DEMO_SECRET_HEADER, DEMO_TEMPLATE_ID
from pretix_integrations_core.testing.fakeserver import FakeServer, json_response, route

from .crm_utils import make_order as _make_order, pay, queue_rows, results, run_queue

P = DocuSealSync.identifier
ORDERS = "/control/event/demo/concert/orders/"


def connect_docuseal(organizer, server, *, hmac=True, header=False):
    organizer.settings.set(config.DOCUSEAL_URL, server.api_url)
    crypto.set_secret(organizer.settings, config.DOCUSEAL_API_KEY, DEMO_API_KEY)
    if hmac:
        crypto.set_secret(organizer.settings, config.DOCUSEAL_HMAC_SECRET, DEMO_HMAC_SECRET)
    if header:
        organizer.settings.set(config.DOCUSEAL_HEADER_NAME, DEMO_SECRET_HEADER[0])
        crypto.set_secret(organizer.settings, config.DOCUSEAL_HEADER_VALUE, DEMO_SECRET_HEADER[1])


@pytest.fixture
def ds_event(event, organizer, item, fake_docuseal):
    event.enable_plugin("pretix_crm_bridge")
    event.settings.set("payment_manual__enabled", True)
    event.save()
    connect_docuseal(organizer, fake_docuseal)
    event.settings.set(config.DOCUSEAL_ENABLED, True)
    event.settings.set(config.DOCUSEAL_TEMPLATE, str(DEMO_TEMPLATE_ID))
    SignatureProduct.objects.create(event=event, item=item)
    return event


def make_order(event, item, **kwargs):
    """crm_utils' order, its tickets numbered 1, 2, ... as pretix numbers them."""
    order = _make_order(event, item, **kwargs)
    with scopes_disabled():
        for n, p in enumerate(order.positions.order_by("pk"), start=1):
            p.positionid = n
            p.save(update_fields=["positionid"])
    return order


def requests_of(order):
    with scopes_disabled():
        return list(SignatureRequest.objects.filter(order=order).order_by("position__positionid"))


def submitters(fake):
    return sorted(fake.submitters.values(), key=lambda s: s["id"])


def hook_url(organizer):
    return f"/_crm/docuseal/{organizer.slug}/{ensure_path_secret(organizer, 'docuseal')}/"


def post_hook(client, organizer, fake, event_type, obj_id, **knobs):
    body, headers = fake.build_webhook(event_type, fake.event_data(event_type, obj_id), **knobs)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k.lower() != "content-type"}
    return client.post(hook_url(organizer), body, content_type="application/json", **extra)


def paid_order(event, item, django_capture_on_commit_callbacks, count=1):
    order = make_order(event, item, count=count)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    return order


# -- the sync ---------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_paid_order_one_submission_per_ticket_never_twice(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = make_order(ds_event, item, count=2)
    with scope(organizer=ds_event.organizer):
        from pretix.base.signals import order_placed
        order_placed.send(ds_event, order=order)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_docuseal.submissions == {} and requests_of(order) == []  # not paid yet: nothing

    pay(order)
    assert [r.status for r in requests_of(order)] == ["pending", "pending"]  # shown at once, sent by the queue
    assert fake_docuseal.requests == []  # no HTTP in the request that marked the order paid
    run_queue(django_capture_on_commit_callbacks)
    subs = submitters(fake_docuseal)
    assert len(subs) == 2 and len(fake_docuseal.submissions) == 2
    with scopes_disabled():
        positions = list(order.positions.order_by("positionid"))
    assert [s["external_id"] for s in subs] == [external_id(p) for p in positions]
    assert subs[0]["external_id"] == f"pretix-demo-concert-{order.code}-1"
    assert subs[0]["email"] == "jane@example.org" and subs[0]["name"] == "Jane Doe"
    # a first attempt cannot have created anything: no lookup, one call per ticket
    assert [(r.method, r.path) for r in fake_docuseal.requests] == [("POST", "/submissions")] * 2
    assert json.loads(fake_docuseal.received("POST")[0].body)["template_id"] == DEMO_TEMPLATE_ID
    reqs = requests_of(order)
    assert [r.status for r in reqs] == ["sent", "sent"]
    assert reqs[0].submission_id == subs[0]["submission_id"] and reqs[0].signing_url == subs[0]["embed_src"]
    assert reqs[0].submitter_slug == subs[0]["slug"]
    res = results(order, P)
    assert res[1].sync_info["submission_id"] in fake_docuseal.submissions
    assert queue_rows(order, P) == []

    # the same job again (Sync now, or any later order signal): nothing new, no call at all
    fake_docuseal.reset()
    DocuSealSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_docuseal.submissions) == 2 and fake_docuseal.requests == []


@pytest.mark.django_db
def test_only_products_that_require_a_signature(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    with scopes_disabled():
        SignatureProduct.objects.all().delete()
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    assert fake_docuseal.requests == [] and requests_of(order) == []


@pytest.mark.django_db
def test_product_template_and_created_when_placed(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    other = fake_docuseal.add_template("Waiver", fields=("Signature",))
    with scopes_disabled():
        SignatureProduct.objects.filter(item=item).update(template_id=other)
    ds_event.settings.set(config.DOCUSEAL_WHEN, config.WHEN_PLACED)
    order = make_order(ds_event, item)
    with scope(organizer=ds_event.organizer):
        from pretix.base.signals import order_placed
        order_placed.send(ds_event, order=order)
    run_queue(django_capture_on_commit_callbacks)
    [sub] = fake_docuseal.submissions.values()
    assert sub["template_id"] == other and requests_of(order)[0].status == "sent"


@pytest.mark.django_db
def test_lost_answer_after_creating_never_duplicates(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks, monkeypatch):
    """DocuSeal creates the submission but its answer never arrives: the next attempt finds it by its external id."""
    import time
    monkeypatch.setattr(DocuSealSync, "read_timeout", 0.3)
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(method="POST", path=r"^/submissions$", delay=1.0)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and row.need_manual_retry is None
    time.sleep(1.0)
    assert len(fake_docuseal.submissions) == 1  # DocuSeal did create it; we did not hear back
    assert len(fake_docuseal.received("POST")) == 1  # and it was not sent twice blindly
    fake_docuseal.reset()
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(fake_docuseal.submissions) == 1
    assert [(r.method, r.path) for r in fake_docuseal.requests] == [("GET", "/submitters")]  # found, not sent again
    [req] = requests_of(order)
    [sub] = fake_docuseal.submitters.values()
    assert req.submitter_id == sub["id"] and req.status == "sent"


@pytest.mark.django_db
def test_connection_dropped_before_creating_then_created_once(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(method="POST", path=r"^/submissions$", drop=True)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and len(fake_docuseal.received("POST")) == 1
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(fake_docuseal.submissions) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("fault,mode,text", [
    ({"status": 401, "body": {"error": "Not authenticated"}}, "config", "Not authenticated"),
    ({"status": 403, "body": {"error": "Not authorized"}}, "config", "Not authorized"),
    ({"status": 422, "body": {"error": "Template has been archived"}, "method": "POST"}, "permanent", "Template has been archived"),
    ({"status": 404, "body": {"status": 404}, "method": "POST"}, "permanent", "HTTP status 404"),
])
def test_refusals_end_in_a_visible_failed_job(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks, fault, mode, text):
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(times=5, **fault)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == mode
    with scopes_disabled():
        entry = order.all_logentries().filter(action_type__startswith="pretix.event.order.data_sync.failed").last()
    assert "DocuSeal" in json.dumps(entry.parsed_data) and text in json.dumps(entry.parsed_data)
    assert len(fake_docuseal.submissions) == 0


@pytest.mark.django_db
def test_unknown_template_is_a_permanent_failure_with_the_reason(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    ds_event.settings.set(config.DOCUSEAL_TEMPLATE, "999")
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "permanent"
    with scopes_disabled():
        entry = order.all_logentries().filter(action_type="pretix.event.order.data_sync.failed.permanent").last()
    assert "Template not found" in json.dumps(entry.parsed_data)


@pytest.mark.django_db
def test_missing_template_is_a_config_failure(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    ds_event.settings.set(config.DOCUSEAL_TEMPLATE, "")
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "config" and fake_docuseal.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [
    {"status": 429, "body": {"error": "Too many requests"}},
    {"status": 429, "body": {"error": "Too many requests"}, "headers": {"Retry-After": "600"}},
    {"status": 500, "body": {"status": 500}},
    {"status": 503},
    {"drop": True},
])
def test_transient_failures_are_retried_later(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks, fault):
    from django.utils.timezone import now
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(method="POST", **fault)  # a POST is never repeated within the call
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and row.need_manual_retry is None
    wait = (row.not_before - now()).total_seconds()
    assert wait >= (590 if "Retry-After" in (fault.get("headers") or {}) else 59)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(fake_docuseal.submissions) == 1
    # the retry looked the request up (the POST might have arrived), found nothing, and sent it: once
    calls = [(r.method, r.path) for r in fake_docuseal.requests]
    assert calls == [("POST", "/submissions"), ("GET", "/submitters"), ("POST", "/submissions")]


@pytest.mark.django_db
def test_timeout_is_retried(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(DocuSealSync, "read_timeout", 0.3)
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(method="POST", status=503)
    run_queue(django_capture_on_commit_callbacks)
    fake_docuseal.fail_next(method="GET", delay=1.0, times=3)  # then the lookup does not answer in time
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 2 and row.need_manual_retry is None
    import time
    time.sleep(1.0)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(fake_docuseal.submissions) == 1


@pytest.mark.django_db
def test_retries_stop_after_max_attempts_with_a_readable_failed_job(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = make_order(ds_event, item)
    pay(order)
    fake_docuseal.fail_next(status=503, times=1000)
    for _ in range(DocuSealSync.max_attempts):
        run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "exceeded"
    with scopes_disabled():
        entry = order.all_logentries().get(action_type="pretix.event.order.data_sync.failed.exceeded")
    said = json.dumps(entry.parsed_data)
    # after repeated 503s the core's breaker pauses the calls: the message says so, without address or key
    assert "DocuSeal failed several times in a row" in said and fake_docuseal.url not in said and DEMO_API_KEY not in said
    assert len(fake_docuseal.submissions) == 0


@pytest.mark.django_db
def test_test_mode_orders_are_not_sent(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = make_order(ds_event, item)
    with scopes_disabled():
        Order.objects.filter(pk=order.pk).update(testmode=True)
    order.refresh_from_db()
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_docuseal.requests == []


# -- cancel and resend --------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_cancelling_the_order_archives_the_submission(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [req] = requests_of(order)
    fake_docuseal.reset()
    with scope(organizer=ds_event.organizer):
        cancel_order(order.pk)
    assert fake_docuseal.requests == []  # not in the admin's request
    run_queue(django_capture_on_commit_callbacks)
    assert [(r.method, r.path) for r in fake_docuseal.requests] == [("DELETE", f"/submissions/{req.submission_id}")]
    assert fake_docuseal.submissions[req.submission_id]["archived_at"]
    [req] = requests_of(order)
    assert req.status == "archived"
    with scopes_disabled():
        assert order.all_logentries().filter(action_type="pretix_crm_bridge.docuseal.archived").exists()
    fake_docuseal.reset()
    DocuSealSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert fake_docuseal.requests == []


@pytest.mark.django_db
def test_reactivated_order_gets_a_new_request(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    from pretix.base.services.orders import reactivate_order
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [old] = requests_of(order)
    with scope(organizer=ds_event.organizer):
        cancel_order(order.pk)
    run_queue(django_capture_on_commit_callbacks)
    order.refresh_from_db()
    with scope(organizer=ds_event.organizer):
        reactivate_order(order)
    run_queue(django_capture_on_commit_callbacks)
    order.refresh_from_db()
    [new] = requests_of(order)
    assert order.status == "p" and new.status == "sent" and new.submission_id != old.submission_id
    assert new.external_id == old.external_id + "-g2" and len(fake_docuseal.submissions) == 2


@pytest.mark.django_db
def test_ticket_changed_to_a_product_without_signature_archives(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    from decimal import Decimal

    from pretix.base.models import Item
    from pretix.base.services.orders import OrderChangeManager
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [req] = requests_of(order)
    with scopes_disabled():
        other = Item.objects.create(event=ds_event, name="Standing", default_price=Decimal("16.00"), admission=True)
        ds_event.quotas.first().items.add(other)
    with scope(organizer=ds_event.organizer):
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(), other, None)
        ocm.commit()
    run_queue(django_capture_on_commit_callbacks)
    assert requests_of(order)[0].status == "archived" and fake_docuseal.submissions[req.submission_id]["archived_at"]


@pytest.mark.django_db
def test_cancel_while_the_job_waits_sends_nothing(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = make_order(ds_event, item)
    pay(order)
    with scope(organizer=ds_event.organizer):
        cancel_order(order.pk)
    run_queue(django_capture_on_commit_callbacks)
    assert fake_docuseal.requests == [] and requests_of(order) == []


@pytest.mark.django_db
def test_resend_from_the_order_page(admin_client, ds_event, item, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [req] = requests_of(order)
    fake_docuseal.reset()
    url = f"/control/event/demo/concert/crm/orders/{order.code}/signatures/1/resend/"
    r = admin_client.post(url, follow=True)
    assert r.status_code == 200 and fake_docuseal.requests == []
    run_queue(django_capture_on_commit_callbacks)
    [put] = fake_docuseal.received("PUT")
    assert put.path == f"/submitters/{req.submitter_id}" and json.loads(put.body) == {"send_email": True}
    with scopes_disabled():
        assert order.all_logentries().filter(action_type="pretix_crm_bridge.docuseal.resent").exists()
        assert order.all_logentries().get(action_type="pretix_crm_bridge.docuseal.resend_requested").user.email == "admin@example.org"

    # declined: resending makes a new request, under a new external id
    fake_docuseal.decline_submitter(req.submitter_id)
    assert deliver(admin_client, organizer, fake_docuseal, "form.declined", req.submitter_id,
                   django_capture_on_commit_callbacks).status_code == 202
    assert requests_of(order)[0].status == "declined"
    admin_client.post(url)
    run_queue(django_capture_on_commit_callbacks)
    [new] = requests_of(order)
    assert new.status == "sent" and new.submission_id != req.submission_id and new.external_id.endswith("-g2")
    assert len(fake_docuseal.submissions) == 2


# -- webhooks -------------------------------------------------------------------------------------------------

@pytest.fixture
def sent(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    return order, requests_of(order)[0]


def deliver(client, organizer, fake, event_type, obj_id, capture, **knobs):
    with capture(execute=True):
        return post_hook(client, organizer, fake, event_type, obj_id, **knobs)


@pytest.mark.django_db
def test_webhooks_move_the_status_and_store_the_signed_document(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    fake_docuseal.open_submitter(req.submitter_id)
    r = deliver(client, organizer, fake_docuseal, "form.viewed", req.submitter_id, django_capture_on_commit_callbacks)
    assert r.status_code == 202
    assert requests_of(order)[0].status == "opened"
    assert deliver(client, organizer, fake_docuseal, "form.started", req.submitter_id, django_capture_on_commit_callbacks).status_code == 202
    assert requests_of(order)[0].status == "started"
    fake_docuseal.complete_submitter(req.submitter_id)
    assert deliver(client, organizer, fake_docuseal, "form.completed", req.submitter_id, django_capture_on_commit_callbacks).status_code == 202
    done = requests_of(order)[0]
    assert done.status == "completed" and done.signed_pdf_url == fake_docuseal.submissions[req.submission_id]["documents"][0]["url"]
    # a late "viewed" never moves it back
    deliver(client, organizer, fake_docuseal, "form.viewed", req.submitter_id, django_capture_on_commit_callbacks, timestamp="2026-01-01T00:00:00Z")
    assert requests_of(order)[0].status == "completed"
    with scopes_disabled():
        actions = [e.action_type for e in order.all_logentries().filter(action_type__startswith="pretix_crm_bridge.docuseal").order_by("pk")]
        texts = [e.display() for e in order.all_logentries().filter(action_type="pretix_crm_bridge.docuseal.completed")]
    assert actions == ["pretix_crm_bridge.docuseal.sent", "pretix_crm_bridge.docuseal.viewed", "pretix_crm_bridge.docuseal.started",
                       "pretix_crm_bridge.docuseal.completed"]
    assert texts == ["DocuSeal: ticket #1 was signed."]


@pytest.mark.django_db
def test_declined_and_expired(client, ds_event, item, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks, count=2)
    a, b = requests_of(order)
    fake_docuseal.decline_submitter(a.submitter_id, reason="I do not agree")
    deliver(client, organizer, fake_docuseal, "form.declined", a.submitter_id, django_capture_on_commit_callbacks)
    fake_docuseal.submissions[b.submission_id]["status"] = "expired"
    deliver(client, organizer, fake_docuseal, "submission.expired", b.submission_id, django_capture_on_commit_callbacks)
    a, b = requests_of(order)
    assert (a.status, a.decline_reason, b.status) == ("declined", "I do not agree", "expired")


@pytest.mark.django_db
@pytest.mark.parametrize("knobs", [{"wrong_key": True}, {"stale": True}, {"omit_signature": True}])
def test_forged_or_stale_webhooks_are_refused(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks, knobs):
    order, req = sent
    fake_docuseal.complete_submitter(req.submitter_id)
    r = deliver(client, organizer, fake_docuseal, "form.completed", req.submitter_id, django_capture_on_commit_callbacks, **knobs)
    assert r.status_code == 403 and requests_of(order)[0].status == "sent"


@pytest.mark.django_db
def test_altered_body_and_wrong_url_secret_are_refused(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    fake_docuseal.complete_submitter(req.submitter_id)
    body, headers = fake_docuseal.build_webhook("form.completed", fake_docuseal.event_data("form.completed", req.submitter_id))
    altered = body.replace(b'"completed"', b'"declined"', 1)
    extra = {"HTTP_X_DOCUSEAL_SIGNATURE": headers["X-Docuseal-Signature"]}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(hook_url(organizer), altered, content_type="application/json", **extra).status_code == 403
        assert client.post(f"/_crm/docuseal/{organizer.slug}/wrong-secret/", body, content_type="application/json",
                           **extra).status_code == 404
    assert requests_of(order)[0].status == "sent"


@pytest.mark.django_db
def test_replayed_webhook_is_acknowledged_once(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    fake_docuseal.open_submitter(req.submitter_id)
    body, headers = fake_docuseal.build_webhook("form.viewed", fake_docuseal.event_data("form.viewed", req.submitter_id))
    extra = {"HTTP_X_DOCUSEAL_SIGNATURE": headers["X-Docuseal-Signature"]}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(hook_url(organizer), body, content_type="application/json", **extra).status_code == 202
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(hook_url(organizer), body, content_type="application/json", **extra)
    assert r.status_code == 200 and r.json() == {"status": "duplicate"}
    with scopes_disabled():
        assert order.all_logentries().filter(action_type="pretix_crm_bridge.docuseal.viewed").count() == 1


@pytest.mark.django_db
def test_older_docuseal_with_a_secret_header(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    del organizer.settings[config.DOCUSEAL_HMAC_SECRET]
    organizer.settings.set(config.DOCUSEAL_HEADER_NAME, DEMO_SECRET_HEADER[0])
    crypto.set_secret(organizer.settings, config.DOCUSEAL_HEADER_VALUE, DEMO_SECRET_HEADER[1])
    fake_docuseal.open_submitter(req.submitter_id)
    r = deliver(client, organizer, fake_docuseal, "form.viewed", req.submitter_id, django_capture_on_commit_callbacks,
                wrong_secret_header=True)
    assert r.status_code == 403
    r = deliver(client, organizer, fake_docuseal, "form.viewed", req.submitter_id, django_capture_on_commit_callbacks, omit_signature=True)
    assert r.status_code == 202 and requests_of(order)[0].status == "opened"


@pytest.mark.django_db
def test_regenerated_webhook_url_replaces_the_old_one(admin_client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    old = hook_url(organizer)
    r = admin_client.post("/control/organizer/demo/crm/webhook-url/docuseal/", follow=True)
    assert r.status_code == 200 and old not in r.content.decode() and hook_url(organizer) in r.content.decode()
    fake_docuseal.open_submitter(req.submitter_id)
    body, headers = fake_docuseal.build_webhook("form.viewed", fake_docuseal.event_data("form.viewed", req.submitter_id))
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(old, body, content_type="application/json", HTTP_X_DOCUSEAL_SIGNATURE=headers["X-Docuseal-Signature"])
    assert r.status_code == 404 and requests_of(order)[0].status == "sent"


@pytest.mark.django_db
def test_webhook_without_any_verification_configured_is_refused(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    del organizer.settings[config.DOCUSEAL_HMAC_SECRET]
    r = deliver(client, organizer, fake_docuseal, "form.viewed", req.submitter_id, django_capture_on_commit_callbacks)
    assert r.status_code == 403


@pytest.mark.django_db
def test_webhook_of_another_organizer_touches_nothing(client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        other.enable_plugin("pretix_crm_bridge")
        other.save()
    connect_docuseal(other, fake_docuseal)
    fake_docuseal.complete_submitter(req.submitter_id)
    r = deliver(client, other, fake_docuseal, "form.completed", req.submitter_id, django_capture_on_commit_callbacks)
    assert r.status_code == 202 and requests_of(order)[0].status == "sent"
    # and one organiser's URL secret does not open another's door
    with django_capture_on_commit_callbacks(execute=True):
        body, headers = fake_docuseal.build_webhook("form.completed", fake_docuseal.event_data("form.completed", req.submitter_id))
        r = client.post(f"/_crm/docuseal/{organizer.slug}/{path_secret(other, 'docuseal')}/", body, content_type="application/json",
                        HTTP_X_DOCUSEAL_SIGNATURE=headers["X-Docuseal-Signature"])
    assert r.status_code == 404


# -- buyer's pages and emails -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_order_page_shows_the_signing_form_and_link(client, sent, ds_event):
    order, req = sent
    r = client.get(f"/demo/concert/order/{order.code}/{order.secret}/")
    page = r.content.decode()
    assert r.status_code == 200
    assert f'<docuseal-form data-src="{req.signing_url}"' in page and f'href="{req.signing_url}"' in page
    assert "/js/form.js" in page
    assert "script-src" in r["Content-Security-Policy"] and req.signing_url.split("/s/")[0] in r["Content-Security-Policy"]


@pytest.mark.django_db
def test_attendee_ticket_page_shows_only_its_own_request(client, ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks, count=2)
    a, b = requests_of(order)
    with scopes_disabled():
        p = a.position
    page = client.get(f"/demo/concert/ticket/{order.code}/{p.positionid}/{p.web_secret}/").content.decode()
    assert a.signing_url in page and b.signing_url not in page


@pytest.mark.django_db
def test_order_page_while_the_request_is_prepared(client, ds_event, item):
    order = make_order(ds_event, item)
    pay(order)
    page = client.get(f"/demo/concert/order/{order.code}/{order.secret}/").content.decode()
    assert "being prepared" in page and "<docuseal-form" not in page


@pytest.mark.django_db
def test_mail_placeholder(sent, ds_event, item):
    order, req = sent
    ds_event.settings.set("mail_text_order_custom_mail", "Please sign: {signature_links}")
    with scope(organizer=ds_event.organizer):
        from pretix.base.email import get_email_context
        ctx = get_email_context(event=ds_event, order=order)
    assert str(ctx["signature_links"]) == f"Ticket (Jane Doe): {req.signing_url}"
    # before the queue ran, the link is the order page (where the form appears)
    order2 = make_order(ds_event, item)
    pay(order2)
    with scope(organizer=ds_event.organizer):
        ctx = get_email_context(event=ds_event, order=order2)
    assert re.match(rf"^Ticket \(Jane Doe\): http.*/order/{order2.code}/{order2.secret}/$", str(ctx["signature_links"]))


def _html_part(m):
    """The text/html part of a sent mail (pretix puts it in a multipart/related with its images)."""
    for content, mimetype in m.alternatives:
        if mimetype == "text/html":
            return content
        for part in content.walk():
            if part.get_content_type() == "text/html":
                return part.get_payload(decode=True).decode()
    raise AssertionError("no HTML part")


def _html_link(html, url):
    """``url`` as a link in an HTML mail part (pretix escapes the text, then turns addresses into links)."""
    from django.utils.html import escape
    return f'href="{escape(url)}"' in html


@pytest.mark.django_db
def test_mail_placeholder_in_the_order_paid_email(ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    """The organiser puts {signature_links} in the "order paid" email text; pretix sends it when the order is paid,
    the link in the plain text and, as a link, in the HTML part."""
    ds_event.settings.set("mail_text_order_paid", "Thanks! Please sign: {signature_links}")
    order = make_order(ds_event, item)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    m = [m for m in mail.outbox if "Please sign" in m.body][0]
    assert "Ticket (Jane Doe): http" in m.body and f"/order/{order.code}/{order.secret}/" in m.body
    url = re.search(r"Ticket \(Jane Doe\): (\S+)", m.body).group(1)
    html = _html_part(m)
    assert "Please sign" in html and "Ticket (Jane Doe): " in html and _html_link(html, url)


@pytest.mark.django_db
def test_mail_placeholder_signing_link_in_plain_and_html(sent, ds_event):
    """Once the request exists, a mail with {signature_links} carries the signing link itself, in both parts."""
    from i18nfield.strings import LazyI18nString

    from pretix.base.email import get_email_context
    order, req = sent
    mail.outbox.clear()
    with scope(organizer=ds_event.organizer):
        order.send_mail("Sign", LazyI18nString("Please sign:\n\n{signature_links}"), get_email_context(event=ds_event, order=order))
    m = mail.outbox[-1]
    assert f"Ticket (Jane Doe): {req.signing_url}" in m.body
    # pretix escapes it (and links addresses whose host has a TLD; the fake's 127.0.0.1 has none)
    from django.utils.html import escape
    assert f"Ticket (Jane Doe): {escape(req.signing_url)}" in _html_part(m)


@pytest.mark.django_db
def test_mail_without_the_placeholder_does_not_compute_it(sent, ds_event, item):
    """pretix renders every placeholder for every e-mail: {signature_links} is only computed when the text uses it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from i18nfield.strings import LazyI18nString

    from pretix.base.email import get_email_context
    order, req = sent
    with scope(organizer=ds_event.organizer):
        with CaptureQueriesContext(connection) as ctx:
            context = get_email_context(event=ds_event, order=order)
            order.send_mail("Hello", LazyI18nString("Hello {name}"), context)
        assert not [q for q in ctx.captured_queries if "signatureproduct" in q["sql"] or "signaturerequest" in q["sql"]]
        with CaptureQueriesContext(connection) as ctx:
            order.send_mail("Sign", LazyI18nString("Sign: {signature_links}"), context)
        used = [q for q in ctx.captured_queries if "signatureproduct" in q["sql"] or "signaturerequest" in q["sql"]]
    assert len(used) == 1  # the tickets and their requests in one query, computed once for both parts
    assert req.signing_url in mail.outbox[-1].body


# -- control panel ----------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_control_order_page_status_and_signed_pdf(admin_client, client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    page = admin_client.get(f"{ORDERS}{order.code}/").content.decode()
    assert "Signatures (DocuSeal)" in page and ">sent<" not in page and "sent" in page and "Resend" in page
    fake_docuseal.complete_submitter(req.submitter_id)
    deliver(admin_client, organizer, fake_docuseal, "form.completed", req.submitter_id, django_capture_on_commit_callbacks)
    page = admin_client.get(f"{ORDERS}{order.code}/").content.decode()
    done = requests_of(order)[0]
    assert "signed" in page and done.signed_pdf_url in page and "Signed document" in page
    assert "DocuSeal: ticket #1 was signed." in page


@pytest.mark.django_db
def test_order_list_filter(admin_client, ds_event, item, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    signed = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    pending = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    declined = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    unpaid = make_order(ds_event, item)
    s, d = requests_of(signed)[0], requests_of(declined)[0]
    fake_docuseal.complete_submitter(s.submitter_id)
    deliver(admin_client, organizer, fake_docuseal, "form.completed", s.submitter_id, django_capture_on_commit_callbacks)
    fake_docuseal.decline_submitter(d.submitter_id)
    deliver(admin_client, organizer, fake_docuseal, "form.declined", d.submitter_id, django_capture_on_commit_callbacks)

    def listed(value):
        page = admin_client.get(ORDERS, {"docuseal-status": value}).content.decode()
        return {o.code for o in (signed, pending, declined, unpaid) if o.code in page}

    assert listed("pending") == {pending.code}
    assert listed("completed") == {signed.code}
    assert listed("declined") == {declined.code}
    assert listed("none") == {unpaid.code}
    assert "DocuSeal signatures" in admin_client.get(f"{ORDERS}search").content.decode()


@pytest.mark.django_db
def test_health_and_dashboard_counts(admin_client, sent, organizer, fake_docuseal, django_capture_on_commit_callbacks):
    page = admin_client.get("/control/organizer/demo/crm/").content.decode()
    assert "DocuSeal" in page and "1 signatures pending" in page and "/_crm/docuseal/demo/" in page
    page = admin_client.get("/control/event/demo/concert/").content.decode()
    assert "DocuSeal" in page and "1 signatures pending" in page and "0 signed" in page


@pytest.mark.django_db
def test_connection_test_outcomes(admin_client, organizer, fake_docuseal):
    r = admin_client.post("/control/organizer/demo/crm/test/docuseal/", follow=True)
    assert "not set up" in r.content.decode()
    connect_docuseal(organizer, fake_docuseal)
    r = admin_client.post("/control/organizer/demo/crm/test/docuseal/", follow=True)
    assert "The connection to DocuSeal works" in r.content.decode()
    crypto.set_secret(organizer.settings, config.DOCUSEAL_API_KEY, "wrong")
    r = admin_client.post("/control/organizer/demo/crm/test/docuseal/", follow=True)
    assert "DocuSeal refused the credentials (HTTP 401)" in r.content.decode() and "Not authenticated" in r.content.decode()

    from pretix_integrations_core.testing.docuseal import FakeDocuSeal
    with FakeDocuSeal(base_path="/api") as selfhosted:
        connect_docuseal(organizer, selfhosted)
        organizer.settings.set(config.DOCUSEAL_URL, selfhosted.url)  # the instance's address, without /api
        r = admin_client.post("/control/organizer/demo/crm/test/docuseal/", follow=True)
        assert "DocuSeal answered, but not its API at this address (HTTP 404)" in r.content.decode()
        organizer.settings.set(config.DOCUSEAL_URL, selfhosted.api_url)
        r = admin_client.post("/control/organizer/demo/crm/test/docuseal/", follow=True)
        assert "The connection to DocuSeal works" in r.content.decode()


@pytest.mark.django_db
def test_connection_saved_encrypted_and_masked(admin_client, organizer, fake_docuseal):
    from .test_crm_settings import connection_data
    r = admin_client.post("/control/organizer/demo/crm/", connection_data(**{
        config.DOCUSEAL_URL: fake_docuseal.api_url, config.DOCUSEAL_API_KEY: DEMO_API_KEY, config.DOCUSEAL_HMAC_SECRET: DEMO_HMAC_SECRET,
        config.DOCUSEAL_HEADER_NAME: "", config.DOCUSEAL_HEADER_VALUE: ""}), follow=True)
    assert r.status_code == 200
    organizer.settings.flush()
    stored = organizer.settings.get(config.DOCUSEAL_API_KEY)
    assert stored != DEMO_API_KEY and crypto.get_secret(organizer.settings, config.DOCUSEAL_API_KEY) == DEMO_API_KEY
    page = admin_client.get("/control/organizer/demo/crm/").content.decode()
    assert DEMO_API_KEY not in page and DEMO_HMAC_SECRET not in page and "/_crm/docuseal/demo/" in page
    r = admin_client.post("/control/organizer/demo/crm/", connection_data(**{
        config.DOCUSEAL_URL: fake_docuseal.api_url, config.DOCUSEAL_API_KEY: ""}))
    assert "Enter the API key that goes with this URL." in r.content.decode()


@pytest.mark.django_db
def test_event_settings_and_product_setting_copied(admin_client, organizer, event, item, fake_docuseal):
    event.enable_plugin("pretix_crm_bridge")
    event.save()
    connect_docuseal(organizer, fake_docuseal)
    r = admin_client.post("/control/event/demo/concert/crm/", {
        config.DOCUSEAL_ENABLED: "on", config.DOCUSEAL_TEMPLATE: "1000001", config.DOCUSEAL_WHEN: config.WHEN_PLACED}, follow=True)
    assert r.status_code == 200
    r = admin_client.post("/control/event/demo/concert/crm/", {config.DOCUSEAL_ENABLED: "on", config.DOCUSEAL_TEMPLATE: "abc"})
    assert "Enter the template&#x27;s number" in r.content.decode() or "Enter the template's number" in r.content.decode()

    page = admin_client.get(f"/control/event/demo/concert/items/{item.pk}/").content.decode()
    assert "Each ticket requires a signature" in page
    data = {k: v for k, v in _item_form_data(admin_client, item).items()}
    data.update({"docuseal-requires_signature": "on", "docuseal-template_id": "1000002"})
    r = admin_client.post(f"/control/event/demo/concert/items/{item.pk}/", data, follow=True)
    assert r.status_code == 200
    with scopes_disabled():
        assert SignatureProduct.objects.get(item=item).template_id == 1000002
        copy = Event.objects.create(organizer=organizer, name="Copy", slug="copy", date_from=event.date_from)
        copy.copy_data_from(event)
        copy.settings.flush()
        assert copy.settings.get(config.DOCUSEAL_ENABLED, as_type=bool)
        assert copy.settings.get(config.DOCUSEAL_TEMPLATE) == "1000001" and copy.settings.get(config.DOCUSEAL_WHEN) == config.WHEN_PLACED
        new_item = copy.items.get()
        assert SignatureProduct.objects.get(item=new_item).template_id == 1000002 and SignatureProduct.objects.get(item=new_item).event == copy


def _item_form_data(client, item):
    """The product page's current form values, as a browser would send them back."""
    from bs4 import BeautifulSoup
    page = client.get(f"/control/event/demo/concert/items/{item.pk}/").content.decode()
    soup = BeautifulSoup(page, "html.parser")
    form = soup.find("form", attrs={"method": "post"})
    data = {}
    for el in form.find_all(["input", "select", "textarea"]):
        name = el.get("name")
        if not name:
            continue
        if el.name == "input" and el.get("type") in ("checkbox", "radio"):
            if el.has_attr("checked"):
                data[name] = el.get("value", "on")
        elif el.name == "select":
            opt = el.find("option", selected=True)
            if opt is not None:
                data[name] = opt.get("value", "")
        elif el.name == "textarea":
            data[name] = el.text
        else:
            data[name] = el.get("value", "")
    return data


# -- permissions ------------------------------------------------------------------------------------------------

@pytest.fixture
def reader_client(client, organizer):
    u = User.objects.create_user("reader@example.org", "reader-password")
    t = Team.objects.create(organizer=organizer, name="Readers", all_events=True, limit_event_permissions={"event.orders:read": True})
    t.members.add(u)
    assert client.login(email="reader@example.org", password="reader-password")
    return client


@pytest.mark.django_db
def test_resend_needs_order_write_permission(reader_client, sent, fake_docuseal, django_capture_on_commit_callbacks):
    order, req = sent
    page = reader_client.get(f"{ORDERS}{order.code}/").content.decode()
    assert "Signatures (DocuSeal)" in page and "Resend" not in page
    r = reader_client.post(f"/control/event/demo/concert/crm/orders/{order.code}/signatures/1/resend/")
    assert r.status_code == 403
    assert not requests_of(order)[0].resend_requested and queue_rows(order, P) == []


@pytest.mark.django_db
def test_no_resend_across_organizers(admin_client, sent, fake_docuseal):
    order, req = sent
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        Event.objects.create(organizer=other, name="X", slug="x", date_from=order.event.date_from, plugins="pretix_crm_bridge")
    r = admin_client.post(f"/control/event/other/x/crm/orders/{order.code}/signatures/1/resend/")
    assert r.status_code in (403, 404)
    assert not requests_of(order)[0].resend_requested


@pytest.mark.django_db
def test_connection_pages_need_organizer_settings_permission(reader_client, organizer):
    assert reader_client.post("/control/organizer/demo/crm/test/docuseal/").status_code == 403
    assert reader_client.get("/control/organizer/demo/crm/").status_code == 403


# -- demo ---------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_demo_organiser_signs_with_the_docuseal_simulator(client, django_capture_on_commit_callbacks):
    from decimal import Decimal

    from demo import simulators
    from demo.bootstrap import bootstrap_demo, configure_docuseal
    from pretix_integrations_core.testing.docuseal import FakeDocuSeal

    spec = next(s for s in simulators.SIMULATORS if s.key == "docuseal")
    assert spec.configure == "demo.bootstrap:configure_docuseal"
    objs = bootstrap_demo()
    with FakeDocuSeal() as server:  # the demo's simulator, on a free port
        configure_docuseal(objs.organizer, server.url, DEMO_API_KEY)
        stored = objs.organizer.settings.get(config.DOCUSEAL_API_KEY)
        configure_docuseal(objs.organizer, server.url, DEMO_API_KEY)  # next start: nothing re-encrypted
        objs.organizer.settings.flush()
        assert objs.organizer.settings.get(config.DOCUSEAL_API_KEY) == stored and crypto.is_encrypted(stored)
        with scopes_disabled():
            item = objs.event.items.get(default_price=Decimal("16.00"))
            assert SignatureProduct.objects.filter(item=item).exists()
        order = make_order(objs.event, item)
        pay(order)
        run_queue(django_capture_on_commit_callbacks)
        [req] = requests_of(order)
        assert req.status == "sent" and req.signing_url.startswith(server.url + "/s/")
        page = client.get(f"/demo/demo/order/{order.code}/{order.secret}/").content.decode()
        assert req.signing_url in page

        # the buyer opens the link and signs on the simulator's page; its signed webhooks reach the organiser's URL
        hook = configure_docuseal(objs.organizer, server.url, DEMO_API_KEY)
        assert hook.endswith(f"/_crm/docuseal/demo/{path_secret(objs.organizer, 'docuseal')}/")
        with Recorder() as pretix_stand_in:  # no live pretix in tests: catch what the simulator sends, then hand it in
            server.webhook_url = pretix_stand_in.url + "/hook"
            import requests
            assert "Sign" in requests.get(req.signing_url, timeout=5).text
            assert requests.post(req.signing_url + "/sign", timeout=5).status_code == 200
            deadline = time.time() + 5
            while len(pretix_stand_in.requests) < 2 and time.time() < deadline:
                time.sleep(0.05)
        viewed, completed = pretix_stand_in.requests
        for delivery in (viewed, completed):
            with django_capture_on_commit_callbacks(execute=True):
                r = client.post(urlsplit(hook).path, delivery.body, content_type="application/json",
                                HTTP_X_DOCUSEAL_SIGNATURE=delivery.header("X-Docuseal-Signature"))
            assert r.status_code == 202
        [req] = requests_of(order)
        assert req.status == "completed" and req.signed_pdf_url.startswith(server.url)


class Recorder(FakeServer):
    label = "recorder"

    @route("POST", r"/hook")
    def hook(self, req):
        return json_response({})


@pytest.mark.django_db
def test_data_shredder(client, organizer, ds_event, item, fake_docuseal, django_capture_on_commit_callbacks):
    order = paid_order(ds_event, item, django_capture_on_commit_callbacks)
    [req] = requests_of(order)
    fake_docuseal.decline_submitter(req.submitter_id, reason="Jane's private reason")
    deliver(client, organizer, fake_docuseal, "form.declined", req.submitter_id, django_capture_on_commit_callbacks)
    with scope(organizer=organizer):
        shredder = ds_event.get_data_shredders()["pretix_crm_bridge_docuseal"]
        [(name, _type, content)] = list(shredder.generate_files())
        assert "Jane's private reason" in content
        shredder.shred_data()
    [req] = requests_of(order)
    assert (req.signing_url, req.decline_reason, req.status) == ("", "", "declined")


# -- cost of the request that marks an order paid -------------------------------------------------------------

def _paid_queries(order):
    """The SQL statements of the request that marks ``order`` paid, without savepoints and without hierarkey's settings
    reads (served from the cache in production; inside a test's transaction, after a settings change, every read goes
    to the database)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    with CaptureQueriesContext(connection) as ctx:
        pay(order)
    return [q["sql"] for q in ctx.captured_queries
            if "SAVEPOINT" not in q["sql"] and "_settingsstore" not in q["sql"]]


@pytest.mark.django_db
def test_marking_paid_with_docuseal_adds_only_a_few_queries(ds_event, item, fake_docuseal):
    """DocuSeal on adds at most a few queries to the request that marks an order paid (its e-mail included), and no
    HTTP: the rows of the tickets without a request (one INSERT … SELECT), pretix's queue entry (two)."""
    orders = [make_order(ds_event, item, count=3) for _ in range(4)]
    pay(orders[0])  # warm-up (content types, ...)
    on = _paid_queries(orders[1])
    ds_event.settings.set(config.DOCUSEAL_ENABLED, False)
    pay(orders[2])
    off = _paid_queries(orders[3])
    assert [r.status for r in requests_of(orders[1])] == ["pending"] * 3  # still shown at once
    assert requests_of(orders[3]) == []
    assert fake_docuseal.requests == []
    extra = [q for q in on if "signaturerequest" in q or "signatureproduct" in q]
    assert len(extra) == 1 and extra[0].startswith("INSERT"), extra
    assert len(on) - len(off) <= 3, f"{len(on)} queries with DocuSeal on, {len(off)} off:\n" + "\n".join(
        q for q in on if q not in off)
