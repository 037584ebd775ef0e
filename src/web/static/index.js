"use strict";
const STATES = ["queued", "running", "publishing", "retry_wait", "succeeded", "failed", "cancelled"];
let limit = 50, timer = null;
const $ = (id) => document.getElementById(id);

function row(j) {
  return S.el("tr", { "data-job": j.id },
    S.el("td", { class: "id" }, S.el("a", { href: "/jobs/" + j.id, text: j.id })),
    S.el("td", { class: "name", text: j.source || j.name }),
    S.el("td", {}, S.el("span", { class: "state " + j.state, text: j.state })),
    S.el("td", {}, S.bar(j.progress), S.el("span", { class: "muted", text: S.pct(j.progress) })),
    S.el("td", { class: "hide-sm", text: String(j.attempts) }),
    S.el("td", { class: "hide-sm", text: S.age(j.submitted_at) }));
}

async function load() {
  const p = new URLSearchParams({ limit: String(limit) });
  if ($("state").value) p.append("state", $("state").value);
  if ($("q").value) p.set("q", $("q").value);
  try {
    const page = await S.api("/api/v1/jobs?" + p);
    $("jobs").replaceChildren(...page.items.map(row));
    $("count").textContent = page.total + " job(s)";
    $("more").hidden = page.total <= page.items.length;
  } catch (e) { $("count").textContent = e.message; }
}
const soon = () => { if (!timer) timer = setTimeout(() => { timer = null; load(); }, 300); };

function upload(file) {
  const bar = S.el("progress", { max: "100", value: "0" }), note = S.el("span", { class: "muted", text: "uploading" });
  $("uploads").append(S.el("li", {}, S.el("span", { class: "name", text: file.name }), bar, note));
  const form = new FormData(); form.append("file", file, file.name);
  const x = new XMLHttpRequest();
  x.open("POST", "/api/v1/jobs");
  for (const [k, v] of Object.entries(S.headers())) x.setRequestHeader(k, v);
  x.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
  x.onload = () => {
    let doc = {}; try { doc = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
    if (x.status === 201) { bar.value = 100; note.replaceChildren(S.el("a", { href: "/jobs/" + doc.id, text: "job " + doc.id })); soon(); }
    else note.textContent = "refused: " + ((doc.error && doc.error.message) || x.status);
  };
  x.onerror = () => { note.textContent = "upload failed (connection)"; };
  x.send(form);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const s of STATES) $("state").append(S.el("option", { value: s, text: s }));
  $("state").addEventListener("change", load);
  $("q").addEventListener("input", soon);
  $("more").addEventListener("click", () => { limit += 50; load(); });
  const drop = $("drop"), files = $("files");
  drop.addEventListener("click", () => files.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") files.click(); });
  files.addEventListener("change", () => { [...files.files].forEach(upload); files.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); [...e.dataTransfer.files].forEach(upload); });
  load();
  S.sse("/api/v1/events", (ev) => { if (ev.event.startsWith("job.")) soon(); });
});
