"""The mapping table (:class:`~pretix_helloasso_bridge.models.RemoteObject`): which pretix object came from which remote id."""
import hashlib

from .. import providers as P
from ..models import RemoteObject


def lookup(event, kind, remote_id):
    """The mapping row of ``remote_id`` of this ``kind``, or None."""
    return RemoteObject.objects.filter(event=event, kind=kind, remote_id=str(remote_id)).first()


def remember(event, kind, remote_id, **kwargs):
    """Create or update the mapping row of ``remote_id``."""
    obj, _created = RemoteObject.objects.update_or_create(event=event, kind=kind, remote_id=str(remote_id), defaults=kwargs)
    return obj


def fingerprint(order: P.RemoteOrder) -> str:
    """A digest of everything the sync reads from a remote order: equal digests mean nothing to apply again."""
    return hashlib.sha256(repr(order).encode()).hexdigest()[:40]
