"""An article as one file, for `GET /v1/articles/{id}/export` and the review workspace's Export
links: the same bytes, media type and download name from both, so that a translator's download
from the workspace is the file an API client gets.

XLIFF 2.0 and TMX 1.4 (its approved segments) are downloads named `<external id or job id>.<variant>`
with their extension; the bilingual HTML page, the publishable text and the aligned document (JSON)
are shown as they are. The conversions are `service.interchange`'s, the records
`service.jobs.files`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.interchange.tmx import export_tmx
from service.interchange.xliff import export_xliff
from service.jobs import files
from service.jobs.articles import get_job, stored_document
from service.schemas import SegmentState, aligned_to_response
from service.storage.db import Database

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "web" / "templates"),
    autoescape=select_autoescape(["html"]),
)


class ExportFormat(StrEnum):
    JSON = "json"
    XLIFF = "xliff"
    TMX = "tmx"
    HTML = "html"
    TEXT = "text"


@dataclass(frozen=True)
class Exported:
    body: bytes | str
    media_type: str
    filename: str | None  # the download's name; None: the browser shows the file

    def content_disposition(self) -> str | None:
        """`attachment; filename="…"`; a name that is not plain ASCII (an external id in Chinese,
        or with a quote) also as RFC 6266's `filename*`, after an ASCII stand-in, since a header
        carries Latin-1 only and a quote would end the name."""
        if self.filename is None:
            return None
        name = self.filename
        if name.isascii() and name.isprintable() and not any(c in name for c in '"\\'):
            return f'attachment; filename="{name}"'
        plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
        return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def export(
    db: Database, job_id: str, fmt: ExportFormat, variant: str | None = None, *, scope: str | None = None
) -> Exported:
    """Article `job_id` as `fmt` in `variant` (the article's first target when None). `scope`
    (`Principal.scope`): a cms key's owner, whose articles only it may export; another's is a
    JobNotFound, as one that does not exist. Raises JobNotFound, files.NotTranslatedYet,
    files.UnknownVariant."""
    with db.session() as session:
        job = get_job(session, job_id, scope)
        stored = stored_document(session, job)
    if stored is None:
        raise files.NotTranslatedYet(job)
    doc, states = stored
    chosen = files.check_variant(doc.variants, variant)
    stem = f"{job.external_id or job.id}.{chosen}"
    if fmt is ExportFormat.XLIFF:
        versions = {sid: version for sid, (version, _) in states.items()}
        return Exported(
            export_xliff(files.to_xliff(job, doc, chosen, versions)), "application/xliff+xml", f"{stem}.xlf"
        )
    if fmt is ExportFormat.TMX:
        entries = files.approved_entries(db, job, doc, chosen)
        return Exported(export_tmx(entries), "application/x-tmx+xml", f"{stem}.tmx")
    if fmt is ExportFormat.TEXT:
        return Exported(doc.full_text[chosen], "text/plain; charset=utf-8", None)
    if fmt is ExportFormat.HTML:
        kinds = {b.id: b.kind.value for b in doc.blocks}
        rows, seen = [], set()
        for seg in doc.segments:
            flags = [f for f in seg.flags if f.variant in (None, chosen)]
            rows.append({"seg": seg, "first": seg.block_id not in seen, "kind": kinds[seg.block_id], "flags": flags})
            seen.add(seg.block_id)
        page = _templates.get_template("bilingual.html").render(
            title=job.external_id or f"Article {job.id}", variant=chosen, status=job.status, model=doc.model, rows=rows
        )
        return Exported(page, "text/html; charset=utf-8", None)
    body = aligned_to_response(doc, {k: SegmentState(v, locked) for k, (v, locked) in states.items()})
    return Exported(body.model_dump_json(), "application/json", None)
