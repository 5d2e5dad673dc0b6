"""Repetitions, as CAT tools propagate them: a translator's edit (or approval) of one sentence is
also made of the article's other segments with the same source sentence that no person has edited
or approved, in the same transaction, recorded in their history as the translator's with a note
naming the segment it came from; through the real HTTP server, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.engine import Engine
from service.config import Settings
from tests.conftest import LiveServer, serve
from tests.test_jobs import wait_for

QUOTE = "The minister declined to comment."


@pytest.fixture
def live(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[LiveServer]:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as server:
        yield server


def _segments(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    doc = client.get(f"/v1/articles/{job_id}").json()["document"]
    return [s for b in doc["blocks"] for s in b["segments"]]


def _translated(live: LiveServer, **article: Any) -> tuple[str, list[dict[str, Any]]]:
    job_id = live.client.post("/v1/articles", json={"targets": ["zh-Hans", "zh-TW"], **article}).json()["id"]
    wait_for(live.client, job_id, "translated")
    return job_id, _segments(live.client, job_id)


def _edit(live: LiveServer, job_id: str, seg: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    r = live.client.patch(
        f"/v1/articles/{job_id}/segments/{seg['id']}", json={"text": text, "version": seg["version"], **extra}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _history(live: LiveServer, job_id: str, segment_id: str) -> list[dict[str, Any]]:
    r = live.client.get(f"/v1/articles/{job_id}/segments/{segment_id}/history")
    assert r.status_code == 200, r.text
    return list(r.json())


def test_an_edit_reaches_the_repetitions_no_person_has_touched(live: LiveServer) -> None:
    # The quote four times (once with other white space), and a sentence of its own.
    body = f"{QUOTE}\n\nPrices rose.\n\n{QUOTE.replace(' ', '  ', 1)}\n\n{QUOTE}\n\n{QUOTE}"
    job_id, segs = _translated(live, body=body)
    a, prices, b, c, d = segs
    assert prices["source"] == "Prices rose."

    saved = _edit(live, job_id, a, "部长拒绝置评。")
    assert saved["targets"]["zh-Hans"] == "部长拒绝置评。"
    # The answer lists what else changed, so that a page can update it without a reload.
    reps = {s["id"]: s for s in saved["repetitions"]}
    assert list(reps) == [b["id"], c["id"], d["id"]]  # in document order; not the other sentence
    for seg in (b, c, d):
        got = reps[seg["id"]]
        assert got["targets"] == saved["targets"]  # zh-TW regenerated from it, as for the edit itself
        assert got["version"] == seg["version"] + 1
        assert got["origin"] == "human"
    stored = {s["id"]: s for s in _segments(live.client, job_id)}
    assert stored[prices["id"]]["version"] == prices["version"]
    assert stored[b["id"]]["targets"]["zh-Hans"] == "部长拒绝置评。"
    # History says who, and why.
    changed = _history(live, job_id, b["id"])
    assert {h["by"] for h in changed} == {"local"}
    assert {h["note"] for h in changed} == {f"propagated from segment {a['id']} (the same source sentence)"}
    assert [(h["before"], h["after"]) for h in changed if h["variant"] == "zh-Hans"] == [
        (b["targets"]["zh-Hans"], "部长拒绝置评。")
    ]
    assert all(h["note"] is None for h in _history(live, job_id, a["id"]))

    # Editing a repetition that only received propagations reaches the others that did (c, d), not
    # a, which a person edited.
    b_own = _edit(live, job_id, stored[b["id"]], "部长不予置评。")
    assert [s["id"] for s in b_own["repetitions"]] == [c["id"], d["id"]]
    stored = {s["id"]: s for s in _segments(live.client, job_id)}
    assert stored[a["id"]]["targets"]["zh-Hans"] == "部长拒绝置评。"
    assert stored[c["id"]]["targets"]["zh-Hans"] == "部长不予置评。"


def test_what_a_person_changed_is_never_overwritten(live: LiveServer) -> None:
    job_id, (a, b, c, d, e) = _translated(live, body="\n\n".join([QUOTE] * 5))

    # b: edited directly; c: approved; d: propagated to only (still untouched); e: propagated to.
    first = _edit(live, job_id, a, "部长拒绝置评。")
    now = {s["id"]: s for s in first["repetitions"]}
    _edit(live, job_id, now[b["id"]], "部长不愿评论。", propagate=False)
    approved = live.client.post(
        f"/v1/articles/{job_id}/segments/{c['id']}/approve",
        json={"version": now[c["id"]]["version"], "propagate": False},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["repetitions"] == []

    # A correction of a: d and e, which only ever received propagations, take it again.
    current = {s["id"]: s for s in _segments(live.client, job_id)}
    corrected = _edit(live, job_id, current[a["id"]], "部长拒绝发表评论。")
    assert [s["id"] for s in corrected["repetitions"]] == [d["id"], e["id"]]
    after = {s["id"]: s for s in _segments(live.client, job_id)}
    assert after[b["id"]]["targets"]["zh-Hans"] == "部长不愿评论。"
    assert after[b["id"]]["version"] == current[b["id"]]["version"]
    assert after[c["id"]]["targets"]["zh-Hans"] == "部长拒绝置评。"
    assert after[c["id"]]["status"] == "approved"
    assert after[d["id"]]["targets"]["zh-Hans"] == "部长拒绝发表评论。"

    # An edit of a repetition that only received propagations propagates in turn, to the untouched
    # ones (a, edited by a person, is not among them).
    from_d = _edit(live, job_id, after[d["id"]], "部长没有评论。")
    assert [s["id"] for s in from_d["repetitions"]] == [e["id"]]
    # Opting out: this segment only.
    after = {s["id"]: s for s in _segments(live.client, job_id)}
    alone = _edit(live, job_id, after[a["id"]], "部长未置评。", propagate=False)
    assert alone["repetitions"] == []
    assert {s["id"]: s for s in _segments(live.client, job_id)}[e["id"]]["targets"]["zh-Hans"] == "部长没有评论。"


def test_approving_approves_the_repetitions_that_read_the_same(live: LiveServer) -> None:
    job_id, (a, b, c, other) = _translated(live, body="\n\n".join([QUOTE, QUOTE, QUOTE, "Prices rose."]))
    first = _edit(live, job_id, a, "部长拒绝置评。")
    now = {s["id"]: s for s in first["repetitions"]}
    # c now reads otherwise (edited on its own): approving a does not approve it.
    _edit(live, job_id, now[c["id"]], "部长不愿评论。", propagate=False)
    r = live.client.post(f"/v1/articles/{job_id}/segments/{a['id']}/approve", json={"version": first["version"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    assert [(s["id"], s["status"]) for s in r.json()["repetitions"]] == [(b["id"], "approved")]
    after = {s["id"]: s for s in _segments(live.client, job_id)}
    assert after[c["id"]]["status"] != "approved"
    assert after[other["id"]]["status"] != "approved"
    status_change = [h for h in _history(live, job_id, b["id"]) if h["variant"] is None]
    assert status_change[-1]["status_after"] == "approved"
    assert status_change[-1]["note"] == f"approved with segment {a['id']} (the same source sentence and translation)"
    # Approved by propagation is approved: a later edit of a leaves b as it is.
    again = _edit(live, job_id, after[a["id"]], "部长拒绝发表评论。")
    assert again["repetitions"] == []


def test_repetitions_are_in_a_block_of_the_same_kind_with_the_same_markup(live: LiveServer) -> None:
    html = (
        "<p>Talks resumed in Geneva.</p>"
        "<h2>Talks resumed in Geneva.</h2>"
        "<p>Talks <b>resumed</b> in Geneva.</p>"
        "<p>Talks   resumed in Geneva.</p>"
    )
    job_id, (para, heading, bold, spaced) = _translated(live, body=html, format="html")
    assert heading["source"] == bold["source"] == para["source"]
    saved = _edit(live, job_id, para, "日内瓦会谈恢复。")
    # Not the heading (another kind of block), nor the sentence with bold type (its target carries
    # the tags); the one with other white space is the same sentence.
    assert [s["id"] for s in saved["repetitions"]] == [spaced["id"]]

    # A sentence with markup repeats one with the same markup in the same places.
    html = "<p>See <a href='/x'>the report</a>.</p><p>See <a href='/x'>the report</a>.</p>"
    job_id, (one, two) = _translated(live, body=html, format="html")
    text = one["targets"]["zh-Hans"]
    assert "<a href='/x'>" in text or '<a href="/x">' in text, text
    saved = _edit(live, job_id, one, text + "。")
    assert [(s["id"], s["targets"]["zh-Hans"]) for s in saved["repetitions"]] == [(two["id"], text + "。")]


def test_the_workspace_polls_a_small_state_that_is_a_304_while_unchanged(live: LiveServer) -> None:
    """What an open article page polls: status, the count needing review and each segment's version
    and last editor, with an ETag; unchanged, a bodiless 304. Then only the segments it lacks."""
    job_id, (a, b) = _translated(live, body=f"{QUOTE}\n\nPrices rose.")
    url = f"/review/api/articles/{job_id}/state"
    first = live.client.get(url)
    assert first.status_code == 200, first.text
    state = first.json()
    assert state["status"] == "translated"
    assert state["pending"] == sum(1 for s in (a, b) if s["status"] == "needs_review")
    assert state["segments"] == {a["id"]: [a["version"], ""], b["id"]: [b["version"], ""]}
    etag = first.headers["etag"]
    unchanged = live.client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""

    _edit(live, job_id, a, "部长拒绝置评。")
    changed = live.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["segments"][a["id"]] == [a["version"] + 1, "local"]
    assert changed.json()["status"] == "in_review"

    segments = live.client.get(f"/review/api/articles/{job_id}/segments", params={"id": [a["id"], "b9.s9"]})
    assert segments.status_code == 200
    assert [(s["id"], s["version"]) for s in segments.json()["segments"]] == [(a["id"], a["version"] + 1)]
    too_many = live.client.get(f"/review/api/articles/{job_id}/segments", params={"id": [f"x{n}" for n in range(201)]})
    assert too_many.status_code == 422 and "at most 200" in too_many.json()["error"]["message"]
    missing = live.client.get("/review/api/articles/no-such-job/state")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
