"""Review under contention, through the real HTTP server on SQLite and on PostgreSQL: requests
that race for the same segment version get one winner, and every loser a 409 with the winner's
segment (never a 500)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from models.engine import Engine
from service.config import Settings
from tests.conftest import LiveServer, serve
from tests.test_jobs import wait_for

RACERS = 8
ROUNDS = 4
# What racer i (of RACERS) sends, on its own client.
Request = Callable[[httpx.Client, int], httpx.Response]


@pytest.fixture
def live(database_url: str, tiny_dirs: dict[str, Path], engines: dict[str, Engine]) -> Iterator[LiveServer]:
    settings = Settings(model=str(tiny_dirs["marian"]), device="cpu", database_url=database_url, job_poll_s=0.05)
    with serve(settings, engines["marian"]) as server:
        yield server


def _race(live: LiveServer, request: Request) -> list[httpx.Response]:
    """Run `request` from RACERS threads at once, each with its own connection, released together
    by a barrier so that they really overlap on the server."""
    barrier = threading.Barrier(RACERS)

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=live.url, timeout=120) as client:
            barrier.wait()
            return request(client, i)

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def _edit(url: str, version: int, text: str) -> Request:
    """Racer i sets zh-Hans to `text`-i, based on `version`."""
    return lambda c, i: c.patch(url, json={"variant": "zh-Hans", "text": f"{text}-{i}", "version": version})


def _approve(url: str, version: int) -> Request:
    return lambda c, _: c.post(f"{url}/approve", json={"version": version})


def _edit_or_approve(url: str, version: int, text: str) -> Request:
    """Odd racers approve, even ones edit."""
    edit, approve = _edit(url, version, text), _approve(url, version)
    return lambda c, i: approve(c, i) if i % 2 else edit(c, i)


def _check_one_winner(answers: list[httpx.Response], version: int) -> httpx.Response:
    assert sorted(r.status_code for r in answers) == [200] + [409] * (RACERS - 1), [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200).json()
    assert winner["version"] == version + 1
    for lost in (r for r in answers if r.status_code == 409):
        error = lost.json()["error"]
        assert error["code"] == "version_conflict"
        # The loser sees what won, so a translator can merge their text into it.
        assert error["current"]["version"] == winner["version"]
        assert error["current"]["targets"] == winner["targets"]
        assert error["current"]["status"] == winner["status"]
    return next(r for r in answers if r.status_code == 200)


def test_parallel_edits_of_one_version_have_one_winner(live: LiveServer) -> None:
    job_id = live.client.post(
        "/v1/articles", json={"body": "Parallel edits of one sentence.", "targets": ["zh-Hans", "zh-TW"]}
    ).json()["id"]
    seg = wait_for(live.client, job_id, "translated")["document"]["blocks"][0]["segments"][0]
    url = f"/v1/articles/{job_id}/segments/{seg['id']}"
    version = seg["version"]
    won = []
    for round_ in range(ROUNDS):
        answers = _race(live, _edit(url, version, f"并行编辑{round_}"))
        winner = _check_one_winner(answers, version).json()
        version = winner["version"]
        won.append(winner["targets"]["zh-Hans"])
    # Only the winners' edits were kept.
    history = live.client.get(f"{url}/history").json()
    assert [h["after"] for h in history if h["variant"] == "zh-Hans"] == won


def test_parallel_edit_and_approval_of_one_version_have_one_winner(live: LiveServer) -> None:
    job_id = live.client.post("/v1/articles", json={"body": "Edit or approve, not both."}).json()["id"]
    seg = wait_for(live.client, job_id, "translated")["document"]["blocks"][0]["segments"][0]
    url = f"/v1/articles/{job_id}/segments/{seg['id']}"
    version = seg["version"]
    for round_ in range(ROUNDS):
        answers = _race(live, _edit_or_approve(url, version, f"编辑{round_}"))
        winner = _check_one_winner(answers, version).json()
        version = winner["version"]
        if winner["status"] == "approved":
            # Approving it again would change nothing (200, the same version): unapprove it by an
            # edit, so that the next round races for a new version again.
            reopened = live.client.patch(url, json={"text": f"重开{round_}", "version": version})
            assert reopened.status_code == 200, reopened.text
            version = reopened.json()["version"]


def test_racing_edits_of_two_repetitions_have_one_winner(live: LiveServer) -> None:
    """Half the racers edit a sentence, half its repetition, each based on the version it read:
    the first edit stored reaches the repetition in the same transaction, so every other racer's
    segment has changed since, and gets a 409; both segments end with the winner's text (never
    one translator's text in one, another's in the other, nor an edit lost over a propagation)."""
    sentences = [f"Round {n} of the talks ended." for n in range(ROUNDS)]
    job_id = live.client.post("/v1/articles", json={"body": "\n\n".join(s for s in sentences for _ in (1, 2))}).json()[
        "id"
    ]
    doc = wait_for(live.client, job_id, "translated")["document"]
    segs = [s for b in doc["blocks"] for s in b["segments"]]
    for round_ in range(ROUNDS):
        pair = segs[2 * round_ : 2 * round_ + 2]
        assert pair[0]["source"] == pair[1]["source"]
        urls = [f"/v1/articles/{job_id}/segments/{s['id']}" for s in pair]

        def edit(c: httpx.Client, i: int, pair: list[dict] = pair, urls: list[str] = urls) -> httpx.Response:
            seg = pair[i % 2]
            return c.patch(urls[i % 2], json={"text": f"重复{i}", "version": seg["version"]})

        answers = _race(live, edit)
        assert sorted(r.status_code for r in answers) == [200] + [409] * (RACERS - 1), [r.text for r in answers]
        won = next(r.json() for r in answers if r.status_code == 200)
        text = won["targets"]["zh-Hans"]
        assert [s["id"] for s in won["repetitions"]] == [s["id"] for s in pair if s["id"] != won["id"]]
        for lost in (r for r in answers if r.status_code == 409):
            assert lost.json()["error"]["current"]["targets"]["zh-Hans"] == text
        stored = {
            s["id"]: s
            for b in live.client.get(f"/v1/articles/{job_id}").json()["document"]["blocks"]
            for s in b["segments"]
        }
        assert [stored[s["id"]]["targets"]["zh-Hans"] for s in pair] == [text, text]
        other = next(s for s in pair if s["id"] != won["id"])
        history = live.client.get(f"/v1/articles/{job_id}/segments/{other['id']}/history").json()
        assert [(h["after"], h["note"]) for h in history if h["variant"] == "zh-Hans"] == [
            (text, f"propagated from segment {won['id']} (the same source sentence)")
        ]
