"use strict";
const $ = (id) => document.getElementById(id);
const ID = location.pathname.split("/").pop();
const FACTS = ["id", "source", "total_attempts", "engine", "model", "language", "duration_s", "elapsed_s", "submitted_at", "started_at", "finished_at", "reason", "message", "outputs"];
let shown = 0, transcriptShown = false, timer = null;

function eventLine(e) {
  const data = { ...e.data }; delete data.segments; delete data.options;
  return S.el("li", {}, S.el("span", { class: "t", text: e.at.slice(11, 23) }), S.el("b", { text: e.type + " " }), S.el("span", { class: "muted", text: JSON.stringify(data).slice(0, 200) }));
}

async function load() {
  let j;
  try { j = await S.api("/api/v1/jobs/" + ID); } catch (e) { $("title").textContent = e.message; return; }
  document.title = (j.name || j.id) + " · spoolscribe";
  $("title").textContent = j.source || j.name;
  $("state").className = "state " + j.state; $("state").textContent = j.state;
  $("pos").textContent = S.pct(j.progress) + (j.duration_s ? "  " + Math.round(j.position_s || 0) + " / " + Math.round(j.duration_s) + " s" : "");
  $("barbox").replaceChildren(S.bar(j.progress));
  const terminal = ["succeeded", "failed", "cancelled"].includes(j.state);
  $("cancel").disabled = terminal || j.cancel_requested;
  $("retry").disabled = !["failed", "cancelled"].includes(j.state);
  $("facts").replaceChildren(...FACTS.filter((k) => j[k] !== null && j[k] !== undefined && j[k] !== "" && !(Array.isArray(j[k]) && !j[k].length))
    .flatMap((k) => [S.el("dt", { text: k }), S.el("dd", { text: Array.isArray(j[k]) ? j[k].join(", ") : String(j[k]) })]));
  const evs = j.events.filter((e) => e.type !== "job.heartbeat");
  for (const e of evs.slice(shown)) $("events").append(eventLine(e));
  shown = evs.length;
  if (j.state === "succeeded" && !transcriptShown) {
    transcriptShown = true;
    const formats = [...new Set(j.outputs.map((o) => o.split(".").pop()))];
    if (!formats.includes("tsv") && formats.includes("json")) formats.push("tsv");
    $("downloads").replaceChildren(...formats.map((f) => {
      const href = "/api/v1/jobs/" + ID + "/outputs/" + f + "?download=1";
      return S.el("a", { href, text: f, onclick: (ev) => { ev.preventDefault(); S.download(href, (j.out_stem || "transcript") + "." + f); } });
    }));
    try {
      const doc = await S.api("/api/v1/jobs/" + ID + "/outputs/json");
      $("transcript").className = ""; $("transcript").textContent = (doc.text || "").trim() || "(no speech)";
    } catch (e) { $("transcript").textContent = "no transcript: " + e.message; }
  }
}
const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, 200); };

async function act(what) {
  $("said").textContent = "";
  try { await S.api("/api/v1/jobs/" + ID + "/" + what, { method: "POST" }); $("said").textContent = what + " requested"; soon(); }
  catch (e) { $("said").textContent = e.message; }
}

document.addEventListener("DOMContentLoaded", () => {
  $("cancel").addEventListener("click", () => act("cancel"));
  $("retry").addEventListener("click", () => { transcriptShown = false; act("retry").then(followLog); });
  load();
  followLog();
  S.sse("/api/v1/events?job=" + ID, () => soon());
});

let logStream = null;
function followLog() {
  if (logStream) logStream.stop();
  $("log").textContent = "";
  logStream = S.sse("/api/v1/jobs/" + ID + "/log?follow=1&n=200", (ev) => {
    if (ev.event === "end") return false;
    const pre = $("log"), atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 5;
    pre.append(document.createTextNode(JSON.parse(ev.data).text));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }, { resume: false });
}
