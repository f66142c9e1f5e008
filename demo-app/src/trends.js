// Vital signs and lab results over time, drawn with uPlot (about 50 KB minified, canvas-based:
// light enough for a phone, and fast with years of results), with the reference range as a band
// where the results carry one.
import uPlot from "uplot";
import { h, clear, codeText, quantityText, dateText } from "./ui.js";

const BLOOD_PRESSURE = "85354-9";

/** The series of the patient's Observations with numbers: one per code (two for blood pressure). */
function seriesOf(observations) {
  const byKey = new Map();
  const add = (key, label, unit, time, value, range, category) => {
    if (!byKey.has(key)) byKey.set(key, { key, label, unit, category, points: [], range: undefined });
    const series = byKey.get(key);
    series.points.push([time, value]);
    if (range && (range.low?.value !== undefined || range.high?.value !== undefined)) series.range = range;
  };
  for (const o of observations) {
    const time = Date.parse(o.effectiveDateTime ?? o.effectivePeriod?.start ?? o.issued ?? "");
    if (Number.isNaN(time)) continue;
    const code = o.code?.coding?.[0]?.code ?? codeText(o.code);
    const category = o.category?.flatMap((c) => c.coding ?? []).map((c) => c.code).find((c) => c === "vital-signs" || c === "laboratory") ?? "other";
    if (code === BLOOD_PRESSURE) {
      for (const component of o.component ?? []) {
        if (component.valueQuantity?.value === undefined) continue;
        const part = component.code?.coding?.[0]?.code;
        if (!byKey.has(BLOOD_PRESSURE)) byKey.set(BLOOD_PRESSURE, { key: BLOOD_PRESSURE, label: "Blood pressure", unit: component.valueQuantity.unit ?? "mm[Hg]", category, points: [], range: undefined });
        if (!byKey.get(BLOOD_PRESSURE).points.some(([t]) => t === time)) byKey.get(BLOOD_PRESSURE).points.push([time, component.valueQuantity.value]);
        byKey.get(BLOOD_PRESSURE).parts ??= new Map();
        const parts = byKey.get(BLOOD_PRESSURE).parts;
        const name = part === "8480-6" ? "Systolic" : part === "8462-4" ? "Diastolic" : codeText(component.code);
        if (!parts.has(name)) parts.set(name, []);
        parts.get(name).push([time, component.valueQuantity.value]);
      }
    } else if (o.valueQuantity?.value !== undefined) {
      add(code, codeText(o.code), o.valueQuantity.unit ?? o.valueQuantity.code ?? "", time, o.valueQuantity.value, o.referenceRange?.[0], category);
    }
  }
  return [...byKey.values()].sort((a, b) => b.points.length - a.points.length);
}

function chart(container, series) {
  const lines = series.parts ? [...series.parts.entries()] : [[series.label, series.points]];
  const times = [...new Set(lines.flatMap(([, points]) => points.map(([t]) => t)))].sort((a, b) => a - b);
  const columns = lines.map(([, points]) => {
    const at = new Map(points.map(([t, v]) => [t, v]));
    return times.map((t) => at.get(t) ?? null);
  });
  const range = series.range;
  const colors = ["#0b5394", "#b45309"];
  const width = Math.max(280, Math.min(container.clientWidth || 320, 900));
  const plot = new uPlot(
    {
      width,
      height: 260,
      scales: {
        x: { time: true },
        // The scale takes in the reference range, so that the band is seen whole.
        y: {
          range: (u, min, max) => {
            const low = Math.min(min, range?.low?.value ?? min);
            const high = Math.max(max, range?.high?.value ?? max);
            const pad = (high - low || Math.abs(high) || 1) * 0.08;
            return [low - pad, high + pad];
          },
        },
      },
      axes: [{ stroke: "#333" }, { stroke: "#333", label: series.unit }],
      series: [{}, ...lines.map(([name], i) => ({ label: name, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 6 }, spanGaps: true }))],
      hooks: {
        drawClear: [
          (u) => {
            if (!range) return;
            const low = range.low?.value ?? u.scales.y.min;
            const high = range.high?.value ?? u.scales.y.max;
            const top = Math.max(u.bbox.top, Math.min(u.valToPos(high, "y", true), u.valToPos(low, "y", true)));
            const bottom = Math.min(u.bbox.top + u.bbox.height, Math.max(u.valToPos(high, "y", true), u.valToPos(low, "y", true)));
            u.ctx.save();
            u.ctx.fillStyle = "rgba(46, 125, 50, 0.18)";
            u.ctx.fillRect(u.bbox.left, top, u.bbox.width, Math.max(0, bottom - top));
            u.ctx.restore();
          },
        ],
      },
    },
    [times.map((t) => t / 1000), ...columns],
    container,
  );
  return plot;
}

