"""Unlocking a variant edited by hand (service.jobs.review.release_variant): a translator who fixed
zh-TW by hand and later corrected zh-Hans has zh-TW derived again from the new zh-Hans, as an edit
of zh-Hans derives it, instead of typing it again. Through the real HTTP server with API keys, on
SQLite and on PostgreSQL, and in the review workspace (Chromium) with its button."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service.auth import Role
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_jobs import wait_for
from tests.test_review_ui import row_of, sign_in
from tests.test_review_ui_safety import watched

SENTENCE = "Abe Shinzo met John Kerry in Tokyo."
HANS = "安倍晋三在东京会见了约翰·克里。"  # the glossary's zh-TW form of Kerry is 凱瑞, not OpenCC's 克里
BY_HAND = "安倍與凱瑞今天在東京見面。"  # a translator's own zh-TW


@pytest.fixture
def desk(
    database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """A CMS's client and a translator's, on a service that asks for API keys."""
    keys = make_keys(database_url, (Role.CMS, Role.TRANSLATOR), suffix="-unlock")
    with serve(keyed_settings(tiny_dirs["marian"], database_url), engines["marian"]) as live:
        clients = [
            httpx.Client(base_url=live.url, timeout=120, headers={"Authorization": f"Bearer {keys[role].key}"})
            for role in ("cms", "translator")
        ]
        try:
            yield clients[0], clients[1]
        finally:
            for client in clients:
                client.close()


def _translated(cms: httpx.Client, body: str, targets: list[str]) -> tuple[str, list[dict[str, Any]]]:
    job_id = cms.post("/v1/articles", json={"body": body, "targets": targets}).json()["id"]
    return job_id, _segments(wait_for(cms, job_id, "translated"))


def _segments(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for b in job["document"]["blocks"] for s in b["segments"]]


def _stored(client: httpx.Client, job_id: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in _segments(client.get(f"/v1/articles/{job_id}").json())}


def _edit(
    client: httpx.Client, job_id: str, seg: dict[str, Any], variant: str, text: str, propagate: bool = False
) -> dict[str, Any]:
    r = client.patch(
        f"/v1/articles/{job_id}/segments/{seg['id']}",
        json={"variant": variant, "text": text, "version": seg["version"], "propagate": propagate},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _unlock(client: httpx.Client, job_id: str, seg: dict[str, Any], variant: str, version: int) -> httpx.Response:
    return client.post(
        f"/v1/articles/{job_id}/segments/{seg['id']}/variants/{variant}/unlock", json={"version": version}
    )


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    return str(r.json()["error"]["message"])


def test_an_unlocked_variant_is_derived_again_from_zh_hans(desk: tuple[httpx.Client, httpx.Client]) -> None:
    cms, tr = desk
    # Two segments of one sentence: `a` to unlock, `b` to show what an edit of zh-Hans makes of it.
    job_id, (a, b) = _translated(cms, f"{SENTENCE}\n\n{SENTENCE}", ["zh-Hans", "zh-TW"])

    a = _edit(tr, job_id, a, "zh-TW", BY_HAND)
    assert a["locked_variants"] == ["zh-TW"]
    a = _edit(tr, job_id, a, "zh-Hans", HANS)
    assert a["targets"] == {"zh-Hans": HANS, "zh-TW": BY_HAND}  # locked: the edit of zh-Hans left it
    reference = _edit(tr, job_id, b, "zh-Hans", HANS)
    assert "凱瑞" in reference["targets"]["zh-TW"] and reference["locked_variants"] == []

    r = _unlock(tr, job_id, a, "zh-TW", a["version"])
    assert r.status_code == 200, r.text
    unlocked = r.json()
    # Exactly what an edit of zh-Hans derives (the glossary's regional form included), unlocked.
    assert unlocked["targets"] == reference["targets"]
    assert unlocked["locked_variants"] == []
    assert unlocked["version"] == a["version"] + 1
    assert unlocked["status"] == reference["status"] and unlocked["origin"] == "human"
    assert unlocked["repetitions"] == []  # b repeats it, but a release is this segment's alone
    assert _stored(cms, job_id)[a["id"]] | {"repetitions": []} == unlocked

    # In the history: who, before, after, and why.
    history = tr.get(f"/v1/articles/{job_id}/segments/{a['id']}/history").json()
    last = history[-1]
    assert (last["variant"], last["before"], last["after"]) == ("zh-TW", BY_HAND, reference["targets"]["zh-TW"])
    assert last["by"] == "translator-unlock"
    assert last["note"] == "unlocked zh-TW: derived again from zh-Hans"
    assert [h for h in history if h["note"]] == [last]  # the release alone: it changed zh-TW only

    # zh-TW follows zh-Hans again.
    again = _edit(tr, job_id, unlocked, "zh-Hans", "安倍晋三在东京会见约翰·克里。")
    assert again["targets"]["zh-TW"] != reference["targets"]["zh-TW"] and "凱瑞" in again["targets"]["zh-TW"]


def test_what_cannot_be_unlocked_is_refused(desk: tuple[httpx.Client, httpx.Client]) -> None:
    cms, tr = desk
    job_id, (seg,) = _translated(cms, SENTENCE, ["zh-Hans", "zh-TW"])
    base = f"/v1/articles/{job_id}/segments/{seg['id']}"

    # Not locked (zh-TW not edited by hand yet; zh-Hans never is): 409, and nothing changed.
    assert "not locked" in _error(_unlock(tr, job_id, seg, "zh-TW", seg["version"]), 409, "not_locked")
    assert "never locked" in _error(_unlock(tr, job_id, seg, "zh-Hans", seg["version"]), 409, "not_locked")
    # A variant the article lacks, or none at all: 422, as an edit of it is.
    for variant in ("zh-HK", "zh-XX"):
        assert variant in _error(_unlock(tr, job_id, seg, variant, seg["version"]), 422, "unknown_variant")
    assert _stored(cms, job_id)[seg["id"]]["version"] == seg["version"]

    locked = _edit(tr, job_id, seg, "zh-TW", BY_HAND)
    # Based on an old version: 409 with the segment as it is, still locked.
    r = _unlock(tr, job_id, seg, "zh-TW", seg["version"])
    _error(r, 409, "version_conflict")
    assert r.json()["error"]["current"]["version"] == locked["version"]
    assert r.json()["error"]["current"]["locked_variants"] == ["zh-TW"]
    # A role that may not edit (a CMS's key), no body, a segment or article that does not exist.
    _error(_unlock(cms, job_id, locked, "zh-TW", locked["version"]), 403, "forbidden")
    _error(tr.post(f"{base}/variants/zh-TW/unlock", json={}), 422, "invalid_request")
    _error(
        tr.post(f"/v1/articles/{job_id}/segments/b9.s9/variants/zh-TW/unlock", json={"version": 1}), 404, "not_found"
    )
    _error(
        tr.post(f"/v1/articles/nope/segments/{seg['id']}/variants/zh-TW/unlock", json={"version": 1}), 404, "not_found"
    )
    stored = _stored(cms, job_id)[seg["id"]]
    assert (stored["version"], stored["locked_variants"], stored["targets"]["zh-TW"]) == (
        locked["version"],
        ["zh-TW"],
        BY_HAND,
    )


def test_a_released_repetition_is_a_persons_own(desk: tuple[httpx.Client, httpx.Client]) -> None:
    """An edit of zh-TW propagates to an untouched repetition, locking it there too. Releasing it in
    one segment leaves the other's lock; and the released segment, a person's change now, no longer
    takes propagations."""
    cms, tr = desk
    job_id, (a, b, c) = _translated(cms, "\n\n".join([SENTENCE] * 3), ["zh-Hans", "zh-TW"])
    a = _edit(tr, job_id, a, "zh-TW", BY_HAND, propagate=True)
    now = _stored(cms, job_id)
    assert now[b["id"]]["locked_variants"] == now[c["id"]]["locked_variants"] == ["zh-TW"]

    r = _unlock(tr, job_id, now[b["id"]], "zh-TW", now[b["id"]]["version"])
    assert r.status_code == 200, r.text
    assert r.json()["locked_variants"] == [] and r.json()["repetitions"] == []
    after = _stored(cms, job_id)
    assert after[c["id"]] == now[c["id"]]  # c keeps its lock and its text

    # A correction of a reaches c (which only ever received propagations), not b.
    corrected = _edit(tr, job_id, after[a["id"]], "zh-Hans", HANS, propagate=True)
    assert [s["id"] for s in corrected["repetitions"]] == [c["id"]]
    assert _stored(cms, job_id)[b["id"]] == after[b["id"]]


def test_without_zh_hans_the_variant_edited_last_stands_in(desk: tuple[httpx.Client, httpx.Client]) -> None:
    """In an article without zh-Hans an edit of one variant regenerates the others: unlocking zh-TW
    derives it from the other variant edited by hand; with none, there is nothing to derive it from."""
    cms, tr = desk
    job_id, (a, b) = _translated(cms, f"{SENTENCE}\n\n{SENTENCE}", ["zh-TW", "zh-HK"])
    a = _edit(tr, job_id, a, "zh-TW", BY_HAND)
    assert a["locked_variants"] == ["zh-TW"]
    message = _error(_unlock(tr, job_id, a, "zh-TW", a["version"]), 409, "nothing_to_derive_from")
    assert "no zh-Hans" in message
    hk = "安倍晉三在東京會見了約翰·克里。"
    a = _edit(tr, job_id, a, "zh-HK", hk)
    assert a["targets"]["zh-TW"] == BY_HAND and a["locked_variants"] == ["zh-HK", "zh-TW"]
    reference = _edit(tr, job_id, b, "zh-HK", hk)  # zh-TW, unlocked there, regenerated from it

    r = _unlock(tr, job_id, a, "zh-TW", a["version"])
    assert r.status_code == 200, r.text
    assert r.json()["targets"] == reference["targets"] and r.json()["targets"]["zh-TW"] != BY_HAND
    assert r.json()["locked_variants"] == ["zh-HK"]
    history = tr.get(f"/v1/articles/{job_id}/segments/{a['id']}/history").json()
    assert history[-1]["note"] == "unlocked zh-TW: derived again from zh-HK"


# --- the review workspace ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('unlock') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-ws").items()}
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, keys


def test_the_workspace_derives_a_locked_variant_again(site: tuple[LiveServer, dict[str, str]], browser: object) -> None:
    live, keys = site
    auth = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
    body = {"body": f"{SENTENCE}\n\nThe ferry left at noon.", "targets": ["zh-Hans", "zh-TW"]}
    job_id = live.client.post("/v1/articles", json=body, headers=auth["cms"]).json()["id"]
    deadline = time.monotonic() + 60
    while (job := live.client.get(f"/v1/articles/{job_id}", headers=auth["cms"]).json())["status"] != "translated":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    seg = _segments(job)[0]
    for variant, text in (("zh-TW", BY_HAND), ("zh-Hans", HANS)):
        r = live.client.patch(
            f"/v1/articles/{job_id}/segments/{seg['id']}",
            json={"variant": variant, "text": text, "version": seg["version"]},
            headers=auth["translator"],
        )
        assert r.status_code == 200, r.text
        seg = r.json()

    page = sign_in(browser, live, keys["translator"])
    errors = watched(page)
    page.goto(f"/review/articles/{job_id}")  # type: ignore[attr-defined]
    row = row_of(page, "Abe Shinzo")
    zh_tw = row.locator(".other[data-variant='zh-TW']")  # type: ignore[attr-defined]
    assert zh_tw.locator(".locked-mark").is_visible()
    button = zh_tw.locator("button.unlock")
    assert button.is_visible() and button.inner_text() == "Derive from zh-Hans again"
    # Only where a variant is locked.
    assert row_of(page, "ferry").locator("button.unlock").is_hidden()  # type: ignore[attr-defined]

    with page.expect_response(lambda r: r.url.endswith("/unlock")) as answered:  # type: ignore[attr-defined]
        button.click()
    assert answered.value.status == 200
    derived = answered.value.json()
    assert derived["locked_variants"] == [] and "凱瑞" in derived["targets"]["zh-TW"]
    page.wait_for_function(  # type: ignore[attr-defined]
        "([el, text]) => el.textContent === text",
        arg=[zh_tw.locator(".other-text").element_handle(), derived["targets"]["zh-TW"]],
    )
    assert zh_tw.locator(".locked-mark").is_hidden() and button.is_hidden()
    assert row.get_attribute("data-version") == str(derived["version"])  # type: ignore[attr-defined]
    assert re.search("zh-TW derived again from zh-Hans", row.locator(".save-state").inner_text())  # type: ignore[attr-defined]
    # The focus is on the translation, not lost with the button.
    page.wait_for_function("document.activeElement.classList.contains('target-view')")  # type: ignore[attr-defined]

    # Stored: after a reload it is unlocked, and an edit of zh-Hans (based on the new version) reaches it.
    page.reload()  # type: ignore[attr-defined]
    row = row_of(page, "Abe Shinzo")
    assert row.locator(".other[data-variant='zh-TW'] .locked-mark").is_hidden()  # type: ignore[attr-defined]
    row.locator(".target-view").click()  # type: ignore[attr-defined]
    with page.expect_response(lambda r: r.request.method == "PATCH") as saved:  # type: ignore[attr-defined]
        row.locator("textarea.target-edit").fill("安倍晋三在东京会见约翰·克里。")  # type: ignore[attr-defined]
    assert saved.value.status == 200
    assert saved.value.json()["targets"]["zh-TW"] != BY_HAND
    assert errors == []
    page.context.close()  # type: ignore[attr-defined]
