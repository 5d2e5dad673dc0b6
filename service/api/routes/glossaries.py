from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import RuntimeDep
from service.api.errors import ApiError, responses
from service.glossaries import UnknownGlossaryError
from service.schemas import GlossaryOut, GlossarySummary, glossary_out

router = APIRouter(prefix="/v1/glossaries", tags=["glossaries"])


@router.get("", response_model=list[GlossarySummary], summary="List glossaries")
def list_glossaries(runtime: RuntimeDep) -> list[GlossarySummary]:
    store = runtime.glossaries
    return [GlossarySummary(name=n, terms=len(store.get(n).terms)) for n in store.names()]


@router.get("/{name}", response_model=GlossaryOut, responses=responses(404), summary="One glossary with its terms")
def read_glossary(name: str, runtime: RuntimeDep) -> GlossaryOut:
    try:
        return glossary_out(runtime.glossaries.get(name))
    except UnknownGlossaryError as exc:
        raise ApiError(404, "unknown_glossary", str(exc), valid=exc.valid) from None
