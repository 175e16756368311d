"""Matching a remote ticket to a pretix product and its custom-field answers to pretix questions (shared by both import paths)."""
import datetime
import logging
from decimal import Decimal

from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from pretix.base.models import Question

from .. import providers as P
from ..models import RemoteObject
from .errors import SkipOrder
from .remote_ids import lookup

logger = logging.getLogger(__name__)


def answer_date(value):
    """A date answer as platforms send it: an ISO date-time, an ISO date or a French ``dd/mm/yyyy``; None otherwise."""
    try:
        if "T" in value:
            parsed = parse_datetime(value)
            return parsed.date() if parsed else None
        if len(value) == 10 and value[4] == "-":
            return parse_date(value)
        return datetime.datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        return None


class PositionMatching:
    """Part of :class:`~.run.Sync`."""

    def _item_for(self, pos: P.RemotePosition):
        if pos.is_donation and (not pos.product_id or pos.product_id not in self.items):
            return self._donation_item()
        if pos.product_id and pos.product_id in self.items:
            return self.items[pos.product_id]
        if pos.product_id:
            ro = lookup(self.event, RemoteObject.PRODUCT, pos.product_id)
            if ro and ro.item:
                return ro.item
        for item in self.items.values():  # no rate id (old data): match by label
            if pos.product_label and str(item.name) == pos.product_label:
                return item
        raise SkipOrder(_("item “{label}” matches no product").format(label=pos.product_label or pos.remote_id))

    def _answers(self, pos: P.RemotePosition, item):
        result = []
        if self._by_label is None or len(self._by_label) != len(self.questions):
            self._by_label = {str(q.question): q for q in self.questions.values()}
        by_label = self._by_label
        for ans in pos.answers:
            question = self.questions.get(ans.question_id) if ans.question_id else None
            if question is None and ans.question_id:
                ro = lookup(self.event, RemoteObject.QUESTION, ans.question_id)
                question = ro.question if ro else None
            question = question or by_label.get(ans.label)
            if question is None:
                continue
            value = ans.answer
            entry = {"question": question.pk, "answer": value, "options": []}
            if question.type == Question.TYPE_CHOICE:
                if question.pk not in self._options:  # read once per sync, not once per answer
                    self._options[question.pk] = {}
                    for o in question.options.all():
                        self._options[question.pk].setdefault(str(o.answer), o)
                opt = self._options[question.pk].get(value)
                if opt is None:
                    continue
                entry["options"] = [opt.pk]
            elif question.type == Question.TYPE_BOOLEAN:
                entry["answer"] = "True" if value.strip().lower() in ("oui", "yes", "true", "1") else "False"
            elif question.type == Question.TYPE_NUMBER:
                try:
                    entry["answer"] = str(Decimal(value.replace(",", ".")))
                except ArithmeticError:
                    continue
            elif question.type == Question.TYPE_DATE:
                d = answer_date(value)
                if not d:
                    continue
                entry["answer"] = d.isoformat()
            result.append(entry)
        return result
