"""Translation memory lookups on SQLite and PostgreSQL: fuzzy search finds every stored sentence
that reaches the cutoff (checked against scoring them all), and the length window is exactly what
the cutoff allows; storing replaces, counts and survives concurrent writers; a process's lookups
see what other processes stored since (writers take turns, so ids follow the order of commits)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from rapidfuzz import fuzz

from service.memory import FUZZY_CUTOFF, Remembered, TranslationMemory, length_window, normalize
from service.storage.db import Database

BASE = [
    "The harbour will reopen in May after repairs.",
    "Officials said the talks would continue next week in Washington.",
    "Abe Shinzo met John Kerry in Tokyo.",
    "Futenma.",
    "The alliance between the two countries has lasted more than sixty years, the minister said.",
]


@pytest.fixture
def memory(database_url: str) -> Iterator[TranslationMemory]:
    db = Database(database_url)
    db.migrate()
    yield TranslationMemory(db)
    db.close()


def variations(rng: random.Random, n: int) -> list[str]:
    """Sentences near and far from BASE: words changed, clauses added and dropped."""
    words = " ".join(BASE).split()
    out = []
    for _ in range(n):
        s = rng.choice(BASE).split()
        for _ in range(rng.randint(0, 4)):
            s[rng.randrange(len(s))] = rng.choice(words)
        if rng.random() < 0.4:
            s += rng.sample(words, rng.randint(1, 8))  # up to about twice as long
        if rng.random() < 0.3 and len(s) > 3:
            s = s[: rng.randint(2, len(s))]
        out.append(" ".join(s))
    return out


def test_fuzzy_finds_every_stored_sentence_within_the_cutoff(memory: TranslationMemory) -> None:
    rng = random.Random(3)
    stored = sorted(set(variations(rng, 300)))
    memory.remember(Remembered(s, "zh-Hans", f"译文 {i}") for i, s in enumerate(stored))
    memory.remember([Remembered(BASE[0], "zh-TW", "另一個變體")])  # other variants are not offered
    target_of = {s: f"译文 {i}" for i, s in enumerate(stored)}
    queries = [*BASE, *variations(rng, 15), "", "   "]
    found = [memory.fuzzy(q, "zh-Hans", limit=1000) for q in queries]
    for query, hits in zip(queries, found, strict=True):
        # Every stored sentence scored, with no length window: what the lookup must return.
        expected = {s for s in stored if normalize(query) and fuzz.ratio(normalize(query), s) >= FUZZY_CUTOFF}
        assert {h.source for h in hits} == expected, query
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(h.target == target_of[h.source] for h in hits)
    assert sum(map(len, found)) > len(BASE)  # the check had something to find
    # A stored sentence well past 1.5 times the query's length can still reach the cutoff.
    assert any(len(h.source) > 1.5 * len(q) for q, hits in zip(queries, found, strict=True) for h in hits)
    # Five best by default (of equal scores, any).
    five = [memory.fuzzy(q, "zh-Hans") for q in queries]
    assert [[h.score for h in hits] for hits in five] == [[h.score for h in hits[:5]] for hits in found]
    assert all(set(a) <= set(b) for a, b in zip(five, found, strict=True))


def test_fuzzy_suggestions_show_what_changed(memory: TranslationMemory) -> None:
    memory.remember([Remembered("The harbour will reopen in June after repairs.", "zh-Hans", "六月")])
    (hit,) = memory.fuzzy("The harbour  will reopen in May after repairs.", "zh-Hans")
    assert hit.target == "六月" and 75 <= hit.score < 100
    assert ("delete", "June") in hit.diff and ("insert", "May") in hit.diff
    assert memory.fuzzy("", "zh-Hans") == []
    assert memory.fuzzy("Nothing like it at all, not one bit.", "zh-Hans") == []


@pytest.mark.parametrize("cutoff", [50.0, 75.0, 90.0, 100.0])
def test_the_length_window_is_what_the_cutoff_allows(cutoff: float) -> None:
    """Every pair of lengths that can reach the cutoff is inside the window, and the window holds
    no length that cannot (a sentence within the other plus or minus characters: the best case)."""
    for a in range(1, 200):
        low, high = length_window(a, cutoff)
        for b in range(1, 400):
            reachable = fuzz.ratio("x" * a, "x" * b) >= cutoff  # the best score two lengths allow
            if reachable:
                assert low <= b <= high, (a, b)
            else:
                assert not low < b < high, (a, b)  # only the window's rounded ends may be out of reach
    assert length_window(30) == (18, 50)
    assert length_window(30, 100.0) == (30, 30)


def test_remembering_replaces_and_counts_across_batches(memory: TranslationMemory) -> None:
    """Entries go in 500 at a time: a sentence given again, in the same batch or a later one, keeps
    one entry with the newest translation; blank ones are skipped. The count is of what was stored:
    one per sentence and variant, repeats and blank ones not counted."""
    first = [Remembered(f"Sentence number {i}.", "zh-Hans", f"第{i}句") for i in range(1200)]
    again = [
        Remembered("Sentence  number 3.", "zh-Hans", "新的第3句"),  # white space differs: the same entry
        Remembered("Sentence number 700.", "zh-Hans", "新的第700句"),
        Remembered("Sentence number 700.", "zh-TW", "第700句"),  # another variant: its own entry
        Remembered("   ", "zh-Hans", "空"),
        Remembered("Blank target.", "zh-Hans", " "),
    ]
    assert memory.remember([*first, *again, Remembered("Sentence number 3.", "zh-Hans", "最新的第3句")]) == 1201
    entries = {(e.variant, e.source): e.target for e in memory.entries()}
    assert len(entries) == 1201
    assert entries[("zh-Hans", "Sentence number 3.")] == "最新的第3句"
    assert entries[("zh-Hans", "Sentence number 700.")] == "新的第700句"
    assert entries[("zh-TW", "Sentence number 700.")] == "第700句"
    assert memory.remember([Remembered("Sentence number 1199.", "zh-Hans", "改")]) == 1
    assert memory.exact(["Sentence number 1199."], []) == {"Sentence number 1199.": {"zh-Hans": "改"}}
    assert memory.fuzzy("Sentence number 1199.", "zh-Hans")[0].score == 100


def test_concurrent_imports_of_the_same_sentences_both_land(memory: TranslationMemory) -> None:
    """Two imports overlapping in opposite orders, at once: on PostgreSQL each upsert locks the rows
    it replaces, so writers that took them in different orders would deadlock and one would fail."""
    first = [Remembered(f"Shared sentence {i}.", "zh-Hans", f"一{i}") for i in range(3000)]
    second = [Remembered(e.source, e.variant, f"二{i}") for i, e in enumerate(first)][::-1]
    memory.remember(first)  # both imports replace existing rows
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(entries: list[Remembered]) -> None:
        barrier.wait()
        try:
            for _ in range(3):
                memory.remember(entries)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(entries,)) for entries in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    targets = {e.target[0] for e in memory.entries("zh-Hans")}
    assert len(memory.entries("zh-Hans")) == 3000 and targets <= {"一", "二"}


def test_lookups_see_what_another_process_stored_since(memory: TranslationMemory, database_url: str) -> None:
    """Lookups score the sentences this process has read; each lookup first reads what was added."""
    other_db = Database(database_url)
    other = TranslationMemory(other_db)  # another process's memory: its own handle and sentences
    try:
        memory.remember([Remembered(BASE[1], "zh-Hans", "旧")])
        assert [h.target for h in other.fuzzy(BASE[1], "zh-Hans")] == ["旧"]  # its first lookup reads all
        memory.remember(
            [
                Remembered(BASE[1].replace("next week", "on Monday"), "zh-Hans", "新"),
                Remembered(BASE[1], "zh-Hans", "改"),  # replaced in place: the new translation shows
                Remembered(BASE[1], "zh-TW", "繁"),
            ]
        )
        hits = other.fuzzy(BASE[1], "zh-Hans")
        assert [h.target for h in hits] == ["改", "新"] and hits[0].score == 100 > hits[1].score >= FUZZY_CUTOFF
        assert [h.target for h in other.fuzzy(BASE[1], "zh-TW")] == ["繁"]
    finally:
        other_db.close()


def test_writers_take_turns_so_ids_follow_commits(memory: TranslationMemory, database_url: str) -> None:
    """A write that starts while another is uncommitted waits for it, so its entries get higher
    ids than every entry of the first: a lookup that reads past the highest id it has seen misses
    nothing that commits later."""
    reader = TranslationMemory(memory.db)
    first = [Remembered(f"The first import's sentence number {i}.", "zh-Hans", f"一{i}") for i in range(600)]
    second = [Remembered(f"The second import's sentence number {i}.", "zh-Hans", f"二{i}") for i in range(5)]
    done = threading.Event()

    def write_second() -> None:
        memory.remember(second)
        done.set()

    with memory.db.session() as session:
        memory.remember(first, session)
        session.flush()
        thread = threading.Thread(target=write_second)
        thread.start()
        assert not done.wait(1.0)  # waits for the first import to commit
        assert reader.fuzzy(second[0].source, "zh-Hans") == []  # neither is visible yet
    thread.join(timeout=60)
    assert done.is_set()
    ids: dict[str, list[int]] = {"一": [], "二": []}
    for e in memory.entries():
        ids[e.target[0]].append(e.id)
    assert len(ids["一"]) == 600 and len(ids["二"]) == 5 and max(ids["一"]) < min(ids["二"])
    # The reader, which saw nothing of either, now finds both.
    assert [h.target for h in reader.fuzzy(first[7].source, "zh-Hans", limit=1)] == ["一7"]
    assert [h.target for h in reader.fuzzy(second[3].source, "zh-Hans", limit=1)] == ["二3"]
