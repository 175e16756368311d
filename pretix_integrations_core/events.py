"""Dates of an event that every plugin's rules share (retention, "is it over", ...)."""
from django.db.models import Max


def event_end(event):
    """
    When ``event`` is over. For an event series: the end of its *last* date (the latest ``date_to`` or
    ``date_from`` over all its dates, active or not, as pretix's own lists compute it). For a single event,
    or a series without dates yet: its ``date_to``, else its ``date_from``.
    """
    if event.has_subevents:
        agg = event.subevents.aggregate(max_to=Max("date_to"), max_from=Max("date_from"))
        ends = [d for d in (agg["max_to"], agg["max_from"]) if d is not None]
        if ends:
            return max(ends)
    return event.date_to or event.date_from
