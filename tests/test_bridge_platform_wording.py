"""An organiser linked to Weezevent or Billetweb sees that platform's name, never "HelloAsso": event page and menu entry,
order page panel and comment, order and event logs, notification, sync report warnings (the fakes over HTTP)."""
import pytest
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry

from pretix_helloasso_bridge.models import FormLink, SyncReport
from pretix_helloasso_bridge.notifications import SyncFailed
from pretix_helloasso_bridge.sync import run_sync

from .helloasso_utils import orders_of


def event_url(event, suffix=""):
    return f"/control/event/{event.organizer.slug}/{event.slug}/{suffix}"


def bridge_url(event, suffix=""):
    return event_url(event, f"helloasso/{suffix}")


def link_through_page(client, event, ref, capture):
    with capture(execute=True):
        r = client.post(bridge_url(event, "link/"), {"form_ref": ref}, follow=True)
    assert "The first import has started." in r.content.decode()
    with scopes_disabled():
        assert FormLink.objects.get(event=event).last_success


def bridge_logs(event):
    with scopes_disabled():
        return [(e.action_type, str(e.display())) for e in LogEntry.objects.filter(event=event, action_type__startswith="pretix_helloasso_bridge.")]


@pytest.mark.django_db
def test_unlinked_event_has_a_neutral_menu_entry(wz_event, admin_client):
    page = admin_client.get(event_url(wz_event)).content.decode()
    assert "External ticketing" in page and "HelloAsso" not in page.split("<nav")[-1].split("</nav>")[0]
    bridge = admin_client.get(bridge_url(wz_event)).content.decode()
    assert "<h1>External ticketing</h1>" in bridge and "helloasso.com" not in bridge


@pytest.mark.django_db
def test_weezevent_event_order_page_and_logs_name_weezevent(wz_event, wz_connected, admin_client, django_capture_on_commit_callbacks):
    link_through_page(admin_client, wz_event, "weezevent:512345", django_capture_on_commit_callbacks)
    # the event page and its menu entry
    page = admin_client.get(bridge_url(wz_event)).content.decode()
    assert "<h1>Weezevent</h1>" in page and "HelloAsso" not in page
    assert "HelloAsso" not in admin_client.get(event_url(wz_event)).content.decode()

    # the order page: panel, number, promo code in the comment; neutral api_meta keys only
    order = orders_of(wz_event)["2029446"]  # Léo's ticket used the promo code ETUDIANT
    page = admin_client.get(event_url(wz_event, f"orders/{order.code}/")).content.decode()
    assert '<h3 class="panel-title">Weezevent</h3>' in page and "Weezevent order" in page and "2029446" in page
    assert "Weezevent promo code: ETUDIANT" in page and '<dd class="helloasso-promo-codes">ETUDIANT</dd>' in page
    assert "HelloAsso" not in page
    assert order.api_meta["platform"] == "weezevent" and order.api_meta["platform_order_id"] == "2029446"
    assert order.api_meta["promo_codes"] == ["ETUDIANT"] and not any(k.startswith("helloasso_") for k in order.api_meta)

    # a ticket refunded on Weezevent: the order's log names Weezevent
    tx, rows = wz_connected.add_transaction(["2001", 2003], date_id=90002)
    assert run_sync(wz_event).state == SyncReport.SUCCESS
    wz_connected.refund(rows[0]["id_participant"])
    assert run_sync(wz_event).orders_cancelled == 1
    new = orders_of(wz_event)[tx]
    page = admin_client.get(event_url(wz_event, f"orders/{new.code}/")).content.decode()
    assert "Weezevent: items were cancelled or refunded on the platform." in page and "HelloAsso" not in page
    logs = bridge_logs(wz_event)
    assert ("pretix_helloasso_bridge.link.created", "Weezevent: the event was linked to 512345.") in logs
    assert any(t == "pretix_helloasso_bridge.order.cancelled_on_helloasso" for t, _ in logs)
    assert all("Weezevent" in text and "HelloAsso" not in text for _, text in logs), logs

    # options and unlink: logged with the platform, message names it
    admin_client.post(bridge_url(wz_event, "options/"), {"send_emails": "", "paused": "on"})
    r = admin_client.post(bridge_url(wz_event, "unlink/"), follow=True).content.decode()
    assert "The link to Weezevent was removed." in r and "HelloAsso" not in r
    logs = bridge_logs(wz_event)  # still Weezevent once the link is gone (the provider is in the log data)
    assert ("pretix_helloasso_bridge.link.deleted", "Weezevent: the link to 512345 was removed; imported data stays.") in logs
    assert all("Weezevent" in text and "HelloAsso" not in text for _, text in logs), logs


