"""Organiser settings and Test connection of the HelloAsso bridge, through the control panel, against the fake over HTTP."""
import pytest

from pretix.base.models import Organizer

from pretix_helloasso_bridge.config import provider_for
from pretix_helloasso_bridge.providers.helloasso import alpha2
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORGANIZATION

from .helloasso_utils import team_client

SECRET_KEY = "pretix_helloasso_bridge_client_secret"


def settings_url(org):
    return f"/control/organizer/{org.slug}/helloasso/"


def run_test(client, organizer):
    return client.post(settings_url(organizer) + "test/", follow=True).content.decode()


@pytest.mark.django_db
def test_settings_saved_secret_encrypted_and_masked(admin_client, organizer, fake_helloasso):
    data = {"pretix_helloasso_bridge_client_id": DEMO_CLIENT_ID, SECRET_KEY: DEMO_CLIENT_SECRET,
            "pretix_helloasso_bridge_organization_slug": DEMO_ORGANIZATION, "pretix_helloasso_bridge_base_url": fake_helloasso.url}
    r = admin_client.post(settings_url(organizer), data, follow=True)
    assert r.status_code == 200
    organizer.settings.flush()
    stored = organizer.settings.get(SECRET_KEY, as_type=str)
    assert crypto.is_encrypted(stored) and crypto.decrypt(stored) == DEMO_CLIENT_SECRET
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert DEMO_CLIENT_SECRET not in page and stored not in page and "*****" in page
    # ***** keeps the stored secret
    admin_client.post(settings_url(organizer), {**data, SECRET_KEY: "*****"})
    organizer.settings.flush()
    assert crypto.decrypt(organizer.settings.get(SECRET_KEY, as_type=str)) == DEMO_CLIENT_SECRET
    assert "Connection to HelloAsso works: organisation “Festival des Lumières”." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_settings_refuse_plain_http_in_production(admin_client, organizer, settings):
    settings.ALLOW_HTTP_TO_PRIVATE_NETWORKS = False
    r = admin_client.post(settings_url(organizer), {"pretix_helloasso_bridge_client_id": "x", SECRET_KEY: "y",
                                                    "pretix_helloasso_bridge_organization_slug": "org",
                                                    "pretix_helloasso_bridge_base_url": "http://api.helloasso.com"})
    assert "The URL must start with https://" in r.content.decode()


@pytest.mark.django_db
def test_connection_wrong_credentials(admin_client, organizer, ha_connected):
    crypto.set_secret(organizer.settings, SECRET_KEY, "wrong-secret")
    page = run_test(admin_client, organizer)
    assert "HelloAsso refused the client ID or the client secret." in page
    assert "wrong-secret" not in page


@pytest.mark.django_db
def test_connection_unknown_organisation(admin_client, organizer, ha_connected):
    organizer.settings.set("pretix_helloasso_bridge_organization_slug", "no-such-association")
    assert "HelloAsso does not know the organisation “no-such-association”." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_unavailable(admin_client, organizer, ha_connected):
    ha_connected.fail_next(status=503, times=10)
    assert "HelloAsso is unavailable or could not be reached." in run_test(admin_client, organizer)
    organizer.settings.set("pretix_helloasso_bridge_base_url", "http://127.0.0.1:9")
    assert "HelloAsso is unavailable or could not be reached." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_not_configured(admin_client, organizer):
    assert "Enter the client ID, the client secret and the organisation first." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_settings_permissions(client, organizer, ha_connected):
    team_client(client, organizer, "events@example.org", all_event_permissions=True)
    assert client.get(settings_url(organizer)).status_code == 403
    assert client.post(settings_url(organizer) + "test/").status_code == 403
    other = Organizer.objects.create(name="Other", slug="other")
    assert client.get(settings_url(other)).status_code in (403, 404)


@pytest.mark.django_db
def test_provider_lists_forms_reads_catalog_and_pages_orders(organizer, ha_connected):
    p = provider_for(organizer)
    forms = p.list_forms()
    assert [(f.ref, f.title) for f in forms] == [("Event/soiree-de-gala-2026", "Soirée de gala 2026")]
    assert p.parse_form_url(f"https://www.helloasso.com/associations/{DEMO_ORGANIZATION}/evenements/soiree-de-gala-2026") == \
        "Event/soiree-de-gala-2026"
    assert p.parse_form_url(f"https://www.helloasso.com/associations/{DEMO_ORGANIZATION}/adhesions/adhesion-2026") == "Membership/adhesion-2026"
    assert p.parse_form_url("https://www.helloasso.com/associations/other/evenements/x") is None
    assert p.parse_form_url("https://example.org/associations/x/evenements/y") is None

    cat = p.get_catalog("Event/soiree-de-gala-2026")
    names = {pr.remote_id: (pr.name, str(pr.price), pr.is_addon) for pr in cat.products}
    assert names == {"14587201": ("Entrée plein tarif", "25.00", False), "14587202": ("Entrée tarif réduit", "15.00", False),
                     "14587203": ("Entrée enfant (-12 ans)", "0.00", False), "option-3051871": ("Repas du soir", "12.00", True)}
    assert {q.remote_id: (q.type, q.options) for q in cat.questions} == {"5501231": ("C", ["XS", "S", "M", "L", "XL"]), "5501232": ("S", [])}

    pages = list(p.changed_orders("Event/soiree-de-gala-2026"))
    orders = [o for page in pages for o in page.orders]
    assert [o.remote_id for o in orders] == ["128450311", "128450377", "128451002"]  # oldest first
    # a short page is the last one: no request for the (empty, token-carrying) next page
    lists = ha_connected.received("GET", r"/orders$")
    assert len(lists) == 1 and lists[0].query["sortOrder"] == ["Asc"] and lists[0].query["withDetails"] == ["true"]
    a, b, c = orders
    assert a.country == "FR" and a.total == 52 and [pos.state for pos in a.positions] == ["valid", "valid", "valid"]
    assert a.positions[1].addon_to == a.positions[0].remote_id and a.positions[1].product_id == "option-3051871"
    assert {ans.question_id: ans.answer for ans in a.positions[0].answers} == {"5501231": "M", "5501232": "Les Balles Folles"}
    assert a.positions[0].secret
    assert b.payments[0].state == "refunded" and b.positions[0].state == "canceled" and b.payments[0].refunds[0].done
    assert [pos.state for pos in c.positions] == ["valid", "canceled"] and c.payments == []
    assert p.fetch_order("128450311").positions[0].attendee_first_name == "Claire"

    # exactly one full page: the next page is empty but still carries a token, and that ends the loop
    for i in range(97):
        ha_connected.add_order({"email": f"x{i}@example.org", "country": "FRA"}, [{"tier": 14587203, "user": ("X", str(i))}])
    ha_connected.reset()
    assert sum(len(page.orders) for page in p.changed_orders("Event/soiree-de-gala-2026")) == 100
    lists = ha_connected.received("GET", r"/orders$")
    assert len(lists) == 2 and lists[1].query["continuationToken"]


def test_alpha3_to_alpha2_uses_a_real_table():
    assert alpha2("FRA") == "FR" and alpha2("AUT") == "AT" and alpha2("BEL") == "BE" and alpha2("") == "" and alpha2("XYZ") == ""
