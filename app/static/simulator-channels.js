// Resident simulator: the email, web chat and walk-in tabs.
// Email is sent through the real email webhook (the server signs it with the webhook
// secret); the inbox polls the simulator outbox. Chat and kiosk are the real pages.
(function () {
  "use strict";
  const root = document.getElementById("simulator");
  if (!root) return;

  // Load the embedded pages only when their tab is first opened.
  ["tab-chat", "tab-walkin"].forEach((id) => {
    const tab = document.getElementById(id);
    tab.addEventListener("click", () => {
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      const frame = panel && panel.querySelector("iframe[data-src]");
      if (frame && !frame.src) frame.src = frame.dataset.src;
    });
  });

  const form = document.getElementById("mail-form");
  const status = document.getElementById("mail-status");
  const inbox = document.getElementById("mail-inbox");
  const from = document.getElementById("mail-from");
  const subject = document.getElementById("mail-subject");
  const body = document.getElementById("mail-body");
  let lastSeen = 0;

  function addMail(item) {
    const li = document.createElement("li");
    li.dataset.direction = "in";
    const title = document.createElement("strong");
    title.textContent = item.subject || "(no subject)";
    const text = document.createElement("div");
    text.textContent = item.text;
    const reply = document.createElement("button");
    reply.type = "button";
    reply.textContent = "Reply";
    reply.setAttribute("aria-label", "Reply to " + (item.subject || "this email"));
    reply.addEventListener("click", () => {
      subject.value = /^re:/i.test(item.subject || "") ? item.subject : "Re: " + (item.subject || "");
      body.focus();
    });
    li.append(title, text, reply);
    inbox.append(li);
  }

  async function poll() {
    try {
      const url = "/simulator/email/messages?address=" + encodeURIComponent(from.value) +
        "&after=" + lastSeen;
      const r = await fetch(url);
      if (r.ok) {
        const data = await r.json();
        data.items.forEach((item) => { addMail(item); lastSeen = Math.max(lastSeen, item.id); });
      }
    } catch (e) { /* the next poll tries again */ }
  }

  from.addEventListener("change", () => { inbox.textContent = ""; lastSeen = 0; poll(); });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "Sending…";
    const r = await fetch("/simulator/email/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ from: from.value, subject: subject.value, body: body.value }),
    });
    const data = await r.json();
    if (r.ok) {
      status.textContent = "Sent. Ticket " + (data.ticket || "") + ".";
      body.value = "";
    } else {
      status.textContent = "Not sent: " + ((data.error && data.error.message) || r.status);
    }
  });

  setInterval(poll, 1500);
  poll();
})();
