"""
Extract and compile the gettext catalogues of every package of the suite, in pure Python (babel ships
with pretix), so that neither GNU gettext nor a compiler is needed on a fresh machine.

    python tools/catalogs.py compile   # .po -> .mo for every package and language; fails on any error
    python tools/catalogs.py check     # compile in memory only and fail if a .mo is missing or says something else

Extraction (``make localegen``) uses Django's makemessages, which needs GNU gettext.
"""
import io
import sys
from pathlib import Path

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["pretix_integrations_core", "pretix_sortir", "pretix_helloasso_bridge", "pretix_crm_bridge"]
LANGUAGES = ["fr", "en"]
DOMAINS = ["django", "djangojs"]


def catalogues():
    for pkg in PACKAGES:
        for lang in LANGUAGES:
            for domain in DOMAINS:
                po = ROOT / pkg / "locale" / lang / "LC_MESSAGES" / f"{domain}.po"
                if domain == "django" and not po.exists():
                    raise SystemExit(f"missing catalogue: {po.relative_to(ROOT)}")
                if po.exists():
                    yield lang, po


def compiled(lang, po):
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=po.stem)
    errors = list(catalog.check())
    if errors:
        msgs = "; ".join(f"{m.id!r}: {', '.join(str(e) for e in errs)}" for m, errs in errors)
        raise SystemExit(f"{po.relative_to(ROOT)}: {msgs}")
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return catalog, buf.getvalue()


def translations(mo_bytes):
    """What a compiled catalogue translates, independent of the byte layout and the header (which change with the
    babel version that wrote it: a fresh install may get a newer babel than the one that compiled the .mo)."""
    catalog = read_mo(io.BytesIO(mo_bytes))
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)):
            m.string if isinstance(m.string, str) else tuple(m.string) for m in catalog if m.id}


def main(mode):
    stale = []
    for lang, po in catalogues():
        catalog, data = compiled(lang, po)
        mo = po.with_suffix(".mo")
        if mode == "compile":
            mo.write_bytes(data)
        elif not mo.exists() or translations(mo.read_bytes()) != translations(data):
            stale.append(str(mo.relative_to(ROOT)))
        untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy) and lang != "en"]
        if untranslated:
            stale.append(f"{po.relative_to(ROOT)}: {len(untranslated)} untranslated or fuzzy message(s), e.g. {untranslated[0]!r}")
        print(f"{po.relative_to(ROOT)}: {len([m for m in catalog if m.id])} messages")
    if stale:
        raise SystemExit("catalogues not up to date (run `make localecompile`):\n  " + "\n  ".join(stale))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "compile")
