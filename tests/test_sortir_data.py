import csv
import io
from datetime import timedelta

import pytest
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry, Team

from pretix_sortir.models import ArchivedUsageCount, CardUsage
from pretix_sortir.privacy import SortirDataShredder, apply_retention
from tests.sortir_utils import VALID, VALID2, checkout


@pytest.fixture
def api_client(client, organizer, sortir_event):
    team = Team.objects.create(organizer=organizer, name="API", all_events=True, all_event_permissions=True)
    token = team.tokens.create(name="api")
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.token}"
    return client


@pytest.fixture
def two_orders(sortir_event, paid_sortir_item):
    from django.test import Client
    o1 = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    o2 = checkout(Client(), sortir_event, paid_sortir_item, [VALID2], pay_manually=True)
    return o1, o2


@pytest.mark.django_db
def test_rest_api_lists_usages_read_only(api_client, sortir_event, two_orders):
    url = f"/api/v1/organizers/{sortir_event.organizer.slug}/events/{sortir_event.slug}/sortir_usages/"
    r = api_client.get(url)
    assert r.status_code == 200
    results = r.json()["results"]
    assert {(u["order"], u["card_last4"], u["state"]) for u in results} == {
        (two_orders[0].code, "0001", "validated"), (two_orders[1].code, "0002", "validated")}
    assert "card_digest" not in results[0] and "service_key_secret" not in results[0]
    assert api_client.get(url + "?state=used").json()["count"] == 0
    assert api_client.post(url, {}).status_code == 405


@pytest.mark.django_db
def test_rest_api_needs_orders_permission_and_active_plugin(client, organizer, sortir_event, two_orders):
    team = Team.objects.create(organizer=organizer, name="Vouchers only", all_events=True,
                               limit_event_permissions={"event.vouchers:read": True})
    token = team.tokens.create(name="v")
    url = f"/api/v1/organizers/{sortir_event.organizer.slug}/events/{sortir_event.slug}/sortir_usages/"
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {token.token}").status_code == 403
    sortir_event.disable_plugin("pretix_sortir")
    sortir_event.save()
    full = Team.objects.create(organizer=organizer, name="All", all_events=True, all_event_permissions=True).tokens.create(name="a")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {full.token}").status_code == 404


@pytest.mark.django_db(transaction=True)  # pretix's export task sets the isolation level on PostgreSQL: no wrapping transaction
def test_exporter_csv_through_pretix_export_api(api_client, sortir_event, two_orders):
    base = f"/api/v1/organizers/{sortir_event.organizer.slug}/events/{sortir_event.slug}/exporters/"
    assert any(e["identifier"] == "pretix_sortir_usages" for e in api_client.get(base).json()["results"])
    r = api_client.post(base + "pretix_sortir_usages/run/", {"_format": "default"}, format="json")
    assert r.status_code == 202, r.content
    r = api_client.get(r.json()["download"])
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode() if hasattr(r, "streaming_content") else r.content.decode())))
    assert rows[0][0] == "Order code"
    assert {(row[0], row[4]) for row in rows[1:]} == {(two_orders[0].code, "0001"), (two_orders[1].code, "0002")}
    assert VALID not in "".join(",".join(row) for row in rows)


@pytest.mark.django_db
def test_retention_keeps_anonymous_counts_after_event_end(sortir_event, two_orders, organizer):
    with scopes_disabled():
        assert apply_retention(sortir_event) == (0, 0)  # event not over
        sortir_event.date_from = now() - timedelta(days=100)
        sortir_event.save()
        archived, deleted = apply_retention(sortir_event)
        assert archived == 2 and not CardUsage.objects.filter(event=sortir_event).exists()
        assert ArchivedUsageCount.objects.get(event=sortir_event, state="validated").count == 2
        assert LogEntry.objects.filter(event=sortir_event, action_type__startswith="pretix_sortir.").exists()
        organizer.settings.set("pretix_sortir_audit_retention_days", 1)
        LogEntry.objects.filter(event=sortir_event).update(datetime=now() - timedelta(days=2))
        assert apply_retention(sortir_event)[1] > 0
        assert not LogEntry.objects.filter(event=sortir_event, action_type__startswith="pretix_sortir.").exists()


@pytest.mark.django_db
def test_dashboard_counts_include_archived(admin_client, sortir_event, two_orders):
    with scopes_disabled():
        sortir_event.date_from = now() - timedelta(days=100)
        sortir_event.save()
        apply_retention(sortir_event)
    r = admin_client.get(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/usages/")
    assert 'data-state="validated">2<' in r.content.decode()


@pytest.mark.django_db
def test_data_shredder(sortir_event, two_orders):
    with scopes_disabled():
        assert isinstance(sortir_event.get_data_shredders()["pretix_sortir_usages"], SortirDataShredder)
        shredder = SortirDataShredder(sortir_event)
        files = list(shredder.generate_files())
        assert files[0][0] == "sortir-usages.json" and "0001" in files[0][2]
        shredder.shred_data()
        assert not CardUsage.objects.filter(event=sortir_event).exists()
        assert not LogEntry.objects.filter(event=sortir_event, action_type__startswith="pretix_sortir.").exists()
        assert sum(ArchivedUsageCount.objects.filter(event=sortir_event).values_list("count", flat=True)) == 2
