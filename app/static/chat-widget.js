/* CivicLine web chat widget. Embed with:
 *   <script src="https://<civicline host>/chat-widget.js" async></script>
 * It renders into <div id="civicline-chat"> when the page has one, else at the end of the
 * page. Keyboard and screen-reader friendly: labelled fields, the conversation is an
 * aria-live log, errors are alerts, and focus moves to the message box when the chat
 * opens. The resumable session token is kept in localStorage, so a reload or a lost
 * connection resumes the whole conversation; unacknowledged messages are resent with
 * their client ids and the server stores each once. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var TOKEN = "civicline.chat.token";
  var PENDING = "civicline.chat.pending";
  var LANGUAGES = [["en", "English"], ["es", "Español"], ["zh", "中文"], ["vi", "Tiếng Việt"],
    ["ko", "한국어"], ["ru", "Русский"], ["ar", "العربية"], ["tl", "Tagalog"], ["fr", "Français"]];

  var CSS = [
    ".clc{font-family:system-ui,sans-serif;max-width:32rem;border:2px solid #1a4480;border-radius:8px;padding:1rem;background:#fff;color:#1b1b1b}",
    ".clc h2{margin:0 0 .5rem;font-size:1.25rem}",
    ".clc label{display:block;font-weight:600;margin-top:.5rem}",
    ".clc input,.clc select,.clc textarea{font:inherit;width:100%;box-sizing:border-box;padding:.4rem}",
    ".clc button{font:inherit;background:#005ea2;color:#fff;border:0;border-radius:4px;padding:.45rem .9rem;margin:.5rem .4rem 0 0;cursor:pointer}",
    ".clc button.clc-secondary{background:#fff;color:#005ea2;border:2px solid #005ea2}",
    ".clc :focus{outline:3px solid #ffbe2e;outline-offset:2px}",
    ".clc-log{height:18rem;overflow-y:auto;border:1px solid #a9aeb1;padding:.5rem;margin-bottom:.5rem}",
    ".clc-msg{margin:.35rem 0;padding:.4rem .6rem;border-radius:6px;white-space:pre-wrap;background:#f0f0f0}",
    ".clc-msg.clc-resident{background:#d9e8f6;margin-left:2rem}",
    ".clc-msg a{color:#005ea2;text-decoration:underline}",
    ".clc-msg.clc-pending{opacity:.7}",
    ".clc-who{font-weight:700;display:block}",
    ".clc-hint{color:#454545;font-size:.9rem;margin:.25rem 0}",
    ".clc-error{color:#b50909}",
    ".clc-visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}"
  ].join("\n");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "hidden") { node.hidden = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    if (text) { node.textContent = text; }
    return node;
  }

  // Markdown links ("[Read the full article](https://...)") and bare web addresses in a
  // message become links; everything else stays text. Only http(s) addresses qualify, and
  // nodes are built one by one (never HTML), so a message cannot inject markup.
  var LINK_RE = /\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)|(https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"])/g;

  function appendText(node, text) {
    var last = 0, m;
    LINK_RE.lastIndex = 0;
    while ((m = LINK_RE.exec(text)) !== null) {
      if (m.index > last) { node.appendChild(document.createTextNode(text.slice(last, m.index))); }
      var url = m[2] || m[3];
      node.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, m[1] || url));
      last = LINK_RE.lastIndex;
    }
    if (last < text.length) { node.appendChild(document.createTextNode(text.slice(last))); }
  }

  function uid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function store(key, value) {
    try {
      if (value === null) { localStorage.removeItem(key); } else { localStorage.setItem(key, value); }
    } catch (e) { /* private mode: the chat still works, without resume */ }
  }

  function load(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  function pending() {
    try { return JSON.parse(load(PENDING) || "[]"); } catch (e) { return []; }
  }

  function setPending(list) { store(PENDING, list.length ? JSON.stringify(list) : null); }

  function build() {
    var style = el("style");
    style.textContent = CSS;
    document.head.appendChild(style);
    var host = document.getElementById("civicline-chat");
    if (!host) { host = el("div", { id: "civicline-chat" }); document.body.appendChild(host); }
    var ui = {};
    var root = el("section", { "class": "clc", "aria-labelledby": "clc-title" });
    root.appendChild(el("h2", { id: "clc-title" }, "Chat with the city"));

    ui.start = el("form", { "class": "clc-start", novalidate: "" });
    ui.start.appendChild(el("p", { "class": "clc-hint" },
      "Everything here is optional. If you leave before we answer, we reply by email or text."));
    [["clc-name", "Name", "text", "name"], ["clc-email", "Email", "email", "email"],
      ["clc-phone", "Mobile number", "tel", "tel"]].forEach(function (f) {
      ui.start.appendChild(el("label", { "for": f[0] }, f[1]));
      ui.start.appendChild(el("input", { id: f[0], type: f[2], autocomplete: f[3] }));
    });
    ui.start.appendChild(el("label", { "for": "clc-language" }, "Language"));
    var select = el("select", { id: "clc-language" });
    LANGUAGES.forEach(function (l) { select.appendChild(el("option", { value: l[0], lang: l[0] }, l[1])); });
    ui.start.appendChild(select);
    ui.start.appendChild(el("button", { type: "submit" }, "Start chat"));

    ui.chat = el("div", { "class": "clc-chat", hidden: true });
    ui.log = el("div", { id: "clc-log", "class": "clc-log", role: "log", "aria-live": "polite",
      "aria-label": "Conversation", tabindex: "0" });
    ui.typing = el("p", { id: "clc-typing", "class": "clc-hint", "aria-live": "polite" });
    ui.status = el("p", { id: "clc-status", "class": "clc-hint", role: "status" });
    ui.send = el("form", { "class": "clc-send", novalidate: "" });
    ui.send.appendChild(el("label", { "for": "clc-input" }, "Your message"));
    ui.input = el("textarea", { id: "clc-input", rows: "2", maxlength: "2000",
      "aria-describedby": "clc-input-hint" });
    ui.send.appendChild(ui.input);
    ui.send.appendChild(el("p", { id: "clc-input-hint", "class": "clc-hint" },
      "Enter sends; Shift+Enter starts a new line."));
    ui.send.appendChild(el("button", { type: "submit" }, "Send"));
    ui.person = el("button", { type: "button", "class": "clc-secondary" }, "Talk to a person");
    ui.send.appendChild(ui.person);
    ui.transcript = el("form", { "class": "clc-transcript", novalidate: "" });
    ui.transcript.appendChild(el("label", { "for": "clc-transcript-email" }, "Email for a transcript"));
    ui.transcriptEmail = el("input", { id: "clc-transcript-email", type: "email", autocomplete: "email" });
    ui.transcript.appendChild(ui.transcriptEmail);
    ui.transcript.appendChild(el("button", { type: "submit", "class": "clc-secondary" }, "Email me the transcript"));
    ui.error = el("p", { id: "clc-error", "class": "clc-error", role: "alert" });
    [ui.log, ui.typing, ui.send, ui.transcript, ui.status].forEach(function (n) { ui.chat.appendChild(n); });
    root.appendChild(ui.start);
    root.appendChild(ui.chat);
    root.appendChild(ui.error);
    host.appendChild(root);
    return ui;
  }

  function start() {
    var ui = build();
    var socket = io(base + "/chat", { transports: ["websocket", "polling"] });
    var bound = false;
    var seen = {};
    var lastRead = 0;
    var typingTimer = null;
    var typingSent = 0;

    function showChat(focus) {
      ui.start.hidden = true;
      ui.chat.hidden = false;
      if (focus) { ui.input.focus(); }
    }

    function showStart() {
      ui.chat.hidden = true;
      ui.start.hidden = false;
      ui.start.querySelector("input").focus();
    }

    function label(m) {
      if (m.author === "resident") { return "You"; }
      if (m.author === "agent") { return m.name || "Agent"; }
      if (m.author === "bot") { return "City answers"; }
      return "CivicLine";
    }

    function render(m) {
      var byClient = m.client_id && ui.log.querySelector('[data-client-id="' + m.client_id + '"]');
      if (m.id && seen[m.id]) { return; }
      if (byClient) {
        if (!m.id) { return; }
        byClient.classList.remove("clc-pending");
        byClient.dataset.id = m.id;
        seen[m.id] = true;
        return;
      }
      var node = el("div", { "class": "clc-msg clc-" + m.author });
      if (m.id) { node.dataset.id = m.id; seen[m.id] = true; } else { node.classList.add("clc-pending"); }
      if (m.client_id) { node.dataset.clientId = m.client_id; }
      node.appendChild(el("span", { "class": "clc-who" }, label(m) + ":"));
      appendText(node, m.text || "");
      if (m.kb && m.id) { node.appendChild(helpfulButtons(m.id)); }
      ui.log.appendChild(node);
      ui.log.scrollTop = ui.log.scrollHeight;
      if (m.author !== "resident" && m.id) { markRead(m.id); }
    }

    function helpfulButtons(id) {
      var box = el("div", { "class": "clc-helpful", role: "group", "aria-label": "Was this helpful?" });
      box.appendChild(el("span", {}, "Was this helpful? "));
      [["Yes", true], ["No", false]].forEach(function (choice) {
        var button = el("button", { type: "button", "class": "clc-secondary" }, choice[0]);
        button.addEventListener("click", function () {
          socket.emit("chat.feedback", { interaction_id: id, helpful: choice[1] }, function (ack) {
            if (ack && ack.ok) {
              box.textContent = "Thank you for your feedback.";
            } else { error(ack && ack.error ? ack.error.message : "Feedback not sent."); }
          });
        });
        box.appendChild(button);
      });
      return box;
    }

    function markRead(id) {
      if (id <= lastRead || document.visibilityState === "hidden") { return; }
      lastRead = id;
      socket.emit("chat.read", { interaction_id: id });
    }

    function error(message) {
      ui.error.textContent = message || "";
    }

    function sendOne(p) {
      socket.emit("chat.message", { text: p.text, client_id: p.client_id }, function (ack) {
        var rest = pending().filter(function (q) { return q.client_id !== p.client_id; });
        setPending(rest);
        if (ack && ack.ok) {
          render(ack.message);
          return;
        }
        var bubble = ui.log.querySelector('[data-client-id="' + p.client_id + '"]');
        if (bubble) { bubble.remove(); }
        if (!ui.input.value) { ui.input.value = p.text; }
        ui.input.focus();
      });
    }

    function resumed(state) {
      ui.log.textContent = "";
      seen = {};
      lastRead = state.last_read_interaction_id || 0;
      state.messages.forEach(render);
      pending().forEach(function (p) {
        render({ client_id: p.client_id, author: "resident", text: p.text });
        sendOne(p);
      });
    }

    socket.on("connect", function () {
      var token = load(TOKEN);
      if (!token) { bound = false; showStart(); return; }
      socket.emit("chat.resume", { token: token }, function (state) {
        if (!state || !state.ok) {
          store(TOKEN, null);
          setPending([]);
          error("Your earlier chat has ended. Start a new one.");
          showStart();
          return;
        }
        var first = !bound && ui.chat.hidden;
        bound = true;
        showChat(first);
        error("");
        resumed(state);
      });
    });
    socket.on("disconnect", function () { ui.status.textContent = "Reconnecting…"; });
    socket.io.on("reconnect", function () { ui.status.textContent = ""; });
    socket.on("chat.message", render);
    socket.on("chat.error", function (e) { error(e.message); });
    socket.on("chat.typing", function (t) {
      ui.typing.textContent = t.typing ? (t.name || "An agent") + " is typing…" : "";
    });
    document.addEventListener("visibilitychange", function () {
      var last = ui.log.querySelector(".clc-msg:not(.clc-resident)[data-id]:last-of-type") ||
        Array.prototype.slice.call(ui.log.querySelectorAll(".clc-msg:not(.clc-resident)[data-id]")).pop();
      if (last) { markRead(Number(last.dataset.id)); }
    });

    ui.start.addEventListener("submit", function (event) {
      event.preventDefault();
      error("");
      socket.emit("chat.start", {
        name: ui.start.querySelector("#clc-name").value,
        email: ui.start.querySelector("#clc-email").value,
        phone: ui.start.querySelector("#clc-phone").value,
        language: ui.start.querySelector("#clc-language").value
      }, function (state) {
        if (!state || !state.ok) {
          var field = state && state.error && { invalid_email: "#clc-email", invalid_phone: "#clc-phone" }[state.error.code];
          if (field) { ui.start.querySelector(field).focus(); }
          return;
        }
        store(TOKEN, state.token);
        ui.transcriptEmail.value = ui.start.querySelector("#clc-email").value;
        bound = true;
        showChat(true);
        resumed(state);
      });
    });

    function submitMessage() {
      var text = ui.input.value.trim();
      if (!text) { error("Type a message first."); ui.input.focus(); return; }
      error("");
      var p = { client_id: uid(), text: text };
      setPending(pending().concat([p]));
      render({ client_id: p.client_id, author: "resident", text: text });
      ui.input.value = "";
      ui.input.focus();
      if (socket.connected && bound) { sendOne(p); }
      if (typingSent) { socket.emit("chat.typing", { typing: false }); typingSent = 0; }
    }

    ui.send.addEventListener("submit", function (event) { event.preventDefault(); submitMessage(); });
    ui.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submitMessage(); }
    });
    ui.input.addEventListener("input", function () {
      var now = Date.now();
      if (now - typingSent > 3000) { socket.emit("chat.typing", { typing: true }); typingSent = now; }
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        socket.emit("chat.typing", { typing: false });
        typingSent = 0;
      }, 4000);
    });
    ui.person.addEventListener("click", function () {
      socket.emit("chat.person", {}, function (ack) {
        if (ack && ack.ok) { ui.status.textContent = "You asked for a person. Reference " + ack.reference + "."; }
      });
    });
    ui.transcript.addEventListener("submit", function (event) {
      event.preventDefault();
      socket.emit("chat.transcript", { email: ui.transcriptEmail.value }, function (ack) {
        if (ack && ack.ok) { ui.status.textContent = "Transcript sent to " + ack.email + "."; }
      });
    });
  }

  function ready() {
    if (window.io) { start(); return; }
    var loader = document.createElement("script");
    loader.src = base + "/static/vendor/socket.io-4.8.4.min.js";
    loader.onload = start;
    document.head.appendChild(loader);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
