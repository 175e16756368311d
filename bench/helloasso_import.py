"""
Benchmark: importing HelloAsso orders with the bridge against pretix's own CSV order import of the same orders,
in one run. The bridge reads them over HTTP from the fake HelloAsso (pretix_integrations_core/testing/helloasso.py);
the CSV import is pretix.base.services.modelimport.import_orders, fed with a CSV file of the same orders (same
products, prices, attendee names, payer address and answers) into a copy of the event the bridge made.

    .venv/bin/python bench/helloasso_import.py [--orders 5000]

Orders have 1 to 4 tickets (mixed). Prints tickets per second for both, the ratio, API calls and pages, and a
sync with nothing new (calls and seconds); the last line is one JSON object:
{"orders", "tickets", "bridge_tickets_per_s", "csv_tickets_per_s", "speedup", "api_calls", "pages", "noop_sync_calls",
 "noop_sync_s", then per platform "billetweb_…"/"weezevent_…": tickets, tickets_per_s, csv_tickets_per_s, speedup}.
Target: speedup (bridge tickets per second / CSV tickets per second) >= 3, for HelloAsso, Billetweb and Weezevent.
The same N orders are also imported from the fake Billetweb and the fake Weezevent, each compared with pretix's CSV
import of the same orders (built from what the bridge imported: products, prices, attendee names, answers).
The bridge's time includes the fake server's (Python, in this process), as HelloAsso's would be in real life.
"""
import argparse
import csv
import io
import json
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # NOQA: E402

django.setup()

from django.core.files.base import ContentFile  # NOQA: E402
from django.db import connection  # NOQA: E402
from django.test.utils import setup_test_environment  # NOQA: E402
from django.utils.timezone import now  # NOQA: E402
from django_scopes import scope, scopes_disabled  # NOQA: E402

FORM = "Event/soiree-de-gala-2026"
TIERS = (14587201, 14587201, 14587202, 14587203)  # full price twice as common as the others
SIZES = ("XS", "S", "M", "L", "XL")
FIRST = ("Camille", "Louis", "Inès", "Hugo", "Léa", "Nathan", "Chloé", "Jules", "Manon", "Gabriel")
LAST = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau")
CITIES = (("Lyon", "69001"), ("Villeurbanne", "69100"), ("Grenoble", "38000"), ("Saint-Étienne", "42000"))


def add_orders(fake, n, rng):
    """``n`` orders on the fake's demo form, 1 to 4 tickets each; returns the number of tickets."""
    tickets = 0
    for i in range(n):
        last = rng.choice(LAST)
        city, zipcode = rng.choice(CITIES)
        payer = {"email": f"buyer{i}@example.org", "firstName": rng.choice(FIRST), "lastName": last, "address": f"{i} rue de la Paix",
                 "city": city, "zipCode": zipcode, "country": "FRA"}
        lines = []
        for _ in range(rng.randint(1, 4)):
            tier = rng.choice(TIERS)
            answers = {5501231: rng.choice(SIZES)}
            if tier != 14587203 and rng.random() < 0.3:
                answers[5501232] = "Les Balles Folles"
            lines.append({"tier": tier, "user": (rng.choice(FIRST), last), "answers": answers})
        fake.add_order(payer, lines)
        tickets += len(lines)
    return tickets


def build_bridge_event(fake_url):
    from pretix.base.models import Event, Organizer

    from pretix_helloasso_bridge import config
    from pretix_helloasso_bridge.models import FormLink
    from pretix_integrations_core import crypto
    from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORGANIZATION

    with scopes_disabled():
        org = Organizer.objects.create(name="Bench", slug="bench")
        s = org.settings
        s.set(config.CLIENT_ID, DEMO_CLIENT_ID)
        crypto.set_secret(s, config.CLIENT_SECRET, DEMO_CLIENT_SECRET)
        s.set(config.ORGANIZATION, DEMO_ORGANIZATION)
        s.set(config.BASE_URL, fake_url)
        event = Event.objects.create(organizer=org, name="Bridge", slug="bridge", live=True, date_from=now() + timedelta(days=60),
                                     plugins="pretix.plugins.banktransfer")
        event.enable_plugin("pretix_helloasso_bridge")
        event.save()
        event.settings.name_scheme = "given_family"
        FormLink.objects.create(event=event, form_ref=FORM)
    return event


