// StreamForest live page: plays a local file or the webcam, samples frames at the session's rate (canvas →
// JPEG), sends them over the session WebSocket (8-byte little-endian float64 time + JPEG), asks questions,
// adds standing questions and shows answers and alerts as they arrive. Protocol: streamforest/serve/protocol.py.
"use strict";
const $ = (id) => document.getElementById(id);
const MAX_WIDTH = 640;
const S = { sid: null, ws: null, timer: null, poll: null, sent: 0, dropped: 0, lastT: -1, live: false, t0: 0,
            next: 1, pending: new Map(), starting: null };

function authHeaders() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}
function notice(text) { $("notice").textContent = text || ""; }
function setConn(on, text) { const c = $("conn"); c.textContent = text; c.classList.toggle("on", on); }
function updateStatus() {
  $("sent").textContent = S.sent; $("dropped").textContent = S.dropped;
  $("session").textContent = S.sid ? S.sid.slice(0, 8) : "none";
}
function fmt(t) { return (typeof t === "number" ? t.toFixed(1) : "?") + " s"; }
function addItem(list, html, cls) {
  const li = document.createElement("li"); if (cls) li.className = cls; li.innerHTML = html;
  $(list).appendChild(li); li.scrollIntoView({ block: "end" }); return li;
}
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

async function startSession() {
  if (S.sid) return;
  if (S.starting) return S.starting;
  S.starting = (async () => {
    const fps = Number($("fps").value) || 1;
    const r = await fetch("/v1/sessions", { method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ mode: $("mode").value, fps_hint: fps }) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || r.statusText);
    S.sid = body.id; S.sent = 0; S.dropped = 0; S.lastT = -1; updateStatus();
    await openSocket(S.sid);
    S.timer = setInterval(sampleFrame, 1000 / fps);
    S.poll = setInterval(() => send({ type: "stats" }), 2000);
    $("stop").disabled = false;
  })();
  try { await S.starting; } catch (e) { notice("could not start a session: " + e.message); S.sid = null; }
  finally { S.starting = null; }
}

function openSocket(sid) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const token = $("token").value.trim();  // browsers cannot set headers on a WebSocket: the token rides as a subprotocol
  const url = `${proto}://${location.host}/v1/sessions/${sid}/ws`;
  return new Promise((resolve, reject) => {
    const ws = token ? new WebSocket(url, ["bearer", token]) : new WebSocket(url); ws.binaryType = "arraybuffer";
    ws.onopen = () => { S.ws = ws; setConn(true, "streaming"); resolve(); };
    ws.onerror = () => reject(new Error("WebSocket failed"));
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      setConn(false, "offline");
      if (ev.code !== 1000 && ev.code !== 1005) notice(`connection closed (${ev.code}): ${ev.reason || "server went away"}`);
      if (S.ws === ws) stopSession(false);
    };
  });
}

async function stopSession(remove = true) {
  clearInterval(S.timer); clearInterval(S.poll); S.timer = S.poll = null;
  const sid = S.sid, ws = S.ws; S.sid = null; S.ws = null;
  $("watches").innerHTML = ""; $("stop").disabled = true; updateStatus();
  if (ws && ws.readyState <= 1) ws.close(1000);
  if (remove && sid) await fetch(`/v1/sessions/${sid}`, { method: "DELETE", headers: authHeaders() }).catch(() => {});
}

function send(msg) {
  if (!S.ws || S.ws.readyState !== 1) return null;
  const id = S.next++; S.ws.send(JSON.stringify({ ...msg, id })); return id;
}

function streamTime() {
  const v = $("video");
  return S.live ? (performance.now() - S.t0) / 1000 : v.currentTime;
}

