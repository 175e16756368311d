"""
Benchmark: a storefront checkout of four Sortir! tickets against the same checkout of four ordinary
tickets, in one run, through pretix's real presale views and a fake APRAS answering instantly over HTTP.

    .venv/bin/python bench/sortir_checkout.py [--rounds 15]

Prints per-step SQL query counts, APRAS calls and the median time ratio; the last line is one JSON object:
{"ratio": ..., "queries_sortir": ..., "queries_plain": ..., "apras_calls": ..., "cards": ...}
Target: ratio <= 1.15 and one APRAS call per distinct card.
"""
import argparse
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # NOQA: E402

django.setup()

from django.db import connection  # NOQA: E402
from django.test import Client  # NOQA: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # NOQA: E402
from django.utils.timezone import now  # NOQA: E402
from django_scopes import scopes_disabled  # NOQA: E402

TICKETS = 4


def build_world(apras_url, token):
    from pretix.base.models import Event, Item, Organizer, Quota

    from pretix_integrations_core import crypto
    from pretix_sortir.products import set_flags

    with scopes_disabled():
        org = Organizer.objects.create(name="Bench", slug="bench")
        org.settings.set("pretix_sortir_api_url", apras_url)
        crypto.set_secret(org.settings, "pretix_sortir_api_token_secret", token)
        event = Event.objects.create(organizer=org, name="Bench", slug="bench", live=True, date_from=now().replace(year=now().year + 1),
                                     plugins="pretix.plugins.banktransfer")
        event.enable_plugin("pretix_sortir")
        event.save()
        plain = Item.objects.create(event=event, name="Plain", default_price=Decimal("0.00"), admission=True)
        sortir = Item.objects.create(event=event, name="Sortir!", default_price=Decimal("0.00"), admission=True)
        q = Quota.objects.create(event=event, name="All", size=None)
        q.items.add(plain, sortir)
        set_flags(event, sortir, whole_item=True, variation_ids=[])  # as the product page does (personalized ticket)
    return event, plain, sortir


def run_checkout(event, item, cards):
    """One checkout through the storefront; returns ({step: seconds}, {step: queries})."""
    from pretix.base.models import CartPosition

    client = Client()
    base = f"/{event.organizer.slug}/{event.slug}"
    timings, queries = {}, {}

    def step(name, fn):
        connection.queries_log.clear()  # the log is bounded: a full one would make every count 0
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            resp = fn()
            timings[name] = time.perf_counter() - t0
        queries[name] = len(ctx.captured_queries)
        assert resp.status_code in (200, 302), (name, resp.status_code)
        return resp

    step("cart", lambda: client.post(f"{base}/cart/add", {f"item_{item.pk}": str(TICKETS)}))
    with scopes_disabled():
        cart_id = client.session.get(f"current_cart_event_{event.pk}")
        positions = list(CartPosition.objects.filter(event=event, cart_id=cart_id).order_by("pk")) if cart_id else \
            list(CartPosition.objects.filter(event=event, item=item, order__isnull=True).order_by("-pk")[:TICKETS])
    step("questions_page", lambda: client.get(f"{base}/checkout/questions/"))
    data = {"email": "bench@example.org", "email_repeat": "bench@example.org"}
    for cp, card in zip(positions, cards or []):
        data[f"{cp.pk}-pretix_sortir_card"] = card
    step("questions_submit", lambda: client.post(f"{base}/checkout/questions/", data))
    step("confirm_page", lambda: client.get(f"{base}/checkout/confirm/"))
    step("place_order", lambda: client.post(f"{base}/checkout/confirm/", {}))
    return timings, queries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from pretix_integrations_core.testing.apras import FakeApras

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        cards_needed = (args.rounds + 1) * TICKETS
        valid = [f"2{n:09d}" for n in range(cards_needed)]
        with FakeApras(valid_cards=valid) as apras:
            event, plain, sortir = build_world(apras.url, apras.token)
            run_checkout(event, plain, None)  # warm-up, not measured
            run_checkout(event, sortir, valid[:TICKETS])
            apras.reset()
            plain_times, sortir_times = [], []
            steps = {"plain": [], "sortir": []}
            q_plain = q_sortir = None
            for r in range(args.rounds):
                cards = valid[(r + 1) * TICKETS:(r + 2) * TICKETS]
                # alternate which runs first so drift affects both alike
                order = [("plain", plain, None), ("sortir", sortir, cards)]
                if r % 2:
                    order.reverse()
                for name, item, c in order:
                    t, q = run_checkout(event, item, c)
                    (plain_times if name == "plain" else sortir_times).append(sum(t.values()))
                    steps[name].append(t)
                    if name == "plain":
                        q_plain = q
                    else:
                        q_sortir = q
            apras_calls = len(apras.received("GET"))
            grants = len(apras.received("POST"))
        cards = args.rounds * TICKETS
        med_plain, med_sortir = statistics.median(plain_times), statistics.median(sortir_times)
        ratio = med_sortir / med_plain
        print(f"checkout of {TICKETS} tickets, {args.rounds} rounds each, SQLite={connection.vendor == 'sqlite'}")
        print(f"median plain  : {med_plain * 1000:8.1f} ms")
        print(f"median sortir : {med_sortir * 1000:8.1f} ms")
        print(f"ratio         : {ratio:8.3f} (target <= 1.15)")
        print(f"{'step':18} {'plain q':>8} {'sortir q':>9} {'plain ms':>9} {'sortir ms':>10}")
        for s in q_plain:
            mp = statistics.median(t[s] for t in steps["plain"]) * 1000
            ms = statistics.median(t[s] for t in steps["sortir"]) * 1000
            print(f"{s:18} {q_plain[s]:8d} {q_sortir[s]:9d} {mp:9.1f} {ms:10.1f}")
        print(f"APRAS card checks: {apras_calls} for {cards} distinct cards; grants sent after commit: {grants}")
        print(json.dumps({"ratio": round(ratio, 3), "queries_sortir": sum(q_sortir.values()), "queries_plain": sum(q_plain.values()),
                          "apras_calls": apras_calls, "cards": cards}))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
