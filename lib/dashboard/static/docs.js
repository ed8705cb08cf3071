/* Renders /openapi.json as a plain list of endpoints and parameters (text only, no innerHTML). */
"use strict";

(function () {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  function describe(schema) {
    if (!schema) return "";
    const s = schema.anyOf ? schema.anyOf.find((x) => x.type !== "null") || schema : schema;
    const bits = [s.type || (s.$ref ? s.$ref.split("/").pop() : "")];
    if (s.format) bits.push(s.format);
    if (s.minimum !== undefined) bits.push(`≥ ${s.minimum}`);
    if (s.maximum !== undefined) bits.push(`≤ ${s.maximum}`);
    if (s.minLength !== undefined) bits.push(`length ≥ ${s.minLength}`);
    if (s.maxLength !== undefined) bits.push(`length ≤ ${s.maxLength}`);
    if (schema.default !== undefined) bits.push(`default ${JSON.stringify(schema.default)}`);
    return bits.filter(Boolean).join(", ");
  }

  async function main() {
    const spec = await (await fetch("/openapi.json", { cache: "no-store" })).json();
    document.querySelector('[data-testid="api-description"]').textContent =
      `${spec.info.title} ${spec.info.version}. ${spec.info.description || ""}`;
    const box = document.querySelector('[data-testid="endpoints"]');
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const params = (op.parameters || []).map((p) => el("tr", {},
          el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, p.required ? "required" : "optional"),
          el("td", {}, describe(p.schema)), el("td", {}, p.description || (p.schema && p.schema.description) || "")));
        const link = method === "get" && !path.includes("{") ? el("a", { href: path }, "open") : null;
        box.append(el("section", { class: "panel", "data-testid": "endpoint", "data-path": path },
          el("div", { class: "panel-head" }, el("h2", {}, el("code", {}, `${method.toUpperCase()} ${path}`)), link),
          el("p", { class: "panel-sub" }, op.summary || ""),
          params.length ? el("table", { class: "data" },
            el("thead", {}, el("tr", {}, ["Parameter", "In", "", "Type", "Meaning"].map((h) => el("th", {}, h)))),
            el("tbody", {}, params)) : el("p", { class: "panel-sub" }, "No parameters.")));
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => main().catch((e) => console.error(e)));
})();
