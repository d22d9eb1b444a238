/* CivicLine supervisor dashboard: live metrics pushed over Socket.IO, reports with charts.
 * Names and values from the server are written with textContent only. */
(function () {
  "use strict";

  const root = document.getElementById("supervisor");
  const token = document.querySelector('meta[name="api-token"]').content;
  const presences = JSON.parse(root.dataset.presences || "[]");
  const $ = (id) => document.getElementById(id);
  const charts = {};
  let agents = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(typeof c === "string" ? document.createTextNode(c) : c);
    return node;
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const res = await fetch(path, opts);
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error((data && data.error && data.error.message) || res.statusText);
    return data;
  }

  function showError(err) {
    const box = $("alert");
    box.textContent = err.message || String(err);
    box.hidden = false;
    setTimeout(() => { box.hidden = true; }, 8000);
  }

  function announce(text) { $("announcer").textContent = text; }

  const fmt = {
    secs: (v) => (v === null || v === undefined ? "–" : v >= 3600 ? `${(v / 3600).toFixed(1)} h` : v >= 60 ? `${Math.floor(v / 60)} min ${Math.round(v % 60)} s` : `${Math.round(v)} s`),
    pct: (v) => (v === null || v === undefined ? "–" : `${v}%`),
    num: (v) => (v === null || v === undefined ? "–" : String(v)),
  };

  function table(node, columns, rows, rowClass) {
    const head = el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null, text: c.label }))));
    const body = el("tbody", {}, ...rows.map((r) => el("tr", { class: rowClass ? rowClass(r) : null }, ...columns.map((c, i) => {
      const value = c.render ? c.render(r) : (c.fmt || fmt.num)(r[c.key]);
      const cell = el(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: c.num ? "num" : null });
      cell.append(typeof value === "string" ? document.createTextNode(value) : value);
      return cell;
    }))));
    node.replaceChildren(head, body);
  }

  // ---------- live ----------
  const LIVE_COLUMNS = (dim, label) => [
    { key: dim, label },
    { key: "waiting", label: "Waiting", num: true },
    { key: "longest_wait_seconds", label: "Longest wait", num: true, fmt: fmt.secs },
    { key: "answered", label: "Answered", num: true },
    { key: "asa_seconds", label: "ASA", num: true, fmt: fmt.secs },
    { key: "service_level_pct", label: "Service level", num: true, render: (r) => `${fmt.pct(r.service_level_pct)}${r.sla_target_seconds ? " in " + r.sla_target_seconds + " s" : ""}` },
    { key: "abandoned", label: "Abandoned", num: true },
    { key: "abandonment_pct", label: "Abandonment", num: true, fmt: fmt.pct },
    { key: "callbacks", label: "Callbacks", num: true },
    { key: "aht_seconds", label: "AHT", num: true, fmt: fmt.secs },
    { key: "sla_breaches", label: "SLA breaches", num: true, render: (r) => el("span", { class: r.sla_breaches ? "bad-value" : null, text: String(r.sla_breaches) }) },
  ];

  let lastBreaches = null;
  function renderSnapshot(s) {
    const t = s.totals;
    $("live-at").textContent = "updated " + new Date(s.at).toLocaleTimeString();
    $("t-waiting").textContent = t.waiting;
    $("t-longest").textContent = fmt.secs(t.longest_wait_seconds);
    $("t-asa").textContent = fmt.secs(t.asa_seconds);
    $("t-sl").textContent = fmt.pct(t.service_level_pct);
    $("t-abandon").textContent = fmt.pct(t.abandonment_pct);
    $("t-aht").textContent = fmt.secs(t.aht_seconds);
    $("t-occupancy").textContent = fmt.pct(s.occupancy_pct);
    $("t-breaches").textContent = t.sla_breaches;
    $("t-breaches").parentElement.classList.toggle("bad", t.sla_breaches > 0);
    $("t-contacts").textContent = t.contacts;
    $("t-answered").textContent = t.answered;
    table($("queue-table"), LIVE_COLUMNS("queue", "Queue"), s.queues);
    table($("channel-table"), LIVE_COLUMNS("channel", "Channel"), s.channels);
    if (lastBreaches !== null && t.sla_breaches > lastBreaches) announce(`SLA breaches now ${t.sla_breaches}`);
    lastBreaches = t.sla_breaches;
    const p = s.presence;
    $("presence-summary").textContent = `Available ${p.available} · busy ${p.busy} · wrap-up ${p.wrap_up} · away ${p.away} · offline ${p.offline}`;
    agents = s.agents;
    renderAgents(s.agents);
  }

  // A push must not replace the control a keyboard or screen-reader user is on: while
  // focus is inside the agents table, keep the latest list and draw it when focus leaves.
  let pendingAgents = null;
  $("agents-table").addEventListener("focusout", (e) => {
    if (pendingAgents && !$("agents-table").contains(e.relatedTarget)) {
      const list = pendingAgents;
      pendingAgents = null;
      renderAgents(list);
    }
  });

  function renderAgents(list) {
    if ($("agents-table").contains(document.activeElement)) { pendingAgents = list; return; }
    table($("agents-table"), [
      { key: "name", label: "Agent" },
      { key: "presence", label: "Presence", render: (a) => presenceMenu(a) },
      { key: "presence_seconds", label: "For", num: true, fmt: fmt.secs },
      { key: "work", label: "On", render: (a) => workList(a) },
    ], list);
  }

  function presenceMenu(agent) {
    const select = el("select", { "aria-label": `Presence of ${agent.name}`, "data-agent": agent.id },
      ...presences.map((p) => el("option", { value: p, text: p.replace("_", "-"), selected: p === agent.presence || null })));
    select.addEventListener("change", async () => {
      try {
        await api("PUT", `/api/v1/supervisor/agents/${agent.id}/presence`, { presence: select.value });
        announce(`${agent.name} is now ${select.value}`);
        select.blur();
      } catch (err) { showError(err); }
    });
    return select;
  }

  function workList(agent) {
    if (!agent.work.length) return "idle";
    const ul = el("ul", { class: "plain" });
    for (const w of agent.work) {
      const target = el("select", { "aria-label": `Reassign ${w.reference} to` },
        ...agents.filter((a) => a.id !== agent.id).map((a) => el("option", { value: a.id, text: a.name })));
      const button = el("button", { type: "button", class: "secondary", onclick: async () => {
        try {
          await api("POST", `/api/v1/supervisor/tickets/${w.ticket_id}/assign`, { agent_id: Number(target.value), reason: "reassigned by supervisor" });
          announce(`${w.reference} reassigned`);
        } catch (err) { showError(err); }
      } }, "Reassign");
      ul.append(el("li", {}, `${w.reference} (${w.channel}, ${fmt.secs(w.seconds)}) `, target, " ", button));
    }
    return ul;
  }

  async function loadSnapshot() {
    try { renderSnapshot(await api("GET", "/api/v1/supervisor/snapshot")); } catch (err) { showError(err); }
  }

  function connect() {
    if (!window.io) { $("connection").textContent = "Live updates unavailable"; return; }
    const socket = window.io("/supervisor", { auth: { token } });
    socket.on("connect", () => { $("connection").textContent = "Live"; });
    socket.on("disconnect", () => { $("connection").textContent = "Reconnecting…"; });
    socket.on("connect_error", () => { $("connection").textContent = "Reconnecting…"; });
    socket.on("metrics.snapshot", renderSnapshot);
  }

  // ---------- reports ----------
  function period() {
    const from = $("from").value, to = $("to").value;
    if (from) return `from=${from}${to ? "&to=" + to : ""}`;
    return `days=${$("days").value}`;
  }

  const PALETTE = ["#005ea2", "#c05600", "#00a398", "#8168b3", "#d83933", "#4d8055", "#565c65"];

  function chart(name, key, config, label) {
    const box = $(`r-${name}-charts`);
    const id = `c-${name}-${key}`;
    let canvas = document.getElementById(id);
    if (!canvas) {
      canvas = el("canvas", { id, role: "img", "aria-label": label });
      box.append(el("div", { class: "chart-box" }, canvas));
    }
    canvas.setAttribute("aria-label", label);
    if (charts[id]) charts[id].destroy();
    if (!window.Chart) return;
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { title: { display: true, text: label } } }, config.options || {});
    charts[id] = new window.Chart(canvas, config);
  }

  function bar(labels, datasets, stacked) {
    return { type: "bar", data: { labels, datasets: datasets.map((d, i) => ({ backgroundColor: PALETTE[i % PALETTE.length], ...d })) },
      options: stacked ? { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } : { scales: { y: { beginAtZero: true } } } };
  }

  const RENDER = {
    volume(d) {
      $("r-volume-summary").textContent = "Contacts: " + Object.entries(d.by_channel).map(([c, n]) => `${c} ${n}`).join(", ");
      chart("volume", "day", bar(d.by_day.map((r) => r.day), d.channels.map((c) => ({ label: c, data: d.by_day.map((r) => r[c]) })), true), "Contacts per day by channel");
      chart("volume", "hour", bar(d.by_hour.map((r) => `${r.hour}:00`), d.channels.map((c) => ({ label: c, data: d.by_hour.map((r) => r[c]) })), true), "Contacts by hour of day (UTC) and channel");
    },
    fcr(d) {
      $("r-fcr-summary").textContent = `First-contact resolution: ${fmt.pct(d.total.fcr_pct)} of ${d.total.resolved} resolved`;
      chart("fcr", "rate", bar(d.rows.map((r) => `${r.queue} / ${r.channel}`), [{ label: "FCR %", data: d.rows.map((r) => r.fcr_pct) }]), "First-contact resolution % by queue and channel");
    },
    satisfaction(d) {
      $("r-satisfaction-summary").textContent = `Satisfaction index ${fmt.num(d.total.satisfaction_index)} (0-100) from ${d.total.surveys} surveys`;
      for (const dim of ["channel", "queue"]) {
        const rows = d.rows.filter((r) => r.dimension === dim);
        chart("satisfaction", dim, bar(rows.map((r) => r.value), [{ label: "Index", data: rows.map((r) => r.satisfaction_index) }]), `Satisfaction index by ${dim}`);
      }
    },
    deflection(d) {
      $("r-deflection-summary").textContent = `Self-service deflection ${fmt.pct(d.total.deflection_pct)} of ${d.total.tickets} contacts`;
      chart("deflection", "rate", bar(d.rows.map((r) => r.channel), [{ label: "Deflection %", data: d.rows.map((r) => r.deflection_pct) }]), "Self-service deflection % by channel");
    },
    equity(d) {
      const flagged = d.rows.filter((r) => r.flagged);
      $("r-equity-summary").textContent = `Overall wait ${fmt.secs(d.overall.avg_wait_seconds)}, resolution ${d.overall.avg_resolution_hours ?? "–"} h. ` +
        (flagged.length ? `Gaps over ${d.gap_threshold_pct}%: ` + flagged.map((r) => `${r.dimension} ${r.value}`).join(", ") : "No gaps over the threshold.");
      for (const dim of ["channel", "language", "segment"]) {
        const rows = d.rows.filter((r) => r.dimension === dim);
        chart("equity", dim, bar(rows.map((r) => r.value), [{ label: "Average wait (s)", data: rows.map((r) => r.avg_wait_seconds) }, { label: "Average resolution (h)", data: rows.map((r) => r.avg_resolution_hours) }]), `Wait and resolution by ${dim}`);
      }
    },
  };

  async function loadReports() {
    const q = period();
    document.querySelectorAll("a.csv").forEach((a) => { a.href = `/api/v1/reports/${a.dataset.report}.csv?${q}`; });
    document.querySelectorAll("a.json").forEach((a) => { a.href = `/api/v1/reports/${a.dataset.report}?${q}`; });
    await Promise.all(Object.keys(RENDER).map(async (name) => {
      try {
        const d = await api("GET", `/api/v1/reports/${name}?${q}`);
        RENDER[name](d);
        table($(`r-${name}-table`), d.columns.map((c) => ({ key: c, label: c.replace(/_/g, " "),
          render: c === "flagged" ? (r) => (r.flagged ? el("span", { class: "flag", text: "gap" }) : "") : null })), d.rows,
          (r) => (r.flagged ? "flagged" : null));
      } catch (err) { showError(err); }
    }));
  }

  // The export links need the bearer token, so they download through fetch.
  document.querySelectorAll("a.csv").forEach((a) => a.addEventListener("click", async (e) => {
    e.preventDefault();
    try {
      const res = await fetch(a.href, { headers: { Authorization: "Bearer " + token } });
      if (!res.ok) throw new Error(`Export failed (${res.status})`);
      const url = URL.createObjectURL(await res.blob());
      const link = el("a", { href: url, download: `civicline-${a.dataset.report}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) { showError(err); }
  }));

  $("period").addEventListener("submit", (e) => { e.preventDefault(); loadReports(); });

  // ---------- audit ----------
  async function loadAudit() {
    const action = $("audit-action").value;
    try {
      const d = await api("GET", `/api/v1/audit?limit=50${action ? "&action=" + encodeURIComponent(action) : ""}`);
      table($("audit-table"), [
        { key: "at", label: "When", render: (r) => new Date(r.at).toLocaleString() },
        { key: "actor", label: "Who", render: (r) => r.actor || "system" },
        { key: "action", label: "Action" },
        { key: "object_id", label: "Record", render: (r) => `${r.object_type} ${r.object_id}` },
        { key: "detail", label: "Detail", render: (r) => JSON.stringify(r.detail) },
      ], d.items);
    } catch (err) { showError(err); }
  }
  $("audit-form").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(); });

  loadSnapshot();
  connect();
  loadReports();
  loadAudit();
  setInterval(loadReports, 5 * 60 * 1000);
})();
