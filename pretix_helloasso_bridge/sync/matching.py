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

    def _subevent_for(self, pos: P.RemotePosition):
        """The pretix date of a ticket of an event series (its remote date, or the only date)."""
        sub = self.subevents.get(pos.date_id) if pos.date_id else None
        if sub is None and pos.date_id:
            ro = lookup(self.event, RemoteObject.PRODUCT, f"date:{pos.date_id}")
            sub = self.event.subevents.filter(pk=(ro.synced or {}).get("subevent")).first() if ro else None
        if sub is None and len(self.subevents) == 1:
            sub = next(iter(self.subevents.values()))
        if sub is None:
            raise SkipOrder(_("ticket “{id}” belongs to no known date").format(id=pos.remote_id))
        return sub

    def _question_for_answer(self, ans: P.RemoteAnswer):
        """A text question for an answer keyed by its label (the platform sends no question list)."""
        from ..providers import RemoteQuestion

        remote_id = ans.question_id or f"label:{ans.label}"
        question = self._question(RemoteQuestion(remote_id=remote_id, label=ans.label[:190], type=Question.TYPE_STRING))
        self.questions[remote_id] = question
        self._by_label = None
        return question

    @staticmethod
    def _order_answers_carrier(remote: P.RemoteOrder):
        """The remote id of the ticket that carries the order's answers: its first live ticket (not an option), as pretix
        keeps answers to questions asked once per order on the order's first position; None without order answers."""
        if not remote.answers:
            return None
        tickets = [p for p in remote.positions if not p.addon_to]
        live = [p for p in tickets if p.state != P.CANCELED]
        carrier = (live or tickets or [None])[0]
        return carrier.remote_id if carrier else None

    def _answers(self, pos: P.RemotePosition, item, remote: P.RemoteOrder = None):
        """The pretix answers of a ticket: its own, plus the order's answers on the order's first ticket (the ticket's own
        answer wins when both answer the same question)."""
        result = self._position_answers(pos.answers, item)
        if remote is not None and remote.answers and pos.remote_id == self._order_answers_carrier(remote):
            asked = {e["question"] for e in result}
            result += [e for e in self._position_answers(remote.answers, item) if e["question"] not in asked]
        return result

    def _position_answers(self, answers, item):
        result = []
        if self._by_label is None or len(self._by_label) != len(self.questions):
            self._by_label = {str(q.question): q for q in self.questions.values()}
        by_label = self._by_label
        for ans in answers:
            question = self.questions.get(ans.question_id) if ans.question_id else None
            if question is None and ans.question_id:
                ro = lookup(self.event, RemoteObject.QUESTION, ans.question_id)
                question = ro.question if ro else None
            question = question or by_label.get(ans.label)
            if question is None and ans.create_question and ans.label:
                question = self._question_for_answer(ans)
            if question is None:
                continue
            if ans.create_question:
                if self._question_items is None:
                    self._question_items = set(Question.items.through.objects.filter(question__event=self.event).values_list(
                        "question_id", "item_id"))
                if (question.pk, item.pk) not in self._question_items:
                    question.items.add(item)
                    self._question_items.add((question.pk, item.pk))
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
