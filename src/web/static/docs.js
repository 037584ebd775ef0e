"use strict";
// A small offline reader of /openapi.json: every operation, its parameters and body, and "try" for GETs.
const $ = (id) => document.getElementById(id);
function params(op) {
  const rows = (op.parameters || []).map((p) => S.el("li", {}, S.el("code", { text: p.name }), " (" + p.in + (p.required ? ", required" : "") + ") " + ((p.schema && (p.schema.type || "")) || "") + (p.description ? " — " + p.description : "")));
  const body = op.requestBody && op.requestBody.content;
  if (body) for (const [type, c] of Object.entries(body)) {
    const props = (c.schema && c.schema.properties) || {};
    rows.push(S.el("li", {}, "body " + type + ": ", ...Object.entries(props).map(([k, v]) => S.el("span", {}, S.el("code", { text: k }), " " + (v.format || v.type || "") + (v.description ? " (" + v.description + ")" : "") + "; "))));
  }
  return S.el("ul", {}, ...rows);
}
function tryIt(path, out) {
  return S.el("button", { text: "try", onclick: async () => {
    const r = await fetch(path, { headers: S.headers() });
    const text = await r.text();
    out.textContent = r.status + " " + r.statusText + "\n" + text.slice(0, 4000);
    out.hidden = false;
  } });
}
document.addEventListener("DOMContentLoaded", async () => {
  const spec = await (await fetch("/openapi.json")).json();
  $("about").textContent = spec.info.title + " " + spec.info.version + " — " + spec.info.description;
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const out = S.el("pre", { hidden: "" });
      const card = S.el("div", { class: "card" },
        S.el("h2", {}, S.el("span", { class: "state", text: method.toUpperCase() }), " ", S.el("code", { text: path })),
        S.el("p", { text: op.summary || "" }), params(op));
      if (method === "get" && !path.includes("{") && !path.endsWith("/events")) card.append(tryIt(path, out));
      card.append(out);
      $("ops").append(card);
    }
  }
});
