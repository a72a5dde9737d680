// radpacs radiotherapy page (/rt?study=UID): the study's RT objects, DVHs drawn with
// Chart.js, a statistics table, CSV exports, and keeping the DVHs in the study.
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);
  const STANDARD = ["D95", "D2cc", "V20Gy"];
  const state = { objects: null, dvhs: [], prescription: null, metrics: [], body: null };
  window.radpacsRt = state; // for the browser test and the curious

  async function api(url, options = {}) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (error) { body = null; }
    if (!response.ok) {
      let detail = body && body.detail ? body.detail : `${response.status} ${response.statusText}`;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      if (response.status === 401) detail = "log in on the studies page first";
      throw new Error(detail);
    }
    return body;
  }

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text) node.textContent = text;
    return node;
  }

  function format(value, digits = 4) {
    if (value === null || value === undefined || Number.isNaN(value)) return "-";
    return Number(value).toPrecision(digits).replace(/\.?0+$/, (m) => (m.includes(".") ? "" : m));
  }

  // ---- objects ------------------------------------------------------------------------
  async function loadObjects(study) {
    $("#rt-study").textContent = `Study ${study}`;
    const objects = await api(`api/rt/studies/${encodeURIComponent(study)}/objects`);
    state.objects = objects;
    const body = $("#object-table tbody");
    body.replaceChildren();
    const rows = [
      ...objects.plans.map((item) => ["RTPLAN", item]),
      ...objects.structure_sets.map((item) => ["RTSTRUCT", item]),
      ...objects.doses.map((item) => [item.has_grid ? "RTDOSE" : "RTDOSE (DVH)", item]),
    ];
    for (const [kind, item] of rows) {
      const row = element("tr");
      row.append(element("td", {}, kind), element("td", {}, item.label || "-"),
        element("td", { class: "uid" }, item.uid),
        element("td", { class: "uid" }, (item.references || []).join(", ") || "-"));
      body.append(row);
    }
    $("#objects-status").textContent = rows.length ? "" : "This study has no RT objects.";
    const select = $("#structure-set");
    select.replaceChildren();
    for (const item of objects.structure_sets) {
      select.append(element("option", { value: item.uid }, item.label || item.uid));
    }
    const doses = $("#dose-list");
    doses.querySelectorAll("label").forEach((node) => node.remove());
    objects.doses.filter((item) => item.has_grid).forEach((item, index) => {
      const label = element("label");
      const box = element("input", { type: "checkbox", name: "dose", value: item.uid });
      box.checked = index === 0;
      const weight = element("input", { type: "number", step: "any", value: "1",
        class: "weight", "aria-label": `weight of ${item.uid}`, "data-dose": item.uid });
      label.append(box, ` ${item.dose_summation_type || "dose"} ${item.label || item.uid} × `,
        weight);
      doses.append(label);
    });
    select.addEventListener("change", showRois);
    showRois();
  }

  function showRois() {
    const chosen = $("#structure-set").value;
    const set = state.objects.structure_sets.find((item) => item.uid === chosen);
    const list = $("#roi-list");
    list.querySelectorAll("label").forEach((node) => node.remove());
    for (const roi of set ? set.rois : []) {
      const label = element("label");
      const box = element("input", { type: "checkbox", name: "roi", value: String(roi.number) });
      box.checked = true;
      label.append(box, ` ${roi.name}`);
      list.append(label);
    }
  }

  // ---- DVHs ---------------------------------------------------------------------------
  function request() {
    const doses = [...document.querySelectorAll('input[name="dose"]:checked')].map((b) => b.value);
    if (!doses.length) throw new Error("choose at least one dose");
    const weights = doses.map((uid) =>
      Number(document.querySelector(`input.weight[data-dose="${uid}"]`).value || "1"));
    const extra = $("#extra-metrics").value.split(/[\s,;]+/).filter(Boolean);
    const metrics = [...STANDARD, ...extra.filter((name) => !STANDARD.includes(name))];
    const prescription = Number($("#prescription").value) || null;
    const body = { rtstruct: $("#structure-set").value, rtdose: doses, metrics, bin_width: 0.01 };
    if (doses.length > 1 || weights.some((w) => w !== 1)) body.weights = weights;
    if (prescription) body.prescription = prescription;
    return body;
  }

  async function compute(event) {
    event.preventDefault();
    const status = $("#dvh-status");
    try {
      const body = request();
      status.textContent = "Computing…";
      const answer = await api("api/rt/dvh", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const all = Array.isArray(answer) ? answer : answer.dvhs || [answer];
      const wanted = new Set([...document.querySelectorAll('input[name="roi"]:checked')]
        .map((box) => Number(box.value)));
      state.dvhs = all.filter((dvh) => wanted.has(dvh.roi_number));
      state.prescription = body.prescription || null;
      state.metrics = body.metrics;
      state.body = body;
      status.textContent = state.dvhs.length ? "" : "No ROI chosen.";
      draw();
      table();
      $("#rt-results").hidden = false;
    } catch (error) {
      status.textContent = `Could not compute the DVHs: ${error.message}`;
    }
  }

  function draw() {
    const old = window.Chart.getChart("dvh-chart");
    if (old) old.destroy();
    const datasets = state.dvhs.map((dvh, index) => {
      const step = Math.max(1, Math.ceil(dvh.doses.length / 600));
      const points = [];
      const point = (i) => ({ x: dvh.doses[i], y: (100 * dvh.volumes[i]) / dvh.volume });
      for (let i = 0; i < dvh.doses.length; i += step) points.push(point(i));
      if ((dvh.doses.length - 1) % step) points.push(point(dvh.doses.length - 1));
      return { label: dvh.name, data: points, borderWidth: 2, pointRadius: 0,
        borderColor: `hsl(${(index * 67) % 360} 70% 60%)`, tension: 0 };
    });
    new window.Chart($("#dvh-chart"), {
      type: "line",
      data: { datasets },
      options: {
        animation: false, maintainAspectRatio: false, parsing: false,
        scales: {
          x: { type: "linear", title: { display: true,
            text: state.dvhs.length && state.dvhs[0].dose_units === "%"
              ? "dose [% of prescription]" : "dose [Gy]" } },
          y: { min: 0, max: 100, title: { display: true, text: "volume [% of ROI]" } },
        },
        plugins: { legend: { position: "right" } },
      },
    });
  }

  function columns() {
    return ["volume", "min", "mean", "max", ...state.metrics];
  }

  function cellText(metric) {
    if (!metric || metric.value === null) return "-";
    const value = format(metric.value);
    if (metric.relative === null || metric.relative === undefined || metric.unit === "cm3" &&
        metric.relative === 100) return value;
    return `${value} (${format(metric.relative, 3)} %)`;
  }

  function table() {
    const names = columns();
    const head = $("#stats-table thead");
    const unit = (name) => {
      const metric = state.dvhs.length ? state.dvhs[0].statistics[name] : null;
      return metric ? ` [${metric.unit}]` : "";
    };
    const header = element("tr");
    header.append(element("th", {}, "ROI"), ...names.map((name) =>
      element("th", {}, name === "min" ? `Dmin${unit(name)}` : name === "mean"
        ? `Dmean${unit(name)}` : name === "max" ? `Dmax${unit(name)}` : `${name}${unit(name)}`)));
    head.replaceChildren(header);
    const body = $("#stats-table tbody");
    body.replaceChildren();
    for (const dvh of state.dvhs) {
      const row = element("tr", { "data-roi": dvh.name });
      row.append(element("td", {}, dvh.name));
      for (const name of names) {
        const metric = dvh.statistics[name];
        const td = element("td", { class: "number", "data-metric": name,
          "data-value": metric && metric.value !== null ? String(metric.value) : "" },
        cellText(metric));
        row.append(td);
      }
      body.append(row);
    }
  }

  // ---- exports and storing ------------------------------------------------------------
  function csvCell(value) {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function download(name, lines) {
    const blob = new Blob([lines.map((line) => line.map(csvCell).join(",")).join("\n") + "\n"],
      { type: "text/csv" });
    const link = element("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(link);
    link.click();
    link.remove();
  }

  function csvTable() {
    const names = columns();
    const first = state.dvhs[0];
    const header = ["roi", ...names.map((name) => `${name} [${first.statistics[name].unit}]`)];
    if (state.prescription) header.push(...names.map((name) => `${name} relative [%]`));
    const lines = [header];
    for (const dvh of state.dvhs) {
      const line = [dvh.name, ...names.map((name) => dvh.statistics[name].value)];
      if (state.prescription) line.push(...names.map((name) => dvh.statistics[name].relative));
      lines.push(line);
    }
    download("dvh-statistics.csv", lines);
  }

  function csvCurves() {
    const longest = Math.max(...state.dvhs.map((dvh) => dvh.doses.length));
    const reference = state.dvhs.find((dvh) => dvh.doses.length === longest);
    const unit = reference.dose_units === "%" ? "% of prescription" : reference.dose_units;
    const lines = [[`dose [${unit}]`, ...state.dvhs.map((dvh) => `${dvh.name} [cm3]`)]];
    for (let i = 0; i < longest; i += 1) {
      lines.push([reference.doses[i], ...state.dvhs.map((dvh) =>
        (i < dvh.volumes.length ? dvh.volumes[i] : 0))]);
    }
    download("dvh-curves.csv", lines);
  }

  async function store() {
    const status = $("#store-status");
    try {
      const body = { ...state.body };
      const rois = state.dvhs.map((dvh) => dvh.roi_number);
      if (rois.length === 1) body.roi = rois[0];
      const answer = await api("api/rt/dvh/store", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      status.textContent = `Kept as RT Dose ${answer.sop_instance_uid} (${answer.method}).`;
      await loadObjects(new URLSearchParams(location.search).get("study"));
    } catch (error) {
      status.textContent = `Could not keep the DVHs: ${error.message}`;
    }
  }

  async function start() {
    const study = new URLSearchParams(location.search).get("study");
    $("#dvh-form").addEventListener("submit", compute);
    $("#csv-table").addEventListener("click", csvTable);
    $("#csv-curves").addEventListener("click", csvCurves);
    $("#store-dvh").addEventListener("click", store);
    if (!study) {
      $("#objects-status").textContent = "No study: open this page as rt?study=<Study UID>.";
      return;
    }
    try {
      await loadObjects(study);
    } catch (error) {
      $("#objects-status").textContent = `Could not load the RT objects: ${error.message}`;
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
