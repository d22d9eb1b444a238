// Resident simulator: a phone in the browser. Requests are signed by the server
// (/simulator/twilio/sign) and posted to the real Twilio webhooks; the TwiML answers
// are played here the way Twilio would play them.
(function () {
  "use strict";
  const root = document.getElementById("simulator");
  if (!root) return;
  const cfg = { account: root.dataset.account, city: root.dataset.city };
  const $ = (id) => document.getElementById(id);

  // --- Tabs (any channel's tab works the same way) --------------------------------
  const tabs = Array.from(root.querySelectorAll('[role="tab"]'));
  function selectTab(tab) {
    tabs.forEach((t) => {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    tab.focus();
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") selectTab(tabs[(i + 1) % tabs.length]);
      if (e.key === "ArrowLeft") selectTab(tabs[(i - 1 + tabs.length) % tabs.length]);
    });
  });

  // --- Signed requests --------------------------------------------------------------
  function sid(prefix) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  const number = () => $("sim-number").value.trim();

  async function twilioPost(url, params) {
    const u = new URL(url, location.origin);
    const path = u.pathname + u.search;
    const signed = await fetch("/simulator/twilio/sign", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path, params }),
    }).then((r) => r.json());
    const response = await fetch(path, {
      method: "POST",
      headers: { "X-Twilio-Signature": signed.signature },
      body: new URLSearchParams(params),
    });
    return { status: response.status, text: await response.text() };
  }

  // --- SMS --------------------------------------------------------------------------
  const smsLog = $("sms-log");
  let lastOutboxId = 0;
  let history = true; // the next poll also asks for the texts this phone sent
  function addSms(direction, text) {
    const li = document.createElement("li");
    li.dataset.direction = direction;
    li.textContent = text;
    li.setAttribute("aria-label", (direction === "out" ? "You: " : "CivicLine: ") + text);
    smsLog.appendChild(li);
    smsLog.scrollTop = smsLog.scrollHeight;
  }
  $("sms-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = $("sms-body").value;
    if (!body.trim()) return;
    addSms("out", body);
    $("sms-body").value = "";
    $("sms-status").textContent = "Sending…";
    const r = await twilioPost("/webhooks/twilio/sms", {
      MessageSid: sid("SM"), AccountSid: cfg.account, From: number(), To: cfg.city,
      Body: body, NumMedia: "0", SmsStatus: "received", ApiVersion: "2010-04-01",
    });
    $("sms-status").textContent = r.status === 200 ? "Delivered to CivicLine." : "Not accepted (" + r.status + ").";
    playMessages(r.text);
  });
  function playMessages(xml) {
    const doc = new DOMParser().parseFromString(xml, "text/xml");
    doc.querySelectorAll("Message").forEach((m) => addSms("in", m.textContent));
  }
  async function poll() {
    try {
      const asked = history;
      const r = await fetch("/simulator/phone/messages?number=" + encodeURIComponent(number()) + "&after=" + lastOutboxId + (asked ? "&history=1" : ""));
      if (r.ok) {
        const data = await r.json();
        if (asked) history = false;
        // The first answer also holds the texts this phone sent (a reload shows them).
        data.items.forEach((item) => { lastOutboxId = Math.max(lastOutboxId, item.id); addSms(item.direction || "in", item.text); });
      }
    } catch (err) { /* the server restarted: try again on the next tick */ }
    setTimeout(poll, 1000);
  }
  $("sim-number").addEventListener("change", () => { lastOutboxId = 0; history = true; smsLog.textContent = ""; });
  poll();

  // --- Voice: play TwiML like Twilio ------------------------------------------------
  const call = { sid: null, started: 0, queue: null, gather: null, record: null, waitTimer: null, ended: true };
  const callLog = $("call-log");
  function line(text, lang) {
    const li = document.createElement("li");
    li.dataset.direction = "line";
    if (lang) li.lang = lang.slice(0, 2);
    li.textContent = text;
    callLog.appendChild(li);
    callLog.scrollTop = callLog.scrollHeight;
  }
  function status(text) { $("call-status").textContent = text; }
  function params(extra) {
    return Object.assign({
      CallSid: call.sid, AccountSid: cfg.account, From: number(), To: cfg.city,
      Direction: "inbound", CallStatus: "in-progress", ApiVersion: "2010-04-01",
    }, extra || {});
  }
  function showInput(gather) {
    call.gather = gather;
    $("call-input").hidden = !gather;
    if (!gather) return;
    const input = gather.getAttribute("input") || "dtmf";
    $("call-keypad").hidden = !input.includes("dtmf");
    $("call-speech").hidden = !input.includes("speech");
  }
  async function request(url, extra) {
    if (call.ended) return;
    const r = await twilioPost(url, params(extra));
    if (r.status !== 200) { line("(The line answered " + r.status + ".)"); return endCall(false); }
    await play(r.text);
  }
  async function play(xml) {
    const doc = new DOMParser().parseFromString(xml, "text/xml");
    const verbs = Array.from(doc.documentElement.children);
    await run(verbs);
  }
  async function run(verbs) {
    for (let i = 0; i < verbs.length; i++) {
      if (call.ended) return;
      const verb = verbs[i];
      switch (verb.tagName) {
        case "Say": say(verb); break;
        case "Play": if (!call.inWaitDoc) line("(music)"); break;
        case "Gather":
          Array.from(verb.children).forEach((child) => { if (child.tagName === "Say") say(child); });
          verb.rest = verbs.slice(i + 1);
          showInput(verb);
          if (call.queue) call.waitTimer = setTimeout(() => fetchWait(), 3000);
          return;
        case "Redirect": return request(verb.textContent.trim());
        case "Enqueue":
          call.queue = { action: verb.getAttribute("action"), waitUrl: verb.getAttribute("waitUrl"), since: Date.now() };
          status("On hold in the " + verb.textContent.trim() + " queue.");
          return fetchWait();
        case "Record":
          call.record = verb;
          $("call-record").hidden = false;
          status("Recording a voicemail.");
          return;
        case "Dial":
          call.queue = null;
          clearTimeout(call.waitTimer);
          status("Connected to " + verb.textContent.trim() + ".");
          $("call-hold").textContent = "";
          return;
        case "Hangup": return endCall(true);
        case "Leave": call.queue = null; break;
        default: break;
      }
    }
    if (call.queue) { call.waitTimer = setTimeout(() => fetchWait(), 3000); return; }
    return endCall(true);
  }
  function say(verb) {
    const text = verb.textContent.trim();
    if (call.inWaitDoc) call.holdText.push(text); else line(text, verb.getAttribute("language"));
  }
  async function fetchWait() {
    if (!call.queue || call.ended) return;
    const waited = Math.round((Date.now() - call.queue.since) / 1000);
    showInput(null);
    call.inWaitDoc = true;
    call.holdText = [];
    try {
      await request(call.queue.waitUrl, { QueueTime: String(waited), QueueSid: "QU" + "0".repeat(32) });
    } finally {
      call.inWaitDoc = false;
      if (call.holdText.length && call.queue) $("call-hold").textContent = call.holdText.join(" ");
    }
  }
  async function answerGather(extra) {
    const gather = call.gather;
    if (!gather || call.ended) return;
    clearTimeout(call.waitTimer);
    showInput(null);
    await request(gather.getAttribute("action"), extra);
  }
  root.querySelectorAll("[data-digit]").forEach((button) => {
    button.addEventListener("click", () => {
      line("You pressed " + button.dataset.digit + ".");
      answerGather({ Digits: button.dataset.digit });
    });
  });
  $("call-speech").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("call-speech-text").value.trim();
    if (!text) return;
    $("call-speech-text").value = "";
    line("You said: " + text);
    answerGather({ SpeechResult: text, Confidence: "0.91" });
  });
  $("call-silent").addEventListener("click", async () => {
    const gather = call.gather;
    if (!gather) return;
    showInput(null);
    if (gather.getAttribute("actionOnEmptyResult") === "true") return request(gather.getAttribute("action"));
    await run(gather.rest || []);
  });
  $("call-record").addEventListener("submit", async (e) => {
    e.preventDefault();
    const record = call.record;
    if (!record) return;
    const text = $("call-record-text").value.trim();
    $("call-record").hidden = true;
    $("call-record-text").value = "";
    const recordingSid = sid("RE");
    const recordingUrl = location.origin + "/simulator/recordings/" + recordingSid;
    const extra = { RecordingSid: recordingSid, RecordingUrl: recordingUrl,
      RecordingDuration: String(Math.max(1, Math.round(text.length / 12))), Digits: "#" };
    call.record = null;
    line("You left a voicemail.");
    await request(record.getAttribute("action"), extra);
    if (record.getAttribute("transcribeCallback")) {
      await twilioPost(record.getAttribute("transcribeCallback"), {
        CallSid: call.sid || extra.CallSid, AccountSid: cfg.account, From: number(), To: cfg.city,
        RecordingSid: recordingSid, RecordingUrl: recordingUrl, TranscriptionSid: sid("TR"),
        TranscriptionText: text, TranscriptionStatus: "completed",
      });
    }
  });
  async function endCall(byLine) {
    if (call.ended) return;
    const callSid = call.sid;
    const duration = String(Math.round((Date.now() - call.started) / 1000));
    call.ended = true;
    clearTimeout(call.waitTimer);
    showInput(null);
    $("call-record").hidden = true;
    $("call-hangup").disabled = true;
    $("call-start").disabled = false;
    $("call-hold").textContent = "";
    status("Ending the call…");
    const base = { CallSid: callSid, AccountSid: cfg.account, From: number(), To: cfg.city, Direction: "inbound" };
    if (call.queue) {
      const waited = String(Math.round((Date.now() - call.queue.since) / 1000));
      const action = call.queue.action;
      call.queue = null;
      await twilioPost(action, Object.assign({}, base, { QueueResult: "hangup", QueueTime: waited }));
    }
    await twilioPost("/webhooks/twilio/voice/call-status",
      Object.assign({}, base, { CallStatus: "completed", CallDuration: duration }));
    status(byLine ? "The call ended." : "You hung up.");
  }
  $("call-start").addEventListener("click", async () => {
    callLog.textContent = "";
    Object.assign(call, { sid: sid("CA"), started: Date.now(), queue: null, gather: null, record: null, ended: false });
    $("call-start").disabled = true;
    $("call-hangup").disabled = false;
    status("Calling " + cfg.city + "…");
    const r = await twilioPost("/webhooks/twilio/voice", params({ CallStatus: "ringing" }));
    status("In a call.");
    if (r.status !== 200) { line("(The line answered " + r.status + ".)"); return endCall(false); }
    await play(r.text);
  });
  $("call-hangup").addEventListener("click", () => endCall(false));
})();
