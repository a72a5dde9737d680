// radpacs follow-up pages: the patient list (/followup) and the tracking page (/tracking).
// Data from /api/followup; charts with Chart.js (static/vendor/chart.umd.js).
(function () {
  "use strict";
  const config = window.RADPACS || { viewerInstalled: false, pageSize: 25 };
  const $ = (selector) => document.querySelector(selector);
  const page = document.body.dataset.page;

  async function api(url, options = {}) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (response.status === 401) {
      $("#auth-needed").hidden = false;
      throw new Error("not logged in");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return response;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function formatDate(text) {
    return text && text.length === 8 ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}` : text || "";
  }

  function number(value, digits = 1) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  // ------------------------------------------------------------------ patients

  async function patients() {
    let offset = 0;
    const form = $("#patient-search");
    async function load() {
      const search = new FormData(form).get("search") || "";
      const params = new URLSearchParams({ search, offset, limit: config.pageSize });
      const data = await (await api(`api/followup/patients?${params}`)).json();
      const body = $("#patient-table tbody");
      body.replaceChildren();
      for (const p of data.patients) {
        const link = el("a", { href: `tracking?patient=${encodeURIComponent(p.patient_id)}` },
          p.patient_id);
        body.append(el("tr", {},
          el("td", {}, link), el("td", {}, p.patient_name || ""), el("td", {}, p.timepoints),
          el("td", {}, p.lesions), el("td", { class: `cat-${p.latest_response}` }, p.latest_response),
          el("td", {}, (p.updated_at || "").slice(0, 19).replace("T", " "))));
      }
      $("#patients-status").textContent = data.total ? "" : "No patient has a follow-up yet.";
      $("#page-label").textContent = data.total
        ? `${offset + 1}–${Math.min(offset + config.pageSize, data.total)} of ${data.total}` : "";
      $("#prev").disabled = offset === 0;
      $("#next").disabled = offset + config.pageSize >= data.total;
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); offset = 0; load(); });
    $("#prev").addEventListener("click", () => { offset = Math.max(0, offset - config.pageSize); load(); });
    $("#next").addEventListener("click", () => { offset += config.pageSize; load(); });
    await load();
  }

  // ------------------------------------------------------------------ tracking

  const charts = {};
  const PALETTE = ["#4aa3ff", "#e5534b", "#3fb950", "#f0b72f", "#a371f7", "#39c5cf", "#ff7b72"];

  function lineChart(id, labels, datasets, extra = {}) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart($(id), {
      type: "line",
      data: { labels, datasets },
      options: {
        animation: false,
        responsive: true,
        spanGaps: false,
        scales: { y: { beginAtZero: true, ticks: { color: "#9fb0c0" }, grid: { color: "#2b3a4a" } },
                  x: { ticks: { color: "#9fb0c0" }, grid: { color: "#2b3a4a" } } },
        plugins: { legend: { labels: { color: "#e6edf3" } }, ...(extra.plugins || {}) },
      },
    });
  }

  async function tracking() {
    const patient = new URLSearchParams(location.search).get("patient");
    if (!patient) {
      $("#patient-summary").textContent = "No patient given: choose one on the follow-up page.";
      return;
    }
    const base = `api/followup/patients/${encodeURIComponent(patient)}`;
    $("#export-csv").href = `${base}/export?format=csv`;
    $("#export-json").href = `${base}/export?format=json`;
    const status = $("#action-status");

    async function correct(body) {
      status.textContent = "Saving…";
      try {
        const answer = await (await api(`${base}/corrections`, {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body) })).json();
        status.textContent = `Correction ${answer.correction.id} (${answer.correction.kind}) saved.`;
        render(answer.result);
      } catch (error) { status.textContent = `Refused: ${error.message}`; }
    }

    function render(data) {
      const dates = data.timepoints.map((tp) => formatDate(tp.date) || `visit ${tp.visit}`);
      const recist = (data.responses && data.responses.recist) || [];
      const volumetric = (data.responses && data.responses.volumetric) || [];
      $("#patient-title").textContent = `Patient ${data.patient_id} ${data.patient_name || ""}`;
      const last = recist[recist.length - 1];
      $("#patient-summary").textContent = `${data.timepoints.length} timepoints, ` +
        `${data.lesions.length} lesions; latest RECIST 1.1: ${last ? last.category : "–"}` +
        (last ? ` (${last.reason})` : "");
      // head: one column per timepoint with a link to OHIF
      const head = el("tr", {}, el("th", {}, "Lesion"), el("th", {}, "Role"));
      data.timepoints.forEach((tp, i) => {
        const th = el("th", {}, `${tp.visit}: ${dates[i]}`, tp.baseline ? " (baseline)" : "");
        const uids = tp.study_uids.join(",");
        if (config.viewerInstalled) {
          th.append(el("br"), el("a", { href: `viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uids)}`,
            target: "_blank", rel: "noopener", class: "open-ohif" }, "Open in OHIF"));
        }
        head.append(th);
      });
      $("#tracking-table thead").replaceChildren(head);
      const body = $("#tracking-table tbody");
      body.replaceChildren();
      for (const lesion of data.lesions) {
        const name = el("td", {}, el("strong", {}, lesion.tracking_id), " ", lesion.label,
          lesion.confidence === "low" ? el("small", { class: "low", title:
            "matched across frames of reference without registration: check" }, " low confidence") : "",
          el("br"),
          el("button", { type: "button", class: "tiny rename", onclick: () => {
            const label = prompt("New name of the lesion", lesion.label);
            if (label) correct({ kind: "rename", lesion: lesion.uid, label });
          } }, "Rename"));
        const role = el("select", { class: "role", "aria-label": `role of ${lesion.tracking_id}`,
          onchange: (event) => correct({ kind: "role", lesion: lesion.uid, role: event.target.value }) });
        for (const value of ["target", "non-target", "new"]) {
          const option = el("option", { value }, value);
          if (value === lesion.role) option.selected = true;
          role.append(option);
        }
        const row = el("tr", { "data-lesion": lesion.uid }, name, el("td", {}, role));
        for (const m of lesion.measurements) {
          if (m.status === "absent") { row.append(el("td", {}, "")); continue; }
          const cell = el("td", { class: `cell ${m.status}` },
            `${number(m.long_axis_mm)} mm`, el("small", {}, `${number(m.volume_mm3, 0)} mm³`),
            el("small", {}, m.status + (m.volume_change_pct !== null && m.volume_change_pct !== undefined
              ? ` ${m.volume_change_pct > 0 ? "+" : ""}${m.volume_change_pct} % vol.` : "")));
          const used = (m.findings || []).find((f) => f.used);
          if (used) {
            cell.title = `${used.kind} ${used.source}`;
            cell.append(
              el("button", { type: "button", class: "tiny split", title: "this and later timepoints become a lesion of their own",
                onclick: () => correct({ kind: "split", at: used.key }) }, "Split"), " ",
              el("button", { type: "button", class: "tiny exclude", title: "exclude this finding",
                onclick: () => correct({ kind: "exclude", finding: used.key }) }, "Exclude"));
          }
          row.append(cell);
        }
        body.append(row);
      }
      const foot = $("#tracking-table tfoot");
      foot.replaceChildren(
        el("tr", {}, el("td", {}, "RECIST 1.1"), el("td", {}, "sum"),
          ...recist.map((r) => el("td", { class: `cat-${r.category}`, title: r.reason },
            `${r.category} · ${number(r.total)} mm`))),
        el("tr", {}, el("td", {}, "Volumetric"), el("td", {}, "targets"),
          ...volumetric.map((r) => el("td", { class: `cat-${r.category}`, title: r.reason },
            `${r.category} · ${number(r.total, 0)} mm³`))));
      // merge selectors
      for (const id of ["#merge-into", "#merge-other"]) {
        $(id).replaceChildren(...data.lesions.map((l) => el("option", { value: l.uid },
          `${l.tracking_id} ${l.label}`)));
      }
      if (data.lesions.length > 1) $("#merge-other").selectedIndex = 1;
      // charts
      const series = (key) => data.lesions.map((lesion, i) => ({
        label: `${lesion.tracking_id} ${lesion.label}`,
        data: lesion.measurements.map((m) => (m.status === "absent" ? null : m[key])),
        borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
      }));
      lineChart("#chart-diameter", dates, series("long_axis_mm"));
      lineChart("#chart-volume", dates, series("volume_mm3"));
      lineChart("#chart-sum", dates.map((d, i) => `${d} ${recist[i] ? recist[i].category : ""}`), [{
        label: "Sum of diameters (mm)", data: recist.map((r) => r.total),
        borderColor: "#e6edf3", backgroundColor: recist.map((r) =>
          r.category === "PD" ? "#e5534b" : (r.category === "PR" || r.category === "CR") ? "#3fb950" : "#4aa3ff"),
        pointRadius: 6,
      }]);
      // sources and corrections
      $("#sources").replaceChildren(...(data.sources || []).map((s) => el("li",
        { class: s.state === "refused" ? "refused" : "" },
        `${s.kind} ${s.sop_uid}: ${s.state}${s.note ? " — " + s.note : ""}`)));
      $("#corrections").replaceChildren(...(data.corrections || []).map((c) => {
        const item = el("li", {}, `#${c.id} ${c.kind} by ${c.username} at ${(c.created_at || "").slice(0, 19)} `,
          JSON.stringify(c.payload));
        if (c.withdrawn_at) item.append(` — withdrawn by ${c.withdrawn_by}`);
        else item.append(" ", el("button", { type: "button", class: "tiny", onclick: async () => {
          try {
            render(await (await api(`${base}/corrections/${c.id}`, { method: "DELETE" })).json());
            status.textContent = `Correction ${c.id} withdrawn.`;
          } catch (error) { status.textContent = `Refused: ${error.message}`; }
        } }, "Withdraw"));
        return item;
      }));
      document.body.dataset.ready = "true";
    }

    $("#merge-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const lesion = $("#merge-into").value;
      const other = $("#merge-other").value;
      if (lesion === other) { status.textContent = "Choose two different lesions."; return; }
      correct({ kind: "merge", lesion, other });
    });
    $("#store-sr").addEventListener("click", async () => {
      status.textContent = "Storing…";
      try {
        const stored = await (await api(`${base}/sr`, { method: "POST" })).json();
        status.textContent = `Stored SR ${stored.sop_uid} in study ${stored.study_uid}.`;
      } catch (error) { status.textContent = `Refused: ${error.message}`; }
    });
    try {
      render(await (await api(base)).json());
    } catch (error) {
      $("#patient-summary").textContent = error.message;
    }
  }

  if (page === "patients") patients();
  if (page === "tracking") tracking();
})();
