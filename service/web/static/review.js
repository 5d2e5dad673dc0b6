// duiyi review workspace: inline editing with autosave, Ctrl+Enter to approve and move on,
// optimistic concurrency (a 409 shows the newer text), progress polling. No dependencies.
//
// A save or approval also changes the sentence's untouched repetitions (the server answers which:
// they are updated in place, and the page says how many), unless the translator turned "Update
// repetitions" off (a preference kept in this browser). While the page is visible it asks every
// 15 s whether the article changed (a small answer, or a bodiless 304): counts and segments others
// changed are brought up to date; one the translator is editing is not replaced, they are told.
//
// A segment's saves and approvals run one after another (each sends the version the one before
// got back), text that could not be saved stays in its editor, marked, and is sent again, and
// leaving the page waits for the saves or warns. An article withdrawn while the page is open (a
// 404) stops all that: the page says so, sends nothing more, and keeps unsaved text to copy.
"use strict";

(function () {
  let csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const me = document.querySelector('meta[name="review-user"]')?.content || "";
  const article = document.getElementById("article");

  // One request; status 0 when it never got an answer (offline, server down).
  async function send(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (e) {
      return { status: 0, data: null };
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  // A request; when this page's CSRF token went stale (the translator signed in again in another
  // tab) and the session is still the same translator's, the new token is taken and it is sent again.
  async function call(method, url, body) {
    let r = await send(method, url, body);
    if (r.status === 403 && r.data?.error?.code === "csrf") {
      const s = await send("GET", "/review/api/session");
      if (s.status === 200 && s.data?.csrf && s.data.user === me) {
        csrf = s.data.csrf;
        for (const input of document.querySelectorAll('input[name="csrf_token"]')) input.value = csrf;
        r = await send(method, url, body);
      } else if (s.status === 200) {
        r = { status: 403, data: { error: { code: "csrf", message: `signed in as ${s.data?.user} in another tab` } } };
      } else if (s.status === 401) {
        r = s;
      }
    }
    return r;
  }

  function why(r) {
    if (r.status === 0) return "the server could not be reached (offline?)";
    if (r.status === 401) return "you are signed out; sign in again in another tab";
    return r.data?.error?.message || `the server answered HTTP ${r.status}`;
  }

  for (const select of document.querySelectorAll("select.submit-on-change")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // --- progress page ---------------------------------------------------------------------------
  const progress = document.getElementById("progress");
  if (progress) {
    const tick = async () => {
      const r = await send("GET", progress.dataset.url);
      if (r.status === 200 && r.data) {
        const p = r.data;
        const status = document.getElementById("progress-status");
        status.textContent = p.status;
        status.className = "status status-" + p.status;
        document.getElementById("progress-done").textContent = p.done;
        document.getElementById("progress-total").textContent = p.total;
        const bar = document.getElementById("progress-bar");
        bar.max = Math.max(p.total, 1);
        bar.value = p.done;
        if (p.ready) { window.location.reload(); return; }
        if (p.status === "failed") {
          const failure = document.getElementById("progress-failure");
          failure.textContent = "Translation failed: " + (p.failure || "no reason was recorded.");
          failure.hidden = false;
          return;
        }
      }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 500);
  }

  // --- the new-article form ----------------------------------------------------------------------
  // What an editor typed or chose is not lost without a word: leaving the page asks first, and the
  // form is sent only once the session is known to be theirs still (signed out, or signed in again
  // in another tab, it would be refused and the page with the text gone): else it says so, and the
  // text stays.
  const newForm = document.getElementById("new-article");
  if (newForm) {
    let sending = false;
    const field = (name) => newForm.querySelector(`[name="${name}"]`);
    const typed = () => ["title", "byline", "body"].some((name) => field(name).value.trim() !== "") ||
      field("file").files.length > 0;
    window.addEventListener("beforeunload", (e) => {
      if (!sending && typed()) { e.preventDefault(); e.returnValue = ""; }
    });
    newForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (sending) return;
      const problem = document.getElementById("new-problem");
      const button = newForm.querySelector('button[type="submit"]');
      button.disabled = true; // one submission per press
      const s = await send("GET", "/review/api/session");
      button.disabled = false;
      let trouble = "";
      if (s.status === 0 || s.status === 401 || s.status >= 500) trouble = why(s);
      else if (s.status === 200 && s.data?.user !== me) trouble = `you are signed in as ${s.data?.user} in another tab`;
      if (trouble) {
        problem.textContent = `Not submitted: ${trouble}. Your text is kept here: submit it again once that is put right.`;
        problem.hidden = false;
        return;
      }
      if (s.status === 200 && s.data?.csrf) field("csrf_token").value = s.data.csrf; // signed in again since
      problem.hidden = true;
      sending = true;
      newForm.submit();
    });
  }

  if (!article) return;
  const jobId = article.dataset.job;
  const variant = article.dataset.variant;
  const titles = JSON.parse(document.getElementById("term-titles")?.textContent || "{}");
  const notes = JSON.parse(document.getElementById("term-notes")?.textContent || "{}");
  const segData = (row) => JSON.parse(row.querySelector(".seg-data").textContent);
  const pageError = document.getElementById("page-error");
  let withdrawn = false; // the article was withdrawn while the page was open (articleWithdrawn)
  const segUrl = (row) => `/review/api/articles/${jobId}/segments/${encodeURIComponent(row.dataset.id)}`;

  // "Update repetitions": whether a save or approval also changes the sentence's untouched
  // repetitions (the API's `propagate`). A workspace preference, as Trados and memoQ have it: on
  // unless turned off, kept in this browser for this user (and followed by their other open tabs).
  const propagateBox = document.getElementById("propagate");
  const propagateKey = `duiyi.review.propagate:${me}`;
  const propagate = () => !propagateBox || propagateBox.checked;
  if (propagateBox) {
    try { propagateBox.checked = localStorage.getItem(propagateKey) !== "0"; } catch (e) { /* no storage: on */ }
    propagateBox.addEventListener("change", () => {
      try { localStorage.setItem(propagateKey, propagateBox.checked ? "1" : "0"); } catch (e) { /* this page only */ }
      flash(propagateBox.checked
        ? "Saves and approvals update the sentence's untouched repetitions too."
        : "Saves and approvals change the segment only; its repetitions are left as they are.");
    });
    window.addEventListener("storage", (e) => {
      if (e.key === propagateKey) propagateBox.checked = e.newValue !== "0";
    });
  }

  // Text with glossary terms in <mark> and the source's inline markup in <span class="tag">, built
  // with text nodes so nothing is ever parsed as HTML.
  function render(view, text, spans) {
    view.replaceChildren();
    let pos = 0;
    for (const s of spans.sort((a, b) => a.start - b.start)) {
      if (s.start < pos || s.end > text.length || s.start >= s.end) continue;
      view.append(document.createTextNode(text.slice(pos, s.start)));
      const el = document.createElement(s.tag ? "span" : "mark");
      el.className = s.tag ? "tag" : "term";
      if (!s.tag) el.title = s.title;
      el.textContent = text.slice(s.start, s.end);
      view.append(el);
      pos = s.end;
    }
    view.append(document.createTextNode(text.slice(pos)));
  }

  function tagSpans(row, text) {
    const markup = JSON.parse(row.dataset.markup || "[]").sort((a, b) => b.length - a.length);
    const spans = [];
    for (let i = 0; i < text.length && markup.length;) {
      const m = markup.find((x) => text.startsWith(x, i));
      if (m) { spans.push({ start: i, end: i + m.length, tag: true }); i += m.length; } else i += 1;
    }
    return spans;
  }

  // The counts at the top follow the segments' statuses; the article's status is asked for again.
  // The article's approval form follows both: shown unless the article is approved, asking for a
  // reason only while a segment still needs review.
  const approvalForm = document.getElementById("approve-article-form");
  const reopenForm = document.getElementById("reopen-article-form");
  function setPending(delta) {
    for (const el of document.querySelectorAll("#pending-count, .pending-count")) {
      el.textContent = Math.max(0, Number(el.textContent) + delta);
    }
    showOverride();
  }
  // The approval form asks for a reason while a segment needs review or a query is open.
  function showOverride() {
    const label = document.getElementById("approve-override");
    if (label) {
      const none = Number(document.getElementById("pending-count")?.textContent || 0) === 0 &&
        Number(document.getElementById("open-queries")?.textContent || 0) === 0;
      label.hidden = none;
      const reason = label.querySelector("input");
      reason.disabled = none;
      reason.required = !none; // the browser asks for it, rather than the server refusing a blank one
    }
  }
  function setPendingTo(n) {
    const shown = Number(document.getElementById("pending-count")?.textContent || 0);
    if (shown !== n) setPending(n - shown);
  }
  function showJobStatus(status) {
    const badge = document.getElementById("job-status");
    if (!badge) return;
    badge.textContent = status;
    badge.className = "status status-" + status;
    if (approvalForm) approvalForm.hidden = status === "approved";
    if (reopenForm) {
      reopenForm.hidden = status !== "approved" && status !== "translated";
      reopenForm.querySelector("button").textContent = status === "translated" ? "Start review" : "Reopen for review";
    }
  }
  async function refreshJobStatus() {
    const r = await send("GET", `/review/api/articles/${jobId}/progress`);
    if (r.status === 200 && r.data) showJobStatus(r.data.status);
  }

  function update(row, seg) {
    row.dataset.version = seg.version;
    row.querySelector(".seg-data").textContent = JSON.stringify(seg);
    const text = seg.targets[variant] || "";
    const spans = tagSpans(row, text);
    for (const t of seg.terms) {
      const sp = t.target_spans[variant];
      if (sp) spans.push({ start: sp.start, end: sp.end, title: titles[t.term_id] || t.term_id });
    }
    render(row.querySelector(".target-view"), text, spans);
    const edit = row.querySelector(".target-edit");
    // Never over what the translator typed and has not saved yet.
    if (edit && edit.dataset.dirty !== "1" && document.activeElement !== edit) edit.value = text;
    for (const other of row.querySelectorAll(".other")) {
      other.querySelector(".other-text").textContent = seg.targets[other.dataset.variant] || "";
      // A variant edited by hand is locked: editing this one no longer regenerates it.
      const locked = (seg.locked_variants || []).includes(other.dataset.variant);
      const lock = other.querySelector(".locked-mark");
      if (lock) lock.hidden = !locked;
      // Its button unlocks it (derived again from zh-Hans): there while it is locked.
      const unlockButton = other.querySelector("button.unlock");
      if (unlockButton) { unlockButton.hidden = !locked; unlockButton.disabled = withdrawn; }
    }
    const flags = row.querySelector(".flags");
    flags.replaceChildren();
    for (const f of seg.flags) {
      if (f.variant && f.variant !== variant) continue;
      const li = document.createElement("li");
      li.className = "flag flag-" + f.code;
      const b = document.createElement("b");
      b.textContent = f.code;
      li.append(b, document.createTextNode(" " + f.reason));
      flags.append(li);
    }
    const badge = row.querySelector(".seg-status");
    const before = badge.textContent.trim();
    if (before !== seg.status) {
      if (before === "needs_review") setPending(-1);
      else if (seg.status === "needs_review") setPending(1);
    }
    badge.textContent = seg.status;
    // Approved already: nothing for its button to do (an edit reopens it, and the button with it).
    const approveButton = row.querySelector("button.approve");
    if (approveButton) approveButton.disabled = seg.status === "approved" || withdrawn;
    row.querySelector(".origin").textContent = seg.origin;
    row.className = row.className.replace(/status-\S+/, "status-" + seg.status);
    // A warning about flags the segment no longer has (or approved since) is said no more.
    if (warned.has(row) && (seg.status === "approved" || warned.get(row) !== flagKey(seg))) unwarn(row);
    if (edit && !edit.hidden) showTerms(row);
  }

  // --- approving a flagged segment: said once, in the segment, before it is approved ------------
  // Approving it anyway takes a second press made after the warning could be read: a key held
  // down (its repeats) never approves, nor a press that came before the warning was shown or
  // within WARNING_READ_MS of it (a double click, a key pressed twice in a row).
  const WARNING_READ_MS = 800;
  const warned = new WeakMap(); // row → the flags (flagKey) the translator was warned of
  const warnedAt = new WeakMap(); // row → when the warning was shown (performance.now())
  const flagKey = (seg) => JSON.stringify((seg.flags || []).map((f) => [f.code, f.variant || "", f.reason]));
  // Whether approving now would pass over flags the translator has not been warned of yet.
  const needsWarning = (row, seg) =>
    seg.status !== "approved" && (seg.flags || []).length > 0 && warned.get(row) !== flagKey(seg);
  function warn(row, seg) {
    const names = [...new Set(seg.flags.map((f) => (f.variant && f.variant !== variant ? `${f.code} (${f.variant})` : f.code)))];
    row.querySelector(".approve-warning").textContent =
      `Not approved: this segment is flagged ${names.join(", ")}. Check the flags; press Ctrl+Enter ` +
      "(or Approve) again to approve it anyway.";
    row.classList.add("warned");
    warned.set(row, flagKey(seg));
    warnedAt.set(row, performance.now());
  }
  // Whether a press at `pressed` came too soon after the warning to be the deliberate second one.
  const tooSoon = (row, seg, pressed) =>
    seg.status !== "approved" && (seg.flags || []).length > 0 && warnedAt.has(row) &&
    pressed < warnedAt.get(row) + WARNING_READ_MS;
  function unwarn(row) {
    warned.delete(row);
    warnedAt.delete(row);
    row.querySelector(".approve-warning").textContent = "";
    row.classList.remove("warned");
  }

  // The glossary terms of the segment being edited, listed under its editor: each term, the form
  // the current variant must have (marked when the translation lacks it), and the glossary's note.
  function showTerms(row) {
    const box = row.querySelector(".glossary-terms");
    if (!box) return;
    const list = box.querySelector("ul");
    list.replaceChildren();
    // One line per term and form: an entry used twice with one form ("SCC … the SCC") is listed
    // once, one used with two (its name, then its acronym kept as written) twice.
    const seen = new Set();
    for (const t of segData(row).terms || []) {
      const key = JSON.stringify([t.term_id, (t.expected || {})[variant] || ""]);
      if (seen.has(key)) continue;
      seen.add(key);
      const li = document.createElement("li");
      li.dataset.term = t.term_id;
      const term = document.createElement("span");
      term.className = "term-source";
      term.lang = "en";
      term.textContent = t.source_text;
      const form = document.createElement("span");
      form.className = "term-form";
      form.lang = variant;
      form.textContent = (t.expected || {})[variant] || "";
      li.append(term, document.createTextNode(" → "), form);
      if (!(t.target_spans || {})[variant]) {
        li.classList.add("term-absent");
        const absent = document.createElement("span");
        absent.className = "term-absent-note";
        absent.textContent = " (not in this translation)";
        li.append(absent);
      }
      if (notes[t.term_id]) {
        const note = document.createElement("span");
        note.className = "term-note";
        note.textContent = notes[t.term_id];
        li.append(document.createTextNode(" — "), note);
      }
      list.append(li);
    }
    box.hidden = list.childElementCount === 0;
  }

  // What the row says about its text: also as words (the status line is a live region).
  const STATES = {
    dirty: "Unsaved changes",
    saving: "Saving…",
    saved: "Saved",
    failed: "Not saved — your text is kept here",
    conflict: "Not saved — changed by someone else",
    withdrawn: "Not saved — the article was withdrawn",
    approving: "Approving…",
    approved: "Approved",
  };
  function setState(row, state) {
    row.dataset.save = state;
    const line = row.querySelector(".save-state");
    if (line) line.textContent = STATES[state] || "";
    row.classList.toggle("saved", state === "saved" || state === "approved");
    row.classList.toggle("unsaved", state === "failed");
  }

  function showProblem(row, message) {
    const box = row.querySelector(".conflict");
    box.replaceChildren(document.createTextNode(message));
    box.hidden = false;
  }
  function clearProblem(row) {
    const box = row.querySelector(".conflict");
    box.hidden = true;
    box.replaceChildren();
    row.classList.remove("conflicted");
  }

  // Who stored the segment's `version`, from the article's state (the last poll's, else asked for
  // now); "" when that is not known (changed again since, or no answer).
  async function changedBy(row, version) {
    let s = known?.segments[row.dataset.id];
    if (!s || s[0] !== version) {
      const r = await send("GET", `/review/api/articles/${jobId}/state`);
      s = r.status === 200 ? r.data?.segments?.[row.dataset.id] : null;
    }
    return s && s[0] === version ? s[1] || "" : "";
  }
  const whoChanged = (by) =>
    by === me ? "You changed this segment in another tab" : `${by || "Someone else"} changed this segment`;

  // `mine`: what the translator typed, or null when they typed nothing (then nothing is quoted, and
  // `undone` says what was not done).
  async function showConflict(row, current, mine, undone = "Nothing was approved: check it and approve again.") {
    const who = whoChanged(await changedBy(row, current.version));
    const box = row.querySelector(".conflict");
    // The translator's text quoted by an earlier conflict (not in the editor any more): still quoted.
    const earlier = [...box.querySelectorAll("blockquote.mine")].map((q) => q.textContent);
    box.hidden = false;
    box.replaceChildren();
    const p = document.createElement("p");
    const theirs = current.targets[variant] || "";
    const quote = (text) => {
      const q = document.createElement("blockquote");
      q.className = "mine";
      q.lang = variant;
      q.textContent = text;
      return q;
    };
    if (mine !== null && mine !== theirs) {
      p.textContent = `${who}; the newer text is shown. Your text was:`;
      box.append(p, quote(mine));
    } else {
      p.textContent = `${who} since this page was loaded; the newer text is shown. ${undone}`;
      box.append(p);
    }
    for (const text of new Set(earlier)) {
      if (text === mine || text === theirs) continue;
      const before = document.createElement("p");
      before.textContent = "Your text before that was:";
      box.append(before, quote(text));
    }
    row.classList.add("conflicted");
    const edit = row.querySelector(".target-edit");
    if (edit) { edit.dataset.dirty = "0"; edit.value = theirs; if (!edit.hidden) fit(edit); }
    update(row, current);
    setState(row, "conflict");
  }

  // --- one queue per segment --------------------------------------------------------------------
  const timers = new WeakMap(); // row → the autosave or retry timer
  const chains = new WeakMap(); // row → the last queued save/approval, while one is queued
  const retries = new WeakMap(); // row → failed attempts in a row

  const isDirty = (row) => row.querySelector(".target-edit")?.dataset.dirty === "1";

  // Runs task(ok of the task before) after the row's queued tasks; resolves to its own ok.
  function enqueue(row, task) {
    const prev = chains.get(row) || Promise.resolve(true);
    const next = prev.then((ok) => task(ok)).catch((e) => { console.error(e); return false; });
    chains.set(row, next);
    next.then(() => { if (chains.get(row) === next) chains.delete(row); });
    return next;
  }

  function save(row) {
    clearTimeout(timers.get(row));
    return enqueue(row, (ok) => doSave(row, ok));
  }

  function retryLater(row) {
    const n = retries.get(row) || 0;
    retries.set(row, n + 1);
    clearTimeout(timers.get(row));
    timers.set(row, setTimeout(() => save(row), Math.min(30000, 2000 * 2 ** n)));
  }

  async function doSave(row, ok) {
    const edit = row.querySelector(".target-edit");
    if (!edit || edit.dataset.dirty !== "1") return ok;
    clearTimeout(timers.get(row));
    if (withdrawn) { keptToCopy(row); return false; }
    const text = edit.value;
    setState(row, "saving");
    const r = await call("PATCH", segUrl(row), { variant, text, version: Number(row.dataset.version), propagate: propagate() });
    if (r.status === 200) {
      retries.delete(row);
      clearProblem(row);
      const typedSince = edit.value !== text;
      if (!typedSince) edit.dataset.dirty = "0";
      const { repetitions = [], ...seg } = r.data;
      update(row, seg);
      setState(row, typedSince ? "dirty" : "saved");
      if (typedSince) { clearTimeout(timers.get(row)); timers.set(row, setTimeout(() => save(row), 800)); }
      repeated(row, repetitions, "updated");
      refreshJobStatus();
      return true;
    }
    if (r.status === 409 && r.data?.error?.current) {
      await showConflict(row, r.data.error.current, edit.value);
      return false;
    }
    if (r.status === 404) { articleWithdrawn(); return false; } // the article is gone, and the segment with it
    // Not saved: the text stays in the editor, marked unsaved, and is sent again.
    const again = r.status === 0 || r.status === 401 || r.status === 403 || r.status === 429 || r.status >= 500;
    showProblem(row, `Not saved: ${why(r)}. Your text is kept here` +
      (again ? "; it is sent again automatically and when you edit it." : "; change it and it is sent again."));
    setState(row, "failed");
    if (again) retryLater(row);
    return false;
  }

  async function doApprove(row) {
    setState(row, "approving");
    const r = await call("POST", segUrl(row) + "/approve", { version: Number(row.dataset.version), propagate: propagate() });
    if (r.status === 200) {
      clearProblem(row);
      const { repetitions = [], ...seg } = r.data;
      update(row, seg);
      setState(row, isDirty(row) ? "dirty" : "approved");
      repeated(row, repetitions, "approved");
      refreshJobStatus();
      return true;
    }
    if (r.status === 409 && r.data?.error?.current) {
      await showConflict(row, r.data.error.current, null); // the approval had no text of the translator's
      return false;
    }
    if (r.status === 404) {
      articleWithdrawn();
      if (!isDirty(row)) setState(row, "");
      return false;
    }
    showProblem(row, `Not approved: ${why(r)}.`);
    setState(row, isDirty(row) ? "failed" : "saved");
    return false;
  }

  // "Derive from zh-Hans again" on a variant locked by an edit by hand: after the segment's saves
  // (with the version they got back), the server unlocks it and derives it again from zh-Hans (in
  // an article without zh-Hans, from the variant edited by hand last); the row shows the new text.
  const deriveFrom = article.dataset.deriveFrom || "zh-Hans";
  async function unlock(row, button) {
    const other = button.dataset.variant;
    clearTimeout(timers.get(row));
    button.disabled = true; // one release per click (a double click sends one)
    const ok = await enqueue(row, async (before) => {
      if (!(await doSave(row, before))) return false;
      while (isDirty(row)) { // typed while that save was on its way
        if (!(await doSave(row, true))) return false;
      }
      if (withdrawn) return false;
      return doUnlock(row, other);
    });
    button.disabled = withdrawn;
    // The button goes once the variant is unlocked: the focus goes to the translation, not the page.
    if (ok && (document.activeElement === button || document.activeElement === document.body)) {
      const edit = row.querySelector(".target-edit");
      (edit && !edit.hidden ? edit : row.querySelector(".target-view")).focus();
    }
  }

  async function doUnlock(row, other) {
    const url = `${segUrl(row)}/variants/${encodeURIComponent(other)}/unlock`;
    const r = await call("POST", url, { version: Number(row.dataset.version) });
    if (r.status === 200) {
      clearProblem(row);
      const { repetitions = [], ...seg } = r.data; // a release is this segment's alone: none
      update(row, seg);
      setState(row, isDirty(row) ? "dirty" : "saved");
      const line = row.querySelector(".save-state");
      if (line && !isDirty(row)) line.textContent = `${other} derived again from ${deriveFrom}; edits change it again.`;
      refreshJobStatus();
      return true;
    }
    if (r.status === 409 && r.data?.error?.current) {
      await showConflict(row, r.data.error.current, null,
        `Nothing was unlocked: check ${other}, and derive it again if it is still locked.`);
      return false;
    }
    if (r.status === 404) { articleWithdrawn(); return false; }
    showProblem(row, `${other} was not derived again: ${why(r)}.`);
    return false;
  }

  // The editor as tall as its text (never a scrollbar inside it), and when it opens at least as
  // tall as the translation it replaces, so that nothing below it jumps.
  function fit(edit, atLeast = 0) {
    edit.style.height = "auto";
    const border = edit.offsetHeight - edit.clientHeight;
    edit.style.height = Math.max(edit.scrollHeight + border, atLeast) + "px";
  }

  function open(row) {
    const edit = row.querySelector(".target-edit");
    lastRow = row;
    if (!edit) { row.querySelector(".target-view").focus(); return; }
    const view = row.querySelector(".target-view");
    const height = view.offsetHeight;
    view.hidden = true;
    edit.hidden = false;
    fit(edit, height);
    edit.focus();
    showTerms(row);
    suggest(row);
  }

  // Translation memory suggestions for the segment being edited, asked for once per segment when
  // it is first opened; built with text nodes, never parsed as HTML.
  const suggested = new WeakSet();
  async function suggest(row) {
    const box = row.querySelector(".suggestions");
    if (!box || suggested.has(row)) return;
    suggested.add(row);
    const url = `${segUrl(row)}/suggestions?variant=${encodeURIComponent(variant)}`;
    const r = await send("GET", url);
    if (r.status !== 200) { suggested.delete(row); return; } // asked again when next opened
    // What the segment already says is no suggestion (an exact match the memory filled in).
    const current = row.querySelector(".target-edit").value;
    const offered = r.data.filter((s) => s.target !== current);
    if (!offered.length) return;
    box.querySelector("summary").textContent = `${offered.length} translation memory suggestion(s)`;
    const list = box.querySelector("ol");
    list.replaceChildren();
    for (const s of offered) {
      const li = document.createElement("li");
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = `${s.score}%`;
      const source = document.createElement("span");
      source.className = "tm-source";
      source.lang = "en";
      for (const [op, text] of s.diff) {
        const part = document.createElement(op === "equal" ? "span" : op === "insert" ? "ins" : "del");
        part.textContent = text;
        source.append(part);
      }
      const target = document.createElement("span");
      target.className = "tm-target";
      target.lang = variant;
      target.textContent = s.target;
      const use = document.createElement("button");
      use.type = "button";
      use.className = "use-suggestion";
      use.textContent = "Use";
      use.setAttribute("aria-label", `Use suggestion ${s.score}%`);
      use.addEventListener("click", () => {
        const edit = row.querySelector(".target-edit");
        open(row);
        edit.value = s.target;
        fit(edit);
        edit.dataset.dirty = "1";
        setState(row, "dirty");
        save(row);
      });
      li.append(score, source, target, use);
      list.append(li);
    }
    box.hidden = false;
  }

  // Close the editor once its text is saved; text that could not be saved keeps it open.
  async function close(row, refocus = false) {
    const edit = row.querySelector(".target-edit");
    if (!edit || edit.hidden) return;
    await save(row);
    if (isDirty(row) || edit.hidden) return;
    const hadFocus = document.activeElement === edit;
    edit.hidden = true;
    const terms = row.querySelector(".glossary-terms");
    if (terms) terms.hidden = true;
    const view = row.querySelector(".target-view");
    view.hidden = false;
    if (refocus || hadFocus) view.focus();
    // A change by someone else that waited while the translator was editing lands now.
    if (known) catchUp();
  }

  // Approve what the translator sees: after the segment's running and pending saves, with the
  // version they got back; nothing is approved when one of them failed or conflicted. A segment
  // with QA flags is not approved at the first asking: the segment says which flags it has, and
  // asking again approves it (unless its flags changed in between: then it says so again).
  async function approve(row) {
    const pressed = performance.now();
    clearTimeout(timers.get(row));
    const ok = await enqueue(row, async (before) => {
      if (!(await doSave(row, before))) return false;
      while (isDirty(row)) { // typed while that save was on its way
        if (!(await doSave(row, true))) return false;
      }
      if (withdrawn) return false;
      const seg = segData(row);
      if (needsWarning(row, seg)) { warn(row, seg); return false; }
      if (tooSoon(row, seg, pressed)) return false; // not yet the deliberate second press
      return doApprove(row);
    });
    if (!ok) return;
    await close(row);
    // As in CAT tools: on to the next segment not approved yet, skipping those that are.
    goTo(after(row, (r) => !r.classList.contains("status-approved")),
      "Every segment on this page is approved.", row);
  }

  // The first row after `row` (then from the top) that `wanted` accepts, or null.
  function after(row, wanted) {
    const all = [...document.querySelectorAll(".seg")];
    const at = row ? all.indexOf(row) : -1;
    return [...all.slice(at + 1), ...all.slice(0, at + 1)].find((r) => r !== row && wanted(r)) || null;
  }

  // Open `next` (centred), or say `none` and leave the focus on `from`'s translation.
  function goTo(next, none, from) {
    if (next) {
      say("");
      open(next);
      next.scrollIntoView({ block: "center" });
      return;
    }
    say(none);
    from?.querySelector(".target-view")?.focus();
  }

  // The segment the translator is at: the one being edited or holding the focus, else the one
  // last opened, else the first one on screen (its middle below the sticky toolbar).
  let lastRow = null;
  function currentRow() {
    const focused = document.activeElement?.closest?.(".seg");
    if (focused) return focused;
    if (lastRow && lastRow.isConnected) return lastRow;
    const top = document.querySelector(".toolbar")?.getBoundingClientRect().bottom || 0;
    return [...document.querySelectorAll(".seg")].find((r) => {
      const box = r.getBoundingClientRect();
      return (box.top + box.bottom) / 2 > top;
    }) || null;
  }

  function nextPending() {
    const from = currentRow();
    const next = after(from, (r) => r.classList.contains("status-needs_review"));
    goTo(next, "No segment on this page needs review.", from);
  }

  // --- repetitions, and changes made elsewhere ---------------------------------------------------
  const rowById = (id) => document.getElementById("seg-" + id);
  // Whether the translator is at work on the row: its editor open, text not saved yet, or a save
  // or approval of it on its way.
  const busy = (row) => {
    const edit = row.querySelector(".target-edit");
    return isDirty(row) || chains.has(row) || (edit !== null && !edit.hidden);
  };

  // Said in the toolbar's status line (a live region). The line shows at most two short lines (the
  // toolbar keeps to one line); the whole message is also its title.
  function say(message) {
    const status = document.getElementById("page-status");
    if (!status) return;
    status.textContent = message;
    status.title = message;
  }
  // Said for a moment.
  let flashTimer = null;
  function flash(message) {
    say(message);
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      if (document.getElementById("page-status")?.textContent === message) say("");
    }, 6000);
  }

  // A newer version of a segment that came from elsewhere (a repetition changed with a segment this
  // page saved, or someone else's change): put in place, unless the translator is at work on it;
  // then their text is not replaced, and they are told (saving it then shows both, to merge).
  // `why` says who changed it. Whether it was put in place.
  function landed(row, seg, why) {
    if (seg.version <= Number(row.dataset.version)) return false;
    const box = row.querySelector(".conflict");
    if (busy(row)) {
      if (row.dataset.told === String(seg.version)) return false;
      row.dataset.told = String(seg.version);
      const p = document.createElement("p");
      p.textContent = `${why} while you were editing it; your text was not replaced. It now reads:`;
      const q = document.createElement("blockquote");
      q.className = "theirs";
      q.lang = variant;
      q.textContent = seg.targets[variant] || "";
      const then = document.createElement("p");
      then.textContent = "Saving your text will show both, to merge; close the editor unchanged to take this one.";
      // The translator's own text that a conflict quoted (the editor has the newer text now) stays.
      const mine = [...box.querySelectorAll("blockquote.mine")].flatMap((q) => [q.previousElementSibling, q]);
      box.replaceChildren(...mine.filter(Boolean), p, q, then);
      box.hidden = false;
      row.classList.add("changed-elsewhere");
      return false;
    }
    if (row.classList.contains("changed-elsewhere")) clearProblem(row);
    row.classList.remove("changed-elsewhere");
    delete row.dataset.told;
    update(row, seg);
    const line = row.querySelector(".save-state");
    if (line) line.textContent = why + ".";
    row.classList.add("refreshed");
    setTimeout(() => row.classList.remove("refreshed"), 3000);
    return true;
  }

  // The repetitions a save or approval of `row` changed with it: updated in place, and counted.
  function repeated(row, repetitions, done) {
    if (!repetitions.length) return;
    for (const seg of repetitions) {
      const other = rowById(seg.id);
      if (other && other !== row) landed(other, seg, `Changed with segment ${row.dataset.id} (the same sentence)`);
    }
    const n = repetitions.length;
    flash(`${n} repetition${n === 1 ? "" : "s"} of this sentence ${done} too.`);
  }

  // Polling: the article's state (status, count needing review, each segment's version), sent again
  // only when it changed (ETag); the segments whose version this page lacks are then asked for.
  const POLL_MS = 15000;
  let stateTag = "";
  let known = null; // the last state: { status, pending, segments: { id: [version, changed by] }, queries }
  let polling = false;
  async function poll() {
    if (polling || withdrawn || document.visibilityState !== "visible") return;
    polling = true;
    try {
      let response;
      try {
        response = await fetch(`/review/api/articles/${jobId}/state`, {
          headers: stateTag ? { "If-None-Match": stateTag } : {},
          credentials: "same-origin",
        });
      } catch (e) { return; } // offline: asked again next time
      if (response.status === 200) {
        stateTag = response.headers.get("ETag") || "";
        known = await response.json();
        showJobStatus(known.status);
      } else if (response.status === 404) {
        articleWithdrawn();
        return;
      } else if (response.status !== 304) {
        return;
      }
      if (known) await catchUp();
    } finally {
      polling = false;
    }
  }

  async function catchUp() {
    const stale = rows.filter((row) => {
      const s = known.segments[row.dataset.id];
      return s && s[0] > Number(row.dataset.version) && !chains.has(row);
    });
    if (stale.length) {
      const query = stale.slice(0, 200).map((row) => "id=" + encodeURIComponent(row.dataset.id)).join("&");
      const r = await send("GET", `/review/api/articles/${jobId}/segments?${query}`);
      let n = 0;
      for (const seg of (r.status === 200 && r.data?.segments) || []) {
        const row = rowById(seg.id);
        const by = known.segments[seg.id]?.[1] || "";
        const who = by === me ? "You changed this segment in another tab" : `${by || "Someone"} changed this segment`;
        if (row && !chains.has(row) && landed(row, seg, who)) n += 1;
      }
      if (n) flash(`${n} segment${n === 1 ? "" : "s"} changed by others updated.`);
    }
    // The server's count, unless this page's own saves are on their way (they change it again).
    if (!unsaved().length) setPendingTo(known.pending);
    await catchUpQueries();
  }

  // Queries asked, answered, resolved or reopened elsewhere: a segment whose thread in brief
  // ([thread open, all, last id, open comments]) differs from this page's gets its thread reloaded
  // and redrawn (its list, button and marker only: what is being typed in its query box, and the
  // focus, stay), and the totals follow. Segments a filter leaves off the page count too: the
  // totals are the article's.
  const brief = (list) => {
    const open = list.filter((c) => c.open).length;
    return [open ? 1 : 0, list.length, Math.max(0, ...list.map((c) => Number(c.id))), open];
  };
  async function catchUpQueries() {
    const marks = known.queries || {};
    const changed = [...new Set([...Object.keys(marks), ...comments.keys()])].filter((id) =>
      String(brief(comments.get(id) || [])) !== String(marks[id] || [0, 0, 0, 0]));
    if (!changed.length) return;
    const r = await send("GET", `/review/api/articles/${jobId}/comments`);
    if (r.status !== 200 || !Array.isArray(r.data?.comments)) return; // asked again next time
    const fresh = new Map();
    for (const c of r.data.comments) {
      if (!fresh.has(c.segment_id)) fresh.set(c.segment_id, []);
      fresh.get(c.segment_id).push(c);
    }
    for (const id of changed) {
      comments.set(id, fresh.get(id) || []);
      const row = rowById(id);
      if (row) drawThread(row);
    }
    countOpen();
  }

  const polls = setInterval(poll, POLL_MS);

  // --- a withdrawn article ------------------------------------------------------------------------
  // The poll or a save answered 404: the article was withdrawn (deleted). Nothing more is sent
  // (no retries, no polls): the page says so once, and what the translator typed and could not
  // save stays in its editor, to copy. (`withdrawn` is declared at the top.)
  function articleWithdrawn() {
    if (withdrawn) return;
    withdrawn = true;
    clearInterval(polls);
    for (const row of rows) {
      clearTimeout(timers.get(row));
      const edit = row.querySelector(".target-edit");
      if (edit) edit.readOnly = true; // still selectable, to copy
      if (isDirty(row)) keptToCopy(row);
    }
    for (const b of document.querySelectorAll("button.approve, button.unlock, #approve-article, .add-query, .thread-button")) {
      b.disabled = true;
    }
    pageError.textContent = "This article was withdrawn: nothing more can be saved or approved on this " +
      "page. Any text you typed that was not saved is still in its editor (marked): copy it from there.";
    pageError.hidden = false;
  }
  function keptToCopy(row) {
    showProblem(row, "Not saved: this article was withdrawn. Your text is kept here: copy it.");
    setState(row, "withdrawn");
    row.classList.add("unsaved");
  }
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") poll(); });

  // --- leaving the page -------------------------------------------------------------------------
  const rows = [...document.querySelectorAll(".seg")];
  const unsaved = () => rows.filter((row) => isDirty(row) || chains.has(row));
  // Text typed elsewhere on the page that only its author can send (a query not added yet, a memory
  // entry's correction not saved): leaving the page asks first, since it cannot be saved for them.
  const typedElsewhere = [() => [...document.querySelectorAll(".query-text")].some((box) => box.value.trim() !== "")];

  // Save everything first; stay (and say why) when something could not be saved.
  let leaving = false;
  async function leave(go, undo) {
    if (withdrawn) { go(); return; } // nothing can be saved: the browser asks about typed text
    if (leaving) return;
    leaving = true;
    pageError.hidden = false;
    pageError.textContent = "Saving your changes first…";
    // Until nothing is on its way: a save queued meanwhile (an editor closing as the focus left it)
    // is waited for too, not taken for one that failed. A save that failed ends it.
    for (let round = 0; round < 3 && unsaved().length; round += 1) {
      if (!(await Promise.all(unsaved().map((row) => save(row)))).every(Boolean)) break;
    }
    leaving = false;
    const left = unsaved();
    if (!left.length) { pageError.hidden = true; go(); return; }
    if (undo) undo();
    pageError.textContent = `${left.length} segment(s) could not be saved; your text is still in them ` +
      "(marked). Nothing was left; try again when the connection is back.";
    left[0].scrollIntoView({ block: "center" });
  }

  window.addEventListener("beforeunload", (e) => {
    if (unsaved().length || typedElsewhere.some((typed) => typed())) { e.preventDefault(); e.returnValue = ""; }
  });
  window.addEventListener("online", () => { for (const row of unsaved()) save(row); });

  document.addEventListener("click", (e) => {
    const a = e.target.closest?.("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || a.target) return;
    if (!unsaved().length) return;
    e.preventDefault();
    // A download link (the Export links) is followed again once saved: a download, not a page.
    leave(() => { if (a.hasAttribute("download")) a.click(); else window.location.href = a.href; });
  });
  document.addEventListener("submit", (e) => {
    if (!unsaved().length) return;
    e.preventDefault();
    const form = e.target;
    leave(() => form.submit());
  });

  // Another variant, or the filter, opens at the segment the translator is at (its id in the
  // URL's fragment), not at the top of the article.
  // (`#at=<segment id>`, not the row's own id: the browser would move the focus off it again.)
  const here = () => { const row = currentRow(); return row ? "#at=" + encodeURIComponent(row.dataset.id) : ""; };
  document.querySelector("nav.variants")?.addEventListener("click", (e) => {
    const a = e.target.closest?.("a[href]");
    if (a) a.hash = here();
  });

  // The filters: flagged segments only, and (in a revision) those changed since the previous one.
  for (const [id, param] of [["flagged-only", "flagged"], ["changed-only", "changed"]]) {
    const box = document.getElementById(id);
    box?.addEventListener("change", () => {
      const url = new URL(window.location.href);
      if (box.checked) url.searchParams.set(param, "1"); else url.searchParams.delete(param);
      url.hash = here();
      leave(() => { window.location.href = url.toString(); }, () => { box.checked = !box.checked; });
    });
  }

  document.getElementById("next-pending")?.addEventListener("click", nextPending);
  document.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && e.altKey && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
      e.preventDefault();
      nextPending();
    }
  });

  for (const row of rows) {
    const view = row.querySelector(".target-view");
    const edit = row.querySelector(".target-edit");
    view.addEventListener("click", () => open(row));
    // A key held down repeats: its repeats neither approve nor open anything.
    view.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!e.repeat) approve(row); }
      else if (e.key === "Enter") { e.preventDefault(); if (!e.repeat) open(row); }
    });
    row.querySelector(".approve")?.addEventListener("click", () => approve(row));
    for (const button of row.querySelectorAll("button.unlock")) button.addEventListener("click", () => unlock(row, button));
    if (!edit) continue;
    edit.addEventListener("input", () => {
      fit(edit);
      edit.dataset.dirty = "1";
      if (row.dataset.save !== "failed") setState(row, "dirty");
      clearTimeout(timers.get(row));
      timers.set(row, setTimeout(() => save(row), 800));
    });
    edit.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (!e.repeat) approve(row); }
      if (e.key === "Escape") { e.preventDefault(); close(row, true); }
    });
    edit.addEventListener("blur", () => { setTimeout(() => { if (document.activeElement !== edit) close(row); }, 150); });
  }

  // --- concordance: how a word or phrase was translated before ----------------------------------
  // Ctrl+Shift+F (or the toolbar's button) opens the panel with the text selected in a source, a
  // translation or the editor, and searches the translation memory (this variant) and the
  // article's glossaries for it. Hits are built with text nodes: stored text is never parsed as HTML.
  // An admin (memory:edit) corrects a memory entry's translation, or deletes the entry, in place.
  const panel = document.getElementById("concordance");
  if (panel) {
    const input = document.getElementById("concordance-q");
    const count = document.getElementById("concordance-count");
    const done = document.getElementById("concordance-done"); // what an admin's change did (a live region)
    const keeper = panel.dataset.keepMemory === "1";
    let shown = null; // the answer listed: its memory entries follow corrections and deletions
    const memoryList = document.getElementById("concordance-memory");
    const termList = document.getElementById("concordance-terms");
    const opener = document.getElementById("concordance-open");
    let asked = 0; // the latest search: answers to earlier ones are dropped
    let typing = null;
    let back = null; // where the focus was: { row (its editor was open), element }

    // `text` with each match (start, end in code points, as the server counts) in a <mark>.
    const marked = (el, text, matches) => {
      const chars = Array.from(text);
      let pos = 0;
      for (const m of [...matches].sort((a, b) => a.start - b.start)) {
        if (m.start < pos || m.end > chars.length || m.start >= m.end) continue;
        el.append(document.createTextNode(chars.slice(pos, m.start).join("")));
        const mark = document.createElement("mark");
        mark.textContent = chars.slice(m.start, m.end).join("");
        el.append(mark);
        pos = m.end;
      }
      el.append(document.createTextNode(chars.slice(pos).join("")));
      return el;
    };
    const piece = (tag, cls, lang, text, matches) => {
      const el = document.createElement(tag);
      el.className = cls;
      if (lang) el.lang = lang;
      return matches ? marked(el, text, matches) : Object.assign(el, { textContent: text });
    };

    // Where an entry came from, in words (its origin is shown as the API names it).
    const ORIGINS = {
      approved: "from an approved article",
      tmx: "imported from a TMX file",
      corrected: "corrected by an admin",
    };
    // An entry's variant, origin and date: what a correction changes is redrawn with it.
    function fillMeta(meta, h) {
      meta.replaceChildren(document.createTextNode(`${h.variant} · `));
      const origin = document.createElement("span");
      origin.className = "cc-origin cc-origin-" + h.origin;
      origin.textContent = h.origin;
      origin.title = ORIGINS[h.origin] || "";
      meta.append(origin, document.createTextNode(` · ${(h.created_at || "").slice(0, 10)}`));
    }
    const brief = (text) => (text.length > 60 ? text.slice(0, 59) + "…" : text);
    // `failed`: nothing was changed (said in the flag's colour).
    function said(message, failed = false) {
      if (!done) return;
      done.textContent = message;
      done.classList.toggle("failed", failed);
    }

    const entryOf = new WeakMap(); // li → its entry (h), as its buttons act on it
    function entryItem(h) {
      const li = document.createElement("li");
      li.dataset.entry = String(h.id);
      entryOf.set(li, h);
      const meta = piece("span", "cc-meta", "", "");
      fillMeta(meta, h);
      li.append(
        piece("span", "cc-source", "en", h.source, h.source_matches),
        piece("span", "cc-target", h.variant, h.target, h.target_matches),
        meta,
      );
      if (keeper) {
        const actions = document.createElement("div");
        actions.className = "cc-actions";
        const fix = document.createElement("button");
        fix.type = "button";
        fix.className = "secondary cc-correct";
        fix.textContent = "Correct";
        fix.setAttribute("aria-label", `Correct the translation of “${brief(h.source)}” (${h.variant})`);
        const drop = document.createElement("button");
        drop.type = "button";
        drop.className = "secondary cc-delete";
        drop.textContent = "Delete";
        drop.setAttribute("aria-label", `Delete the entry “${brief(h.source)}” (${h.variant})`);
        fix.addEventListener("click", () => startCorrecting(li, h));
        drop.addEventListener("click", () => askDelete(li, h));
        actions.append(fix, drop);
        li.append(actions);
      }
      return li;
    }

    // The entry's actions, or what replaced them (the correction's editor, the question before
    // deleting); `focus`: the Correct button takes the focus back. An entry kept only for its
    // correction (the search shown does not find it) goes once that is saved or cancelled, the focus
    // to the search box.
    function restore(li, focus) {
      if (li.classList.contains("cc-kept")) {
        li.remove();
        showCount(shown);
        if (focus) input.focus();
        return;
      }
      li.querySelector(".cc-edit")?.remove();
      li.querySelector(".cc-confirm")?.remove();
      const actions = li.querySelector(".cc-actions");
      actions.hidden = false;
      if (focus) actions.querySelector(".cc-correct").focus();
    }

    // Correct: the translation in a text box under the entry; Save (or Ctrl+Enter) stores it,
    // Cancel (or Esc) leaves it as it was.
    function startCorrecting(li, h) {
      li.querySelector(".cc-actions").hidden = true;
      const box = document.createElement("div");
      box.className = "cc-edit";
      const label = document.createElement("label");
      label.htmlFor = `cc-edit-${h.id}`;
      label.textContent = `Corrected translation (${h.variant})`;
      const text = document.createElement("textarea");
      text.id = `cc-edit-${h.id}`;
      text.lang = h.variant;
      text.rows = 2;
      text.maxLength = 20000;
      text.value = h.target;
      const save = document.createElement("button");
      save.type = "button";
      save.className = "cc-save";
      save.textContent = "Save";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "secondary cc-cancel";
      cancel.textContent = "Cancel";
      box.append(label, text, save, cancel);
      li.append(box);
      save.addEventListener("click", () => saveCorrection(li, h, text, [save, cancel]));
      cancel.addEventListener("click", () => { restore(li, true); said("Correction cancelled."); });
      box.addEventListener("keydown", (e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation(); // the editor closes, not the panel
          restore(li, true);
          said("Correction cancelled.");
        } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target === text) {
          e.preventDefault();
          saveCorrection(li, h, text, [save, cancel]);
        }
      });
      text.focus();
      text.select();
    }

    async function saveCorrection(li, h, text, buttons) {
      if (!text.value.trim()) {
        said("Not corrected: the translation is blank (to remove the entry, delete it).", true);
        text.focus();
        return;
      }
      for (const b of buttons) b.disabled = true;
      said("Saving the correction…");
      const r = await call("PATCH", `/review/api/memory/entries/${h.id}`, { target: text.value });
      for (const b of buttons) b.disabled = false;
      if (r.status !== 200 || !r.data) {
        said(`Not corrected: ${why(r)}.`, true);
        text.focus();
        return;
      }
      Object.assign(h, { target: r.data.target, origin: r.data.origin, created_at: r.data.created_at, target_matches: [] });
      li.querySelector(".cc-target").textContent = h.target;
      fillMeta(li.querySelector(".cc-meta"), h);
      restore(li, true);
      said(`Entry corrected: “${brief(h.source)}” (${h.variant}) now reads “${brief(h.target)}”.`);
    }

    // Delete: asked first, in the entry ("Keep" has the focus: a second Enter deletes nothing).
    function askDelete(li, h) {
      li.querySelector(".cc-actions").hidden = true;
      const box = document.createElement("div");
      box.className = "cc-confirm";
      box.setAttribute("role", "group");
      const question = document.createElement("span");
      question.id = `cc-confirm-${h.id}`;
      question.textContent = "Delete this entry? Its sentence will no longer be reused or suggested in " +
        `${h.variant}.`;
      box.setAttribute("aria-labelledby", question.id);
      const yes = document.createElement("button");
      yes.type = "button";
      yes.className = "cc-delete-yes";
      yes.textContent = "Delete entry";
      const keep = document.createElement("button");
      keep.type = "button";
      keep.className = "secondary cc-keep";
      keep.textContent = "Keep";
      box.append(question, yes, keep);
      li.append(box);
      yes.addEventListener("click", () => deleteEntry(li, h, [yes, keep]));
      keep.addEventListener("click", () => { restore(li, true); said("Entry kept."); });
      box.addEventListener("keydown", (e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          e.stopPropagation();
          restore(li, true);
          said("Entry kept.");
        }
      });
      keep.focus();
    }

    async function deleteEntry(li, h, buttons) {
      for (const b of buttons) b.disabled = true;
      said("Deleting the entry…");
      const r = await call("DELETE", `/review/api/memory/entries/${h.id}`);
      if (r.status !== 200 && r.status !== 404) {
        for (const b of buttons) b.disabled = false;
        said(`Not deleted: ${why(r)}.`, true);
        buttons[1].focus();
        return;
      }
      // Deleted (a 404: by someone else already): gone from the list, the focus on a neighbour.
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      if (shown) {
        shown.memory = shown.memory.filter((x) => x.id !== h.id);
        showCount(shown);
      }
      // (Not one whose buttons a correction or a question replaced: those are hidden.)
      (next?.querySelector(".cc-actions:not([hidden]) .cc-correct") || input).focus();
      said(r.status === 200
        ? `Entry deleted: “${brief(h.source)}” (${h.variant}).`
        : `“${brief(h.source)}” (${h.variant}) was deleted already (by someone else?).`);
    }

    function showCount(data) {
      // The list's heading also stands over corrections kept from an earlier search.
      document.getElementById("concordance-memory-title").hidden = !memoryList.childElementCount;
      if (!data) return;
      const m = data.memory.length;
      const g = data.glossary.length;
      count.textContent = `“${data.query}”: ${m}${data.more ? "+" : ""} translation memory ` +
        `entr${m === 1 ? "y" : "ies"}${data.more ? " (the newest; refine the search for others)" : ""}, ` +
        `${g} glossary term${g === 1 ? "" : "s"}.`;
    }

    // A correction typed and not saved: leaving the page asks first, as for a segment's text.
    typedElsewhere.push(() => [...memoryList.querySelectorAll(".cc-edit textarea")].some((text) =>
      text.value.trim() !== (entryOf.get(text.closest("li"))?.target || "")));

    // The memory's entries of a new search (none for a blank query), in place of the last one's.
    // An entry being corrected keeps its editor, with what was typed: in its place when the search
    // finds it again, else at the top of the list, marked, until its correction is saved or
    // cancelled. (A question before deleting, which holds nothing typed, stays only with an entry
    // the search finds.)
    function listEntries(memory) {
      const open = new Map([...memoryList.children]
        .filter((li) => li.querySelector(".cc-edit, .cc-confirm"))
        .map((li) => [li.dataset.entry, li]));
      const items = memory.map((h, i) => {
        const li = open.get(String(h.id));
        if (!li) return entryItem(h);
        open.delete(String(h.id));
        // The same entry: its words marked as this search finds them, its buttons acting on it.
        const kept = entryOf.get(li);
        memory[i] = Object.assign(kept, h);
        li.querySelector(".cc-source").replaceWith(piece("span", "cc-source", "en", kept.source, kept.source_matches));
        li.querySelector(".cc-target").replaceWith(piece("span", "cc-target", kept.variant, kept.target, kept.target_matches));
        fillMeta(li.querySelector(".cc-meta"), kept);
        li.classList.remove("cc-kept");
        li.querySelector(".cc-kept-note")?.remove();
        return li;
      });
      const elsewhere = [...open.values()].filter((li) => li.querySelector(".cc-edit"));
      for (const li of elsewhere) {
        if (!li.classList.contains("cc-kept")) {
          li.classList.add("cc-kept");
          const note = document.createElement("p");
          note.className = "cc-kept-note";
          note.textContent = "Not found by this search: kept here until you save or cancel its correction.";
          li.prepend(note);
        }
      }
      // The focus stays where it was (the list is put together again around it), with its selection.
      const focused = memoryList.contains(document.activeElement) ? document.activeElement : null;
      const range = focused?.tagName === "TEXTAREA" ? [focused.selectionStart, focused.selectionEnd] : null;
      memoryList.replaceChildren(...elsewhere, ...items);
      if (focused?.isConnected && document.activeElement !== focused) {
        focused.focus({ preventScroll: true });
        if (range) focused.setSelectionRange(...range);
      }
      if (elsewhere.length) {
        const n = elsewhere.length;
        said(`${n === 1 ? "A correction" : `${n} corrections`} not saved yet ${n === 1 ? "is" : "are"} kept at ` +
          "the top of the list: save or cancel it there.");
      }
    }

    function show(data) {
      shown = data;
      said("");
      listEntries(data.memory);
      termList.replaceChildren();
      for (const t of data.glossary) {
        const li = document.createElement("li");
        t.forms.forEach((f, i) => {
          if (i) li.append(document.createTextNode("; "));
          li.append(piece("span", "cc-form-en", "en", f.text, f.matches));
        });
        li.append(document.createTextNode(" → "), piece("span", "cc-form", t.variant, t.form.text, t.form.matches));
        const about = [t.glossary, t.note].filter(Boolean).join(" — ");
        li.append(document.createTextNode(" "), piece("span", "cc-note", "", `(${about})`));
        termList.append(li);
      }
      document.getElementById("concordance-terms-title").hidden = !data.glossary.length;
      showCount(data);
    }

    async function search() {
      clearTimeout(typing);
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) {
        shown = null;
        said("");
        listEntries([]);
        termList.replaceChildren();
        count.textContent = "";
        showCount(null);
        return;
      }
      count.textContent = "Searching…";
      const params = new URLSearchParams({ q, variant, article: jobId });
      const r = await send("GET", "/review/api/memory/search?" + params.toString());
      if (mine !== asked) return;
      if (r.status === 200 && r.data) show(r.data);
      else count.textContent = `Not searched: ${why(r)}.`;
    }

    // The text the translator selected: in an editor, or anywhere on the page (a source).
    function selected() {
      const el = document.activeElement;
      if (el && el.tagName === "TEXTAREA" && el.selectionEnd > el.selectionStart) {
        return el.value.slice(el.selectionStart, el.selectionEnd);
      }
      return window.getSelection()?.toString() || "";
    }

    function openPanel() {
      const text = selected().replace(/\s+/g, " ").trim().slice(0, 200);
      const el = document.activeElement;
      const row = el?.closest?.(".seg");
      // Asked again from within the box (a word selected in a correction): Esc still goes back to
      // where the translator was before it opened.
      if (!(back && !panel.hidden && panel.contains(el))) {
        back = { row: row && el.classList.contains("target-edit") ? row : null, element: el };
      }
      panel.hidden = false;
      opener?.setAttribute("aria-expanded", "true");
      // The sentence being edited stays in sight: beside the docked box, or above the sheet on a
      // narrow window (the segments' scroll margins make room for either).
      back.row?.scrollIntoView({ block: "nearest" });
      if (text) input.value = text;
      input.focus({ preventScroll: true });
      input.select();
      if (text) search();
    }

    function closePanel() {
      panel.hidden = true;
      opener?.setAttribute("aria-expanded", "false");
      // Back to where the translator was: their editor open again, or what had the focus.
      if (back?.row) open(back.row);
      else if (back?.element?.isConnected && back.element !== document.body) back.element.focus();
      back = null;
    }

    opener?.addEventListener("click", () => (panel.hidden ? openPanel() : closePanel()));
    document.getElementById("concordance-close").addEventListener("click", closePanel);
    document.getElementById("concordance-form").addEventListener("submit", (e) => {
      e.preventDefault();
      e.stopPropagation(); // not the page's form handling (saving before leaving)
      search();
    });
    input.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(search, 400);
    });
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); closePanel(); }
    });
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.shiftKey && !e.altKey && e.key.toLowerCase() === "f") {
        e.preventDefault();
        openPanel();
      }
    });
  }

  // --- queries on segments: ask the desk or the reporter, answer, resolve ---------------------------
  // Each segment's thread (its comments, oldest first) opens with the segment's Queries button. A
  // query is a thread: open while any of its comments is, resolved all at once with the thread's one
  // Resolve button, reopened with its Reopen button. A segment with an open thread shows it on that
  // button, and the toolbar the article's total of open threads. Comments are built with text nodes:
  // stored text is never parsed as HTML.
  const threadData = JSON.parse(document.getElementById("comments-data")?.textContent || "[]");
  const mayResolveAny = article?.dataset.resolveAny === "1";
  const comments = new Map(); // segment id → its comments
  for (const c of threadData) {
    if (!comments.has(c.segment_id)) comments.set(c.segment_id, []);
    comments.get(c.segment_id).push(c);
  }
  const isOpen = (list) => list.some((c) => c.open);
  function countOpen() {
    let n = 0;
    for (const list of comments.values()) if (isOpen(list)) n += 1;
    for (const el of document.querySelectorAll("#open-queries, #open-queries-toolbar, .open-queries-count")) {
      el.textContent = String(n);
    }
    showOverride();
  }
  // The comment the thread's button acts on: while the thread is open, its first open comment (whose
  // author started it: the one a cms key may resolve); once resolved, the first of those resolved
  // last, together (the question of the query last resolved), which Reopen opens again.
  function threadHead(list) {
    const open = list.filter((c) => c.open);
    if (open.length) return open[0];
    const last = list.reduce((a, c) => (c.resolved_at && (!a || c.resolved_at > a) ? c.resolved_at : a), "");
    return list.find((c) => c.resolved_at === last) || list[list.length - 1];
  }
  // A segment's thread, brought up to date in place: each comment's item (keyed by its id) is kept
  // and only its text is changed, new comments are added and gone ones removed; the thread's one
  // button stays the same element and says Resolve or Reopen. So a redraw (the poll's, or after
  // resolving) leaves the focus on that button, and the page scrolled, as they were.
  function drawThread(row) {
    const id = row.dataset.id;
    const list = comments.get(id) || [];
    const open = isOpen(list);
    const marker = row.querySelector(".query-marker");
    if (marker) {
      marker.textContent = `${open ? 1 : 0} open`;
      marker.hidden = !open;
    }
    row.classList.toggle("has-open-queries", open);
    const ol = row.querySelector(".thread-list");
    if (!ol) return;
    const controls = threadControls(row, ol);
    const focused = ol.contains(document.activeElement) || controls.contains(document.activeElement)
      ? document.activeElement : null;
    const top = focused?.getBoundingClientRect().top;
    const ids = new Set(list.map((c) => String(c.id)));
    for (const li of [...ol.children]) if (!ids.has(li.dataset.comment)) li.remove();
    const kept = new Map([...ol.children].map((li) => [li.dataset.comment, li]));
    list.forEach((c, i) => {
      const li = kept.get(String(c.id)) || commentItem(c);
      fillComment(li, c);
      if (ol.children[i] !== li) ol.insertBefore(li, ol.children[i] || null); // only new ones move
    });
    fillControls(controls, list);
    if (focused && (!focused.isConnected || focused.hidden)) {
      (row.querySelector(".query-text") || row.querySelector(".queries-toggle"))?.focus({ preventScroll: true });
    } else if (focused) {
      const moved = focused.getBoundingClientRect().top - top;
      if (moved) window.scrollBy(0, moved);
    }
  }
  // The thread's state and its one button, under its comments (made once per segment).
  function threadControls(row, ol) {
    let p = row.querySelector(".thread-state");
    if (p) return p;
    p = document.createElement("p");
    p.className = "thread-state";
    const state = document.createElement("span");
    state.className = "thread-status";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary thread-button";
    button.hidden = true;
    button.addEventListener("click", () => {
      const list = comments.get(row.dataset.id) || []; // as the thread is now, not as first drawn
      if (list.length) setResolved(row, threadHead(list).id, isOpen(list));
    });
    p.append(state, document.createTextNode(" "), button);
    ol.after(p);
    return p;
  }
  function fillControls(p, list) {
    p.hidden = list.length === 0;
    const button = p.querySelector("button");
    if (!list.length) { button.hidden = true; return; }
    const open = isOpen(list);
    const head = threadHead(list);
    const by = [...new Set(list.filter((c) => !c.open && c.resolved_at === head.resolved_at).map((c) => c.resolved_by || "?"))];
    p.querySelector(".thread-status").textContent = open ? "Query open" : `Query resolved by ${by.join(", ")}`;
    // A cms key resolves only a thread it started and reopens only its own comment.
    button.hidden = !(mayResolveAny || head.author === me);
    const verb = open ? "Resolve" : "Reopen";
    button.className = "secondary thread-button " + (open ? "resolve-query" : "reopen-query");
    button.textContent = verb;
    button.setAttribute("aria-label", `${verb} the query by ${head.author}: ${head.body.slice(0, 60)}`);
  }
  function commentItem(c) {
    const li = document.createElement("li");
    li.dataset.comment = String(c.id);
    const head = document.createElement("p");
    head.className = "comment-head";
    const who = document.createElement("b");
    const when = document.createElement("time");
    const state = document.createElement("span");
    state.className = "comment-state";
    head.append(who, document.createTextNode(" · "), when, document.createTextNode(" · "), state);
    const body = document.createElement("p");
    body.className = "comment-body";
    li.append(head, body);
    return li;
  }
  function fillComment(li, c) {
    li.className = c.open ? "comment open" : "comment resolved";
    li.querySelector(".comment-head b").textContent = c.author;
    const when = li.querySelector(".comment-head time");
    when.dateTime = c.created_at;
    when.textContent = new Date(c.created_at).toLocaleString();
    li.querySelector(".comment-state").textContent = c.open ? "open" : `resolved by ${c.resolved_by || "?"}`;
    li.querySelector(".comment-body").textContent = c.body;
  }
  // Resolving resolves the whole thread (the server stamps each open comment with the same person
  // and time: the answer given for the one named); reopening opens the one comment again. The button
  // pressed keeps the focus: the same element, now saying the other.
  async function setResolved(row, id, resolve) {
    const r = await call("POST", `/review/api/articles/${jobId}/comments/${id}/${resolve ? "resolve" : "reopen"}`);
    if (r.status === 404) { articleWithdrawn(); return; }
    if (r.status !== 200) {
      flash(`The query could not be ${resolve ? "resolved" : "reopened"}: ${why(r)}`);
      return;
    }
    const c = commentOf(row, id);
    if (c) Object.assign(c, r.data);
    if (resolve && !r.data.open) {
      for (const other of comments.get(row.dataset.id) || []) {
        if (other.open) Object.assign(other, { open: false, resolved_at: r.data.resolved_at, resolved_by: r.data.resolved_by });
      }
    }
    drawThread(row);
    countOpen();
    flash(resolve ? "Query resolved." : "Query reopened.");
  }
  const commentOf = (row, id) => (comments.get(row.dataset.id) || []).find((c) => String(c.id) === String(id));
  const posting = new WeakSet(); // rows whose query is on its way: a second Ctrl+Enter posts nothing
  async function addQuery(row) {
    if (posting.has(row) || withdrawn) return;
    const text = row.querySelector(".query-text");
    if (!text.value.trim()) {
      flash("Write the query first.");
      text.focus();
      return;
    }
    const button = row.querySelector(".add-query");
    button.disabled = true;
    posting.add(row); // (call() answers every failure with a status: it never throws)
    const r = await call("POST", `/review/api/articles/${jobId}/segments/${encodeURIComponent(row.dataset.id)}/comments`, { body: text.value });
    posting.delete(row);
    if (r.status === 404) { articleWithdrawn(); return; } // the query stays in its box, to copy
    button.disabled = false;
    if (r.status !== 201) {
      flash(`The query was not added: ${why(r)}`);
      return;
    }
    if (!comments.has(row.dataset.id)) comments.set(row.dataset.id, []);
    // A poll may have brought it in already, while it was on its way.
    const list = comments.get(row.dataset.id);
    if (!list.some((c) => c.id === r.data.id)) list.push(r.data);
    text.value = "";
    drawThread(row);
    countOpen();
    flash("Query added.");
  }
  for (const row of rows) {
    const toggle = row.querySelector(".queries-toggle");
    const thread = row.querySelector(".thread");
    if (!toggle || !thread) continue;
    drawThread(row);
    toggle.addEventListener("click", () => {
      thread.hidden = !thread.hidden;
      toggle.setAttribute("aria-expanded", String(!thread.hidden));
      if (!thread.hidden) (thread.querySelector(".query-text") || thread).focus?.();
    });
    row.querySelector(".add-query")?.addEventListener("click", () => addQuery(row));
    row.querySelector(".query-text")?.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.stopPropagation(); addQuery(row); }
    });
  }

  // Arrived at a segment (#at=…): it is shown, with the focus on its translation.
  const at = window.location.hash.startsWith("#at=") ? decodeURIComponent(window.location.hash.slice(4)) : "";
  const arrived = at && rows.find((row) => row.dataset.id === at);
  if (arrived) {
    lastRow = arrived;
    arrived.querySelector(".target-view").focus({ preventScroll: true });
    arrived.scrollIntoView({ block: "center" });
  }
})();