function sampleFrame() {
  const v = $("video");
  if (!S.ws || S.ws.readyState !== 1 || v.paused || v.ended || v.readyState < 2 || !v.videoWidth) return;
  const t = streamTime();
  if (t <= S.lastT) {  // stream time only moves forward: a seek back needs a new session
    if (t < S.lastT - 0.5) notice("the video went back in time; frames resume after " + fmt(S.lastT) + " (pick the file again for a new stream)");
    return;
  }
  const c = $("canvas");
  if (!c.width) {  // fixed for the whole session: every frame of a stream has the first frame's size
    const scale = Math.min(1, MAX_WIDTH / v.videoWidth);
    c.width = Math.round(v.videoWidth * scale); c.height = Math.round(v.videoHeight * scale);
  }
  c.getContext("2d").drawImage(v, 0, 0, c.width, c.height);
  S.lastT = t;
  c.toBlob(async (blob) => {
    if (!blob || !S.ws || S.ws.readyState !== 1) return;
    const jpeg = new Uint8Array(await blob.arrayBuffer());
    const msg = new Uint8Array(8 + jpeg.length);
    new DataView(msg.buffer).setFloat64(0, t, true); msg.set(jpeg, 8);
    S.ws.send(msg); S.sent++; updateStatus();
  }, "image/jpeg", 0.85);
}

function onMessage(m) {
  if (m.type === "answer") {
    const li = S.pending.get(m.id); S.pending.delete(m.id);
    const html = `<div class="a">${esc(m.answer) || "<i>(empty answer)</i>"}</div><div class="meta">at ${fmt(m.time)} · ` +
      `${m.num_frames} frames up to ${fmt(m.frame_time)} · ${Math.round(m.latency_ms)} ms · ${m.new_tokens} tokens</div>`;
    if (li) li.insertAdjacentHTML("beforeend", html); else addItem("answers", html);
    $("latency").textContent = Math.round(m.latency_ms) + " ms";
  } else if (m.type === "alert") {
    addItem("alerts", `<b>${fmt(m.time)}</b> ${esc(m.question)} <span class="meta">p=${Number(m.probability).toFixed(2)}</span>` +
      (m.answer ? ` — ${esc(m.answer)}` : ""));
  } else if (m.type === "watching") {
    const li = document.createElement("li"); li.dataset.id = m.watch_id;
    li.innerHTML = `<span>${esc(m.question)}</span><button title="remove" aria-label="remove">×</button>`;
    li.querySelector("button").onclick = () => { send({ type: "unwatch", watch_id: m.watch_id }); li.remove(); };
    $("watches").appendChild(li);
  } else if (m.type === "dropped") {
    S.dropped = m.frames_dropped; updateStatus();
  } else if (m.type === "stats") {
    S.dropped = m.stats.server.frames_dropped; updateStatus();
  } else if (m.type === "error") {
    const li = S.pending.get(m.id);
    if (li) { li.insertAdjacentHTML("beforeend", `<div class="err">${esc(m.message)}</div>`); S.pending.delete(m.id); }
    else notice(m.message);
  }
}

async function useSource(setup) {
  await stopSession(); notice(""); $("canvas").width = 0;
  const v = $("video"); v.pause(); v.srcObject = null; v.removeAttribute("src");
  await setup(v);
  $("placeholder").classList.add("hidden");
  await v.play().catch((e) => notice("cannot play: " + e.message));
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0]; if (!file) return;
  useSource((v) => { S.live = false; v.src = URL.createObjectURL(file); v.loop = false; });
});
$("webcam").addEventListener("click", () => useSource(async (v) => {
  try { v.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false }); S.live = true; S.t0 = performance.now(); }
  catch (e) { notice("no webcam: " + e.message); }
}));
$("video").addEventListener("playing", startSession);
$("stop").addEventListener("click", () => stopSession());
$("ask-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("question").value.trim(); if (!q) return;
  if (!S.ws) { notice("start a video or the webcam first"); return; }
  const id = send({ type: "ask", question: q, follow_up: $("follow").checked });
  S.pending.set(id, addItem("answers", `<div class="q">${esc(q)}</div>`)); $("question").value = "";
});
$("watch-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("watch-question").value.trim(); if (!q) return;
  if (!S.ws) { notice("start a video or the webcam first"); return; }
  send({ type: "watch", question: q, threshold: Number($("threshold").value) }); $("watch-question").value = "";
});
window.addEventListener("beforeunload", () => { if (S.sid) navigator.sendBeacon && stopSession(); });
