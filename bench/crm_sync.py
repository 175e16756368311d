"""
Benchmark of the CRM bridge, in one run, against the fake Mautic and Invoice Ninja (and DocuSeal once its provider
exists) over HTTP on 127.0.0.1:

(a) an admin marks an order paid (what the control panel's "mark as paid" does: a manual payment, then pretix's
    ``OrderPayment.confirm()``, order e-mail included), on an event feeding every system against the same on an event
    feeding none, one of each per round: the median of the per-round time ratios (target at most 1.05; the ratio of
    the medians and of the CPU times are printed too) and HTTP calls reaching the fakes during those requests
    (target 0: the request only queues a job in pretix's data-sync queue);
(b) pretix's own data-sync runner (``pretix.base.services.datasync.sync_all``, the periodic task) draining the queue
    for the paid orders, with every fake answering 20 ms late: orders per second;
(c) HTTP calls per paid order and per system in steady state, i.e. for the job queued by the payment of an order whose
    "order placed" job already ran (with a Celery worker it runs right after the checkout): target at most 2.

    .venv/bin/python bench/crm_sync.py [--orders 100] [--rounds 40] [--latency 0.02]

The last line is one JSON object: {"paid_ratio", "http_calls_in_request", "orders_per_s",
"calls_per_order": {"mautic", "invoiceninja", "docuseal"}}; a system whose provider is not installed is null.
"""
import argparse
import gc
import json
import logging
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # NOQA: E402

django.setup()

from django.db import connection, transaction  # NOQA: E402
from django.test.utils import setup_test_environment  # NOQA: E402
from django.utils.timezone import now  # NOQA: E402
from django_scopes import scope, scopes_disabled  # NOQA: E402


def _mautic_setup(org, event, fake):
    from pretix_crm_bridge import config
    from pretix_integrations_core import crypto
    from pretix_integrations_core.testing.mautic import DEMO_PASSWORD, DEMO_USERNAME
    org.settings.set(config.MAUTIC_URL, fake.url)
    org.settings.set(config.MAUTIC_AUTH, config.AUTH_BASIC)
    org.settings.set(config.MAUTIC_USERNAME, DEMO_USERNAME)
    crypto.set_secret(org.settings, config.MAUTIC_PASSWORD, DEMO_PASSWORD)
    event.settings.set(config.MAUTIC_ENABLED, True)
    event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")  # "pretix buyers" in the fake
    event.settings.set(config.MAUTIC_CAMPAIGNS_PAID, "1")  # "Welcome"


def _ninja_setup(org, event, fake):
    from pretix_crm_bridge import config
    from pretix_integrations_core import crypto
    from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN
    org.settings.set(config.NINJA_URL, fake.url)
    crypto.set_secret(org.settings, config.NINJA_TOKEN, DEMO_API_TOKEN)
    event.settings.set(config.NINJA_ENABLED, True)


def _docuseal_setup(org, event, fake):
    from pretix_crm_bridge import config
    from pretix_integrations_core import crypto
    from pretix_integrations_core.testing.docuseal import DEMO_API_KEY, DEMO_TEMPLATE_ID
    org.settings.set(config.DOCUSEAL_URL, fake.url)
    crypto.set_secret(org.settings, config.DOCUSEAL_API_KEY, DEMO_API_KEY)
    event.settings.set(config.DOCUSEAL_ENABLED, True)
    event.settings.set(config.DOCUSEAL_TEMPLATE, str(DEMO_TEMPLATE_ID))
    from pretix_crm_bridge.models import SignatureProduct  # the tickets require a signature (DocuSeal helper's model)
    for item in event.items.all():
        SignatureProduct.objects.get_or_create(event=event, item=item)


#: one entry per system; a system whose provider cannot be imported is skipped (null in the JSON line)
SYSTEMS = [
    # (name in the JSON line, provider "module:class", fake server "module:class", setup(organizer, event, fake))
    ("mautic", "pretix_crm_bridge.sync:MauticSync", "pretix_integrations_core.testing.mautic:FakeMautic", _mautic_setup),
    ("invoiceninja", "pretix_crm_bridge.sync:InvoiceNinjaSync", "pretix_integrations_core.testing.invoiceninja:FakeInvoiceNinja",
     _ninja_setup),
    ("docuseal", "pretix_crm_bridge.docuseal:DocuSealSync", "pretix_integrations_core.testing.docuseal:FakeDocuSeal", _docuseal_setup),
]