def csv_of(fake, event):
    """The fake's orders as a CSV file for pretix's order import, and the import's column settings."""
    from pretix_helloasso_bridge.models import RemoteObject

    with scopes_disabled():
        items = {ro.remote_id: ro.item for ro in RemoteObject.objects.filter(event=event, kind="product").select_related("item")}
        questions = {ro.remote_id: ro.question for ro in RemoteObject.objects.filter(event=event, kind="question").select_related("question")}
    qcols = {rid: f"q{rid}" for rid in questions}
    header = ["order", "email", "item", "price", "given", "family", "pgiven", "pfamily", "street", "zipcode", "city", "country",
              *qcols.values()]
    out = io.StringIO()
    w = csv.DictWriter(out, header)
    w.writeheader()
    for o in fake.orders.values():
        p = o["payer"]
        for it in o["items"]:
            row = {"order": o["id"], "email": p["email"], "item": str(items[str(it["tierId"])].name), "price": f"{it['amount'] / 100:.2f}",
                   "given": it["user"]["firstName"], "family": it["user"]["lastName"], "pgiven": p["firstName"], "pfamily": p["lastName"],
                   "street": p.get("address", ""), "zipcode": p.get("zipCode", ""), "city": p.get("city", ""), "country": "FR"}
            for cf in it["customFields"]:
                row[qcols[str(cf["id"])]] = cf["answer"]
            w.writerow(row)
    settings = {"orders": "mixed", "status": "paid", "testmode": False, "grouping": "csv:order", "email": "csv:email", "item": "csv:item",
                "price": "csv:price", "attendee_name_given_name": "csv:given", "attendee_name_family_name": "csv:family",
                "invoice_address_name_given_name": "csv:pgiven", "invoice_address_name_family_name": "csv:pfamily",
                "invoice_address_street": "csv:street", "invoice_address_zipcode": "csv:zipcode", "invoice_address_city": "csv:city",
                "invoice_address_country": "csv:country", "sales_channel": "static:helloasso"}
    return out.getvalue().encode(), settings, questions, qcols


def run_csv_import(bridge_event, fake):
    """Copy the bridge's event (products, questions) and import the same orders there with pretix's CSV import."""
    from pretix.base.models import CachedFile, Event, Order, OrderPosition, QuestionAnswer, User
    from pretix.base.services.modelimport import import_orders

    with scopes_disabled():
        target = Event.objects.create(organizer=bridge_event.organizer, name="CSV", slug="csv", live=True, date_from=bridge_event.date_from,
                                      plugins="pretix.plugins.banktransfer")
        target.copy_data_from(bridge_event)
        target.settings.name_scheme = "given_family"
        body, settings, questions, qcols = csv_of(fake, bridge_event)
        copied = {str(q.question): q for q in target.questions.all()}
        for rid, q in questions.items():
            settings[f"question_{copied[str(q.question)].pk}"] = f"csv:{qcols[rid]}"
        user = User.objects.create_user("bench@example.org", "bench")
        cf = CachedFile.objects.create(expires=now() + timedelta(days=1), date=now(), filename="import.csv", type="text/csv")
        cf.file.save("import.csv", ContentFile(body))
    t0 = time.perf_counter()
    import_orders.apply(kwargs={"event": target.pk, "fileid": str(cf.id), "settings": settings, "locale": "en", "user": user.pk}).get()
    seconds = time.perf_counter() - t0
    with scopes_disabled():
        answers = QuestionAnswer.objects.filter(orderposition__order__event=target).count()
        return seconds, Order.objects.filter(event=target).count(), OrderPosition.objects.filter(order__event=target).count(), answers


# -- Billetweb and Weezevent: the same N orders from each fake, against pretix's CSV import of the same orders ------------

def add_platform_orders(kind, fake, n, rng):
    """``n`` orders of 1 to 4 tickets on the fake's single-date event; returns (remote event id, tickets)."""
    tickets = 0
    for i in range(n):
        count = rng.randint(1, 4)
        tickets += count
        last, first = rng.choice(LAST), rng.choice(FIRST)
        if kind == "billetweb":
            fake.add_order("1350001", tickets=[rng.choice(("12693", "12693", "12694", "12696")) for _ in range(count)],
                           email=f"buyer{i}@example.org", firstname=first, name=last, custom={"Taille de t-shirt": rng.choice(SIZES)})
        else:
            fake.add_transaction([rng.choice(("2101", "2101", 2102)) for _ in range(count)], date_id=0, event_id=512346,
                                 email=f"buyer{i}@example.org", first=first, last=last, answers=[("Taille de t-shirt", rng.choice(SIZES))])
    return ("1350001" if kind == "billetweb" else "512346"), tickets


