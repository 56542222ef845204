/* Graycat console: sign-in, live overview, playground, jobs and admin pages over the server's own API. */
"use strict";

(() => {
  const TOKEN_KEY = "graycat.token";
  const QUEUE_POINTS = 900; // one sample a second: 15 minutes
  const MINUTES = 60;
  const $ = (id) => document.getElementById(id);
  const charts = window.GraycatCharts;

  const state = { token: sessionStorage.getItem(TOKEN_KEY), session: null, feed: null, attempts: 0, models: { text: [], image: [] } };

  /** An error answer of the API, with the message its body gives. */
  class ApiFailure extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function messageOf(body, status) {
    if (body && typeof body === "object") {
      const err = body.error;
      if (err && typeof err === "object" && err.message) return err.message;
      if (typeof body.detail === "string") return body.detail;
      if (typeof err === "string") return err;
    }
    return `HTTP ${status}`;
  }

  /** fetch with the token; a non-2xx answer throws ApiFailure. */
  async function call(path, { method = "GET", json, signal, token = state.token, raw = false, extra = {} } = {}) {
    const headers = { Authorization: `Bearer ${token}`, ...extra };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, { method, headers, signal, body: json === undefined ? undefined : JSON.stringify(json) });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch { /* not JSON */ }
      if (response.status === 401 && token === state.token && state.session) signOut("The server no longer accepts this token: sign in again.");
      throw new ApiFailure(response.status, messageOf(body, response.status));
    }
    const job = response.headers.get("X-Job-ID");
    if (job) rememberJob(job, `${method} ${path.split("?")[0]}`);
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }

  const RECENT_KEY = "graycat.jobs";
  const RECENT_KEPT = 20;

  /** The jobs this tab's requests made (their X-Job-ID), newest first, in the tab's session storage. */
  function recentJobs() {
    try { return JSON.parse(sessionStorage.getItem(RECENT_KEY) || "[]"); } catch { return []; }
  }

  function rememberJob(id, what) {
    const kept = recentJobs().filter((j) => j.id !== id);
    sessionStorage.setItem(RECENT_KEY, JSON.stringify([{ id, what, at: Date.now() / 1000 }, ...kept].slice(0, RECENT_KEPT)));
  }

  /** Server-Sent Events of a fetch response: yields {event, data, id}. */
  async function* events(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const message = { event: "message", data: "", id: null };
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") data.push(text);
          else if (field === "event") message.event = text;
          else if (field === "id") message.id = text;
        }
        if (data.length) {
          message.data = data.join("\n");
          yield message;
        }
      }
    }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
  const ago = (s) => (s < 60 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`);
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "never");

  // ---------- sign-in and pages ----------

  async function signIn(token) {
    const error = $("sign-in-error");
    const attempt = ++state.attempts; // a sign-out (or another sign-in) meanwhile wins over this one
    error.textContent = "";
    try {
      const session = await call("/console/session", { token });
      if (attempt !== state.attempts) return;
      state.session = session;
    } catch (exc) {
      if (attempt !== state.attempts) return;
      error.textContent = exc instanceof ApiFailure
        ? (exc.status === 401 ? `Token refused: ${exc.message}.` : `The server refused: ${exc.message}`)
        : "The server could not be reached.";
      showSignIn();
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("who").textContent = state.session.admin ? "admin token" : "token";
    for (const node of document.querySelectorAll("[data-admin]")) node.hidden = !state.session.admin;
    for (const id of ["nav", "who", "sign-out"]) $(id).hidden = false;
    $("sign-in").hidden = true;
    startFeed();
    loadModels();
    route();
  }

  function showSignIn() {
    for (const page of document.querySelectorAll(".page")) page.hidden = true;
    for (const id of ["nav", "who", "sign-out"]) $(id).hidden = true;
    $("sign-in").hidden = false;
    $("token").focus();
  }

  function signOut(reason = "") {
    state.attempts += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(RECENT_KEY);
    state.token = null;
    state.session = null;
    if (state.feed) state.feed.abort();
    state.feed = null;
    showSignIn();
    $("sign-in-error").textContent = reason;
  }

  const PAGES = { overview: null, playground: null, jobs: () => renderRecent(), admin: () => loadAdmin() };

  function route() {
    if (!state.session) return;
    let name = location.hash.slice(1);
    if (!(name in PAGES) || (name === "admin" && !state.session.admin)) name = "overview";
    for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
    for (const link of document.querySelectorAll("#nav a")) {
      if (link.dataset.page === name) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    document.title = `${name[0].toUpperCase()}${name.slice(1)} · Graycat console`;
    if (PAGES[name]) PAGES[name]();
    if (name === "overview") drawCharts();
  }

  /** Tabs with arrow keys (a roving tabindex), as the ARIA tab pattern asks. */
  function tablist(list, onSelect) {
    const tabs = [...list.querySelectorAll('[role="tab"]')];
    const select = (tab) => {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
      }
      onSelect(tab);
    };
    list.addEventListener("click", (e) => { const tab = e.target.closest('[role="tab"]'); if (tab) select(tab); });
    list.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(document.activeElement);
      if (i < 0 || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) return;
      const next = e.key === "Home" ? 0 : e.key === "End" ? tabs.length - 1 : (i + (e.key === "ArrowRight" ? 1 : -1) + tabs.length) % tabs.length;
      tabs[next].focus();
      select(tabs[next]);
      e.preventDefault();
    });
  }

  // ---------- overview ----------

  const overview = { samples: [], minutes: new Map(), last: null, pools: new Map(), made: new Map() };

  /** What a worker made per second over its last 10 snapshots: {tokens, images}, each null when unknown. */
  function rates(id) {
    const seen = overview.made.get(id) || [];
    const first = seen[0], last = seen[seen.length - 1];
    const rate = (key) => (seen.length > 1 && key in first && key in last && last.time > first.time
      ? Math.max(0, last[key] - first[key]) / (last.time - first.time) : null);
    return { tokens: rate("tokens"), images: rate("images") };
  }

  function startFeed() {
    if (state.feed) state.feed.abort();
    const controller = new AbortController();
    state.feed = controller;
    const live = $("live");
    (async () => {
      while (!controller.signal.aborted) {
        try {
          const response = await call("/console/events", { signal: controller.signal, raw: true });
          live.textContent = "live";
          live.classList.add("on");
          for await (const message of events(response)) {
            if (message.event === "snapshot") onSnapshot(JSON.parse(message.data));
            else if (message.event === "unavailable") live.textContent = JSON.parse(message.data).reason;
          }
        } catch (exc) {
          if (controller.signal.aborted) return;
          live.textContent = exc instanceof ApiFailure ? `refused: ${exc.message}` : "reconnecting…";
        }
        live.classList.remove("on");
        if (!controller.signal.aborted) live.textContent = live.textContent === "live" ? "reconnecting…" : live.textContent;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    })();
  }

  function onSnapshot(snap) {
    const minute = Math.floor(snap.time / 60);
    if (snap.history) { // the stream's first snapshot (again after a reconnection): the hour's completions
      const counted = new Map();
      for (const counts of Object.values(snap.history)) {
        counts.forEach((c, i) => {
          const m = minute - (counts.length - 1) + i;
          counted.set(m, (counted.get(m) || 0) + c);
        });
      }
      for (const [m, completed] of counted) overview.minutes.set(m, { completed, failed: (overview.minutes.get(m) || { failed: 0 }).failed });
      overview.last = null;
    }
    const sum = (key) => snap.pools.reduce((a, p) => a + (p[key] || 0), 0);
    const totals = { completed: sum("completed"), failed: sum("failed") + sum("expired") };
    if (overview.last) {
      const slot = overview.minutes.get(minute) || { completed: 0, failed: 0 };
      slot.completed += Math.max(0, totals.completed - overview.last.completed);
      slot.failed += Math.max(0, totals.failed - overview.last.failed);
      overview.minutes.set(minute, slot);
    }
    overview.last = totals;
    for (const m of overview.minutes.keys()) if (m <= minute - MINUTES) overview.minutes.delete(m);
    const busy = snap.workers.reduce((a, w) => a + (w.busy || 0), 0);
    const slots = snap.workers.reduce((a, w) => a + (w.slots || 0), 0);
    overview.samples.push({ waiting: sum("waiting"), active: sum("active"), busy, slots });
    if (overview.samples.length > QUEUE_POINTS) overview.samples.shift();
    for (const p of snap.pools) {
      const key = `${p.kind}/${p.model}`;
      const seen = overview.pools.get(key) || [];
      seen.push(p.completed);
      if (seen.length > 61) seen.shift();
      overview.pools.set(key, seen);
    }
    for (const w of snap.workers) {
      const seen = overview.made.get(w.id) || [];
      seen.push({ time: snap.time, ...w.generated });
      if (seen.length > 11) seen.shift();
      overview.made.set(w.id, seen);
    }
    overview.snap = snap;
    renderTotals(snap, busy, slots);
    renderAttention(snap);
    renderPools(snap);
    renderWorkers(snap);
    if (!$("page-overview").hidden) drawCharts();
  }

  /** What an operator should look at now: the alert rules' conditions the server tested on this snapshot, then
   * what this page sees (silent or stopping workers, failures this minute). */
  function renderAttention(snap) {
    const alerts = (snap.alerts || []).map((a) => el("li", {},
      el("span", { class: `badge ${a.severity === "critical" ? "bad" : "warn"}` }, a.severity), " ", a.summary, " ",
      el("span", { class: "muted small" }, `(rule ${a.alert})`)));
    const notes = [];
    for (const w of snap.workers) {
      if (w.heartbeat_age_s > 5) notes.push(`worker ${w.id} has not reported for ${ago(w.heartbeat_age_s)}`);
      if (w.stopping) notes.push(`worker ${w.id} is stopping: it finishes its jobs and takes no new ones`);
    }
    const now = Math.floor(snap.time / 60);
    const failed = (overview.minutes.get(now) || { failed: 0 }).failed;
    if (failed) notes.push(`${fmt(failed)} job(s) failed or expired this minute`);
    if (snap.admin && snap.dead_letters) notes.push(`${fmt(snap.dead_letters)} dead letter(s): see Admin`);
    const box = $("attention");
    box.hidden = !alerts.length && !notes.length;
    box.querySelector("ul").replaceChildren(...alerts, ...notes.map((n) => el("li", {}, n)));
  }

  function renderTotals(snap, busy, slots) {
    const items = [["Workers", snap.workers.length], ["Busy slots", `${busy} / ${slots}`], ["Waiting", snap.pools.reduce((a, p) => a + p.waiting, 0)],
      ["Running", snap.pools.reduce((a, p) => a + p.active, 0)], ["Completed", overview.last.completed], ["Failed or expired", overview.last.failed]];
    const tokens = snap.workers.map((w) => rates(w.id).tokens).filter((r) => r !== null);
    if (tokens.length) items.push(["Tokens/s", tokens.reduce((a, r) => a + r, 0).toFixed(1)]);
    if (snap.admin) items.push(["Dead letters", snap.dead_letters]);
    $("totals").replaceChildren(...items.map(([label, value]) =>
      el("div", { class: "total" }, el("b", {}, typeof value === "number" ? fmt(value) : value), el("span", {}, label))));
  }

  /** Jobs the pool completed in the last 60 s: counted by this page once it has seen a minute, estimated from
   * the server's per-minute counts until then. */
  function perMinute(pool, history, time) {
    const key = `${pool.kind}/${pool.model}`;
    const seen = overview.pools.get(key) || [];
    if (seen.length > 60) return seen[seen.length - 1] - seen[0];
    const past = (history && history[key]) || [];
    if (past.length < 2) return null;
    const into = (time % 60) / 60;
    return Math.round(past[past.length - 1] + past[past.length - 2] * (1 - into)) + Math.max(0, seen[seen.length - 1] - seen[0]);
  }

  const KINDS = { llm: "text", embed: "embedding", sd: "image" }; // a pool's kind, as the catalogue names it

  /** "p50 / p95" of a pool's queue waits in the last 15 minutes, as this api process saw them start. */
  function waitQuantiles(wait) {
    if (!wait) return "–";
    const s = (x) => (x < 1 ? `${Math.round(x * 1000)} ms` : ago(x));
    return `${s(wait.p50)} / ${s(wait.p95)}`;
  }

  function renderPools(snap) {
    const body = $("pools").tBodies[0];
    if (!snap.pools.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "9", class: "muted" }, "No job has been queued yet.")));
      return;
    }
    overview.history = snap.history || overview.history;
    body.replaceChildren(...snap.pools.map((p) => el("tr", {},
      el("td", {}, KINDS[p.kind] || p.kind), el("td", {}, p.model),
      el("td", { class: "num" }, fmt(p.waiting)), el("td", { class: "num" }, fmt(p.active)),
      el("td", { class: "num" }, fmt(p.completed)), el("td", { class: "num" }, fmt(p.failed + p.expired)),
      el("td", { class: "num" }, fmt(perMinute(p, overview.history, snap.time))),
      el("td", { class: "num" }, p.waiting ? ago(p.oldest_wait_s) : "–"),
      el("td", { class: "num" }, waitQuantiles((snap.waits || {})[`${p.kind}/${p.model}`])))));
  }

  function renderWorkers(snap) {
    const box = $("workers");
    if (!snap.workers.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No worker is up. Start one with graycat worker llm (or sd)."));
      return;
    }
    box.replaceChildren(...snap.workers.map((w) => {
      const badge = w.stopping ? el("span", { class: "badge warn" }, "stopping")
        : w.loading ? el("span", { class: "badge warn" }, "loading") : el("span", { class: "badge ok" }, "ready");
      const share = w.slots ? Math.min(100, Math.round((100 * (w.busy || 0)) / w.slots)) : 0;
      const bar = el("div", { class: "bar", role: "img", "aria-label": `${share}% of slots busy` }, el("span"));
      bar.firstChild.style.width = `${share}%`;
      const rows = [["Kind", (w.kinds || [w.kind]).map((k) => KINDS[k] || k).join(", ")], ["Models", (w.models || []).join(", ") || "–"]];
      if (snap.admin) rows.push(["Host", w.host || "–"], ["Version", w.version || "–"]);
      rows.push(["Slots", `${w.busy || 0} busy of ${w.slots || 0}`], ["Heartbeat", `${ago(w.heartbeat_age_s)} ago`]);
      const made = rates(w.id);
      if (made.tokens !== null) rows.push(["Tokens/s", made.tokens.toFixed(1)]);
      if (made.images !== null) rows.push(["Images/min", (made.images * 60).toFixed(1)]);
      const outcomes = w.outcomes || {};
      const served = Object.values(outcomes).reduce((a, n) => a + n, 0);
      rows.push(["Jobs run", fmt(served)]);
      for (const gpu of w.gpus || []) {
        rows.push([`GPU ${gpu.index}`, `${gpu.name}: ${Math.round(gpu.utilization_ratio * 100)}% busy, `
          + `${(gpu.memory_used_bytes / 2 ** 30).toFixed(1)} / ${(gpu.memory_total_bytes / 2 ** 30).toFixed(1)} GiB, ${gpu.temperature_celsius} °C`]);
      }
      const dl = el("dl", {});
      for (const [k, v] of rows) dl.append(el("dt", {}, k), el("dd", {}, v));
      return el("article", { class: "card worker", "aria-label": `Worker ${w.id}` }, el("h3", {}, w.id, badge), dl, bar);
    }));
  }

  /** The live charts span what this page has seen: from a minute up to 15 minutes. */
  function drawCharts() {
    const s = overview.samples;
    const points = Math.max(60, s.length);
    const labels = [points >= 120 ? `-${Math.round(points / 60)} min` : `-${points} s`, "now"];
    charts.line($("chart-queue"), [
      { label: "waiting", color: "--series-2", values: s.map((x) => x.waiting) },
      { label: "running", color: "--series-1", values: s.map((x) => x.active) }], points, labels);
    charts.line($("chart-slots"), [
      { label: "busy", color: "--series-1", values: s.map((x) => x.busy) },
      { label: "total", color: "--series-3", values: s.map((x) => x.slots) }], points, labels);
    const now = Math.floor(Date.now() / 60000);
    const minutes = [...Array(MINUTES).keys()].map((i) => overview.minutes.get(now - MINUTES + 1 + i) || { completed: 0, failed: 0 });
    charts.bars($("chart-done"), [
      { label: "completed", color: "--series-3", values: minutes.map((m) => m.completed) },
      { label: "failed", color: "--series-2", values: minutes.map((m) => m.failed) }], MINUTES, ["-60 min", "now"]);
  }

  // ---------- playground ----------

  const chat = { messages: [], controller: null, session: newSessionId() };

  /** A session id for X-Session-ID (crypto.randomUUID needs HTTPS or localhost; this works over plain HTTP). */
  function newSessionId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return `console-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  const sessionOn = () => $("chat-session").checked;
  let playMode = "chat";
  let snippetLang = "curl";

  async function loadModels() {
    try {
      const found = await call("/models");
      state.models = { text: found.text.map((m) => m.name), image: found.image.map((m) => m.name) };
    } catch {
      return;
    }
    for (const id of ["chat-model", "completion-model", "embeddings-model"]) fillSelect($(id), state.models.text);
    fillSelect($("image-model"), state.models.image);
    const images = state.models.image.length > 0;
    $("image-none").hidden = images;
    $("image-form").hidden = !images;
    if (images && !$("image-sampler").options.length) {
      try {
        const samplers = await call("/sdapi/v1/samplers");
        fillSelect($("image-sampler"), samplers.map((s) => s.name));
      } catch { /* the default sampler is used */ }
    }
    if (images) { // the image workers' LoRA and VAE folders
      try {
        const [loras, vaes] = await Promise.all([call("/sdapi/v1/loras"), call("/sdapi/v1/sd-vae")]);
        fillSelect($("image-lora"), loras.map((l) => l.name), ["", "None"]);
        fillSelect($("image-vae"), vaes.map((v) => v.model_name), ["Automatic", "Automatic"]);
      } catch { /* none to pick */ }
    }
    renderSnippet();
  }

  /** A select's options: `names`, after an optional [value, label] first; the choice is kept when still there. */
  function fillSelect(select, names, first = null) {
    const kept = select.value;
    select.replaceChildren(...(first ? [el("option", { value: first[0] }, first[1])] : []), ...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(kept)) select.value = kept;
  }

  function chatBody(stream = true) {
    const system = $("chat-system").value.trim();
    const pending = $("chat-input").value.trim();
    // with a session the server has the turns so far (and the system prompt, sent with the first turn)
    const before = sessionOn() ? [] : chat.messages;
    const asked = [...before, ...(pending ? [{ role: "user", content: pending }] : [])];
    const messages = [...(system && !(sessionOn() && chat.messages.length) ? [{ role: "system", content: system }] : []),
      ...(asked.length ? asked : [{ role: "user", content: "Say hello" }])];
    return { model: $("chat-model").value || "default", messages, temperature: Number($("chat-temperature").value),
      max_tokens: Number($("chat-max").value), stream };
  }

  function addBubble(role, text) {
    const item = el("li", { class: role }, el("span", { class: "role" }, role === "user" ? "You" : "Assistant"), el("span", { class: "text" }, text));
    $("chat-log").append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  async function sendChat(event) {
    event.preventDefault();
    if (chat.controller || !$("chat-input").value.trim()) return;
    const body = chatBody();
    const question = body.messages[body.messages.length - 1].content;
    chat.messages.push({ role: "user", content: question });
    $("chat-input").value = "";
    addBubble("user", question);
    const answer = addBubble("assistant", "");
    const text = answer.querySelector(".text");
    answer.setAttribute("aria-busy", "true");
    chat.controller = new AbortController();
    $("chat-stop").disabled = false;
    $("chat-go").disabled = true;
    $("chat-status").textContent = "Generating…";
    const began = performance.now();
    let pieces = 0;
    try {
      const extra = sessionOn() ? { "X-Session-ID": chat.session } : {};
      const response = await call("/v1/chat/completions", { method: "POST", json: body, signal: chat.controller.signal, raw: true, extra });
      for await (const message of events(response)) {
        if (message.data === "[DONE]") break;
        const chunk = JSON.parse(message.data);
        if (chunk.error) throw new ApiFailure(500, messageOf(chunk, 500));
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          text.textContent += delta.content;
          pieces += 1;
          answer.scrollIntoView({ block: "nearest" });
        }
      }
      const seconds = (performance.now() - began) / 1000;
      $("chat-status").textContent = `${pieces} chunks in ${seconds.toFixed(1)} s`;
    } catch (exc) {
      if (chat.controller.signal.aborted) {
        answer.classList.add("stopped");
        $("chat-status").textContent = "Stopped: the server cancelled the job.";
      } else {
        $("chat-status").textContent = exc instanceof ApiFailure ? `Refused: ${exc.message}` : "The connection was lost.";
      }
    } finally {
      chat.messages.push({ role: "assistant", content: text.textContent });
      answer.removeAttribute("aria-busy");
      chat.controller = null;
      $("chat-stop").disabled = true;
      $("chat-go").disabled = false;
      renderSnippet();
    }
  }

  const completion = { controller: null };

  function completionBody(stream = true) {
    return { model: $("completion-model").value || "default", prompt: $("completion-prompt").value,
      temperature: Number($("completion-temperature").value), max_tokens: Number($("completion-max").value), stream };
  }

  /** A raw completion (no chat template), streamed into the text after its prompt. */
  async function sendCompletion(event) {
    event.preventDefault();
    if (completion.controller) return;
    const body = completionBody();
    const out = $("completion-out");
    out.replaceChildren(el("span", { class: "muted" }, body.prompt));
    const text = out.appendChild(el("b", {}));
    completion.controller = new AbortController();
    $("completion-go").disabled = true;
    $("completion-stop").disabled = false;
    $("completion-status").textContent = "Generating…";
    const began = performance.now();
    let pieces = 0;
    try {
      const response = await call("/v1/completions", { method: "POST", json: body, signal: completion.controller.signal, raw: true });
      for await (const message of events(response)) {
        if (message.data === "[DONE]") break;
        const chunk = JSON.parse(message.data);
        if (chunk.error) throw new ApiFailure(500, messageOf(chunk, 500));
        const piece = chunk.choices && chunk.choices[0] && chunk.choices[0].text;
        if (piece) { text.textContent += piece; pieces += 1; }
      }
      $("completion-status").textContent = `${pieces} chunks in ${((performance.now() - began) / 1000).toFixed(1)} s`;
    } catch (exc) {
      $("completion-status").textContent = completion.controller.signal.aborted ? "Stopped: the server cancelled the job."
        : exc instanceof ApiFailure ? `Refused: ${exc.message}` : "The connection was lost.";
    } finally {
      completion.controller = null;
      $("completion-go").disabled = false;
      $("completion-stop").disabled = true;
    }
  }

  function embeddingsBody() {
    const input = $("embeddings-input").value.split("\n").map((t) => t.trim()).filter(Boolean);
    return { model: $("embeddings-model").value || "default", input: input.length ? input : ["Hello"] };
  }

  /** Embeddings of each line: its dimension and first values. */
  async function embed(event) {
    event.preventDefault();
    const body = embeddingsBody();
    $("embeddings-go").disabled = true;
    $("embeddings-status").textContent = "Embedding…";
    try {
      const result = await call("/v1/embeddings", { method: "POST", json: body });
      const rows = result.data.map((d) => el("tr", {}, el("td", {}, body.input[d.index] ?? ""),
        el("td", { class: "num" }, fmt(d.embedding.length)),
        el("td", { class: "vector" }, `${d.embedding.slice(0, 6).map((v) => v.toFixed(4)).join(", ")}, …`)));
      $("embeddings-out").tBodies[0].replaceChildren(...rows);
      $("embeddings-status").textContent = `${result.data.length} embedding(s), ${fmt(result.usage && result.usage.prompt_tokens)} prompt tokens`;
    } catch (exc) {
      $("embeddings-status").textContent = exc instanceof ApiFailure ? `Refused: ${exc.message}` : "The server could not be reached.";
    } finally {
      $("embeddings-go").disabled = false;
    }
  }

  /** img2img's start image (a data URL), and the inpainting mask painted on it (white: redraw), at its size. */
  const init = { image: null, mask: null, painted: false, picture: null };

  function imageBody() {
    const sampler = $("image-sampler").value, lora = $("image-lora").value, vae = $("image-vae").value;
    const body = { prompt: $("image-prompt").value + (lora ? ` <lora:${lora}:${Number($("image-lora-weight").value)}>` : ""),
      negative_prompt: $("image-negative").value, steps: Number($("image-steps").value),
      cfg_scale: Number($("image-cfg").value), width: Number($("image-width").value), height: Number($("image-height").value),
      seed: Number($("image-seed").value), ...(sampler ? { sampler_name: sampler } : {}),
      override_settings: { sd_model_checkpoint: $("image-model").value, ...(vae && vae !== "Automatic" ? { sd_vae: vae } : {}) } };
    if (init.image) {
      body.init_images = [init.image];
      body.denoising_strength = Number($("image-denoise").value);
      if (init.painted) body.mask = init.mask.toDataURL("image/png");
    }
    return body;
  }

  /** Show the start image on the mask canvas, with no mask painted yet. */
  function resetMask() {
    const canvas = $("mask-canvas");
    canvas.getContext("2d").drawImage(init.picture, 0, 0);
    const mask = init.mask.getContext("2d");
    mask.fillStyle = "#000";
    mask.fillRect(0, 0, init.mask.width, init.mask.height);
    init.painted = false;
    renderSnippet();
  }

  function loadStartImage() {
    const file = $("image-init").files[0];
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      const picture = new Image();
      picture.onload = () => {
        init.image = reader.result;
        init.picture = picture;
        const canvas = $("mask-canvas");
        canvas.width = picture.naturalWidth;
        canvas.height = picture.naturalHeight;
        init.mask = el("canvas", { width: picture.naturalWidth, height: picture.naturalHeight });
        const size = (n) => Math.min(2048, Math.max(64, Math.round(n / 8) * 8));
        $("image-width").value = size(picture.naturalWidth);
        $("image-height").value = size(picture.naturalHeight);
        $("mask-box").hidden = false;
        resetMask();
      };
      picture.src = reader.result;
    };
    reader.readAsDataURL(file);
  }

  function removeStartImage() {
    Object.assign(init, { image: null, mask: null, painted: false, picture: null });
    $("image-init").value = "";
    $("mask-box").hidden = true;
    renderSnippet();
  }

  /** Painting the mask: a round brush, shown half-transparent over the image, white on the mask itself. */
  function paintMask(e) {
    const canvas = $("mask-canvas");
    const box = canvas.getBoundingClientRect();
    const scale = canvas.width / box.width;
    const x = (e.clientX - box.left) * scale, y = (e.clientY - box.top) * scale;
    const radius = Math.max(3, canvas.width / 16);
    for (const [target, color] of [[canvas, "rgba(220, 30, 30, 0.35)"], [init.mask, "#fff"]]) {
      const g = target.getContext("2d");
      g.fillStyle = color;
      g.beginPath();
      g.arc(x, y, radius, 0, 2 * Math.PI);
      g.fill();
    }
    init.painted = true;
  }

  async function generateImage(event) {
    event.preventDefault();
    const body = imageBody();
    const out = { status: $("image-status"), bar: $("image-progress"), img: $("image-result") };
    $("image-out").hidden = false;
    $("image-go").disabled = true;
    $("image-stop").disabled = false;
    $("image-reuse").hidden = true;
    $("image-info").textContent = "";
    out.bar.value = 0;
    out.status.textContent = "Queued…";
    let running = true;
    const poll = (async () => {
      while (running) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        if (!running) return;
        try {
          const p = await call("/sdapi/v1/progress");
          if (!running) return;
          out.bar.value = p.progress;
          out.status.textContent = p.state.sampling_steps
            ? `Step ${p.state.sampling_step} of ${p.state.sampling_steps}, about ${p.eta_relative.toFixed(1)} s left`
            : p.textinfo || "Waiting…";
          if (p.current_image) {
            out.img.src = `data:image/png;base64,${p.current_image}`;
            out.img.hidden = false;
          }
        } catch { /* the next poll tries again */ }
      }
    })();
    try {
      const result = await call(body.init_images ? "/sdapi/v1/img2img" : "/sdapi/v1/txt2img", { method: "POST", json: body });
      const info = JSON.parse(result.info || "{}");
      out.img.src = `data:image/png;base64,${result.images[0]}`;
      out.img.hidden = false;
      out.bar.value = 1;
      out.status.textContent = `Done: seed ${info.seed}`;
      $("image-info").textContent = (info.infotexts && info.infotexts[0]) || "";
      $("image-reuse").dataset.seed = info.seed;
      $("image-reuse").hidden = info.seed === undefined;
    } catch (exc) {
      out.status.textContent = exc instanceof ApiFailure ? (exc.status === 499 ? "Interrupted." : `Refused: ${exc.message}`) : "The connection was lost.";
    } finally {
      running = false;
      await poll;
      $("image-go").disabled = false;
      $("image-stop").disabled = true;
      renderSnippet();
    }
  }

  /** The image request as the snippets show it: the start image and mask named, not inlined. */
  function imageSnippetBody() {
    const body = imageBody();
    if (body.init_images) body.init_images = ["<base64 of start.png>"];
    if (body.mask) body.mask = "<base64 of mask.png>";
    return body;
  }

  /** The playground's current request as curl, Python and C# (Unity) code; the token is read from GRAYCAT_TOKEN. */
  function renderSnippet() {
    const base = location.origin;
    const image = playMode === "image";
    const streamed = playMode === "chat" || playMode === "completion";
    const body = { image: imageSnippetBody, completion: () => completionBody(snippetLang === "curl"), embeddings: embeddingsBody,
      chat: () => chatBody(snippetLang === "curl") }[playMode]();
    const json = JSON.stringify(body, null, 2);
    const path = { image: `/sdapi/v1/${init.image ? "img2img" : "txt2img"}`, completion: "/v1/completions", embeddings: "/v1/embeddings", chat: "/v1/chat/completions" }[playMode];
    const py = (v) => JSON.stringify(v, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
    const openai = `# pip install openai\nimport os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key=os.environ["GRAYCAT_TOKEN"])\n`;
    let code;
    const session = playMode === "chat" && sessionOn() ? chat.session : null;
    if (snippetLang === "curl") {
      code = `curl ${streamed ? "-N " : ""}${base}${path} \\\n  -H "Authorization: Bearer $GRAYCAT_TOKEN" -H "Content-Type: application/json" \\\n`
        + `${session ? `  -H "X-Session-ID: ${session}" \\\n` : ""}  -d '${json.replace(/'/g, "'\\''")}'`;
    } else if (snippetLang === "python" && image) {
      const own = ["override_settings", "init_images", "mask"];
      const args = Object.entries(body).filter(([k]) => !own.includes(k)).map(([k, v]) => `    ${k}=${py(v)},`).join("\n");
      const images = body.init_images ? `    images=[Image.open("start.png")],\n${body.mask ? '    mask_image=Image.open("mask.png"),\n' : ""}` : "";
      code = `# pip install webuiapi\nimport os\nimport webuiapi\n${images ? "from PIL import Image\n" : ""}\n`
        + `api = webuiapi.WebUIApi(baseurl="${base}/sdapi/v1")\napi.set_auth("me", os.environ["GRAYCAT_TOKEN"])\n`
        + `result = api.${images ? "img2img" : "txt2img"}(\n${images}${args}\n    override_settings=${py(body.override_settings)},\n)\nresult.image.save("image.png")`;
    } else if (snippetLang === "python" && playMode === "completion") {
      code = `${openai}stream = client.completions.create(\n    model=${py(body.model)},\n    prompt=${py(body.prompt)},\n`
        + `    temperature=${body.temperature},\n    max_tokens=${body.max_tokens},\n    stream=True,\n)\nfor chunk in stream:\n`
        + `    print(chunk.choices[0].text, end="", flush=True)`;
    } else if (snippetLang === "python" && playMode === "embeddings") {
      code = `${openai}result = client.embeddings.create(model=${py(body.model)}, input=${py(body.input).replace(/\n/g, "\n    ")})\n`
        + `for item in result.data:\n    print(len(item.embedding), item.embedding[:6])`;
    } else if (snippetLang === "python") {
      code = `${openai}`
        + `stream = client.chat.completions.create(\n    model=${py(body.model)},\n    messages=${py(body.messages).replace(/\n/g, "\n    ")},\n`
        + `    temperature=${body.temperature},\n    max_tokens=${body.max_tokens},\n    stream=True,\n`
        + `${session ? `    extra_headers={"X-Session-ID": "${session}"},\n` : ""})\nfor chunk in stream:\n`
        + `    print(chunk.choices[0].delta.content or "", end="", flush=True)`;
    } else {
      const literal = JSON.stringify(streamed ? { ...body, stream: false } : body).replace(/"/g, '""');
      const read = image
        ? `        var images = JsonUtility.FromJson<Images>(request.downloadHandler.text).images;\n        var texture = new Texture2D(2, 2);\n        texture.LoadImage(System.Convert.FromBase64String(images[0]));\n`
        : `        Debug.Log(request.downloadHandler.text);  // ${{ chat: "choices[0].message.content", completion: "choices[0].text", embeddings: "data[i].embedding" }[playMode]}\n`;
      code = `using System.Collections;\nusing System.Text;\nusing UnityEngine;\nusing UnityEngine.Networking;\n\n`
        + `public class GraycatCall : MonoBehaviour\n{\n${image ? "    [System.Serializable] class Images { public string[] images; }\n\n" : ""}`
        + `    public string token;  // an API token: keep it out of shipped builds\n\n    IEnumerator Start()\n    {\n`
        + `        const string body = @"${literal}";\n`
        + `        using var request = new UnityWebRequest("${base}${path}", "POST");\n`
        + `        request.uploadHandler = new UploadHandlerRaw(Encoding.UTF8.GetBytes(body));\n`
        + `        request.downloadHandler = new DownloadHandlerBuffer();\n`
        + `        request.SetRequestHeader("Content-Type", "application/json");\n`
        + `        request.SetRequestHeader("Authorization", "Bearer " + token);\n`
        + `${session ? `        request.SetRequestHeader("X-Session-ID", "${session}");\n` : ""}`
        + `        yield return request.SendWebRequest();\n        if (request.result != UnityWebRequest.Result.Success) { Debug.LogError(request.error); yield break; }\n`
        + `${read}    }\n}`;
    }
    $("snippet").textContent = code;
  }

  // ---------- jobs ----------

  let jobStream = null;

  async function lookUpJob(event) {
    event.preventDefault();
    const id = $("job-id").value.trim();
    $("job-error").textContent = "";
    if (jobStream) jobStream.abort();
    try {
      const job = await call(`/jobs/${encodeURIComponent(id)}`);
      const rows = [["State", job.state], ["Kind", job.kind], ["Model", job.model], ["Endpoint", job.route_endpoint || "–"],
        ["Attempts", job.attempts], ["Worker", job.worker || "–"], ["Created", when(job.created)], ["Started", when(job.started)],
        ["Finished", when(job.finished)]];
      if (job.position !== undefined && job.position !== null) rows.push(["Jobs ahead", job.position]);
      if (job.started && job.created) rows.push(["Waited", `${(job.started - job.created).toFixed(2)} s`]);
      if (job.finished && job.started) rows.push(["Ran", `${(job.finished - job.started).toFixed(2)} s`]);
      if (job.status) rows.push(["Status", job.status]);
      $("job-fields").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
      $("job-out").hidden = false;
      $("job-events").replaceChildren();
      followJob(id);
    } catch (exc) {
      $("job-out").hidden = true;
      $("job-error").textContent = exc instanceof ApiFailure ? exc.message : "The server could not be reached.";
    }
  }

  function renderRecent() {
    const jobs = recentJobs();
    $("recent-none").hidden = jobs.length > 0;
    $("recent-jobs").replaceChildren(...jobs.map((j) => el("li", {},
      el("button", { type: "button", class: "quiet", "aria-label": `Look up job ${j.id}`, onclick: () => {
        $("job-id").value = j.id;
        $("job-form").requestSubmit();
      } }, "Look up"), " ", el("code", {}, j.id), ` ${j.what}, ${when(j.at)}`)));
  }

  async function followJob(id) {
    const controller = new AbortController();
    jobStream = controller;
    const list = $("job-events");
    try {
      const response = await call(`/jobs/${encodeURIComponent(id)}/events`, { signal: controller.signal, raw: true });
      for await (const message of events(response)) {
        if (list.children.length >= 300) continue;
        const data = message.data.length > 300 ? `${message.data.slice(0, 300)}…` : message.data;
        list.append(el("li", {}, el("b", {}, message.event), ` ${data}`));
      }
    } catch (exc) {
      if (!controller.signal.aborted) list.append(el("li", {}, exc instanceof ApiFailure ? exc.message : "stream lost"));
    }
  }

  // ---------- admin ----------

  async function loadAdmin() {
    $("admin-error").textContent = "";
    try {
      const [{ tokens }, usage, dead] = await Promise.all([call("/admin/tokens"), call("/admin/usage"), call("/admin/dead-letters")]);
      renderTokens(tokens, usage.tokens);
      renderDead(dead.dead_letters);
      await drawUsage(usage);
    } catch (exc) {
      $("admin-error").textContent = exc instanceof ApiFailure ? exc.message : "The server could not be reached.";
    }
  }

  const USAGE_DAYS = 14;
  const SERIES = ["--series-1", "--series-2", "--series-3", "--series-4"];

  /** The usage per day of the last USAGE_DAYS days, kept for the measure picked. */
  const MEASURES = { requests: "Requests", completion_tokens: "Completion tokens", images: "Images" };
  const usageSeen = { days: [], found: [] };

  async function drawUsage(today) {
    const days = [...Array(USAGE_DAYS).keys()].map((i) => new Date(Date.now() - (USAGE_DAYS - 1 - i) * 86400000).toISOString().slice(0, 10));
    const found = await Promise.all(days.slice(0, -1).map((day) => call(`/admin/usage?day=${day}`).catch(() => ({ tokens: {} }))));
    found.push(today);
    Object.assign(usageSeen, { days, found });
    plotUsage();
  }

  /** The usage per day of the 3 tokens that used most of the measure picked, and of the others together. */
  function plotUsage() {
    const { days, found } = usageSeen;
    const measure = $("usage-measure").value;
    const totals = new Map(), names = new Map();
    for (const { tokens } of found) {
      for (const [fp, used] of Object.entries(tokens)) {
        totals.set(fp, (totals.get(fp) || 0) + (used[measure] || 0));
        if (used.name) names.set(fp, used.name);
      }
    }
    const top = [...totals.entries()].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([fp]) => fp);
    const series = top.map((fp, i) => ({ label: names.get(fp) || `static ${fp.slice(0, 6)}`, color: SERIES[i],
      values: found.map(({ tokens }) => (tokens[fp] && tokens[fp][measure]) || 0) }));
    const others = found.map(({ tokens }) =>
      Object.entries(tokens).filter(([fp]) => !top.includes(fp)).reduce((a, [, u]) => a + (u[measure] || 0), 0));
    if (others.some((v) => v > 0)) series.push({ label: "others", color: SERIES[3], values: others });
    charts.bars($("chart-usage"), series, USAGE_DAYS, [days[0], days[days.length - 1]]);
    const summary = series.map((x) => `${x.label}: ${fmt(x.values.reduce((a, v) => a + v, 0))}`).join(", ");
    $("chart-usage").setAttribute("aria-label", `${MEASURES[measure]} over the last ${USAGE_DAYS} days by token: ${summary || "none"}`);
    $("usage-title").textContent = `${MEASURES[measure]} per day (UTC) by token, last ${USAGE_DAYS} days`;
  }

  /** A button that asks for a second click within 5 s before it acts (no blocking dialog). */
  function confirmButton(label, confirmLabel, action) {
    const button = el("button", { type: "button", class: "danger" }, label);
    let armed = null;
    button.addEventListener("click", async () => {
      if (!armed) {
        button.textContent = confirmLabel;
        armed = setTimeout(() => { armed = null; button.textContent = label; }, 5000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      try { await action(); } catch (exc) { $("admin-error").textContent = exc.message; }
      loadAdmin();
    });
    return button;
  }

  function renderTokens(tokens, usage) {
    const body = $("tokens").tBodies[0];
    if (!tokens.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No managed token yet.")));
      return;
    }
    body.replaceChildren(...tokens.map((t) => {
      const limits = [t.rpm && `${t.rpm}/min`, t.concurrency && `${t.concurrency} in flight`, t.daily_tokens && `${fmt(t.daily_tokens)} tokens/day`,
        t.daily_images && `${fmt(t.daily_images)} images/day`, t.models.length && `models: ${t.models.join(", ")}`, t.admin && "admin"].filter(Boolean);
      const used = usage[t.fingerprint] || {};
      const stateText = t.revoked ? el("span", { class: "badge bad" }, "revoked")
        : t.expires && t.expires < Date.now() / 1000 ? el("span", { class: "badge warn" }, "expired") : el("span", { class: "badge ok" }, "active");
      const action = t.revoked ? "" : confirmButton("Revoke", "Confirm revoke", () => call(`/admin/tokens/${encodeURIComponent(t.fingerprint)}`, { method: "DELETE" }));
      if (action) action.setAttribute("aria-label", `Revoke ${t.name}`);
      return el("tr", {}, el("td", {}, t.name), el("td", {}, el("code", {}, t.fingerprint)), el("td", { class: "wrap" }, limits.join(", ") || "server defaults"),
        el("td", {}, t.expires ? when(t.expires) : "never"), el("td", {}, `${fmt(used.requests || 0)} request${used.requests === 1 ? "" : "s"}`), el("td", {}, stateText), el("td", {}, action));
    }));
  }

  function renderDead(items) {
    const body = $("dead").tBodies[0];
    if (!items.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No dead letter.")));
      return;
    }
    body.replaceChildren(...items.map((d) => {
      const path = `/admin/dead-letters/${encodeURIComponent(d.entry)}`;
      const again = confirmButton("Run again", "Confirm run again", async () => {
        const made = await call(`${path}/retry`, { method: "POST" });
        $("admin-status").textContent = `Job ${d.job} queued again as job ${made.id}; its owner follows it with GET /jobs/${made.id}.`;
      });
      again.setAttribute("aria-label", `Run job ${d.job} again`);
      const drop = confirmButton("Drop", "Confirm drop", () => call(path, { method: "DELETE" }));
      drop.setAttribute("aria-label", `Drop dead letter of job ${d.job}`);
      return el("tr", {}, el("td", {}, when(d.at)), el("td", {}, el("code", {}, d.job || "–")), el("td", {}, `${d.kind}/${d.model}`),
        el("td", { class: "num" }, fmt(d.deliveries)), el("td", { class: "wrap" }, d.reason || ""), el("td", { class: "buttons-cell" }, again, " ", drop));
    }));
  }

  async function createToken(event) {
    event.preventDefault();
    $("admin-error").textContent = "";
    const number = (id) => Number($(id).value || 0);
    const models = $("new-models").value.split(",").map((m) => m.trim()).filter(Boolean);
    const body = { name: $("new-name").value.trim(), rpm: number("new-rpm"), concurrency: number("new-concurrency"),
      daily_tokens: number("new-tokens"), daily_images: number("new-images"), models, admin: $("new-admin").checked };
    if ($("new-expires").value) body.expires = $("new-expires").value;
    try {
      const made = await call("/admin/tokens", { method: "POST", json: body });
      $("new-secret-value").textContent = made.token;
      $("new-secret").hidden = false;
      $("token-form").reset();
      loadAdmin();
    } catch (exc) {
      $("admin-error").textContent = exc instanceof ApiFailure ? exc.message : "The server could not be reached.";
    }
  }

  function copyFrom(id, button) {
    navigator.clipboard.writeText($(id).textContent).then(() => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    }, () => { button.textContent = "Select and copy by hand"; });
  }

  // ---------- wiring ----------

  function start() {
    $("sign-in-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
    $("sign-out").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", route);
    // A browser holds about 6 connections per server (HTTP/1.1): a hidden tab, or a page kept in the
    // back/forward cache, gives its live stream's connection back and takes one again when shown.
    const pause = () => { if (state.feed) state.feed.abort(); state.feed = null; };
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) pause(); else if (state.session && !state.feed) startFeed();
    });
    window.addEventListener("pagehide", pause);
    window.addEventListener("pageshow", (e) => { if (e.persisted && state.session && !state.feed) startFeed(); });
    window.addEventListener("resize", () => { if (!$("page-overview").hidden) drawCharts(); });
    $("chat-send").addEventListener("submit", sendChat);
    $("chat-input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("chat-send").requestSubmit(); }
    });
    $("chat-stop").addEventListener("click", () => { if (chat.controller) chat.controller.abort(); });
    const newConversation = () => {
      if (chat.messages.length && sessionOn()) call(`/sessions/${chat.session}`, { method: "DELETE" }).catch(() => {});
      chat.messages = [];
      chat.session = newSessionId();
      $("chat-log").replaceChildren();
      $("chat-status").textContent = "";
      renderSnippet();
    };
    $("chat-clear").addEventListener("click", newConversation);
    $("chat-session").addEventListener("change", () => { // a conversation is either kept by the server or not
      chat.messages = [];
      chat.session = newSessionId();
      $("chat-log").replaceChildren();
      renderSnippet();
    });
    $("image-form").addEventListener("submit", generateImage);
    $("image-stop").addEventListener("click", () => call("/sdapi/v1/interrupt", { method: "POST" }).catch(() => {}));
    $("image-reuse").addEventListener("click", () => { $("image-seed").value = $("image-reuse").dataset.seed; renderSnippet(); });
    for (const form of ["chat-form", "image-form", "completion-form", "embeddings-form"]) $(form).addEventListener("input", renderSnippet);
    $("completion-form").addEventListener("submit", sendCompletion);
    $("image-init").addEventListener("change", loadStartImage);
    $("init-clear").addEventListener("click", removeStartImage);
    $("mask-clear").addEventListener("click", resetMask);
    const mask = $("mask-canvas");
    mask.addEventListener("pointerdown", (e) => { mask.setPointerCapture(e.pointerId); paintMask(e); });
    mask.addEventListener("pointermove", (e) => { if (mask.hasPointerCapture(e.pointerId)) paintMask(e); });
    mask.addEventListener("pointerup", (e) => { mask.releasePointerCapture(e.pointerId); renderSnippet(); });
    $("completion-stop").addEventListener("click", () => { if (completion.controller) completion.controller.abort(); });
    $("embeddings-form").addEventListener("submit", embed);
    $("usage-measure").addEventListener("change", () => { if (usageSeen.found.length) plotUsage(); });
    $("chat-input").addEventListener("input", renderSnippet);
    $("job-form").addEventListener("submit", lookUpJob);
    $("token-form").addEventListener("submit", createToken);
    $("snippet-copy").addEventListener("click", (e) => copyFrom("snippet", e.target));
    $("new-secret-copy").addEventListener("click", (e) => copyFrom("new-secret-value", e.target));
    tablist(document.querySelector("#page-playground > .tabs"), (tab) => {
      playMode = tab.id.slice(4);
      for (const mode of ["chat", "completion", "embeddings", "image"]) $(`panel-${mode}`).hidden = playMode !== mode;
      renderSnippet();
      if (playMode === "image") loadModels(); // image workers may have come or gone
    });
    tablist(document.querySelector(".snippets .tabs"), (tab) => { snippetLang = tab.dataset.lang; renderSnippet(); });
    if (state.token) signIn(state.token); else showSignIn();
  }

  start();
})();
