import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django_scopes import scopes_disabled

from pretix_sortir.models import CardUsage
from tests.sortir_utils import VALID, add_to_cart, questions

PARALLEL = 8


@pytest.mark.django_db
def test_database_refuses_a_second_active_usage_of_a_card(sortir_event):
    """The rule is the database's, not only the code's (partial unique index, on SQLite and PostgreSQL)."""
    with scopes_disabled():
        CardUsage.objects.create(event=sortir_event, card_digest="same", card_last4="0001", state=CardUsage.VALIDATED)
        with pytest.raises(IntegrityError), transaction.atomic():
            CardUsage.objects.create(event=sortir_event, card_digest="same", card_last4="0001", state=CardUsage.HELD)
        # released usages do not count, and another date of a series is another key
        CardUsage.objects.create(event=sortir_event, card_digest="same", card_last4="0001", state=CardUsage.RELEASED)
        CardUsage.objects.create(event=sortir_event, card_digest="same", card_last4="0001", state=CardUsage.HELD, date_key=42)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel writers need PostgreSQL (SQLite serialises them)")
@pytest.mark.django_db(transaction=True)
def test_parallel_checkouts_with_one_card_exactly_one_wins(sortir_event, sortir_item, fake_apras):
    clients = [Client() for _ in range(PARALLEL)]
    carts = [add_to_cart(c, sortir_event, sortir_item)[0] for c in clients]
    fake_apras.fail_next(path="/api/partners/", delay=0.3, times=PARALLEL)  # everybody passes APRAS at the same time
    barrier = threading.Barrier(PARALLEL)
    results = [None] * PARALLEL

    def buy(i):
        try:
            barrier.wait()
            r = questions(clients[i], sortir_event, {carts[i]: VALID})
            results[i] = r.content.decode()
        finally:
            connection.close()

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    refused = [r for r in results if "has already been used for this event" in r]
    assert len(refused) == PARALLEL - 1, [r[:200] for r in results if r and "already been used" not in r]
    with scopes_disabled():
        assert CardUsage.objects.filter(state=CardUsage.HELD).count() == 1
