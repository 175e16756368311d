"""Catalogue mapping: the remote form's products (rates), add-ons (options) and questions (custom fields) become pretix
products and questions, remembered in the mapping table; what the organiser changed in pretix is reported, not overwritten."""
import logging
from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext as _

from pretix.base.models import Item, ItemCategory, Question, QuestionOption, Quota, SalesChannel, TaxRule

from ..models import FormLink, RemoteObject
from .remote_ids import lookup, remember

logger = logging.getLogger(__name__)


def sales_channel(organizer, provider):
    """The sales channel of the platform's imported orders (its identifier is the provider's); bridge products are sold only there."""
    ch = organizer.sales_channels.filter(identifier=provider.identifier).first()
    if ch is None:
        name = str(provider.verbose_name)
        ch = SalesChannel.objects.create(organizer=organizer, identifier=provider.identifier, type="api", label={"en": name, "fr": name},
                                         position=99)
    return ch


class CatalogueMapping:
    """Part of :class:`~.run.Sync`: ``self.items`` / ``self.questions`` map remote ids to the pretix objects of this sync."""

    def sync_catalog(self):
        self.set_progress(_("Reading the form"))
        catalog = self.provider.get_catalog(self.link.form_ref)
        with transaction.atomic():
            if catalog.form.title and (catalog.form.title != self.link.form_title or catalog.form.url != self.link.form_url):
                FormLink.objects.filter(pk=self.link.pk).update(form_title=catalog.form.title[:500], form_url=catalog.form.url[:500])
            channel = sales_channel(self.event.organizer, self.provider)
            self._sync_dates(catalog.dates)
            for q in catalog.questions:
                self.questions[q.remote_id] = self._question(q)
            category = None
            for p in catalog.products:
                if p.is_addon and category is None:
                    category = self._addon_category()
                self.items[p.remote_id] = self._product(p, channel, category if p.is_addon else None)
            for p in catalog.products:
                item = self.items[p.remote_id]
                for qid in p.questions:
                    if qid in self.questions:
                        self.questions[qid].items.add(item)
                if p.is_addon:
                    for parent_id in p.parents:
                        parent = self.items.get(parent_id)
                        if parent and not parent.addons.filter(addon_category=category).exists():
                            parent.addons.create(addon_category=category, min_count=0, max_count=10)
            self._date_quotas()
            self.report.save()

    def _sync_dates(self, dates):
        """Several remote dates: an event series with one pretix date each; a single one: the event's own date."""
        from pretix.base.models import SubEvent

        event = self.event
        if len(dates) == 1 and not event.has_subevents:
            d = dates[0]
            if d.date_from and (event.date_from != d.date_from or (d.date_to and event.date_to != d.date_to)):
                event.date_from = d.date_from
                if d.date_to and d.date_to > d.date_from:
                    event.date_to = d.date_to
                event.save(update_fields=["date_from", "date_to"])
            return
        if len(dates) < 2:
            return
        if not event.has_subevents:
            if event.orders.exists():
                self.report.warnings.append(_("The remote event has several dates, but this pretix event already has orders and "
                                              "cannot become an event series: every ticket was imported into the single event."))
                return
            event.has_subevents = True
            event.save(update_fields=["has_subevents"])
        for d in dates:
            if not d.date_from:
                continue
            ro = lookup(self.event, RemoteObject.PRODUCT, f"date:{d.remote_id}")
            sub = event.subevents.filter(pk=(ro.synced or {}).get("subevent")).first() if ro else None
            name = d.name or str(event.name)
            if sub is None:
                sub = SubEvent.objects.create(event=event, name=name, date_from=d.date_from, date_to=d.date_to, active=True)
                remember(self.event, RemoteObject.PRODUCT, f"date:{d.remote_id}", synced={"subevent": sub.pk})
            elif sub.date_from != d.date_from or sub.date_to != d.date_to:
                sub.date_from, sub.date_to = d.date_from, d.date_to
                sub.save(update_fields=["date_from", "date_to"])
            self.subevents[d.remote_id] = sub

    def _date_quotas(self):
        """In an event series, pretix counts tickets per date: one unlimited quota per date with the platform's products."""
        for remote_id, sub in self.subevents.items():
            ro = lookup(self.event, RemoteObject.PRODUCT, f"quota:date:{remote_id}")
            q = Quota.objects.filter(event=self.event, subevent=sub, pk=(ro.synced or {}).get("quota")).first() if ro else None
            if q is None:
                q = Quota.objects.create(event=self.event, subevent=sub, name=str(self.provider.verbose_name), size=None)
                remember(self.event, RemoteObject.PRODUCT, f"quota:date:{remote_id}", synced={"quota": q.pk})
            missing = [i for i in self.items.values() if i.pk not in set(q.items.values_list("pk", flat=True))]
            if missing:
                q.items.add(*missing)

    def _addon_category(self):
        ro = lookup(self.event, RemoteObject.PRODUCT, "category-addons")
        cat = ItemCategory.objects.filter(pk=ro.synced.get("category")).first() if ro else None
        if cat is None:
            cat = ItemCategory.objects.create(event=self.event, name=_("{platform} options").format(platform=self.provider.verbose_name), is_addon=True)
            remember(self.event, RemoteObject.PRODUCT, "category-addons", synced={"category": cat.pk})
        return cat

    def _tax_rule(self, rate):
        if not rate:
            return None
        rule = self.event.tax_rules.filter(rate=rate).first()
        return rule or TaxRule.objects.create(event=self.event, rate=rate, name=_("VAT {rate} %").format(rate=rate))

    def _quota(self):
        ro = lookup(self.event, RemoteObject.PRODUCT, "quota")
        q = Quota.objects.filter(event=self.event, pk=ro.synced.get("quota")).first() if ro else None
        if q is None:
            q = Quota.objects.create(event=self.event, name=str(self.provider.verbose_name), size=None)
            remember(self.event, RemoteObject.PRODUCT, "quota", synced={"quota": q.pk})
        return q

    def _product(self, p, channel, category):
        # pay-what-you-want rates: pretix's free price starts at the product price, so that is the platform's minimum
        price = p.min_price if p.free_price and p.min_price is not None else p.price
        wanted = {"name": p.name, "price": str(price), "description": p.description}
        ro = lookup(self.event, RemoteObject.PRODUCT, p.remote_id)
        item = ro.item if ro else None
        if item is None:
            item = Item.objects.create(
                event=self.event, name=p.name, description=p.description or None, default_price=price,
                free_price=p.free_price or p.is_donation, tax_rule=self._tax_rule(p.tax_rate), category=category,
                admission=not p.is_addon and not p.is_donation, all_sales_channels=False, max_per_order=p.max_per_order,
                position=len(self.items),
            )
            item.limit_sales_channels.add(channel)
            self._quota().items.add(item)
            remember(self.event, RemoteObject.PRODUCT, p.remote_id, item=item, synced=wanted)
            return item
        # update what the organiser did not change in pretix; report what differs
        last = ro.synced or {}
        current = {"name": str(item.name), "price": str(item.default_price), "description": str(item.description or "")}
        changed = []
        for key, value in wanted.items():
            if value == current[key]:
                continue
            if current[key] == last.get(key):
                changed.append(key)
                if key == "name":
                    item.name = value
                elif key == "price":
                    item.default_price = Decimal(value)
                else:
                    item.description = value
            elif value != last.get(key):
                self.report.warnings.append(_("Product “{name}”: changed in pretix and on {platform} ({field}); pretix's value was kept.").format(
                    name=item.name, platform=self.provider.verbose_name, field=key))
        if changed:
            item.save()
            ro.synced = {**last, **{k: wanted[k] for k in changed}}
            ro.save(update_fields=["synced", "updated"])
        return item

    def _question(self, q):
        ro = lookup(self.event, RemoteObject.QUESTION, q.remote_id)
        question = ro.question if ro else None
        if question is None:
            question = Question.objects.create(event=self.event, question=q.label, type=q.type, required=q.required,
                                               position=len(self.questions) + 100)
            for i, opt in enumerate(q.options):
                QuestionOption.objects.create(question=question, answer=opt, identifier=f"HA{q.remote_id}-{i}", position=i)
            remember(self.event, RemoteObject.QUESTION, q.remote_id, question=question, synced={"label": q.label})
        else:
            existing = {str(o.answer) for o in question.options.all()}
            for i, opt in enumerate(q.options):
                if opt not in existing:
                    QuestionOption.objects.create(question=question, answer=opt, position=100 + i)
        return question

    def _donation_item(self):
        if self.donation_item is None:
            ro = lookup(self.event, RemoteObject.PRODUCT, "donation")
            self.donation_item = ro.item if ro and ro.item else None
            if self.donation_item is None:
                self.donation_item = Item.objects.create(event=self.event, name=_("Donation"), default_price=Decimal("0.00"), free_price=True,
                                                         admission=False, all_sales_channels=False)
                self.donation_item.limit_sales_channels.add(sales_channel(self.event.organizer, self.provider))
                self._quota().items.add(self.donation_item)
                remember(self.event, RemoteObject.PRODUCT, "donation", item=self.donation_item)
        return self.donation_item
