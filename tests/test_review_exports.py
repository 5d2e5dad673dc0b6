"""The review workspace's Export links and its Reopen button, through the real HTTP service and
Chromium: a download from the page is the file GET /v1/articles/{id}/export gives (bytes, media
type, name), with the API's error rules and the session's scope; reopening an approved article
from the page (behind the CSRF check) puts it back in review, and the segments that only an
approval override approved need review again."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from models.engine import Engine
from service.auth import Role
from tests.conftest import LiveServer, keyed_settings, make_keys, serve
from tests.test_review_ui import SLOW_SAVES, new_job, row_of, sign_in, signed_in_client, stored

ARTICLE = "Abe Shinzo met John Kerry in Tokyo.\n\nOfficials counted 3 ships near Futenma."
FORMATS = ("xliff", "tmx", "html", "text", "json")
Site = tuple[LiveServer, dict[str, str], str]


@pytest.fixture(scope="module")
def site(
    tiny_dirs: dict[str, Path], engines: dict[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The service with keys for a cms, a translator and a second cms (another owner), and one
    translated article of the first cms's."""
    url = f"sqlite:///{tmp_path_factory.mktemp('exports') / 'duiyi.db'}"
    keys = {role: made.key for role, made in make_keys(url, (Role.CMS, Role.TRANSLATOR), suffix="-x").items()}
    keys["other"] = make_keys(url, (Role.CMS,), suffix="-other")["cms"].key
    with serve(keyed_settings(tiny_dirs["marian"], url), engines["marian"]) as live:
        yield live, keys, new_job(live, keys, ARTICLE)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_export(live: LiveServer, key: str, job_id: str, fmt: str, variant: str | None = None) -> httpx.Response:
    params = {"format": fmt} | ({"variant": variant} if variant else {})
    return live.client.get(f"/v1/articles/{job_id}/export", params=params, headers=bearer(key))


def same_file(ours: httpx.Response, api: httpx.Response) -> None:
    assert (ours.status_code, api.status_code) == (200, 200), (ours.text, api.text)
    assert ours.content == api.content
    assert ours.headers["content-type"] == api.headers["content-type"]
    assert ours.headers.get("content-disposition") == api.headers.get("content-disposition")


def test_a_translator_downloads_the_apis_xliff_from_the_page(site: Site, browser: object) -> None:
    live, keys, job_id = site
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    exports = page.locator("#exports")
    assert [a.inner_text() for a in exports.locator("a").all()] == ["XLIFF", "TMX", "bilingual HTML", "text", "JSON"]
    with page.expect_download() as got:
        exports.locator("a", has_text="XLIFF").click()
    api = api_export(live, keys["translator"], job_id, "xliff", "zh-Hans")
    assert Path(got.value.path()).read_bytes() == api.content
    assert got.value.suggested_filename == f"{job_id}.zh-Hans.xlf"
    assert api.headers["content-disposition"] == f'attachment; filename="{job_id}.zh-Hans.xlf"'

    # Typed and not saved yet: the link saves first, then downloads (the page stays), with the text;
    # on a slow connection too, where the editor, closing as the focus leaves it, queues a save of
    # its own while the link's is on its way (waited for, not taken for a failure).
    page.add_init_script(SLOW_SAVES.replace("1500", "600"))
    page.reload()
    row = row_of(page, "Abe Shinzo")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("安倍晋三在东京会见了克里。")
    with page.expect_download() as got:
        exports.locator("a", has_text="bilingual HTML").click()
    body = Path(got.value.path()).read_bytes()
    assert "安倍晋三在东京会见了克里。" in body.decode()
    assert body == api_export(live, keys["translator"], job_id, "html", "zh-Hans").content
    assert got.value.suggested_filename == f"{job_id}.zh-Hans.html"
    assert page.url.endswith(f"/review/articles/{job_id}")

    # The links follow the variant shown.
    page.goto(f"/review/articles/{job_id}?variant=zh-TW")
    with page.expect_download() as got:
        page.locator("#exports a", has_text="XLIFF").click()
    assert Path(got.value.path()).read_bytes() == api_export(live, keys["translator"], job_id, "xliff", "zh-TW").content
    assert got.value.suggested_filename == f"{job_id}.zh-TW.xlf"
    page.context.close()


