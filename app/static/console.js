/* CivicLine agent console.
 * Everything a resident wrote is put on the page with textContent (or, for email HTML that
 * the server already sanitized, inside a sandboxed iframe's srcdoc): never innerHTML. */
(function () {
  "use strict";

  const root = document.getElementById("console");
  const features = JSON.parse(root.dataset.features || "{}");
  const token = document.querySelector('meta[name="api-token"]').content;
  const me = { id: Number(root.dataset.userId) };
  const $ = (id) => document.getElementById(id);

  const state = {
    offers: [], tickets: [], waiting: [], queues: [],
    open: new Map(),      // ticket id -> {ticket, timeline: Map, unread, options, kb, past}
    order: [],            // open ticket ids in tab order
    active: null,
    kbPick: null,         // {article_id, version} inserted into the reply
    calls: new Map(),
  };

  // ---------- helpers ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || res.statusText);
      err.status = res.status;
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }

  function announce(text) {
    const node = $("announcer");
    node.textContent = "";
    setTimeout(() => { node.textContent = text; }, 30);
  }

  function showError(err) {
    const box = $("alert");
    box.textContent = err.message || String(err);
    box.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
  }

  function clearError() { $("alert").hidden = true; }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds || 0));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso.endsWith("Z") || iso.includes("+") ? iso : iso + "Z");
    return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function safeUrl(url) {
    try {
      const u = new URL(url, location.href);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch (e) { return null; }
  }

  const CHANNEL_NAMES = { voice: "Call", sms: "SMS", email: "Email", chat: "Chat", walkin: "Walk-in", note: "Internal note" };

  // ---------- state and lists ----------
  async function loadState() {
    try {
      const data = await api("GET", "/api/v1/console/state");
      state.offers = data.offers.map((o) => ({ ...o, deadline: Date.now() + o.expires_in * 1000 }));
      state.tickets = data.tickets;
      state.waiting = data.waiting;
      state.queues = data.queues;
      setPresence(data.me.presence, data.me.presence_since);
      renderLists();
    } catch (err) { showError(err); }
  }

  let reloadTimer = null;
  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(loadState, 250);
  }

  function ticketLabel(t) {
    return `${t.reference} · ${CHANNEL_NAMES[t.channel] || t.channel}${t.queue ? " · " + t.queue : ""}`;
  }

  function renderLists() {
    const offers = $("offers");
    offers.replaceChildren(...state.offers.map((o) => el("li", { class: "offer", "data-offer": o.id },
      el("span", { class: "item-title", text: ticketLabel(o.ticket) }),
      el("span", { class: "small", text: o.ticket.subject || "" }), " ",
      el("span", { class: "countdown", "data-deadline": o.deadline, "aria-label": "time left to accept" }),
      el("div", {},
        el("button", { type: "button", onclick: () => respond(o, "accept"), "aria-label": `Accept ${o.ticket.reference}` }, "Accept"),
        el("button", { type: "button", class: "secondary", onclick: () => respond(o, "decline"), "aria-label": `Decline ${o.ticket.reference}` }, "Decline")))));
    $("no-offers").hidden = state.offers.length > 0;
    $("offer-count").textContent = state.offers.length;
    tickCountdowns();

    const mine = $("my-tickets");
    mine.replaceChildren(...state.tickets.map((t) => el("li", {},
      el("button", { type: "button", class: "secondary", onclick: () => openTicket(t.id), "aria-label": `Open ${t.reference}: ${t.subject || ""}` }, t.reference),
      el("span", { class: "small", text: ` ${CHANNEL_NAMES[t.channel] || t.channel} · ${t.status}` }),
      el("span", { class: "item-title small", text: t.subject || "" }))));
    $("no-mine").hidden = state.tickets.length > 0;
    $("mine-count").textContent = state.tickets.length;

    $("queue-names").textContent = state.queues.length ? "Queues: " + state.queues.join(", ") : "";
    const waiting = $("waiting");
    waiting.replaceChildren(...state.waiting.map((t) => el("li", {},
      el("button", { type: "button", class: "secondary", onclick: () => openTicket(t.id), "aria-label": `Open ${t.reference} waiting in ${t.queue}` }, t.reference),
      el("span", { class: "small", text: ` ${CHANNEL_NAMES[t.channel] || t.channel} · ${t.queue} · waiting ${duration(t.wait_seconds)}` }),
      el("span", { class: "item-title small", text: t.subject || "" }))));
    $("no-waiting").hidden = state.waiting.length > 0;
    $("waiting-count").textContent = state.waiting.length;
  }

  function tickCountdowns() {
    const now = Date.now();
    document.querySelectorAll(".countdown").forEach((node) => {
      const left = Math.max(0, Math.round((Number(node.dataset.deadline) - now) / 1000));
      node.textContent = left ? `${left} s left` : "expired";
    });
    const before = state.offers.length;
    state.offers = state.offers.filter((o) => o.deadline > now - 2000);
    if (state.offers.length !== before) renderLists();
  }

  async function respond(offer, action) {
    clearError();
    try {
      await api("POST", `/api/v1/offers/${offer.id}/${action}`);
      state.offers = state.offers.filter((o) => o.id !== offer.id);
      renderLists();
      announce(action === "accept" ? `Accepted ${offer.ticket.reference}` : `Declined ${offer.ticket.reference}`);
      if (action === "accept") await openTicket(offer.ticket.id);
      reloadSoon();
    } catch (err) { showError(err); reloadSoon(); }
  }

  // ---------- presence ----------
  function setPresence(presence, since) {
    const select = $("presence");
    select.value = presence;
    $("presence-since").textContent = since ? "since " + when(since) : "";
  }

  $("presence").addEventListener("change", async (e) => {
    const presence = e.target.value;
    const path = features.presence_api ? "/api/v1/agents/me/presence" : "/api/v1/console/presence";
    try {
      const res = await api("PUT", path, { presence });
      setPresence(res.presence, res.presence_since);
      announce(`Presence: ${res.presence}`);
      reloadSoon();
    } catch (err) { showError(err); loadState(); }
  });

  // ---------- tickets ----------
  async function openTicket(id) {
    clearError();
    id = Number(id);
    if (!state.open.has(id)) {
      let ticket;
      try { ticket = await api("GET", `/api/v1/tickets/${id}`); } catch (err) { showError(err); return; }
      const entry = { ticket, timeline: new Map(), unread: 0, options: null, kb: [], past: [] };
      for (const item of ticket.timeline) entry.timeline.set(item.id, item);
      state.open.set(id, entry);
      state.order.push(id);
      if (socket) socket.emit("watch_ticket", { ticket_id: id });
      loadExtras(entry);
    }
    activate(id, true);
  }

  async function loadExtras(entry) {
    const t = entry.ticket;
    const jobs = [
      api("GET", `/api/v1/tickets/${t.id}/reply-options`).then((o) => { entry.options = o; }),
      api("GET", `/api/v1/tickets?citizen_id=${t.citizen_id}&limit=10`).then((p) => { entry.past = p.items; }),
    ];
    if (features.kb_suggestions) {
      jobs.push(api("GET", `/api/v1/kb/tickets/${t.id}/suggestions`).then((s) => { entry.kb = s.suggestions || []; }).catch(() => { entry.kb = []; }));
    }
    await Promise.allSettled(jobs);
    if (state.active === t.id) { renderComposer(entry); renderKb(entry); renderCitizen(entry); }
  }

  function activate(id, focus) {
    state.active = id;
    state.kbPick = null;
    const entry = state.open.get(id);
    entry.unread = 0;
    renderTabs();
    $("empty").hidden = true;
    $("ticket-view").hidden = false;
    $("ticket-view").setAttribute("aria-labelledby", "tab-" + id);
    renderTicket(entry);
    renderComposer(entry);
    renderKb(entry);
    renderCitizen(entry);
    $("kb-used").textContent = "";
    if (focus) $("ticket-title").focus();
  }

  function renderTabs() {
    const tabs = $("tabs");
    tabs.replaceChildren(...state.order.map((id, i) => {
      const entry = state.open.get(id);
      const selected = id === state.active;
      return el("button", {
        type: "button", role: "tab", id: "tab-" + id, "aria-selected": selected ? "true" : "false",
        "aria-controls": "ticket-view", tabindex: selected ? "0" : "-1",
        onclick: () => activate(id, false),
        onkeydown: (e) => tabKeys(e, i),
      }, `${i + 1}. ${entry.ticket.reference} (${CHANNEL_NAMES[entry.ticket.channel] || entry.ticket.channel})`,
      entry.unread ? el("span", { class: "unread", text: `${entry.unread} new` }) : null);
    }));
  }

  function tabKeys(e, index) {
    let next = null;
    if (e.key === "ArrowRight") next = (index + 1) % state.order.length;
    if (e.key === "ArrowLeft") next = (index - 1 + state.order.length) % state.order.length;
    if (next === null) return;
    e.preventDefault();
    activate(state.order[next], false);
    $("tab-" + state.order[next]).focus();
  }

  function closeTab(id) {
    if (socket) socket.emit("unwatch_ticket", { ticket_id: id });
    state.open.delete(id);
    state.order = state.order.filter((x) => x !== id);
    if (state.order.length) activate(state.order[state.order.length - 1], false);
    else {
      state.active = null;
      renderTabs();
      $("ticket-view").hidden = true;
      $("empty").hidden = false;
      $("citizen-panel").replaceChildren(el("p", { class: "muted", text: "No ticket open." }));
    }
  }

  function renderTicket(entry) {
    const t = entry.ticket;
    $("ticket-title").textContent = `${t.reference}: ${t.subject || "(no subject)"}`;
    $("ticket-meta").textContent = [
      `Status ${t.status}`, `started by ${CHANNEL_NAMES[t.channel] || t.channel}`,
      t.queue ? `queue ${t.queue}` : "no queue", `priority ${t.priority}`,
      t.language ? `language ${t.language}` : null,
      t.assigned_agent_id ? (t.assigned_agent_id === me.id ? "assigned to you" : `assigned to agent ${t.assigned_agent_id}`) : "unassigned",
      t.satisfaction ? `satisfaction ${t.satisfaction}/5` : null,
    ].filter(Boolean).join(" · ");
    const list = $("timeline");
    const items = [...entry.timeline.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id - b.id));
    list.replaceChildren(...items.map(renderEntry));
    list.scrollTop = list.scrollHeight;
  }

  function authorOf(item) {
    if (item.channel === "note") return "Internal note";
    if (item.author_kind === "citizen") return "Resident";
    if (item.author_kind === "bot") return "Knowledge base";
    if (item.author_kind === "system") return "CivicLine";
    return item.author_agent_id === me.id ? "You" : "Agent";
  }

  function renderEntry(item) {
    const meta = item.metadata || item.meta || {};
    const dir = item.direction || "inbound";
    const li = el("li", { class: dir, id: "entry-" + item.id, tabindex: "-1", "data-channel": item.channel });
    li.append(el("div", { class: "entry-head" },
      el("strong", { text: authorOf(item) }),
      el("span", { text: CHANNEL_NAMES[item.channel] || item.channel }),
      el("span", { text: dir }),
      el("time", { datetime: item.created_at || "", text: when(item.created_at) })));
    if (item.subject) li.append(el("div", { class: "entry-extra", text: "Subject: " + item.subject }));
    if (item.channel === "email" && item.html) {
      // Sanitized on intake; the empty sandbox also forbids scripts, forms and navigation.
      const frame = el("iframe", { class: "email-frame", sandbox: "", title: "Email from the resident", referrerpolicy: "no-referrer" });
      frame.srcdoc = item.html;
      li.append(frame);
      li.append(el("details", {}, el("summary", { text: "Plain text" }), el("div", { class: "entry-body", text: item.text || "" })));
    } else if (item.text) {
      li.append(el("div", { class: "entry-body", text: item.text }));
    }
    if (item.channel === "voice") {
      const parts = [];
      if (item.duration_seconds != null) parts.push("duration " + duration(item.duration_seconds));
      if (meta.outcome || meta.call_status) parts.push("outcome " + (meta.outcome || meta.call_status));
      if (meta.ivr_language) parts.push("IVR language " + meta.ivr_language);
      if (parts.length) li.append(el("div", { class: "entry-extra", text: parts.join(" · ") }));
      const rec = item.recording_url && safeUrl(item.recording_url);
      if (rec) li.append(el("div", { class: "entry-extra" }, el("a", { href: rec, target: "_blank", rel: "noopener noreferrer", text: "Recording" })));
      if (item.transcript) li.append(el("details", {}, el("summary", { text: "Transcript" }), el("div", { class: "entry-body", text: item.transcript })));
    }
    if (item.channel === "walkin") {
      const parts = [];
      if (meta.number) parts.push("ticket " + meta.number);
      if (meta.desk) parts.push("desk " + meta.desk);
      if (parts.length) li.append(el("div", { class: "entry-extra", text: parts.join(" · ") }));
    }
    for (const a of item.attachments || []) {
      const href = a.url && safeUrl(a.url);
      const label = `Attachment: ${a.filename || "file"} (${a.content_type || "unknown type"}${a.size ? ", " + Math.ceil(a.size / 1024) + " KB" : ""})`;
      li.append(el("div", { class: "entry-extra" }, href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: label }) : label));
    }
    if (item.kb_article_id) {
      li.append(el("div", { class: "entry-extra", text: `Knowledge-base answer: article ${item.kb_article_id}, version ${item.kb_article_version}` }));
    }
    if (dir === "outbound") {
      const status = item.delivery_status || "queued";
      li.append(el("div", { class: "entry-extra" }, "Delivery: ",
        el("span", { class: status === "failed" || status === "undelivered" ? "status-failed" : "status-ok", text: status }),
        item.delivery_error ? ` (${item.delivery_error})` : ""));
      if (meta.reach_reason) li.append(el("div", { class: "entry-extra", text: "Channel chosen: " + meta.reach_reason }));
      if (meta.fallback_reason) li.append(el("div", { class: "entry-extra status-failed", text: "Fallback: " + meta.fallback_reason }));
      if (meta.survey) li.append(el("div", { class: "entry-extra", text: "Satisfaction survey" }));
    }
    if (meta.survey_reply) li.append(el("div", { class: "entry-extra", text: "Survey answer" }));
    return li;
  }

  // ---------- composer ----------
  const GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  const GSM_EXT = "^{}\\[~]|€";

  function smsSegments(text) {
    let gsm = true, units = 0;
    for (const ch of text) {
      if (GSM.includes(ch)) units += 1;
      else if (GSM_EXT.includes(ch)) units += 2;
      else { gsm = false; break; }
    }
    if (!gsm) {
      const len = [...text].length;
      return { encoding: "Unicode", length: len, segments: len <= 70 ? 1 : Math.ceil(len / 67) };
    }
    return { encoding: "GSM-7", length: units, segments: units <= 160 ? 1 : Math.ceil(units / 153) };
  }

  function renderComposer(entry) {
    const select = $("reply-channel");
    const options = entry.options;
    select.replaceChildren();
    if (!options) {
      select.append(el("option", { value: "", text: "Loading…" }));
      return;
    }
    const def = options.default;
    select.append(el("option", { value: "", text: def ? `Default: ${def}` : "No reachable channel" }));
    for (const o of options.options) {
      select.append(el("option", { value: o.channel, disabled: !o.available || null, text: `${o.channel} to ${o.address}${o.available ? "" : " (" + o.note + ")"}` }));
    }
    $("channel-reason").textContent = "Why: " + (options.reason || "");
    $("channel-notes").textContent = options.options.filter((o) => o.note).map((o) => `${o.channel}: ${o.note}`).join("; ");
    const transfer = $("transfer-queue");
    if (!transfer.options.length) {
      api("GET", "/api/v1/queues").then((q) => {
        transfer.replaceChildren(...q.items.filter((x) => x.active).map((x) => el("option", { value: x.code, text: x.name })));
      }).catch(() => {});
    }
    updateLength();
  }

  function currentChannel() {
    const entry = state.open.get(state.active);
    return $("reply-channel").value || (entry && entry.options && entry.options.default) || "";
  }

  function updateLength() {
    const text = $("reply-text").value;
    const out = $("sms-length");
    if (currentChannel() !== "sms" || !text) { out.textContent = ""; out.className = "small"; return; }
    const s = smsSegments(text);
    out.textContent = `SMS: ${s.length} characters (${s.encoding}), ${s.segments} segment${s.segments > 1 ? "s" : ""}` +
      (s.segments > 1 ? ". Long texts arrive split and cost more; consider shortening." : "");
    out.className = s.segments > 1 ? "small warn" : "small";
  }

  $("reply-text").addEventListener("input", updateLength);
  $("reply-channel").addEventListener("change", updateLength);
  $("reply-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("composer").requestSubmit(); }
  });

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError();
    const entry = state.open.get(state.active);
    const text = $("reply-text").value.trim();
    if (!entry || !text) { showError(new Error("Write a reply first.")); $("reply-text").focus(); return; }
    const body = { text };
    if ($("reply-channel").value) body.channel = $("reply-channel").value;
    if (state.kbPick) { body.kb_article_id = state.kbPick.article_id; body.kb_version = state.kbPick.version; }
    const button = $("send-reply");
    button.disabled = true;
    try {
      const item = await api("POST", `/api/v1/tickets/${entry.ticket.id}/reply`, body);
      upsert(entry.ticket.id, item);
      $("reply-text").value = "";
      state.kbPick = null;
      $("kb-used").textContent = "";
      updateLength();
      announce(`Reply queued by ${item.channel}`);
    } catch (err) { showError(err); } finally { button.disabled = false; }
  });

  $("note-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const entry = state.open.get(state.active);
    const text = $("note-text").value.trim();
    if (!entry || !text) return;
    try {
      const item = await api("POST", `/api/v1/tickets/${entry.ticket.id}/notes`, { text });
      upsert(entry.ticket.id, item);
      $("note-text").value = "";
      announce("Note added");
    } catch (err) { showError(err); }
  });

  // ---------- knowledge base ----------
  function renderKb(entry) {
    const list = $("kb-list");
    list.replaceChildren(...entry.kb.map((s, i) => el("li", {},
      el("span", { class: "item-title", text: `${s.title} (v${s.version})` }),
      el("span", { class: "kb-snippet", text: s.snippet || "" }), " ",
      el("button", { type: "button", "data-kb": i, onclick: () => insertKb(s), "aria-label": `Insert answer: ${s.title}` }, "Insert"))));
    $("kb-empty").hidden = entry.kb.length > 0;
    $("kb-empty").textContent = features.kb_suggestions ? "No suggestions." : "The knowledge base is not available.";
  }

  function insertKb(s) {
    const box = $("reply-text");
    box.value = box.value ? box.value.replace(/\s*$/, "\n\n") + s.text : s.text;
    state.kbPick = { article_id: s.article_id, version: s.version };
    $("kb-used").textContent = `Using “${s.title}” (article ${s.article_id}, version ${s.version}).`;
    updateLength();
    box.focus();
    announce(`Inserted ${s.title}`);
  }

  // ---------- citizen ----------
  function renderCitizen(entry) {
    const c = entry.ticket.citizen || {};
    const p = c.profile || {};
    const panel = $("citizen-panel");
    const dl = el("dl");
    const add = (term, ...values) => { dl.append(el("dt", { text: term }), el("dd", {}, ...values)); };
    add("Name", c.display_name || "(unknown)");
    add("Kind and segment", [c.kind, c.segment, c.age_band, c.region].filter(Boolean).join(" · ") || "not known");
    add("Language", p.language || c.language || "not known");
    add("Accessibility", ...(p.accessibility && p.accessibility.length ? p.accessibility.map((n) => el("span", { class: "tag", text: n.replace(/_/g, " ") })) : ["none recorded"]));
    const contacts = el("ul", { class: "list" }, ...(c.contact_points || []).map((cp) => el("li", {},
      el("span", { class: "item-title", text: `${cp.kind}: ${cp.value}` }),
      el("span", { class: cp.opted_out ? "tag bad" : "tag", text: cp.opted_out ? "opted out" + (cp.opted_out_at ? " " + when(cp.opted_out_at) : "") : "consent to contact" }),
      el("span", { class: "tag", text: cp.verified ? "verified" : "not verified" }))));
    add("Contact points", contacts);
    add("Channel preferences", (p.preferred_channels || []).join(" › ") || "none stated");
    if (entry.options) add("Why this reply channel", entry.options.reason || "no reachable channel");
    const stats = p.channel_stats || {};
    const csat = Object.entries(stats).filter(([, v]) => v && v.csat_n).map(([ch, v]) => `${ch} ${(v.csat_sum / v.csat_n).toFixed(1)}/5 (${v.csat_n})`);
    add("Satisfaction", csat.join(", ") || "no surveys yet");
    const past = el("ul", { class: "list" }, ...entry.past.filter((t) => t.id !== entry.ticket.id).map((t) => el("li", {},
      el("button", { type: "button", class: "secondary", onclick: () => openTicket(t.id), "aria-label": `Open past ticket ${t.reference}` }, t.reference),
      el("span", { class: "small", text: ` ${t.channel} · ${t.status}${t.satisfaction ? " · " + t.satisfaction + "/5" : ""}` }),
      el("span", { class: "item-title small", text: t.subject || "" }))));
    add("Past tickets", past.childElementCount ? past : "none");
    panel.replaceChildren(dl);
  }

  // ---------- ticket actions ----------
  async function changeTicket(path, method, body, message) {
    const entry = state.open.get(state.active);
    if (!entry) return;
    clearError();
    try {
      const t = await api(method, path.replace("{id}", entry.ticket.id), body);
      Object.assign(entry.ticket, t);
      renderTicket(entry);
      announce(message);
      reloadSoon();
    } catch (err) { showError(err); }
  }

  $("transfer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = { queue: $("transfer-queue").value, reason: $("transfer-reason").value };
    if (features.transfer) changeTicket("/api/v1/tickets/{id}/transfer", "POST", body, `Transferred to ${body.queue}`);
    else changeTicket("/api/v1/tickets/{id}", "PATCH", { queue: body.queue }, `Moved to ${body.queue}`);
  });
  $("wrapup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const disposition = $("disposition").value;
    if (features.complete) changeTicket("/api/v1/tickets/{id}/complete", "POST", { disposition }, `Wrapped up: ${disposition}`);
    else changeTicket("/api/v1/tickets/{id}", "PATCH", { status: "resolved" }, "Resolved");
  });
  $("resolve-btn").addEventListener("click", () => changeTicket("/api/v1/tickets/{id}", "PATCH", { status: "resolved" }, "Resolved"));
  $("close-btn").addEventListener("click", () => changeTicket("/api/v1/tickets/{id}", "PATCH", { status: "closed" }, "Closed"));
  $("pending-btn").addEventListener("click", () => changeTicket("/api/v1/tickets/{id}", "PATCH", { status: "pending_citizen" }, "Waiting on the resident"));
  $("close-tab").addEventListener("click", () => { if (state.active) closeTab(state.active); });

  // ---------- live updates ----------
  function upsert(ticketId, item) {
    const entry = state.open.get(ticketId);
    if (!entry) return;
    const isNew = !entry.timeline.has(item.id);
    entry.timeline.set(item.id, { ...(entry.timeline.get(item.id) || {}), ...item });
    if (state.active === ticketId) {
      const list = $("timeline");
      const node = renderEntry(entry.timeline.get(item.id));
      const old = document.getElementById("entry-" + item.id);
      if (old) old.replaceWith(node); else list.append(node);
      list.scrollTop = list.scrollHeight;
    } else if (isNew && item.direction === "inbound") {
      entry.unread += 1;
      renderTabs();
    }
  }

  async function onInteraction(data, kind) {
    const t = data.ticket || {};
    const summary = data.interaction || {};
    if (summary.channel === "voice" && summary.direction === "inbound") noteCall(t, summary);
    if (state.open.has(t.id)) {
      const entry = state.open.get(t.id);
      Object.assign(entry.ticket, { status: t.status, queue: t.queue, assigned_agent_id: t.assigned_agent_id });
      upsert(t.id, summary);
      try { upsert(t.id, await api("GET", `/api/v1/console/interactions/${summary.id}`)); } catch (e) { /* keep the summary */ }
      if (kind === "created" && summary.direction === "inbound") {
        announce(`New ${CHANNEL_NAMES[summary.channel] || summary.channel} message on ${t.reference}`);
        if (features.kb_suggestions && state.active === t.id) {
          api("GET", `/api/v1/kb/tickets/${t.id}/suggestions`).then((s) => { entry.kb = s.suggestions || []; if (state.active === t.id) renderKb(entry); }).catch(() => {});
        }
      }
    } else if (kind === "created" && summary.direction === "inbound") {
      announce(`New ${CHANNEL_NAMES[summary.channel] || summary.channel} message on ${t.reference || "a ticket"}`);
    }
    if (kind === "created") reloadSoon();
  }

  function noteCall(ticket, item) {
    state.calls.set(ticket.id, { ticket, item });
    renderCalls();
  }

  function renderCalls() {
    const list = $("calls");
    list.replaceChildren(...[...state.calls.values()].slice(-5).reverse().map(({ ticket, item }) => el("li", {},
      el("span", { class: "item-title", text: `${ticket.reference} · ${when(item.created_at)}` }),
      el("span", { class: "small", text: item.text || "" }), " ",
      el("button", { type: "button", class: "secondary", onclick: () => openTicket(ticket.id), "aria-label": `Open call ${ticket.reference}` }, "Open"))));
  }

  async function setupPhone() {
    const status = $("phone-status");
    if (!features.voice_token) {
      status.textContent = "No softphone in this deployment. Calls from the simulator appear here.";
      return;
    }
    let res;
    try {
      res = await api("GET", "/api/v1/voice/token");
    } catch (err) {
      status.textContent = features.simulator
        ? "Softphone not configured; calls placed in the resident simulator appear here."
        : "Softphone not configured; incoming calls appear here.";
      return;
    }
    try {
      // The Twilio Voice SDK is loaded only when this deployment can issue tokens.
      await new Promise((resolve, reject) => {
        const script = el("script", { src: root.dataset.voiceSdk });
        script.onload = resolve;
        script.onerror = reject;
        document.head.append(script);
      });
      const device = new window.Twilio.Device(res.token, { closeProtection: true });
      device.on("registered", () => { status.textContent = "Softphone ready."; });
      device.on("error", (e) => { status.textContent = "Softphone error: " + (e.message || e); });
      device.on("incoming", (call) => {
        status.textContent = "Incoming call.";
        announce("Incoming call. Use the Answer button.");
        const answer = el("button", { type: "button", onclick: () => { call.accept(); answer.remove(); reject.remove(); status.textContent = "On a call."; } }, "Answer");
        const reject = el("button", { type: "button", class: "secondary", onclick: () => { call.reject(); answer.remove(); reject.remove(); status.textContent = "Softphone ready."; } }, "Reject");
        status.after(answer, reject);
        call.on("disconnect", () => { answer.remove(); reject.remove(); status.textContent = "Softphone ready."; });
      });
      device.register();
      status.textContent = "Registering the softphone…";
    } catch (err) {
      status.textContent = "The softphone could not start; calls still appear here.";
    }
  }

  let socket = null;
  function connect() {
    if (!window.io) { $("connection").textContent = "Live updates unavailable"; return; }
    socket = window.io("/agent", { auth: { token } });
    socket.on("connect", () => {
      $("connection").textContent = "Live";
      for (const id of state.order) socket.emit("watch_ticket", { ticket_id: id });
      loadState();
    });
    socket.on("disconnect", () => { $("connection").textContent = "Reconnecting…"; });
    socket.on("connect_error", () => { $("connection").textContent = "Reconnecting…"; });
    socket.on("ticket.created", (t) => { announce(`New ticket ${t.reference} in ${t.queue || "intake"}`); reloadSoon(); });
    socket.on("interaction.created", (d) => onInteraction(d, "created"));
    socket.on("interaction.updated", (d) => onInteraction(d, "updated"));
    socket.on("offer.made", (o) => {
      announce(`New offer: ${o.ticket ? o.ticket.reference : "a ticket"}. Press Alt+A to accept.`);
      reloadSoon();
    });
    socket.on("offer.expired", () => { announce("An offer expired"); reloadSoon(); });
    socket.on("offer.withdrawn", () => reloadSoon());
    socket.on("ticket.assigned", (d) => {
      const t = d.ticket || d;
      if (t.assigned_agent_id === me.id) announce(`${t.reference} is assigned to you`);
      if (state.open.has(t.id)) { Object.assign(state.open.get(t.id).ticket, t); if (state.active === t.id) renderTicket(state.open.get(t.id)); }
      reloadSoon();
    });
    socket.on("ticket.updated", (t) => {
      if (state.open.has(t.id)) { Object.assign(state.open.get(t.id).ticket, t); if (state.active === t.id) renderTicket(state.open.get(t.id)); }
      reloadSoon();
    });
    socket.on("presence.changed", (d) => {
      if (d.agent_id === me.id) { setPresence(d.presence, d.presence_since || d.at); announce(`Presence: ${d.presence}`); }
    });
  }

  // ---------- keyboard ----------
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    const code = e.code || "";
    const is = (letter) => key === letter || code === "Key" + letter.toUpperCase();
    let handled = true;
    if (is("a") && state.offers[0]) respond(state.offers[0], "accept");
    else if (is("d") && state.offers[0]) respond(state.offers[0], "decline");
    else if (is("r") && state.active) $("reply-text").focus();
    else if (is("n") && state.active) $("note-text").focus();
    else if (is("k") && state.active) { const first = state.open.get(state.active).kb[0]; if (first) insertKb(first); }
    else if (is("p")) $("presence").focus();
    else if (is("q")) { const b = document.querySelector("#waiting button") || $("queues-h"); b.focus(); }
    else if (is("t") && state.active) { const last = $("timeline").lastElementChild; if (last) last.focus(); }
    else if (/^Digit[1-9]$/.test(code) || /^[1-9]$/.test(key)) {
      const n = Number(code ? code.slice(-1) : key) - 1;
      if (state.order[n]) { activate(state.order[n], false); $("tab-" + state.order[n]).focus(); }
    } else handled = false;
    if (handled) e.preventDefault();
  });
  $("shortcuts-link").addEventListener("click", (e) => { e.preventDefault(); $("shortcuts").focus(); });

  setInterval(tickCountdowns, 1000);
  setInterval(loadState, 30000);
  loadState();
  setupPhone();
  connect();
  window.civicline = { state, openTicket };
})();