def build_platform_event(org, kind, fake, remote_event):
    from pretix.base.models import Event

    from pretix_helloasso_bridge import config
    from pretix_helloasso_bridge.models import FormLink
    from pretix_integrations_core import crypto

    with scopes_disabled():
        s = org.settings
        if kind == "billetweb":
            from pretix_integrations_core.testing.billetweb import DEMO_KEY, DEMO_USER
            s.set(config.BILLETWEB_USER, DEMO_USER)
            crypto.set_secret(s, config.BILLETWEB_KEY, DEMO_KEY)
            s.set(config.BILLETWEB_URL, fake.url)
        else:
            from pretix_integrations_core.testing.weezevent import DEMO_API_KEY, DEMO_PASSWORD, DEMO_USERNAME
            crypto.set_secret(s, config.WEEZEVENT_API_KEY, DEMO_API_KEY)
            s.set(config.WEEZEVENT_USERNAME, DEMO_USERNAME)
            crypto.set_secret(s, config.WEEZEVENT_PASSWORD, DEMO_PASSWORD)
            s.set(config.WEEZEVENT_URL, fake.url)
        event = Event.objects.create(organizer=org, name=kind, slug=kind, live=True, date_from=now() + timedelta(days=60),
                                     plugins="pretix.plugins.banktransfer")
        event.enable_plugin("pretix_helloasso_bridge")
        event.save()
        event.settings.name_scheme = "given_family"
        FormLink.objects.create(event=event, provider=kind, form_ref=remote_event)
    return event


def csv_of_imported(event, channel):
    """The orders the bridge imported into ``event`` as a CSV for pretix's order import (same products, prices, names, answers)."""
    from pretix.base.models import OrderPosition

    with scopes_disabled():
        questions = list(event.questions.all())
        header = ["order", "email", "item", "price", "given", "family", *[f"q{q.pk}" for q in questions]]
        out = io.StringIO()
        w = csv.DictWriter(out, header)
        w.writeheader()
        positions = OrderPosition.objects.filter(order__event=event).select_related("order", "item").prefetch_related("answers")
        for op in positions.order_by("order_id", "positionid"):
            row = {"order": op.order.code, "email": op.order.email, "item": str(op.item.name), "price": f"{op.price:.2f}",
                   "given": op.attendee_name_parts.get("given_name", ""), "family": op.attendee_name_parts.get("family_name", "")}
            for a in op.answers.all():
                row[f"q{a.question_id}"] = a.answer
            w.writerow(row)
    settings = {"orders": "mixed", "status": "paid", "testmode": False, "grouping": "csv:order", "email": "csv:email", "item": "csv:item",
                "price": "csv:price", "attendee_name_given_name": "csv:given", "attendee_name_family_name": "csv:family",
                "sales_channel": f"static:{channel}"}
    return out.getvalue().encode(), settings, questions


def run_csv_import_of(event, channel, slug):
    from pretix.base.models import CachedFile, Event, OrderPosition, User
    from pretix.base.services.modelimport import import_orders

    with scopes_disabled():
        target = Event.objects.create(organizer=event.organizer, name=slug, slug=slug, live=True, date_from=event.date_from,
                                      plugins="pretix.plugins.banktransfer")
        target.copy_data_from(event)
        target.settings.name_scheme = "given_family"
        body, settings, questions = csv_of_imported(event, channel)
        copied = {str(q.question): q for q in target.questions.all()}
        for q in questions:
            settings[f"question_{copied[str(q.question)].pk}"] = f"csv:q{q.pk}"
        user = User.objects.get_or_create(email="bench@example.org")[0]
        cf = CachedFile.objects.create(expires=now() + timedelta(days=1), date=now(), filename="import.csv", type="text/csv")
        cf.file.save("import.csv", ContentFile(body))
    t0 = time.perf_counter()
    import_orders.apply(kwargs={"event": target.pk, "fileid": str(cf.id), "settings": settings, "locale": "en", "user": user.pk}).get()
    seconds = time.perf_counter() - t0
    with scopes_disabled():
        return seconds, OrderPosition.objects.filter(order__event=target).count()