def test_every_format_is_the_apis_file(site: Site) -> None:
    live, keys, job_id = site
    for role in ("translator", "cms"):  # a cms user exports its own articles, as its key does
        client, _ = signed_in_client(live, keys[role])
        for fmt in FORMATS:
            for variant in (None, "zh-Hans", "zh-TW"):
                params = {"format": fmt} | ({"variant": variant} if variant else {})
                ours = client.get(f"/review/api/articles/{job_id}/export", params=params)
                same_file(ours, api_export(live, keys[role], job_id, fmt, variant))
                assert ours.headers["cache-control"] == "no-store"
        # No format named: JSON, as the API's default.
        same_file(client.get(f"/review/api/articles/{job_id}/export"), api_export(live, keys[role], job_id, "json"))
        client.close()


def test_export_errors_are_the_apis(site: Site) -> None:
    live, keys, job_id = site
    # Not signed in: 401 JSON, as the script's other requests get.
    r = httpx.get(f"{live.url}/review/api/articles/{job_id}/export?format=xliff")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "xliff" not in r.headers["content-type"]
    cases = [
        ("other", job_id, {"format": "xliff"}, 404, "not_found"),  # another owner's: as if it did not exist
        ("translator", "no-such-job", {"format": "xliff"}, 404, "not_found"),
        ("translator", job_id, {"format": "docx"}, 422, "invalid_request"),
        ("translator", job_id, {"format": "xliff", "variant": "zh-HK"}, 422, "unknown_variant"),
    ]
    for who, article, params, status, code in cases:
        client, _ = signed_in_client(live, keys[who])
        ours = client.get(f"/review/api/articles/{article}/export", params=params)
        api = live.client.get(f"/v1/articles/{article}/export", params=params, headers=bearer(keys[who]))
        assert (ours.status_code, api.status_code) == (status, status), (who, params, ours.text)
        assert ours.json()["error"]["code"] == api.json()["error"]["code"] == code
        assert ours.json()["error"]["message"] == api.json()["error"]["message"]
        if code == "unknown_variant":
            assert ours.json()["error"]["valid"] == ["zh-Hans", "zh-TW"]
        client.close()


def test_a_name_beyond_ascii_downloads_under_its_name(site: Site) -> None:
    """An external id in Chinese, with a quote: the header holds it as RFC 6266's filename*, after
    an ASCII stand-in (a header carries Latin-1 only, and a bare quote would end the name)."""
    live, keys, _ = site
    sent = {"body": ARTICLE, "targets": ["zh-Hans"], "external_id": '新闻"7'}
    job_id = live.client.post("/v1/articles", json=sent, headers=bearer(keys["cms"])).json()["id"]
    deadline = time.monotonic() + 60
    while live.client.get(f"/v1/articles/{job_id}", headers=bearer(keys["cms"])).json()["status"] != "translated":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client, _ = signed_in_client(live, keys["translator"])
    r = client.get(f"/review/api/articles/{job_id}/export?format=xliff")
    assert r.status_code == 200
    name = quote('新闻"7.zh-Hans.xlf', safe="")
    assert r.headers["content-disposition"] == f"attachment; filename=\"___7.zh-Hans.xlf\"; filename*=UTF-8''{name}"
    client.close()


def test_the_bilingual_page_opens_with_its_style_and_no_script(site: Site, browser: object) -> None:
    live, keys, job_id = site
    page = sign_in(browser, live, keys["translator"])
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(f"/review/api/articles/{job_id}/export?format=html&variant=zh-Hans")
    assert response is not None and "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert page.locator("table").evaluate("t => getComputedStyle(t).borderCollapse") == "collapse"
    assert refused == []
    page.context.close()


def approve_with_override(live: LiveServer, keys: dict[str, str], job_id: str) -> None:
    r = live.client.post(
        f"/v1/articles/{job_id}/approve", json={"override": "deadline"}, headers=bearer(keys["translator"])
    )
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text