@pytest.mark.django_db
def test_billetweb_order_page_catalogue_and_failure_notification(bw_event, bw_connected, admin_client, django_capture_on_commit_callbacks):
    link_through_page(admin_client, bw_event, "billetweb:1350001", django_capture_on_commit_callbacks)
    order = orders_of(bw_event)["264751"]
    page = admin_client.get(event_url(bw_event, f"orders/{order.code}/")).content.decode()
    assert '<h3 class="panel-title">Billetweb</h3>' in page and "Billetweb order" in page and "HelloAsso" not in page
    with scopes_disabled():
        assert not bw_event.quotas.filter(name__icontains="HelloAsso").exists()
        assert not bw_event.categories.filter(name__icontains="HelloAsso").exists()
        link = FormLink.objects.get(event=bw_event)
    # the sync-failed entry (written after repeated failures) and its notification name Billetweb
    bw_event.log_action("pretix_helloasso_bridge.sync.failed",
                        data={"error": "Billetweb is unavailable", "failures": 3, "provider": link.provider})
    with scopes_disabled():
        entry = LogEntry.objects.get(event=bw_event, action_type="pretix_helloasso_bridge.sync.failed")
        assert entry.display() == "Billetweb: the sync failed several times in a row (Billetweb is unavailable)."
        note = SyncFailed(bw_event).build_notification(entry)
    assert str(note.title) == "Billetweb orders are no longer imported"
    assert "HelloAsso" not in str(SyncFailed.verbose_name)


@pytest.mark.django_db
def test_helloasso_orders_keep_their_historical_keys_and_name(ha_event, ha_connected, admin_client, django_capture_on_commit_callbacks):
    with scopes_disabled():
        FormLink.objects.create(event=ha_event, form_ref="Event/soiree-de-gala-2026")
    assert run_sync(ha_event).state == SyncReport.SUCCESS
    order = next(iter(orders_of(ha_event).values()))
    assert order.api_meta["platform"] == "helloasso" and order.api_meta["helloasso_order_id"] == order.api_meta["platform_order_id"]
    page = admin_client.get(event_url(ha_event, f"orders/{order.code}/")).content.decode()
    assert '<h3 class="panel-title">HelloAsso</h3>' in page and "HelloAsso order" in page
    assert "<h1>HelloAsso</h1>" in admin_client.get(bridge_url(ha_event)).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("platform", ["billetweb", "weezevent"])
def test_imported_payments_belong_to_the_platforms_own_payment_provider(platform, request, admin_client, django_capture_on_commit_callbacks):
    """A Billetweb or Weezevent payment is shown as such on the order page and in the API, not as a raw identifier."""
    prefix = {"billetweb": "bw", "weezevent": "wz"}[platform]
    event = request.getfixturevalue(f"{prefix}_event")
    request.getfixturevalue(f"{prefix}_connected")
    link_through_page(admin_client, event, {"billetweb": "billetweb:1350001", "weezevent": "weezevent:512345"}[platform],
                      django_capture_on_commit_callbacks)
    with scopes_disabled():
        payments = [p for o in orders_of(event).values() for p in o.payments.filter(state="confirmed")]
        assert all(p.payment_provider is not None for p in payments)  # every imported payment has a registered provider
        payment = next(p for p in payments if p.provider == platform)  # free orders are paid with pretix's "free"
        order = payment.order
        provider = payment.payment_provider
        assert provider is not None and provider.identifier == platform
        assert str(provider.verbose_name) == {"billetweb": "Billetweb", "weezevent": "Weezevent"}[platform]
        assert not provider.is_allowed(None)
        remote_id = payment.info_data["payment_id"]
        assert remote_id and "helloasso_payment_id" not in payment.info_data
    page = admin_client.get(event_url(event, f"orders/{order.code}/")).content.decode()
    assert f"{provider.verbose_name} payment {remote_id}" in page and "HelloAsso" not in page
    api = admin_client.get(f"/api/v1/organizers/{event.organizer.slug}/events/{event.slug}/orders/{order.code}/")
    assert api.status_code == 200, api.content
    details = next(p for p in api.json()["payments"] if p["provider"] == platform)["details"]
    assert details["payment_id"] == remote_id and "helloasso_payment_id" not in details
