"""
The sync engine: makes a pretix event the copy of one remote form, through the neutral models of :mod:`..providers`.
Nothing here knows HelloAsso's API: a provider (:mod:`pretix_helloasso_bridge.providers`) reads the platform and maps
it to neutral orders; the engine writes pretix data. One job per module:

- :mod:`.run`: the run (one sync per event at a time across workers, the report, the cursor, the incremental window)
  and the path of one order (webhooks);
- :mod:`.catalogue`: products (not sold in the shop: they only belong to the platform's sales channel), add-ons,
  questions, a "Donation" product; what the organiser changed in pretix is reported, never overwritten silently;
- :mod:`.matching`: a remote ticket to a pretix product, its answers to pretix questions;
- :mod:`.bulk_import`: the page's new orders created together with bulk inserts, then pretix's ``order_placed`` /
  ``order_paid`` signals per order;
- :mod:`.order_create`: one order at a time through pretix's order API serializer (whatever the bulk path cannot take);
- :mod:`.order_update`: an imported order that changed (cancelled tickets);
- :mod:`.payments`: payments, installments, refunds and chargebacks;
- :mod:`.remote_ids`: the mapping table (every write is keyed on remote ids, so nothing is imported twice).

Each page is one transaction and the cursor is saved with it: a sync that dies is resumed by the next run. Quotas
count the imported tickets, but an import is never refused for quota (``force``): the report says so.
"""
from .catalogue import sales_channel  # NOQA: F401
from .errors import SkipOrder, SyncAlreadyRunning  # NOQA: F401
from .remote_ids import fingerprint  # NOQA: F401
from .run import OVERLAP, Sync, run_sync  # NOQA: F401