def _load(path):
    import importlib
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def available_systems():
    """[(name, provider class, fake class, setup)] of the systems whose provider imports; prints why one is skipped."""
    found = []
    for name, provider, fake, setup in SYSTEMS:
        try:
            found.append((name, _load(provider), _load(fake), setup))
        except (ImportError, AttributeError) as e:
            print(f"{name}: skipped, its provider is not available ({type(e).__name__}: {e})")
    return found


# -- data -----------------------------------------------------------------------------------------------------------

def build_world(systems, fakes):
    from pretix.base.models import Event, Item, Organizer, Quota, User

    with scopes_disabled():
        org = Organizer.objects.create(name="Bench", slug="bench")
        admin = User.objects.create_user("admin@example.org", "bench")
        events = {}
        for slug in ("on", "off"):
            event = Event.objects.create(organizer=org, name=f"CRM {slug}", slug=slug, live=True,
                                         date_from=now().replace(year=now().year + 1), plugins="pretix.plugins.banktransfer")
            event.enable_plugin("pretix_crm_bridge")
            event.save()
            item = Item.objects.create(event=event, name="Ticket", default_price=Decimal("25.00"), admission=True)
            Quota.objects.create(event=event, name="All", size=None).items.add(item)
            events[slug] = (event, item)
        for name, _provider, _fake, setup in systems:
            try:
                setup(org, events["on"][0], fakes[name])
            except Exception as e:  # a provider in progress whose settings differ: report it, measure the others
                print(f"{name}: provider found, but it could not be connected ({type(e).__name__}: {e}); skipped")
                fakes.pop(name)
    return org, admin, events


def place_orders(event, item, n, prefix):
    """``n`` pending orders of one ticket each, every one from another buyer who gave consent; fires order_placed."""
    from pretix.base.models import Order, OrderPosition
    from pretix.base.signals import order_placed

    from pretix_crm_bridge import config

    orders = []
    with scope(organizer=event.organizer):
        channel = event.organizer.sales_channels.get(identifier="web")
        for i in range(n):
            with transaction.atomic():
                order = Order.objects.create(
                    event=event, email=f"{prefix}{i}@example.org", status=Order.STATUS_PENDING, locale="en", datetime=now(),
                    expires=now() + timedelta(days=10), total=item.default_price, sales_channel=channel,
                    meta_info=json.dumps({"contact_form_data": {config.CONSENT_FIELD: True}}))
                OrderPosition.objects.create(order=order, item=item, price=item.default_price,
                                             attendee_name_parts={"_scheme": "given_family", "given_name": "Buyer", "family_name": f"N{i}"})
                order.create_transactions()
            order_placed.send(event, order=order)  # as pretix's checkout does after placing an order
            orders.append(order)
    return orders


def mark_paid(order, admin):
    """What the control panel's "mark as paid" does (OrderTransition): a manual payment, confirmed by pretix."""
    from pretix.base.models import OrderPayment
    with scope(organizer=order.event.organizer):
        p = order.payments.create(state=OrderPayment.PAYMENT_STATE_CREATED, provider="manual", amount=order.total, fee=None)
        p.confirm(user=admin, count_waitinglist=False, send_mail=True)


def drain():
    """pretix's periodic data-sync task until nothing is due; returns the number of runs."""
    from pretix.base.models.datasync import OrderSyncQueue
    from pretix.base.services.datasync import sync_all
    runs = 0
    while True:
        with scopes_disabled():
            due = OrderSyncQueue.objects.filter(in_flight=False, not_before__lt=now(), need_manual_retry__isnull=True).exists()
        if not due:
            return runs
        sync_all.apply()
        runs += 1


