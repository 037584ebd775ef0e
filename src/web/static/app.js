// spoolscribe web UI: shared helpers. No framework, no build step, no CDN.
// Every piece of data reaches the page through textContent (never innerHTML): names are text.
"use strict";
const S = {};
S.token = (() => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("spool-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname + location.search); }
  return sessionStorage.getItem("spool-token") || "";
})();
S.headers = () => (S.token ? { Authorization: "Bearer " + S.token } : {});
S.el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};
S.askToken = () => {
  const box = document.getElementById("tokenbox");
  if (box) box.classList.add("show");
};
S.saveToken = (value) => { sessionStorage.setItem("spool-token", value.trim()); location.reload(); };
S.api = async (path, opts = {}) => {
  const r = await fetch(path, { ...opts, headers: { ...S.headers(), ...(opts.headers || {}) } });
  if (r.status === 401) { S.askToken(); throw new Error("unauthorized"); }
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error && body.error.message) || r.statusText);
  return body;
};
// Server-Sent Events over fetch (EventSource cannot send a Bearer header); resumes by the last id.
S.sse = (url, onEvent, { resume = true } = {}) => {
  let last = null, stopped = false;
  const ctl = { stop() { stopped = true; if (ctl.abort) ctl.abort.abort(); } };
  const run = async () => {
    while (!stopped) {
      ctl.abort = new AbortController();
      try {
        const u = resume && last !== null ? url + (url.includes("?") ? "&" : "?") + "since=" + last : url;
        const r = await fetch(u, { headers: { ...S.headers(), Accept: "text/event-stream" }, signal: ctl.abort.signal });
        if (r.status === 401) { S.askToken(); return; }
        const reader = r.body.getReader(), dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            const ev = { event: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const c = line.indexOf(":"), k = c < 0 ? line : line.slice(0, c), v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
              if (k === "data") ev.data += (ev.data ? "\n" : "") + v; else if (k === "event") ev.event = v; else if (k === "id") ev.id = v;
            }
            if (ev.id) last = ev.id;
            if (ev.data) { if (onEvent(ev) === false) { stopped = true; return; } }
          }
        }
        if (!resume) return;
      } catch (e) { if (stopped) return; }
      await new Promise((res) => setTimeout(res, 1500));
    }
  };
  run();
  return ctl;
};
S.pct = (p) => Math.round((p || 0) * 100) + "%";
S.bar = (p) => { const b = S.el("div", { class: "bar" }, S.el("span")); b.firstChild.style.width = S.pct(p); return b; };
S.age = (iso) => {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? Math.round(s) + "s" : s < 3600 ? Math.round(s / 60) + "m" : s < 86400 ? (s / 3600).toFixed(1) + "h" : (s / 86400).toFixed(1) + "d";
};
S.health = async () => {
  const h = document.getElementById("health"), a = document.getElementById("alerts");
  try {
    const st = await S.api("/api/v1/status");
    h.replaceChildren(
      S.el("span", {}, S.el("span", { class: "dot " + (st.daemon.running ? "ok" : "bad") }), st.daemon.running ? "daemon running (pid " + st.daemon.pid + ")" : "daemon NOT running"),
      S.el("span", { text: "queue " + st.queue_depth }),
      S.el("span", { text: "running " + st.running.length }),
      ...(st.paused ? [S.el("span", { text: "intake paused: " + st.paused })] : []));
    a.replaceChildren(...(st.alerts || []).map((al) => S.el("div", { class: "alert " + al.level, text: al.level.toUpperCase() + " " + al.rule + ": " + al.message })));
  } catch (e) { h.replaceChildren(S.el("span", {}, S.el("span", { class: "dot bad" }), "web: " + e.message)); }
};
S.download = async (href, name) => {
  if (!S.token) { location.href = href; return; }
  const r = await fetch(href, { headers: S.headers() });
  const url = URL.createObjectURL(await r.blob());
  const a = S.el("a", { href: url, download: name }); document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
};
document.addEventListener("DOMContentLoaded", () => {
  const f = document.getElementById("tokenform");
  if (f) f.addEventListener("submit", (e) => { e.preventDefault(); S.saveToken(f.token.value); });
  S.health(); setInterval(S.health, 5000);
});