def test_reopening_from_the_page_puts_the_article_back_in_review(site: Site, browser: object) -> None:
    """An article approved with an override: Reopen puts it in review, and its segments that only the
    override approved need review again; the page shows so after the reload."""
    live, keys, _ = site
    job_id = new_job(live, keys, "The tugboat left at six.\n\nThe barge followed at seven.")
    pending = [s for s in ("tugboat", "barge") if stored(live, keys, job_id, s)["status"] == "needs_review"]
    assert pending  # the tiny model's output is flagged
    approve_with_override(live, keys, job_id)
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    assert page.locator("#job-status").inner_text() == "approved"
    assert page.locator("#approve-article-form").is_hidden()
    reopen = page.locator("#reopen-article")
    assert reopen.is_visible() and reopen.inner_text() == "Reopen for review"
    reopen.click()
    page.wait_for_load_state()
    assert page.locator("#message").inner_text() == "Reopened for review."
    assert page.locator("#job-status").inner_text() == "in_review"
    assert page.locator("#pending-count").inner_text() == str(len(pending))
    for text in pending:
        assert row_of(page, text).locator(".seg-status").inner_text() == "needs_review"
    # The approval form is back, asking for a reason again; no Reopen on an article in review.
    assert page.locator("#approve-article-form").is_visible()
    assert page.locator("#approve-override").is_visible()
    assert page.locator("#reopen-article-form").is_hidden()
    job = live.client.get(f"/v1/articles/{job_id}", headers=bearer(keys["cms"])).json()
    assert job["status"] == "in_review"
    assert job.get("approved_by") is None and job.get("approved_at") is None
    page.context.close()


def test_a_translated_article_can_be_taken_up_for_review(site: Site, browser: object) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, "The ferry docked at noon.")
    page = sign_in(browser, live, keys["translator"])
    page.goto(f"/review/articles/{job_id}")
    assert page.locator("#reopen-article").inner_text() == "Start review"
    page.click("#reopen-article")
    page.wait_for_load_state()
    assert page.locator("#job-status").inner_text() == "in_review"
    assert "reviewing: translator-x" in page.locator(".facts").inner_text()
    page.context.close()
    # A cms user sees the article without the button, and may not post it.
    cms = sign_in(browser, live, keys["cms"])
    cms.goto(f"/review/articles/{job_id}")
    assert cms.locator("#reopen-article-form").count() == 0
    cms.context.close()


def test_reopening_needs_the_sessions_csrf_token_and_role(site: Site) -> None:
    live, keys, _ = site
    job_id = new_job(live, keys, "The pier closed in March.")
    approve_with_override(live, keys, job_id)
    status = lambda: live.client.get(f"/v1/articles/{job_id}", headers=bearer(keys["cms"])).json()["status"]  # noqa: E731
    url = f"/review/articles/{job_id}/reopen"
    # Not signed in: to the sign-in page, nothing done.
    r = httpx.post(f"{live.url}{url}", data={"csrf_token": "x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/review/login")
    client, csrf = signed_in_client(live, keys["translator"])
    for form in ({}, {"csrf_token": "not-this-sessions"}):
        r = client.post(url, data=form)
        assert r.status_code == 403 and "Nothing was done" in r.text
        assert f'href="/review/articles/{job_id}"' in r.text  # the way back to the article
    assert status() == "approved"
    cms, cms_csrf = signed_in_client(live, keys["cms"])
    r = cms.post(url, data={"csrf_token": cms_csrf})
    assert r.status_code == 403 and status() == "approved"
    cms.close()
    r = client.post(url, data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == f"/review/articles/{job_id}"
    assert status() == "in_review"
    # Reopened again, in review already: said, and nothing breaks.
    assert client.post(url, data={"csrf_token": csrf}).status_code == 303
    assert re.search(r'id="job-status">in_review<', client.get(f"/review/articles/{job_id}").text)
    client.close()


def test_leaving_on_a_slow_connection_waits_for_the_editors_own_save(site: Site, browser: object) -> None:
    """A link followed with text typed: the editor, closing as the focus leaves it, queues a save
    of its own while the link's is on its way; the page waits for it and goes (before, it stayed,
    saying a segment could not be saved, though both saves went through)."""
    live, keys, _ = site
    job_id = new_job(live, keys, "One ship.\n\nTwo ships.")
    page = sign_in(browser, live, keys["translator"])
    page.add_init_script(SLOW_SAVES.replace("1500", "600"))
    page.goto(f"/review/articles/{job_id}")
    row = row_of(page, "Two ships")
    row.locator(".target-view").click()
    row.locator("textarea.target-edit").fill("两艘船。")
    page.click("nav.variants a:has-text('zh-TW')")
    page.wait_for_url(re.compile(r".*variant=zh-TW"), timeout=10_000)
    assert stored(live, keys, job_id, "Two ships")["targets"]["zh-Hans"] == "两艘船。"  # type: ignore[index]
    page.context.close()
