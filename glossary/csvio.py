"""Glossaries as CSV: the format a terminologist edits in a spreadsheet.

Columns (header row required; order free; unknown columns are an error so typos surface):
  id            stable term id (letters, digits, '-', '_')
  en            English forms separated by ';' — canonical first, then aliases
  zh-Hans       Simplified target (required unless dnt)
  zh-Hant, zh-TW, zh-HK   regional overrides, empty where OpenCC's conversion is right
  case          'sensitive', 'insensitive' or empty (auto: forms with a capital match exactly)
  dnt           'yes' to keep the English form in every variant
  note          free text shown to translators
"""

from __future__ import annotations

import csv
import io
import re

from glossary.terms import VARIANTS, Glossary, Term

COLUMNS = ("id", "en", *VARIANTS, "case", "dnt", "note")
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class GlossaryFormatError(ValueError):
    """A glossary file that cannot be read; the message names the row and what is wrong."""


def _case(value: str, row: int) -> bool | None:
    value = value.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("sensitive", "yes", "true"):
        return True
    if value in ("insensitive", "no", "false"):
        return False
    raise GlossaryFormatError(f"row {row}: case must be sensitive, insensitive or empty, not {value!r}")


def parse_csv(text: str, name: str, description: str = "") -> Glossary:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in COLUMNS]
    if unknown or "id" not in header or "en" not in header:
        raise GlossaryFormatError(
            f"glossary {name!r}: columns must be among {', '.join(COLUMNS)} and include id and en; "
            f"got {', '.join(header) or 'none'}"
        )
    terms: list[Term] = []
    seen: set[str] = set()
    for row_no, row in enumerate(reader, start=2):
        tid = (row.get("id") or "").strip()
        if not tid and not any((v or "").strip() for v in row.values()):
            continue
        if not _ID.match(tid):
            raise GlossaryFormatError(f"glossary {name!r} row {row_no}: bad id {tid!r}")
        if tid in seen:
            raise GlossaryFormatError(f"glossary {name!r} row {row_no}: duplicate id {tid!r}")
        seen.add(tid)
        forms = tuple(f.strip() for f in (row.get("en") or "").split(";") if f.strip())
        targets = {v: (row.get(v) or "").strip() for v in VARIANTS if (row.get(v) or "").strip()}
        try:
            terms.append(
                Term(
                    id=tid,
                    forms=forms,
                    targets=targets,
                    case_sensitive=_case(row.get("case") or "", row_no),
                    do_not_translate=(row.get("dnt") or "").strip().lower() in ("yes", "true", "1"),
                    note=(row.get("note") or "").strip(),
                )
            )
        except ValueError as exc:
            raise GlossaryFormatError(f"glossary {name!r} row {row_no}: {exc}") from None
    return Glossary(name=name, terms=tuple(terms), description=description)


def to_csv(glossary: Glossary) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for term in glossary.terms:
        case = {None: "", True: "sensitive", False: "insensitive"}[term.case_sensitive]
        writer.writerow(
            {
                "id": term.id,
                "en": "; ".join(term.forms),
                **{v: term.targets.get(v, "") for v in VARIANTS},
                "case": case,
                "dnt": "yes" if term.do_not_translate else "",
                "note": term.note,
            }
        )
    return out.getvalue()