export async function showTrends(main, app) {
  const bundle = await app.store.search("Observation", { patient: app.session.patient, _count: "2000" });
  const all = seriesOf((bundle.entry ?? []).map((entry) => entry.resource));
  const vitals = all.filter((s) => s.category === "vital-signs");
  const labs = all.filter((s) => s.category !== "vital-signs");
  const area = h("div", { class: "chart", id: "chart", role: "img" });
  const caption = h("p", { class: "hint", id: "chart-caption" });
  const table = h("div", { class: "chart-table" });
  let current;
  const select = (series) => {
    current = series;
    for (const picker of document.querySelectorAll(".series select")) picker.value = [...picker.options].some((o) => o.value === series.key) ? series.key : "";
    clear(area);
    const order = series.points.map(([t]) => t).sort((a, b) => a - b);
    area.setAttribute("aria-label", `${series.label}: ${series.points.length} results from ${dateText(order[0])} to ${dateText(order.at(-1))}`);
    chart(area, series);
    const range = series.range;
    caption.textContent = range ? `Shaded: the reference range${range.low ? ` from ${quantityText(range.low)}` : ""}${range.high ? ` to ${quantityText(range.high)}` : ""}.` : "No reference range comes with these results.";
    const lines = series.parts ? [...series.parts.entries()] : [["Value", series.points]];
    const times = [...new Set(lines.flatMap(([, points]) => points.map(([t]) => t)))].sort((a, b) => b - a).slice(0, 5);
    const at = (points, t) => points.find(([time]) => time === t)?.[1];
    clear(table).append(h("table", {},
      h("caption", {}, "Most recent"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Date"), ...lines.map(([name]) => h("th", { scope: "col" }, `${name} (${series.unit})`)))),
      h("tbody", {}, ...times.map((t) => h("tr", {}, h("td", {}, dateText(t)), ...lines.map(([, points]) => h("td", {}, String(at(points, t) ?? "—"))))))));
  };
  const picker = (id, label, list) => {
    const choose = h("select", { id, onchange: (event) => { const found = list.find((s) => s.key === event.target.value); if (found) select(found); } },
      h("option", { value: "" }, "Choose…"),
      ...list.map((series) => h("option", { value: series.key }, `${series.label} (${series.points.length})`)));
    return h("div", { class: "series field" }, h("label", { for: id }, label), choose);
  };
  clear(main).append(
    h("section", { class: "card", "aria-labelledby": "trends-title", "data-wide": "1" },
      h("h2", { id: "trends-title" }, "Trends"),
      all.length === 0 ? h("p", { class: "hint" }, "No measurements recorded yet.") : [
        h("div", { class: "pickers" },
          vitals.length ? picker("vital-picker", "Vital sign", vitals) : h("p", { class: "hint" }, "No vital signs."),
          labs.length ? picker("lab-picker", "Lab result", labs) : h("p", { class: "hint" }, "No lab results.")),
        area, caption, table,
      ]),
  );
  const first = vitals.find((s) => s.key === BLOOD_PRESSURE) ?? vitals[0] ?? labs[0];
  if (first) select(first);
  return current;
}