def check_outcome(fakes, orders):
    """Every job ended well, and each system holds what it should (a benchmark of failing jobs would measure nothing)."""
    from pretix.base.models.datasync import OrderSyncQueue
    with scopes_disabled():
        left = list(OrderSyncQueue.objects.values_list("sync_provider", "need_manual_retry", "failed_attempts")[:5])
    assert not left, f"jobs left in the queue: {left}"
    if "invoiceninja" in fakes:
        store = fakes["invoiceninja"].store
        assert len(store["invoices"]) == len(orders) and len(store["payments"]) == len(orders), "Invoice Ninja: one invoice and payment per order"
    if "mautic" in fakes:
        assert len(fakes["mautic"].contacts) == len(orders), "Mautic: one contact per buyer"


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--orders", type=int, default=100, help="paid orders drained from the queue in (b) and (c)")
    parser.add_argument("--rounds", type=int, default=40, help="orders marked paid per event in (a)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds every fake waits before answering")
    args = parser.parse_args()
    args.orders = max(args.orders, args.rounds + 2)

    logging.disable(logging.INFO)  # one line per HTTP call and per synced order otherwise
    systems = available_systems()
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    started = []
    try:
        fakes = {}
        for name, _provider, fake_cls, _setup in systems:
            fakes[name] = fake_cls().start()
            started.append(fakes[name])
        org, admin, events = build_world(systems, fakes)
        (ev_on, item_on), (ev_off, item_off) = events["on"], events["off"]

        # the orders are placed and their "order placed" jobs run (contacts and clients exist), as after a day of sales
        on_orders = place_orders(ev_on, item_on, args.orders, "buyer")
        off_orders = place_orders(ev_off, item_off, args.rounds + 2, "plain")
        drain()
        placed_calls = {name: len(f.requests) for name, f in fakes.items()}
        for f in fakes.values():
            f.reset()
            f.latency = args.latency

        # (a) marking paid, alternating which event goes first so drift hits both alike; 2 warm-up orders each
        mark_paid(on_orders[0], admin), mark_paid(off_orders[0], admin), mark_paid(on_orders[1], admin), mark_paid(off_orders[1], admin)
        times, cpu = {"on": [], "off": []}, {"on": [], "off": []}
        calls_in_request = 0
        for r in range(args.rounds):
            pair = [("on", on_orders[r + 2]), ("off", off_orders[r + 2])]
            if r % 2:
                pair.reverse()
            for name, order in pair:
                before = sum(len(f.requests) for f in fakes.values())
                gc.collect()  # a collection left over from the previous request would land on this one
                t0, c0 = time.perf_counter(), time.process_time()
                mark_paid(order, admin)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                calls_in_request += sum(len(f.requests) for f in fakes.values()) - before
        for order in on_orders[args.rounds + 2:]:
            mark_paid(order, admin)
        med_on, med_off = statistics.median(times["on"]), statistics.median(times["off"])
        paid_ratio = med_on / med_off
        cpu_ratio = statistics.median(cpu["on"]) / statistics.median(cpu["off"])
        # each round times one order of each event back to back: the median of those ratios resists a machine whose
        # load changes during the run (other processes), which shifts both medians above by different amounts
        paired_ratio = statistics.median(a / b for a, b in zip(times["on"], times["off"]))

        # (b) + (c) pretix's runner drains the jobs the payments queued, against fakes answering late
        for f in fakes.values():
            f.reset()
        t0 = time.perf_counter()
        runs = drain()
        elapsed = time.perf_counter() - t0
        check_outcome(fakes, on_orders)
        orders_per_s = len(on_orders) / elapsed
        calls = {name: None for name, *_rest in SYSTEMS}
        for name, f in fakes.items():
            calls[name] = round(len(f.requests) / len(on_orders), 2)
            if not f.requests:
                print(f"{name}: received no call at all; its setup in this script does not match the provider")

        print(f"systems: {', '.join(fakes) or 'none'}; SQLite={connection.vendor == 'sqlite'}; fake latency {args.latency * 1000:.0f} ms")
        print(f"(a) mark paid, {len(times['on'])} orders per event: median on {med_on * 1000:.1f} ms, off {med_off * 1000:.1f} ms, "
              f"ratio of medians {paid_ratio:.3f}, median of paired ratios {paired_ratio:.3f} (target <= 1.05), CPU time ratio "
              f"{cpu_ratio:.3f}; HTTP calls during those requests: "
              f"{calls_in_request} (target 0)")
        print(f"(b) queue: {len(on_orders)} paid orders synced in {elapsed:.2f} s by {runs} run(s) of pretix's sync_all: "
              f"{orders_per_s:.1f} orders/s")
        for name, f in fakes.items():
            kinds = {}
            for req in f.requests:
                key = f"{req.method} {re.sub(r'/[0-9]+(?=/|$)', '/<id>', req.path)}"
                kinds[key] = kinds.get(key, 0) + 1
            detail = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
            print(f"(c) {name}: {calls[name]} calls per paid order (target <= 2) [{detail}]; "
                  f"the 'order placed' jobs before: {placed_calls[name] / len(on_orders):.2f} per order")
        print(json.dumps({"paid_ratio": round(paired_ratio, 3), "http_calls_in_request": calls_in_request,
                          "orders_per_s": round(orders_per_s, 1), "calls_per_order": calls}))
    finally:
        for f in started:
            f.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
