// The relay's dashboard: a hash-routed page over the /ui/ endpoints.
// Text from the relay is always put in with textContent; the one piece of
// HTML (out.md) is rendered and escaped by the relay.
"use strict";
(function () {
  const main = document.getElementById("main");
  let csrf = "";
  let view = null; // {name, id, refresh(change)}
  let refreshTimer = null;

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function toast(msg) {
    const t = document.getElementById("toast");
    t.textContent = msg;
    t.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove("show"), 2500);
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = csrf;
    const resp = await fetch(path, { method: opts.method || "GET", headers, body, credentials: "same-origin" });
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) {
      const err = new Error((data && data.error && data.error.message) || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function age(iso) {
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) return Math.round(s) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }
  function clock(iso) {
    const d = new Date(iso);
    return d.toTimeString().slice(0, 8);
  }
  function usd(n) { return "$" + (n || 0).toFixed(n >= 1 ? 2 : 4); }
  function tokens(u) { return ((u.input_tokens || 0) + (u.output_tokens || 0)).toLocaleString(); }
  function stateBadge(s) { return h("span", { class: "state s-" + s, text: s.replaceAll("_", " ") }); }
  function terminal(s) { return ["SUCCEEDED", "FAILED", "CANCELED", "EXPIRED"].includes(s); }

  function setNav(name) {
    for (const a of document.querySelectorAll("nav a")) {
      if (a.dataset.nav === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function render(...nodes) {
    main.replaceChildren(...nodes);
  }

  // ---- jobs list ----
  const filters = { project: "", state: "", executor: "" };
  async function jobsView() {
    setNav("jobs");
    document.title = "Jobs · mcp-task-relay";
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    const list = await api("/ui/jobs?" + q.toString());
    const select = (name, label, values, fmt) => h("label", {}, label,
      h("select", { name, "aria-label": label, onchange: (e) => { filters[name] = e.target.value; refresh(); } },
        h("option", { value: "", text: "all" }),
        values.map((v) => h("option", { value: v, selected: filters[name] === v, text: fmt ? fmt(v) : v }))));
    const items = list.items.map((j) => h("li", { class: "card", "data-job": j.id },
      h("a", { href: "#/job/" + encodeURIComponent(j.id) },
        h("span", { class: "title", text: j.title || j.id }), stateBadge(j.state),
        h("span", { class: "meta", text: [j.projectName, j.executor, "attempt " + j.attempt + "/" + j.maxAttempts, age(j.createdAt), j.id].filter(Boolean).join(" · ") }))));
    render(
      h("h1", { text: "Jobs" }),
      h("form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() },
        select("project", "Project", list.projects, (p) => p.split("/").slice(-2).join("/")),
        select("state", "State", list.states),
        select("executor", "Executor", list.executors)),
      items.length ? h("ul", { class: "jobs", id: "jobs" }, items) : h("p", { class: "muted", text: "No jobs match." }));
  }

  // ---- job page ----
  let logAfter = 0;
  async function jobView(id) {
    setNav("jobs");
    const p = await api("/ui/jobs/" + encodeURIComponent(id));
    const j = p.job;
    document.title = (j.title || j.id) + " · mcp-task-relay";
    logAfter = p.logAfter;
    const facts = h("dl", { class: "facts" },
      h("dt", { text: "State" }), h("dd", { id: "job-state" }, stateBadge(j.state)),
      h("dt", { text: "Job" }), h("dd", { text: j.id }),
      h("dt", { text: "Project" }), h("dd", { text: j.project || "—" }),
      h("dt", { text: "Executor" }), h("dd", { text: j.executor }),
      h("dt", { text: "Attempts" }), h("dd", { text: j.attempt + " of " + j.maxAttempts }),
      h("dt", { text: "Tokens" }), h("dd", { text: tokens(j.usage) + " (in " + (j.usage.input_tokens || 0).toLocaleString() + ", out " + (j.usage.output_tokens || 0).toLocaleString() + ")" }),
      h("dt", { text: "Cost" }), h("dd", { text: usd(j.usage.cost_usd) }),
      h("dt", { text: "Submitted" }), h("dd", { text: new Date(j.createdAt).toLocaleString() }),
      p.parentJobId ? [h("dt", { text: "Follows" }), h("dd", {}, h("a", { href: "#/job/" + encodeURIComponent(p.parentJobId), text: p.parentJobId }))] : null,
      j.summary ? [h("dt", { text: "Summary" }), h("dd", { text: j.summary })] : null);

    const actions = h("div", { class: "actions" });
    if (!terminal(j.state)) {
      actions.append(h("button", { class: "bad", type: "button", onclick: async (e) => {
        if (!confirm("Cancel job " + j.id + "?")) return;
        e.target.disabled = true;
        try { await api("/ui/jobs/" + encodeURIComponent(j.id) + "/cancel", { method: "POST" }); toast("Canceled"); }
        catch (err) { toast("Cancel failed: " + err.message); e.target.disabled = false; }
      } }, "Cancel job"));
    }
    const apply = p.applyCommand ? h("div", { class: "copy" },
      h("code", { id: "apply-command", text: p.applyCommand }),
      h("button", { type: "button", onclick: async () => {
        try { await navigator.clipboard.writeText(p.applyCommand); toast("Copied"); }
        catch (e) { const r = document.createRange(); r.selectNodeContents(document.getElementById("apply-command")); const s = getSelection(); s.removeAllRanges(); s.addRange(r); toast("Selected: copy it"); }
      } }, "Copy")) : null;

    let followup = null;
    if (terminal(j.state)) {
      const ta = h("textarea", { id: "followup-text", name: "instruction", required: true, placeholder: "What should the next job do?" });
      followup = h("form", { class: "card", onsubmit: async (e) => {
        e.preventDefault();
        try {
          const nj = await api("/ui/jobs/" + encodeURIComponent(j.id) + "/followup", { method: "POST", body: { instruction: ta.value } });
          location.hash = "#/job/" + encodeURIComponent(nj.id);
        } catch (err) { toast("Follow-up failed: " + err.message); }
      } }, h("label", { for: "followup-text" }, "Follow up"), ta, h("div", { class: "actions" }, h("button", { class: "primary", type: "submit" }, "Start follow-up job")));
    }

    const timeline = h("ol", { class: "timeline", id: "timeline" },
      p.events.map((e) => h("li", {}, h("time", { datetime: e.ts, text: clock(e.ts) }), h("span", { text: e.text }))));
    const attempts = p.attempts.length ? h("table", { class: "usage" },
      h("thead", {}, h("tr", {}, h("th", { text: "Attempt" }), h("th", { text: "Started" }), h("th", { text: "Outcome" }))),
      h("tbody", {}, p.attempts.map((a) => h("tr", {}, h("td", { text: "#" + a.n }), h("td", { text: clock(a.startedAt) }), h("td", { text: a.outcome ? a.outcome + (a.reason ? " · " + a.reason : "") : "running" }))))) : h("p", { class: "muted", text: "Not started yet." });

    const pendingAsks = p.asks.filter((a) => a.status === "PENDING");
    const log = h("pre", { id: "log", "aria-label": "Executor output", tabindex: "0", text: p.log || "(no output yet)" });

    render(
      h("p", {}, h("a", { href: "#/" }, "← Jobs")),
      h("h1", { text: j.title || j.id }),
      h("div", { class: "cols" },
        h("div", {},
          h("section", { class: "card", "aria-label": "Job" }, facts, actions, apply),
          pendingAsks.length ? h("section", { class: "card" }, h("h2", { text: "Waiting for an answer" }), pendingAsks.map(askCard)) : null,
          h("h2", { text: "Output" }), log,
          p.diff ? diffView(p.diff) : null,
          p.outHtml ? [h("h2", { text: "out.md" }), (() => { const d = h("div", { class: "card md", id: "out-md" }); d.innerHTML = p.outHtml; return d; })()] : null,
          followup),
        h("div", {},
          h("h2", { text: "Attempts" }), attempts,
          h("h2", { text: "Timeline" }), timeline)));
    log.scrollTop = log.scrollHeight;
  }

  async function appendLog(id) {
    const log = document.getElementById("log");
    if (!log) return;
    const c = await api("/ui/jobs/" + encodeURIComponent(id) + "/log?after=" + logAfter);
    if (c.text) {
      if (log.textContent === "(no output yet)") log.textContent = "";
      log.textContent += c.text;
      if (log.textContent.length > 200000) log.textContent = log.textContent.slice(-100000);
      log.scrollTop = log.scrollHeight;
    }
    logAfter = c.after;
  }

  function diffView(d) {
    const files = d.files.map((f, i) => h("li", {},
      h("a", { href: "#", onclick: (e) => { e.preventDefault(); document.getElementById("file-" + i).scrollIntoView(); } }, f.path),
      " ", h("span", { class: "plus", text: "+" + f.added }), " ", h("span", { class: "minus", text: "−" + f.removed })));
    const bodies = d.files.map((f, i) => h("section", { class: "diff", id: "file-" + i, "aria-label": "Changes to " + f.path },
      h("h3", { text: (f.oldPath ? f.oldPath + " → " : "") + f.path }),
      f.binary ? h("p", { class: "muted", text: "binary file" }) :
        h("table", {}, h("tbody", {}, f.lines.map((l) => h("tr", { class: l.kind },
          h("td", { class: "n", text: l.old || "" }), h("td", { class: "n", text: l.new || "" }),
          h("td", { text: (l.kind === "add" ? "+" : l.kind === "del" ? "-" : l.kind === "hunk" ? "" : " ") + l.text })))))));
    return [h("h2", { text: "Patch (" + d.files.length + (d.files.length === 1 ? " file)" : " files)") }),
      h("ul", { class: "files", id: "diff-files" }, files), bodies,
      d.truncated ? h("p", { class: "muted", text: "The patch is longer than shown here: use jobs diff." }) : null];
  }

  // ---- inbox ----
  function askCard(a) {
    const wrap = h("article", { class: "card ask", "data-ask": a.askId, "aria-label": a.askType + " ask" });
    const status = h("p", { class: "muted", role: "status" });
    async function send(body, label) {
      for (const b of wrap.querySelectorAll("button")) b.disabled = true;
      status.textContent = "Sending…";
      try {
        await api("/ui/asks/" + encodeURIComponent(a.askId) + "/answer", { method: "POST", body });
        status.textContent = label;
        toast(label);
        setTimeout(refresh, 300);
      } catch (err) {
        status.textContent = "Failed: " + err.message;
        for (const b of wrap.querySelectorAll("button")) b.disabled = false;
      }
    }
    const id = "answer-" + a.askId;
    const ta = h("textarea", { id, name: "answer", placeholder: "Answer text, or a JSON value" });
    const controls = h("div", { class: "actions" });
    if (a.askType === "APPROVAL") {
      controls.append(
        h("button", { class: "ok", type: "button", onclick: () => send({ approve: true }, "Approved") }, "Approve"),
        h("button", { class: "bad", type: "button", onclick: () => send({ reject: true, text: ta.value }, "Rejected") }, "Reject"));
    } else {
      controls.append(
        h("button", { class: "primary", type: "button", onclick: () => { if (ta.value.trim()) send({ text: ta.value }, "Answered"); else ta.focus(); } }, "Send text"),
        h("button", { type: "button", onclick: () => { let v; try { v = JSON.parse(ta.value); } catch (e) { status.textContent = "Not valid JSON"; return; } send({ json: v }, "Answered"); } }, "Send JSON"),
        h("button", { class: "bad", type: "button", onclick: () => send({ reject: true, text: ta.value }, "Rejected") }, "Reject"));
    }
    wrap.append(
      h("div", {}, stateBadge(a.askType), " ", h("span", { class: "muted", text: age(a.createdAt) + " · routed to " + a.route })),
      h("p", { class: "prompt", text: a.prompt }),
      a.jobId ? h("p", { class: "muted" }, "Job: ", h("a", { href: "#/job/" + encodeURIComponent(a.jobId), text: a.jobTitle || a.jobId })) : null,
      h("details", {}, h("summary", {}, "Context envelope"), h("pre", { text: JSON.stringify(a.contextEnvelope, null, 2) })),
      h("label", { for: id, class: "muted" }, a.askType === "APPROVAL" ? "Comment (sent with a rejection)" : "Answer"), ta,
      controls, status);
    return wrap;
  }

  async function inboxView() {
    setNav("inbox");
    document.title = "Inbox · mcp-task-relay";
    const l = await api("/ui/asks");
    updateCount(l.items.length);
    render(h("h1", { text: "Inbox" }),
      l.items.length ? h("div", { id: "asks" }, l.items.map(askCard)) : h("p", { class: "muted", text: "No ask is waiting for an answer." }));
  }

  function updateCount(n) {
    document.getElementById("inbox-count").textContent = n ? String(n) : "";
  }

  // ---- usage ----
  function chart(days) {
    const W = 700, H = 220, pad = 28, bw = (W - pad * 2) / days.length;
    const max = Math.max(...days.map((d) => d.costUsd), 0);
    const maxTok = Math.max(...days.map((d) => d.inputTokens + d.outputTokens), 0);
    const useCost = max > 0;
    const val = (d) => useCost ? d.costUsd : d.inputTokens + d.outputTokens;
    const top = useCost ? max : maxTok;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", (useCost ? "US dollars" : "tokens") + " per day, last " + days.length + " days");
    days.forEach((d, i) => {
      const v = val(d), bh = top > 0 ? (H - pad * 2) * v / top : 0;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("class", "bar");
      r.setAttribute("x", pad + i * bw + 2); r.setAttribute("width", Math.max(bw - 4, 1));
      r.setAttribute("y", H - pad - bh); r.setAttribute("height", bh);
      const t = document.createElementNS(ns, "title");
      t.textContent = d.key + ": " + usd(d.costUsd) + ", " + (d.inputTokens + d.outputTokens).toLocaleString() + " tokens, " + d.jobs + " jobs";
      r.append(t);
      svg.append(r);
      if (i % 2 === 0 || days.length <= 7) {
        const lb = document.createElementNS(ns, "text");
        lb.setAttribute("x", pad + i * bw + bw / 2); lb.setAttribute("y", H - 8); lb.setAttribute("text-anchor", "middle");
        lb.textContent = d.key.slice(5);
        svg.append(lb);
      }
    });
    const cap = document.createElementNS(ns, "text");
    cap.setAttribute("x", pad); cap.setAttribute("y", 14);
    cap.textContent = "max " + (useCost ? usd(top) : top.toLocaleString() + " tokens") + " per day";
    svg.append(cap);
    return h("figure", { class: "card chart" }, svg, h("figcaption", { class: "muted", text: (useCost ? "US dollars" : "Tokens") + " per day (UTC)" }));
  }
  function usageTable(caption, rows) {
    return h("table", { class: "usage" }, h("caption", { class: "muted", text: caption }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "" }), h("th", { scope: "col", text: "Jobs" }), h("th", { scope: "col", text: "Tokens in" }), h("th", { scope: "col", text: "Tokens out" }), h("th", { scope: "col", text: "USD" }))),
      h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row", text: r.key || "—" }), h("td", { text: r.jobs }), h("td", { text: r.inputTokens.toLocaleString() }), h("td", { text: r.outputTokens.toLocaleString() }), h("td", { text: usd(r.costUsd) })))));
  }
  async function usageView() {
    setNav("usage");
    document.title = "Usage · mcp-task-relay";
    const u = await api("/ui/usage");
    render(h("h1", { text: "Usage" }),
      h("p", {}, "All jobs: " + u.total.jobs + " · " + (u.total.inputTokens + u.total.outputTokens).toLocaleString() + " tokens · " + usd(u.total.costUsd)),
      chart(u.days),
      h("section", { class: "card" }, usageTable("By day", u.days.slice().reverse())),
      h("section", { class: "card" }, usageTable("By project", u.byProject)),
      h("section", { class: "card" }, usageTable("By executor", u.byExecutor)));
  }

  // ---- routing, login, live updates ----
  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const m = hash.match(/^\/job\/(.+)$/);
    if (m) return { name: "job", id: decodeURIComponent(m[1]) };
    if (hash === "/inbox") return { name: "inbox" };
    if (hash === "/usage") return { name: "usage" };
    return { name: "jobs" };
  }

  async function refresh() {
    view = route();
    try {
      if (view.name === "job") await jobView(view.id);
      else if (view.name === "inbox") await inboxView();
      else if (view.name === "usage") await usageView();
      else await jobsView();
    } catch (err) {
      if (err.status === 401) return loginNeeded();
      render(h("h1", { text: "Something went wrong" }), h("p", { text: err.message }));
    }
  }

  function loginNeeded() {
    render(h("h1", { text: "Log in" }),
      h("p", {}, "Run ", h("code", { text: "mcp-task-relay open" }), " on the relay's machine and open the link it prints. Each link works once, for a few minutes."));
  }

  function scheduleRefresh(fn) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(fn, 150);
  }

  async function countAsks() {
    try { updateCount((await api("/ui/asks")).items.length); } catch (e) { /* not logged in */ }
  }

  function live() {
    const es = new EventSource("/ui/stream");
    const badge = document.getElementById("live");
    es.onopen = () => { badge.textContent = "live"; badge.classList.add("on"); };
    es.onerror = () => { badge.textContent = "reconnecting"; badge.classList.remove("on"); };
    es.addEventListener("change", (ev) => {
      let c;
      try { c = JSON.parse(ev.data); } catch (e) { return; }
      if (c.asks) scheduleRefreshCount();
      if (!view) return;
      if (view.name === "job" && c.jobId === view.id) {
        if (c.log && !c.state && !c.asks && !c.artifact) appendLog(view.id).catch(() => {});
        else scheduleRefresh(refresh);
      } else if (view.name === "jobs" || (view.name === "inbox" && c.asks) || view.name === "usage") {
        scheduleRefresh(refresh);
      }
    });
  }
  let countTimer = null;
  function scheduleRefreshCount() { clearTimeout(countTimer); countTimer = setTimeout(countAsks, 200); }

  async function start() {
    try {
      csrf = (await api("/ui/session")).csrf;
    } catch (err) {
      if (err.status === 401) return loginNeeded();
    }
    window.addEventListener("hashchange", () => { refresh(); main.focus(); });
    await refresh();
    countAsks();
    live();
    document.body.dataset.ready = "1";
  }
  start();
})();