def bench_platform(kind, org, n, seed):
    """Import ``n`` orders from the platform's fake with the bridge, then the same orders with pretix's CSV import."""
    from pretix.base.models import OrderPosition

    from pretix_helloasso_bridge.models import SyncReport
    from pretix_helloasso_bridge.sync import run_sync

    if kind == "billetweb":
        from pretix_integrations_core.testing.billetweb import FakeBilletweb as Fake
    else:
        from pretix_integrations_core.testing.weezevent import FakeWeezevent as Fake
    with Fake(seed=False) as fake:
        remote_event, tickets = add_platform_orders(kind, fake, n, random.Random(seed))
        event = build_platform_event(org, kind, fake, remote_event)
        t0 = time.perf_counter()
        report = run_sync(event, trigger="manual", full=True)
        bridge_s = time.perf_counter() - t0
        assert report.state == SyncReport.SUCCESS and not report.skipped, (report.error, report.skipped[:3])
        with scopes_disabled():
            assert OrderPosition.objects.filter(order__event=event).count() == tickets
    csv_s, csv_tickets = run_csv_import_of(event, kind, f"{kind}-csv")
    assert csv_tickets == tickets, (csv_tickets, tickets)
    bridge_tps, csv_tps = tickets / bridge_s, tickets / csv_s
    print(f"{kind:<10}: {n} orders, {tickets} tickets: bridge {bridge_s:7.2f} s {bridge_tps:8.1f} tickets/s ({report.api_calls} API calls); "
          f"CSV {csv_s:7.2f} s {csv_tps:8.1f} tickets/s; speedup {bridge_tps / csv_tps:6.3f}")
    return {f"{kind}_tickets": tickets, f"{kind}_tickets_per_s": round(bridge_tps, 1), f"{kind}_csv_tickets_per_s": round(csv_tps, 1),
            f"{kind}_speedup": round(bridge_tps / csv_tps, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    from pretix.base.models import Order, OrderPosition, QuestionAnswer

    from pretix_helloasso_bridge.models import SyncReport
    from pretix_helloasso_bridge.sync import run_sync
    from pretix_integrations_core.testing.helloasso import FakeHelloAsso

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        with FakeHelloAsso(seed=False) as fake:
            tickets = add_orders(fake, args.orders, random.Random(args.seed))
            event = build_bridge_event(fake.url)

            t0 = time.perf_counter()
            report = run_sync(event, trigger="manual", full=True)
            bridge_s = time.perf_counter() - t0
            assert report.state == SyncReport.SUCCESS, report.error
            pages = len(fake.received("GET", r"/forms/[^/]+/[^/]+/orders$"))
            with scopes_disabled(), scope(organizer=event.organizer):
                bridge_orders = Order.objects.filter(event=event).count()
                bridge_tickets = OrderPosition.objects.filter(order__event=event).count()
                bridge_answers = QuestionAnswer.objects.filter(orderposition__order__event=event).count()
            assert (bridge_orders, bridge_tickets) == (args.orders, tickets), (bridge_orders, bridge_tickets)

            fake.reset()
            t0 = time.perf_counter()
            noop = run_sync(event, trigger="manual")
            noop_s = time.perf_counter() - t0
            assert noop.state == SyncReport.SUCCESS and noop.orders_created == noop.orders_updated == 0, noop.error

            csv_s, csv_orders, csv_tickets, csv_answers = run_csv_import(event, fake)
            assert (csv_orders, csv_tickets, csv_answers) == (args.orders, tickets, bridge_answers), (csv_orders, csv_tickets, csv_answers)

        platforms = {}
        for kind in ("billetweb", "weezevent"):
            platforms.update(bench_platform(kind, event.organizer, args.orders, args.seed))

        bridge_tps, csv_tps = tickets / bridge_s, tickets / csv_s
        speedup = bridge_tps / csv_tps
        print(f"{args.orders} orders, {tickets} tickets (1-4 per order), database: {connection.vendor}")
        print(f"bridge import : {bridge_s:8.2f} s  {bridge_tps:8.1f} tickets/s  ({report.api_calls} API calls, {pages} pages of orders)")
        print(f"CSV import    : {csv_s:8.2f} s  {csv_tps:8.1f} tickets/s  (pretix.base.services.modelimport.import_orders)")
        print(f"speedup       : {speedup:8.3f} (bridge / CSV, target >= 3)")
        print(f"no-change sync: {noop_s:8.3f} s  {noop.api_calls} API calls")
        print(json.dumps({"orders": args.orders, "tickets": tickets, "bridge_tickets_per_s": round(bridge_tps, 1),
                          "csv_tickets_per_s": round(csv_tps, 1), "speedup": round(speedup, 3), "api_calls": report.api_calls,
                          "pages": pages, "noop_sync_calls": noop.api_calls, "noop_sync_s": round(noop_s, 3), **platforms}))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
