/* Sales panels: headline numbers + freshness, revenue per minute, top products, product search/view.
 * API: /api/sales/summary, /api/sales/revenue_per_minute, /api/sales/top_products,
 *      /api/sales/products?query=, /api/sales/products/{id}
 */
"use strict";

(function () {
  const D = window.Dashboard;
  const { el } = D;

  // ---- headline numbers and freshness ------------------------------------------------------------------------
  let lastUpdate = null; // ISO time of the latest write by the pipeline
  let lastSaleMinute = null; // ISO start of the latest minute with a sale

  function renderFreshness() {
    const node = D.byId("freshness");
    if (!lastUpdate) {
      node.textContent = "No data yet";
      node.dataset.state = "none";
      node.removeAttribute("data-age-seconds");
      return;
    }
    const age = D.ageSeconds(lastUpdate);
    node.dataset.ageSeconds = String(Math.max(0, Math.round(age)));
    node.dataset.state = age < 30 ? "fresh" : age < 300 ? "stale" : "old";
    node.textContent = age < 300 ? `Updated ${D.ago(age)}` : `Data is ${D.ago(age).replace(" ago", "")} old — is the pipeline running?`;
    node.title = `Latest write by the pipeline: ${D.dateTime(lastUpdate)}`;
  }
  window.setInterval(renderFreshness, 1000);

  D.register("summary", async () => {
    const s = await D.api("/api/sales/summary");
    D.learnServerTime(s.server_time);
    const candidates = [s.updated_at, s.pipeline_at].filter(Boolean).sort();
    lastUpdate = candidates.length ? candidates[candidates.length - 1] : null;
    lastSaleMinute = s.last_sale_minute;
    renderFreshness();
    D.text("revenue-today", D.money(s.revenue)).dataset.value = String(s.revenue);
    D.text("units-today", D.int(s.units)).dataset.value = String(s.units);
    D.text("orders-today", D.int(s.orders)).dataset.value = String(s.orders);
    D.text("products-today", D.int(s.products)).dataset.value = String(s.products);
    // minute granularity: say how long ago only when it is more than a couple of minutes
    const lastAge = D.ageSeconds(s.last_sale_minute);
    const lastText = !s.last_sale_minute ? "no sales yet"
      : lastAge > 180 ? `${D.time(s.last_sale_minute)} (${D.ago(lastAge)})` : D.time(s.last_sale_minute);
    const last = D.text("last-sale", lastText);
    last.dataset.value = s.last_sale_minute || "";
    last.title = s.last_sale_minute ? `minute starting ${D.dateTime(s.last_sale_minute)}` : "";
  });

  // ---- revenue per minute ---------------------------------------------------------------------------------------
  const minutesSelect = D.byId("revenue-minutes");
  const wanted = D.params.get("minutes");
  if (wanted && [...minutesSelect.options].some((o) => o.value === wanted)) minutesSelect.value = wanted;

  function fillSeriesBox(boxId, data) {
    const box = D.byId(boxId);
    const nonZero = data.points.filter((p) => p.revenue > 0 || p.units > 0);
    box.dataset.totalRevenue = String(data.totals.revenue);
    box.dataset.totalUnits = String(data.totals.units);
    box.dataset.points = String(data.points.length);
    box.dataset.nonzeroPoints = String(nonZero.length);
    box.dataset.lastWindow = nonZero.length ? nonZero[nonZero.length - 1].window_start : "";
    return nonZero.length;
  }

  let revenuePoints = [];

  async function refreshRevenue() {
    const data = await D.api("/api/sales/revenue_per_minute", { minutes: minutesSelect.value, until: D.until });
    const nonZero = fillSeriesBox("revenue-chart", data);
    D.text("revenue-total", `${D.money(data.totals.revenue)} · ${D.int(data.totals.units)} units · ${D.int(data.totals.orders)} orders in this period`);
    D.show("revenue-empty", nonZero === 0);
    // nothing in this window but sales exist earlier (e.g. a replay of old data): offer to go there
    D.show("revenue-jump", nonZero === 0 && !D.until && Boolean(lastSaleMinute) && Date.parse(lastSaleMinute) < Date.parse(data.start));
    revenuePoints = data.points;
    D.chart("revenue-canvas", revenuePoints.map((p) => D.time(p.window_start)), [{
      label: "Revenue", data: revenuePoints.map((p) => p.revenue), backgroundColor: "#2563eb", borderRadius: 2,
    }], {
      chartOptions: {
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const p = revenuePoints[item.dataIndex] || {};
                return `${D.money(p.revenue)} · ${D.int(p.units)} units · ${D.int(p.orders)} orders`;
              },
            },
          },
        },
        scales: { x: { ticks: { autoSkip: true, maxTicksLimit: 12, maxRotation: 0 } },
                  y: { beginAtZero: true, ticks: { callback: (v) => D.money(v) } } },
      },
    });
    document.getElementById("revenue-canvas").setAttribute("aria-label",
      `Revenue per minute over the last ${data.minutes} minutes: ${D.money(data.totals.revenue)} in total`);
  }
  D.register("revenue", refreshRevenue);
  D.byId("revenue-jump").addEventListener("click", () => D.setUntil(lastSaleMinute));
  minutesSelect.addEventListener("change", () => refreshRevenue().catch((e) => console.warn(e)));

  // ---- top products -------------------------------------------------------------------------------------------
  D.register("top-products", async () => {
    const data = await D.api("/api/sales/top_products", { limit: 10 });
    const rows = data.products.map((p) => el("tr", {
      "data-testid": "top-product-row", "data-product-id": p.product_id, "data-rank": p.rank,
      "data-units": p.units, "data-revenue": p.revenue,
    },
      el("td", { class: "num" }, p.rank),
      el("td", {}, el("button", { class: "linklike", type: "button", "data-product-id": p.product_id,
        title: "Show this product's sales" }, p.product_id)),
      el("td", { "data-testid": "brand" }, D.orDash(p.brand)),
      el("td", {}, D.orDash(p.category_code)),
      el("td", { class: "num" }, D.int(p.units)),
      el("td", { class: "num" }, D.money(p.revenue)),
    ));
    D.setRows("top-products", rows);
    D.show("top-products-empty", rows.length === 0);
    // the streaming app ranks the window_minutes minutes up to its newest minute with sales (as_of)
    D.text("top-products-window", data.window_minutes && data.as_of
      ? `${data.window_minutes} minutes up to ${D.time(data.as_of)}` : "");
  });
  D.byId("top-products").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-product-id]");
    if (button) selectProduct(button.getAttribute("data-product-id"));
  });

  // ---- product search and product view ------------------------------------------------------------------------
  const searchBox = D.byId("product-search");
  const resultsList = D.byId("search-results");
  let selected = /^\d{1,19}$/.test(D.params.get("product") || "") ? D.params.get("product") : null;
  let searchTimer = null;
  let searchSeq = 0;

  async function runSearch() {
    const query = searchBox.value.trim();
    const seq = ++searchSeq;
    if (!query) {
      resultsList.replaceChildren();
      D.show("search-empty", false);
      return;
    }
    const data = await D.api("/api/sales/products", { query, limit: 20 });
    if (seq !== searchSeq) return; // a newer search is under way
    resultsList.replaceChildren(...data.products.map((p) => el("li", {},
      el("button", { type: "button", "data-testid": "search-result", "data-product-id": p.product_id,
        "aria-current": String(p.product_id) === selected ? "true" : null },
        el("strong", {}, `Product ${p.product_id}`), " ",
        el("span", { class: "meta" }, `${D.orDash(p.brand)} · ${D.orDash(p.category_code)} · ${D.int(p.units)} units sold`)))));
    D.show("search-empty", data.products.length === 0);
    // an exact product id: open it straight away
    if (data.products.length && String(data.products[0].product_id) === query) selectProduct(query);
  }

  searchBox.addEventListener("input", () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => runSearch().catch((e) => console.warn(e)), 250);
  });
  searchBox.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const first = resultsList.querySelector("button[data-product-id]");
    if (first) selectProduct(first.getAttribute("data-product-id"));
  });
  resultsList.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-product-id]");
    if (button) selectProduct(button.getAttribute("data-product-id"));
  });

  function selectProduct(id) {
    selected = String(id);
    const url = new URL(window.location.href);
    url.searchParams.set("product", selected);
    window.history.replaceState(null, "", url);
    resultsList.querySelectorAll("button[data-product-id]").forEach((b) => {
      if (b.getAttribute("data-product-id") === selected) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
    refreshProduct().catch((e) => console.warn(e));
  }

  async function refreshProduct() {
    if (!selected) return;
    const view = D.byId("product-view");
    view.hidden = false;
    view.dataset.productId = selected;
    let data;
    try {
      data = await D.api(`/api/sales/products/${encodeURIComponent(selected)}`, { minutes: 60, until: D.until });
    } catch (err) {
      if (err instanceof D.ApiError && err.status === 404) {
        D.text("product-title", `Product ${selected}`);
        D.text("product-subtitle", "");
        D.text("product-empty", "No sales recorded for this product yet.");
        D.show("product-empty", true);
        return;
      }
      throw err;
    }
    if (String(data.product_id) !== selected) return; // another product was chosen meanwhile
    D.text("product-title", `Product ${data.product_id}`);
    D.text("product-subtitle", `Brand: ${D.orDash(data.brand)} · Category: ${D.orDash(data.category_code)}` +
      (data.last_sale_minute ? ` · last sale ${D.dateTime(data.last_sale_minute)}`
        : data.last_sale_date ? ` · last sale on ${data.last_sale_date}` : ""));
    D.text("product-revenue-today", D.money(data.today.revenue)).dataset.value = String(data.today.revenue);
    D.text("product-units-today", D.int(data.today.units)).dataset.value = String(data.today.units);
    D.text("product-orders-today", D.int(data.today.orders)).dataset.value = String(data.today.orders);
    const nonZero = fillSeriesBox("product-chart", data);
    D.text("product-empty", `No sales of this product in the ${D.until ? "hour shown" : "last 60 minutes"}.`);
    D.show("product-empty", nonZero === 0);
    D.chart("product-canvas", data.points.map((p) => D.time(p.window_start)), [
      { label: "Revenue", data: data.points.map((p) => p.revenue), backgroundColor: "#7c3aed", yAxisID: "y" },
      { label: "Units", data: data.points.map((p) => p.units), type: "line", borderColor: "#f59e0b",
        backgroundColor: "#f59e0b", pointRadius: 0, yAxisID: "units" },
    ], {
      chartOptions: {
        scales: {
          x: { ticks: { autoSkip: true, maxTicksLimit: 8, maxRotation: 0 } },
          y: { beginAtZero: true, position: "left", ticks: { callback: (v) => D.money(v) } },
          units: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, ticks: { precision: 0 } },
        },
      },
    });
  }
  D.register("product", refreshProduct);
  if (selected) searchBox.value = selected;
})();
