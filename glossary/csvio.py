"""Glossaries as CSV: the format a terminologist edits in a spreadsheet.

Columns (header row required; order free; unknown or repeated columns are an error so typos surface):
  id            stable term id (letters, digits, '-', '_')
  en            English forms separated by ';' — canonical first, then aliases
  zh-Hans       Simplified target (required unless dnt)
  zh-Hant, zh-TW, zh-HK   regional overrides, empty where OpenCC's conversion is right
  case          'sensitive', 'insensitive' or empty (auto: forms with a capital match exactly)
  dnt           'yes' to keep the English form in every variant ('no' or empty: translate it)
  note          free text shown to translators
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from glossary.terms import FORM_SEPARATOR, VARIANTS, Glossary, Term

COLUMNS = ("id", "en", *VARIANTS, "case", "dnt", "note")
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class GlossaryFormatError(ValueError):
    """A glossary file that cannot be read; the message names the row and what is wrong."""


def _case(value: str) -> bool | None:
    value = value.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("sensitive", "yes", "true"):
        return True
    if value in ("insensitive", "no", "false"):
        return False
    raise GlossaryFormatError(f"case must be sensitive, insensitive or empty, not {value!r}")


def _dnt(value: str) -> bool:
    """The `dnt` column: a value it does not know is refused, never read as "no" (a term meant to
    stay in English would be translated)."""
    value = value.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("", "no", "n", "false", "0"):
        return False
    raise GlossaryFormatError(f"dnt must be yes, no or empty, not {value!r}")


def _column(index: int) -> str:
    """Column `index` (0-based) as a spreadsheet names it: 1-based number and letters (3, C)."""
    letters = ""
    number = index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"{index + 1} ({letters})"


# What the csv module's errors mean for someone who edits the file in a spreadsheet or by hand.
_OPEN_QUOTE = (
    'is a quote left open? A field that starts with " ends only at a " followed by a comma or the end '
    'of a line, so everything up to there is one field; a " inside a quoted field is written ""'
)


def _csv_problem(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger than field limit" in message:
        return f"a field is longer than {csv.field_size_limit():,} characters, the most one may hold; {_OPEN_QUOTE}"
    if "unexpected end of data" in message:
        return f"a quoted field is still open at the end of the file; {_OPEN_QUOTE}"
    if "expected after" in message:
        return f"a quoted field has more text after its closing quote; {_OPEN_QUOTE}"
    return f"not valid CSV ({message})"


def _records(text: str, where: str) -> Iterator[tuple[int, list[str]]]:
    """The CSV's records with their row numbers as a spreadsheet shows them (the header is row 1; a
    quoted field with line breaks stays in its row). Malformed CSV is a GlossaryFormatError naming the
    row and the line it starts on."""
    reader = csv.reader(io.StringIO(text), strict=True)
    row = 0
    while True:
        row += 1
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise GlossaryFormatError(f"{where} row {row} (from line {line}): {_csv_problem(exc)}") from None
        yield row, fields


def _check_header(header: list[str], where: str) -> None:
    unknown = [c for c in header if c not in COLUMNS]
    if unknown or "id" not in header or "en" not in header:
        raise GlossaryFormatError(
            f"{where}: columns must be among {', '.join(COLUMNS)} and include id and en; "
            f"got {', '.join(header) or 'none'}"
        )
    for name in header:
        places = [_column(index) for index, column in enumerate(header) if column == name]
        if len(places) > 1:
            raise GlossaryFormatError(
                f"{where}: column {name!r} appears more than once in the header (columns {' and '.join(places)}); "
                "each column may appear once"
            )


def _check_fields(fields: list[str], header: list[str], where: str) -> None:
    """Refuse a row whose fields would be lost or are run together: a field past the header's
    columns, and line breaks where a term cannot have one (a quote left open swallows the next rows)."""
    for index, value in enumerate(fields[len(header) :], start=len(header)):
        if value.strip():
            raise GlossaryFormatError(
                f"{where}: the row has {len(fields)} fields but the header only {len(header)} columns "
                f"(column {_column(index)} holds {value.strip()[:40]!r}); is there a comma in a field that is not "
                'quoted? Put such a field in double quotes ("former president, of the USA")'
            )
    for column, value in zip(header, fields, strict=False):
        if column != "note" and ("\n" in value or "\r" in value):
            raise GlossaryFormatError(
                f"{where}: the {column} field holds a line break ({value[:40]!r}…); {_OPEN_QUOTE}"
            )
    if "note" in header and len(fields) > header.index("note"):
        note = fields[header.index("note")]
        ident = header.index("id")
        for line in note.splitlines()[1:]:
            row = next(csv.reader([line]), [])
            if len(row) == len(header) and _ID.match(row[ident].strip()) and row[header.index("en")].strip():
                raise GlossaryFormatError(
                    f"{where}: the note runs on over several lines and one of them reads as a row of its own "
                    f"({line[:40]!r}); {_OPEN_QUOTE}"
                )


def parse_csv(text: str, name: str, description: str = "") -> Glossary:
    """The glossary in CSV `text`. Refused (GlossaryFormatError, naming the row and column) rather
    than read with anything lost: malformed CSV (a quote left open), a column named twice, fields
    past the header's columns, and NUL characters (a file saved as UTF-16)."""
    glossary = f"glossary {name!r}"
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise GlossaryFormatError(
            f"{glossary} line {line}: the file holds NUL characters, which are not text; was it saved as UTF-16? "
            "Save it as CSV UTF-8"
        )
    records = _records(text, glossary)
    header = next((fields for _, fields in records), [])
    _check_header(header, glossary)
    terms: list[Term] = []
    seen: set[str] = set()
    for row_no, fields in records:
        where = f"{glossary} row {row_no}"
        _check_fields(fields, header, where)
        row = dict(zip(header, fields, strict=False))  # a short row: the missing fields are empty
        tid = row.get("id", "").strip()
        if not tid and not any(v.strip() for v in fields):
            continue
        if not _ID.match(tid):
            raise GlossaryFormatError(f"{where}: bad id {tid!r}")
        if tid in seen:
            raise GlossaryFormatError(f"{where}: duplicate id {tid!r}")
        seen.add(tid)
        forms = tuple(f.strip() for f in row.get("en", "").split(FORM_SEPARATOR) if f.strip())
        targets = {v: row.get(v, "").strip() for v in VARIANTS if row.get(v, "").strip()}
        try:
            terms.append(
                Term(
                    id=tid,
                    forms=forms,
                    targets=targets,
                    case_sensitive=_case(row.get("case", "")),
                    do_not_translate=_dnt(row.get("dnt", "")),
                    note=row.get("note", "").strip(),
                )
            )
        except ValueError as exc:
            raise GlossaryFormatError(f"{where}: {exc}") from None
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
                "en": f"{FORM_SEPARATOR} ".join(term.forms),
                **{v: term.targets.get(v, "") for v in VARIANTS},
                "case": case,
                "dnt": "yes" if term.do_not_translate else "",
                "note": term.note,
            }
        )
    return out.getvalue()
