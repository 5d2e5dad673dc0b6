// duiyi review workspace: inline editing with autosave, Ctrl+Enter to approve and move on,
// optimistic concurrency (a 409 shows the newer text), progress polling. No dependencies.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const article = document.getElementById("article");

  async function call(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  // --- progress page ---------------------------------------------------------------------------
  const progress = document.getElementById("progress");
  if (progress) {
    const tick = async () => {
      const r = await fetch(progress.dataset.url, { credentials: "same-origin" });
      if (r.ok) {
        const p = await r.json();
        document.getElementById("progress-status").textContent = p.status;
        document.getElementById("progress-done").textContent = p.done;
        document.getElementById("progress-total").textContent = p.total;
        const bar = document.getElementById("progress-bar");
        bar.max = Math.max(p.total, 1);
        bar.value = p.done;
        if (p.ready) { window.location.reload(); return; }
        if (p.status === "failed") { return; }
      }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 500);
  }

  if (!article) return;
  const jobId = article.dataset.job;
  const variant = article.dataset.variant;
  const titles = JSON.parse(document.getElementById("term-titles")?.textContent || "{}");

  const flaggedOnly = document.getElementById("flagged-only");
  flaggedOnly?.addEventListener("change", () => {
    const url = new URL(window.location.href);
    if (flaggedOnly.checked) url.searchParams.set("flagged", "1"); else url.searchParams.delete("flagged");
    window.location.href = url.toString();
  });

  // Text with glossary spans in <mark>, built with text nodes so nothing is ever parsed as HTML.
  function render(view, text, spans) {
    view.replaceChildren();
    let pos = 0;
    for (const s of spans.sort((a, b) => a.start - b.start)) {
      if (s.start < pos || s.end > text.length) continue;
      view.append(document.createTextNode(text.slice(pos, s.start)));
      const mark = document.createElement("mark");
      mark.className = "term";
      mark.title = s.title;
      mark.textContent = text.slice(s.start, s.end);
      view.append(mark);
      pos = s.end;
    }
    view.append(document.createTextNode(text.slice(pos)));
  }

  function update(row, seg) {
    row.dataset.version = seg.version;
    row.querySelector(".seg-data").textContent = JSON.stringify(seg);
    const spans = [];
    for (const t of seg.terms) {
      const sp = t.target_spans[variant];
      if (sp) spans.push({ start: sp.start, end: sp.end, title: titles[t.term_id] || t.term_id });
    }
    render(row.querySelector(".target-view"), seg.targets[variant] || "", spans);
    const edit = row.querySelector(".target-edit");
    if (edit && document.activeElement !== edit) edit.value = seg.targets[variant] || "";
    for (const other of row.querySelectorAll(".other")) {
      other.querySelector(".other-text").textContent = seg.targets[other.dataset.variant] || "";
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
    row.querySelector(".seg-status").textContent = seg.status;
    row.querySelector(".origin").textContent = seg.origin;
    row.className = row.className.replace(/status-\S+/, "status-" + seg.status);
  }

  function showConflict(row, current, mine) {
    const box = row.querySelector(".conflict");
    box.hidden = false;
    box.replaceChildren();
    const p = document.createElement("p");
    p.textContent = "Someone else changed this segment; their newer text is shown. Your text was:";
    const q = document.createElement("blockquote");
    q.className = "mine";
    q.textContent = mine;
    box.append(p, q);
    row.classList.add("conflicted");
    const edit = row.querySelector(".target-edit");
    if (edit) edit.value = current.targets[variant] || "";
    update(row, current);
  }

  const timers = new WeakMap();
  const saving = new WeakMap();

  async function save(row) {
    const edit = row.querySelector(".target-edit");
    if (!edit || edit.dataset.dirty !== "1") return true;
    clearTimeout(timers.get(row));
    edit.dataset.dirty = "0";
    const text = edit.value;
    const url = `/review/api/articles/${jobId}/segments/${encodeURIComponent(row.dataset.id)}`;
    const pending = call("PATCH", url, { variant, text, version: Number(row.dataset.version) });
    saving.set(row, pending);
    const r = await pending;
    if (r.status === 200) {
      row.classList.remove("conflicted");
      row.querySelector(".conflict").hidden = true;
      update(row, r.data);
      row.classList.add("saved");
      return true;
    }
    if (r.status === 409 && r.data?.error?.current) {
      showConflict(row, r.data.error.current, text);
      return false;
    }
    edit.dataset.dirty = "1";
    const box = row.querySelector(".conflict");
    box.hidden = false;
    box.textContent = r.data?.error?.message || `Saving failed (HTTP ${r.status}).`;
    return false;
  }

  function open(row) {
    const edit = row.querySelector(".target-edit");
    if (!edit) return;
    row.querySelector(".target-view").hidden = true;
    edit.hidden = false;
    edit.focus();
    suggest(row);
  }

  // Translation memory suggestions for the segment being edited, asked for once per segment when
  // it is first opened; built with text nodes, never parsed as HTML.
  const suggested = new WeakSet();
  async function suggest(row) {
    const box = row.querySelector(".suggestions");
    if (!box || suggested.has(row)) return;
    suggested.add(row);
    const url = `/review/api/articles/${jobId}/segments/${encodeURIComponent(row.dataset.id)}/suggestions` +
      `?variant=${encodeURIComponent(variant)}`;
    let r;
    try { r = await call("GET", url); } catch (e) { r = { status: 0 }; }
    if (r.status !== 200) { suggested.delete(row); return; }  // asked again when next opened
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
      for (const [op, text] of s.diff) {
        const part = document.createElement(op === "equal" ? "span" : op === "insert" ? "ins" : "del");
        part.textContent = text;
        source.append(part);
      }
      const target = document.createElement("span");
      target.className = "tm-target";
      target.textContent = s.target;
      const use = document.createElement("button");
      use.type = "button";
      use.className = "use-suggestion";
      use.textContent = "Use";
      use.addEventListener("click", () => {
        const edit = row.querySelector(".target-edit");
        open(row);
        edit.value = s.target;
        edit.dataset.dirty = "1";
        save(row);
      });
      li.append(score, source, target, use);
      list.append(li);
    }
    box.hidden = false;
  }

  async function close(row) {
    const edit = row.querySelector(".target-edit");
    if (!edit || edit.hidden) return;
    await save(row);
    edit.hidden = true;
    row.querySelector(".target-view").hidden = false;
  }

  async function approve(row) {
    if (!(await save(row))) return;
    const url = `/review/api/articles/${jobId}/segments/${encodeURIComponent(row.dataset.id)}/approve`;
    const r = await call("POST", url, { version: Number(row.dataset.version) });
    if (r.status === 200) {
      update(row, r.data);
      await close(row);
      const rows = [...document.querySelectorAll(".seg")];
      const next = rows[rows.indexOf(row) + 1];
      if (next) { open(next); next.scrollIntoView({ block: "center" }); }
    } else if (r.status === 409 && r.data?.error?.current) {
      showConflict(row, r.data.error.current, row.querySelector(".target-edit")?.value || "");
    }
  }

  for (const row of document.querySelectorAll(".seg")) {
    const view = row.querySelector(".target-view");
    const edit = row.querySelector(".target-edit");
    view.addEventListener("click", () => open(row));
    view.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); approve(row); }
      else if (e.key === "Enter") { e.preventDefault(); open(row); }
    });
    row.querySelector(".approve")?.addEventListener("click", () => approve(row));
    if (!edit) continue;
    edit.addEventListener("input", () => {
      edit.dataset.dirty = "1";
      row.classList.remove("saved");
      clearTimeout(timers.get(row));
      timers.set(row, setTimeout(() => save(row), 800));
    });
    edit.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); approve(row); }
      if (e.key === "Escape") { e.preventDefault(); close(row); }
    });
    edit.addEventListener("blur", () => { setTimeout(() => { if (document.activeElement !== edit) close(row); }, 150); });
  }
})();
