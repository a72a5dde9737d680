// radpacs web UI: study list (QIDO-RS), upload (STOW-RS, /api/upload-zip), delete, open in OHIF.
// Plain browser JavaScript, no build step. Every URL is relative to the page.
// A 401 opens the login form; POST api/session sets an HttpOnly cookie that the browser then
// sends with every same-origin call (this page's and OHIF's), so no token is handled here.
"use strict";

(function () {
  const config = window.RADPACS || { viewerInstalled: false, pageSize: 25 };
  const DICOMWEB = "dicom-web";
  const STOW_BATCH_FILES = 50;
  const STOW_BATCH_BYTES = 32 * 1024 * 1024;
  const INCLUDE = ["00081030", "00080061", "00201206", "00201208", "00080050", "00100030"];

  const $ = (selector) => document.querySelector(selector);
  const state = {
    offset: 0, filters: {}, rows: [], qc: {}, sortKey: "StudyDate", sortDir: -1, hasMore: false,
  };
  const session = { user: null, permissions: [], loggingIn: null };

  // ---- session: login form, who am I, log out -----------------------------------------
  const can = (permission) => session.permissions.includes(permission);

  // Show the login form until a login succeeds; concurrent callers share one form.
  function login() {
    if (session.loggingIn) return session.loggingIn;
    const dialog = $("#login");
    const form = $("#login-form");
    const error = $("#login-error");
    session.loggingIn = new Promise((resolve) => {
      form.onsubmit = async (event) => {
        event.preventDefault();
        error.textContent = "";
        $("#login-button").disabled = true;
        try {
          const response = await fetch("api/session", {
            method: "POST",
            body: new URLSearchParams(new FormData(form)),
          });
          if (response.ok) {
            $("#login-password").value = "";
            dialog.close();
            session.loggingIn = null;
            resolve();
            return;
          }
          const problem = await response.json().catch(() => ({}));
          error.textContent =
            response.status === 401
              ? "Wrong user name or password."
              : problem.detail || `Login failed: HTTP ${response.status}`;
        } catch (failure) {
          error.textContent = `The server could not be reached: ${failure.message}`;
        } finally {
          $("#login-button").disabled = false;
        }
      };
    });
    if (!dialog.open) dialog.showModal();
    $("#login-username").focus();
    return session.loggingIn;
  }

  // fetch() that logs in and tries again when the server answers 401.
  async function api(url, options = {}) {
    for (;;) {
      const response = await fetch(url, { credentials: "same-origin", ...options });
      if (response.status !== 401) return response;
      await login();
      await refreshUser();
    }
  }

  async function refreshUser() {
    const response = await fetch("api/auth/me", { credentials: "same-origin" });
    if (response.status === 401) {
      await login();
      return refreshUser();
    }
    const me = response.ok ? await response.json() : { username: "?", roles: [], permissions: [] };
    session.user = me;
    session.permissions = me.permissions || [];
    const roles = (me.roles || []).join(", ") || "no role";
    $("#who").textContent = me.source === "no-auth" ? `${me.username} (${roles}, auth off)` : `${me.username} (${roles})`;
    $("#logout").hidden = me.source === "no-auth";
    $("#account").hidden = false;
    const zone = $("#dropzone");
    const mayStore = can("store");
    zone.classList.toggle("disabled", !mayStore);
    zone.title = mayStore ? "" : `Your role (${roles}) may not upload`;
    for (const input of [$("#file-input"), $("#folder-input")]) input.disabled = !mayStore;
    render();
  }

  async function logout() {
    await fetch("api/session", { method: "DELETE", credentials: "same-origin" });
    session.user = null;
    session.permissions = [];
    state.rows = [];
    render();
    $("#account").hidden = true;
    await start();
  }

  // ---- DICOM JSON helpers ------------------------------------------------------------
  const TAGS = {
    StudyInstanceUID: "0020000D", PatientName: "00100010", PatientID: "00100020",
    StudyDate: "00080020", AccessionNumber: "00080050", ModalitiesInStudy: "00080061",
    StudyDescription: "00081030", NumberOfStudyRelatedSeries: "00201206",
    NumberOfStudyRelatedInstances: "00201208",
  };
  function value(match, keyword) {
    const attribute = match[TAGS[keyword]];
    if (!attribute || !attribute.Value) return "";
    const values = attribute.Value.map((v) => (v && typeof v === "object" ? v.Alphabetic || "" : v));
    return values.join(keyword === "ModalitiesInStudy" ? ", " : "\\");
  }
  function formatDate(text) {
    return /^\d{8}$/.test(text) ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}` : text;
  }
  function formatName(text) {
    return text.replace(/\^+$/, "").replace("^", ", ").replace(/\^/g, " ");
  }

  // ---- study list ----------------------------------------------------------------------
  function queryString() {
    const params = new URLSearchParams();
    const f = state.filters;
    if (f.PatientName) params.set("PatientName", `*${f.PatientName}*`);
    if (f.PatientID) params.set("PatientID", `${f.PatientID}*`);
    if (f.AccessionNumber) params.set("AccessionNumber", `${f.AccessionNumber}*`);
    if (f.ModalitiesInStudy) params.set("ModalitiesInStudy", f.ModalitiesInStudy);
    if (f.from || f.to) {
      const day = (d) => (d ? d.replaceAll("-", "") : "");
      params.set("StudyDate", `${day(f.from)}-${day(f.to)}`);
    }
    params.set("includefield", INCLUDE.join(","));
    params.set("limit", String(config.pageSize));
    params.set("offset", String(state.offset));
    return params.toString();
  }

  async function loadStudies() {
    const status = $("#list-status");
    status.textContent = "Loading…";
    try {
      const response = await api(`${DICOMWEB}/studies?${queryString()}`, {
        headers: { Accept: "application/dicom+json" },
      });
      if (!response.ok) {
        const problem = await response.json().catch(() => ({}));
        throw new Error(problem.detail || `HTTP ${response.status}`);
      }
      const text = await response.text();
      state.rows = text ? JSON.parse(text) : [];
      state.hasMore = (response.headers.get("Warning") || "").includes("additional results");
      state.qc = await loadQc(state.rows.map((match) => value(match, "StudyInstanceUID")));
      render();
      status.textContent = state.rows.length ? "" : "No study matches.";
    } catch (error) {
      status.textContent = `Could not load the study list: ${error.message}`;
    }
  }

  // Quality control per study: instance counts by status (GET api/qc/studies); the list
  // still shows when the REST API is off or the call fails.
  async function loadQc(uids) {
    if (!uids.length) return {};
    const params = new URLSearchParams(uids.map((uid) => ["study", uid]));
    try {
      const response = await api(`api/qc/studies?${params}`);
      return response.ok ? await response.json() : {};
    } catch (error) {
      return {};
    }
  }
  function qcText(uid, instances) {
    const counts = state.qc[uid] || {};
    const parts = ["failed", "passed", "pending"]
      .filter((status) => counts[status])
      .map((status) => `${counts[status]} ${status}`);
    const set = Object.values(counts).reduce((sum, n) => sum + n, 0);
    const unset = Math.max(0, Number(instances || 0) - set);
    if (!set) return "not checked";
    return unset ? `${parts.join(", ")}, ${unset} not checked` : parts.join(", ");
  }

  function compare(a, b) {
    const key = state.sortKey;
    const numeric = key.startsWith("NumberOf");
    const x = numeric ? Number(value(a, key) || 0) : value(a, key).toLowerCase();
    const y = numeric ? Number(value(b, key) || 0) : value(b, key).toLowerCase();
    return x < y ? -state.sortDir : x > y ? state.sortDir : 0;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function render() {
    const body = $("#study-table tbody");
    body.replaceChildren();
    for (const match of [...state.rows].sort(compare)) {
      const uid = value(match, "StudyInstanceUID");
      const row = document.createElement("tr");
      row.dataset.studyUid = uid;
      cell(row, formatName(value(match, "PatientName")));
      cell(row, value(match, "PatientID"));
      cell(row, formatDate(value(match, "StudyDate")));
      cell(row, value(match, "AccessionNumber"));
      cell(row, value(match, "ModalitiesInStudy"));
      cell(row, value(match, "StudyDescription"));
      cell(row, value(match, "NumberOfStudyRelatedSeries"), "number");
      cell(row, value(match, "NumberOfStudyRelatedInstances"), "number");
      const qc = cell(row, qcText(uid, value(match, "NumberOfStudyRelatedInstances")), "qc");
      if ((state.qc[uid] || {}).failed) qc.classList.add("qc-failed");
      const actions = cell(row, "", "actions");
      const open = document.createElement("a");
      open.textContent = "Open";
      open.className = "button open";
      if (config.viewerInstalled) {
        open.href = `viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(uid)}`;
        open.target = "_blank";
        open.rel = "noopener";
      } else {
        open.setAttribute("aria-disabled", "true");
        open.title = "Install the OHIF viewer: radpacs viewer install";
      }
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Delete";
      remove.className = "danger delete";
      if (can("delete")) {
        remove.addEventListener("click", () => confirmDelete(match));
      } else {
        remove.disabled = true;
        remove.title = `Your role (${(session.user?.roles || []).join(", ") || "none"}) may not delete`;
      }
      const analyze = document.createElement("button");
      analyze.type = "button";
      analyze.textContent = "Analyze";
      analyze.className = "analyze";
      analyze.addEventListener("click", () => openAnalyze(match));
      actions.append(open, " ", analyze, " ", remove);
      if (/\bRT(STRUCT|DOSE|PLAN)\b/.test(value(match, "ModalitiesInStudy") || "")) {
        const rt = document.createElement("a");
        rt.textContent = "DVH";
        rt.className = "button rt";
        rt.href = `rt?study=${encodeURIComponent(uid)}`;
        actions.append(" ", rt);
      }
      body.appendChild(row);
    }
    for (const th of document.querySelectorAll("#study-table th[data-sort]")) {
      th.classList.toggle("sorted", th.dataset.sort === state.sortKey);
      th.dataset.dir = state.sortDir > 0 ? "asc" : "desc";
    }
    const page = Math.floor(state.offset / config.pageSize) + 1;
    $("#page-label").textContent = `Page ${page}`;
    $("#prev").disabled = state.offset === 0;
    $("#next").disabled = !state.hasMore;
  }

  // ---- analyze: models for the study, submit, progress, results ------------------------
  const analysis = { study: null, models: [], job: null, timer: null };

  async function problem(response) {
    const body = await response.json().catch(() => ({}));
    return body.detail || body.message || `HTTP ${response.status}`;
  }

  function viewerLink(studyUid) {
    const link = document.createElement("a");
    link.textContent = "Open in OHIF";
    link.className = "button open-results";
    link.href = `viewer/viewer?StudyInstanceUIDs=${encodeURIComponent(studyUid)}`;
    link.target = "_blank";
    link.rel = "noopener";
    if (!config.viewerInstalled) link.setAttribute("aria-disabled", "true");
    return link;
  }

  async function openAnalyze(match) {
    const dialog = $("#analyze");
    const select = $("#analyze-model");
    const uid = value(match, "StudyInstanceUID");
    analysis.study = uid;
    clearTimeout(analysis.timer);
    $("#analyze-study").textContent =
      `${formatName(value(match, "PatientName")) || "(no name)"} · ${formatDate(value(match, "StudyDate"))} · ${value(match, "StudyDescription")}`;
    $("#analyze-status").textContent = "Looking for models that accept this study…";
    $("#analyze-results").replaceChildren();
    $("#analyze-progress").hidden = true;
    $("#analyze-run").disabled = true;
    select.replaceChildren();
    if (!dialog.open) dialog.showModal();
    const response = await api(`api/ai/models?study=${encodeURIComponent(uid)}`);
    if (!response.ok) {
      $("#analyze-status").textContent = `The models could not be listed: ${await problem(response)}`;
      return;
    }
    const body = await response.json();
    analysis.models = body.models.filter((m) => m.series.length > 0);
    for (const model of analysis.models) {
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = `${model.name} (${model.task})`;
      select.appendChild(option);
    }
    const refused = body.models.filter((m) => m.series.length === 0).length;
    if (!analysis.models.length) {
      $("#analyze-status").textContent = "No model accepts the series of this study.";
      return;
    }
    $("#analyze-status").textContent = refused
      ? `${analysis.models.length} model(s) accept this study; ${refused} do not.`
      : `${analysis.models.length} model(s) accept this study.`;
    $("#analyze-run").disabled = false;
    describeModel();
  }

  function describeModel() {
    const model = analysis.models.find((m) => m.name === $("#analyze-model").value);
    if (!model) return;
    const roles = model.roles
      ? " Series: " + Object.entries(model.roles).map(([r, s]) => `${r} ${s}`).join(", ")
      : "";
    $("#analyze-description").textContent = `${model.description}${roles}`;
    $("#analyze-parameters").placeholder = JSON.stringify(model.parameters);
  }

  async function runAnalysis(event) {
    event.preventDefault();
    const status = $("#analyze-status");
    let parameters = {};
    const text = $("#analyze-parameters").value.trim();
    if (text) {
      try {
        parameters = JSON.parse(text);
      } catch (failure) {
        status.textContent = `The parameters are not valid JSON: ${failure.message}`;
        return;
      }
    }
    $("#analyze-run").disabled = true;
    $("#analyze-results").replaceChildren();
    const response = await api("api/ai/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: $("#analyze-model").value, study: analysis.study, parameters }),
    });
    if (!response.ok) {
      status.textContent = `The job was not accepted: ${await problem(response)}`;
      $("#analyze-run").disabled = false;
      return;
    }
    analysis.job = await response.json();
    $("#analyze-progress").hidden = false;
    pollJob();
  }

  async function pollJob() {
    const job = analysis.job;
    const response = await api(`api/ai/jobs/${encodeURIComponent(job.id)}`);
    if (!response.ok) {
      $("#analyze-status").textContent = `The job could not be read: ${await problem(response)}`;
      return;
    }
    const current = await response.json();
    analysis.job = current;
    $("#analyze-progress").value = current.progress || 0;
    $("#analyze-status").textContent = `Job ${current.state} (${Math.round(100 * (current.progress || 0))} %)`;
    $("#analyze").dataset.state = current.state;
    if (current.state === "queued" || current.state === "running") {
      analysis.timer = setTimeout(pollJob, 500);
      return;
    }
    $("#analyze-run").disabled = false;
    if (current.state !== "succeeded") {
      $("#analyze-status").textContent = `Job ${current.state}: ${current.error || "no reason given"}`;
      return;
    }
    $("#analyze-progress").value = 1;
    await showResults(current);
  }

  async function showResults(job) {
    const list = $("#analyze-results");
    const response = await api(`api/ai/jobs/${encodeURIComponent(job.id)}/result`);
    if (!response.ok) {
      $("#analyze-status").textContent = `The results could not be read: ${await problem(response)}`;
      return;
    }
    const body = await response.json();
    for (const series of body.results || []) {
      for (const label of series.labels || []) {
        const item = document.createElement("li");
        item.className = "result-label";
        const m = label.measurements || {};
        const volume = m.volume_mm3 !== undefined ? `${Math.round(m.volume_mm3)} mm³` : "";
        const diameter =
          m.longest_diameter_mm !== undefined ? `, ${m.longest_diameter_mm.toFixed(1)} mm across` : "";
        item.textContent = `${label.name}: ${volume}${diameter}`;
        list.appendChild(item);
      }
      for (const image of series.images || []) {
        const item = document.createElement("li");
        item.className = "result-image";
        const findings = (image.findings || []).join(", ") || "no finding above the threshold";
        item.textContent = `Image ${image.sop_uid}: ${findings}`;
        list.appendChild(item);
      }
    }
    const written = (job.result_series || []).map((s) => s.modality).join(", ");
    if (!list.children.length) {
      const item = document.createElement("li");
      item.textContent = "Nothing was found.";
      list.appendChild(item);
    }
    const links = document.createElement("li");
    links.append(`Stored: ${written || "nothing"} `, viewerLink(analysis.study));
    list.appendChild(links);
    $("#analyze-status").textContent = "Job succeeded";
    loadStudies();
  }

  function setUpAnalyze() {
    $("#analyze-model").addEventListener("change", describeModel);
    $("#analyze-form").addEventListener("submit", (event) => {
      if (event.submitter && event.submitter.value === "close") {
        clearTimeout(analysis.timer);
        $("#analyze").close();
        event.preventDefault();
        return;
      }
      runAnalysis(event);
    });
  }

  // ---- delete --------------------------------------------------------------------------
  function confirmDelete(match) {
    const dialog = $("#confirm-delete");
    const name = formatName(value(match, "PatientName")) || "(no name)";
    const date = formatDate(value(match, "StudyDate"));
    $("#confirm-text").textContent =
      `Delete the study of ${name}${date ? ` from ${date}` : ""} ` +
      `(${value(match, "NumberOfStudyRelatedInstances") || "?"} instances)? This cannot be undone.`;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "delete") return;
      const uid = value(match, "StudyInstanceUID");
      const response = await api(`${DICOMWEB}/studies/${encodeURIComponent(uid)}`, {
        method: "DELETE",
      });
      const problem = response.ok ? {} : await response.json().catch(() => ({}));
      await loadStudies();
      $("#list-status").textContent = response.ok
        ? "Study deleted."
        : response.status === 403
          ? `Delete refused (HTTP 403): ${problem.detail || "your role may not delete"}`
          : `Delete failed: HTTP ${response.status} ${problem.detail || ""}`;
    };
    dialog.showModal();
  }

  // ---- upload --------------------------------------------------------------------------
  function isZip(file) {
    return /\.zip$/i.test(file.name) || file.type === "application/zip";
  }

  function newUploadItem(label) {
    const item = document.createElement("li");
    item.className = "upload";
    const title = document.createElement("div");
    title.className = "upload-title";
    title.textContent = label;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const summary = document.createElement("div");
    summary.className = "upload-summary";
    const failures = document.createElement("ul");
    failures.className = "failures";
    item.append(title, bar, summary, failures);
    $("#uploads").prepend(item);
    return { item, bar, summary, failures };
  }

  // POST with upload progress (XMLHttpRequest); logs in and sends again on 401.
  async function send(url, body, contentType, onProgress) {
    for (;;) {
      const xhr = await sendOnce(url, body, contentType, onProgress);
      if (xhr.status !== 401) return xhr;
      await login();
      await refreshUser();
    }
  }

  function sendOnce(url, body, contentType, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("Content-Type", contentType);
      xhr.setRequestHeader("Accept", "application/dicom+json, application/json");
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded);
      };
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => resolve(xhr);
      xhr.send(body);
    });
  }

  function warnings(xhr) {
    const header = xhr.getResponseHeader("Warning") || "";
    const found = [];
    const pattern = /\d{3} \S+ "((?:[^"\\]|\\.)*)"/g;
    let match;
    while ((match = pattern.exec(header)) !== null) found.push(match[1]);
    return found;
  }

  function parseJSON(text) {
    try {
      return text ? JSON.parse(text) : {};
    } catch (error) {
      return {};
    }
  }

  // FailureReason (0008,1197) in words, for a failure the Warning header did not explain.
  const FAILURE_REASONS = {
    0x0111: "another object is already stored under its SOP Instance UID",
    0x0122: "its SOP Class is not supported",
    0xa700: "the server ran out of resources",
    0xa900: "its data set does not match its SOP Class",
    0xc000: "the server cannot understand it",
    0xc409: "it belongs to another study than the one uploaded to",
  };

  const fileName = (file) => file.relativePath || file.webkitRelativePath || file.name;

  // Why a file cannot be a DICOM PS3.10 file, read from its first 132 bytes; null if it can.
  async function notDicom(file) {
    if (file.size === 0) return "empty file";
    if (file.size < 132) return `not a DICOM file: only ${file.size} bytes, no DICM prefix`;
    const magic = new Uint8Array(await file.slice(128, 132).arrayBuffer());
    return String.fromCharCode(...magic) === "DICM"
      ? null
      : "not a DICOM file: no DICM prefix at byte 128";
  }

  // The file of a batch holding this SOP Instance UID (it sits in the first kilobytes).
  async function fileWithUid(files, uid) {
    if (!uid) return null;
    for (const file of files) {
      const head = new Uint8Array(await file.slice(0, 65536).arrayBuffer());
      let text = "";
      for (let i = 0; i < head.length; i += 8192) {
        text += String.fromCharCode(...head.subarray(i, i + 8192));
      }
      if (text.includes(uid)) return file;
    }
    return null;
  }

  async function stowBatch(files, progress) {
    const boundary = `radpacs-${Math.random().toString(16).slice(2)}`;
    const parts = [];
    for (const file of files) {
      parts.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, file, "\r\n");
    }
    parts.push(`--${boundary}--\r\n`);
    const body = new Blob(parts);
    const xhr = await send(
      `${DICOMWEB}/studies`,
      body,
      `multipart/related; type="application/dicom"; boundary=${boundary}`,
      (loaded) => progress(loaded * (files.reduce((n, f) => n + f.size, 0) / body.size))
    );
    const answer = parseJSON(xhr.responseText);
    const stored = ((answer["00081199"] || {}).Value || []).length;
    const failed = [];
    if (xhr.status === 0) {
      for (const file of files) failed.push(`${fileName(file)}: the server could not be reached`);
    } else if (xhr.status >= 400 && xhr.status !== 409) {
      const why = answer.detail || `the server answered HTTP ${xhr.status}`;
      for (const file of files) failed.push(`${fileName(file)}: ${why}`);
    } else {
      const reasons = warnings(xhr).filter((w) => !w.includes("replaced the object"));
      const failedSops = (answer["00081198"] || {}).Value || [];
      for (const [index, entry] of failedSops.entries()) {
        const code = Number(((entry["00081197"] || {}).Value || [])[0] || 0);
        const uid = ((entry["00081155"] || {}).Value || [])[0] || "";
        let reason = reasons[index] || FAILURE_REASONS[code] || `failure reason 0x${code.toString(16)}`;
        if (uid && reason.startsWith(`${uid}: `)) reason = reason.slice(uid.length + 2);
        const part = /^part (\d+)\b/.exec(reason);
        const file = (await fileWithUid(files, uid)) || (part ? files[Number(part[1]) - 1] : null);
        const who = file ? fileName(file) : `one of ${files.map(fileName).join(", ")}`;
        failed.push(`${who}: ${reason}`);
      }
    }
    return { stored, failed };
  }

  async function uploadFiles(files, label) {
    const ui = newUploadItem(label);
    const total = files.reduce((n, f) => n + f.size, 0) || 1;
    let done = 0;
    let stored = 0;
    const failed = [];
    const zips = files.filter(isZip);
    const dicoms = files.filter((f) => !isZip(f));
    const setProgress = (extra) => {
      ui.bar.value = Math.min(100, Math.round(((done + extra) / total) * 100));
    };
    for (const zip of zips) {
      const xhr = await send("api/upload-zip", zip, "application/zip", setProgress);
      const answer = parseJSON(xhr.responseText);
      done += zip.size;
      if (xhr.status === 0 || xhr.status >= 400 && !answer.failed) {
        failed.push(`${zip.name}: ${answer.detail || `HTTP ${xhr.status}`}`);
        continue;
      }
      stored += (answer.stored || 0) + (answer.already_stored || 0);
      for (const failure of answer.failed || []) failed.push(`${zip.name}/${failure.file}: ${failure.reason}`);
    }
    let batch = [];
    let batchBytes = 0;
    const flush = async () => {
      if (!batch.length) return;
      const result = await stowBatch(batch, setProgress);
      stored += result.stored;
      failed.push(...result.failed);
      done += batchBytes;
      batch = [];
      batchBytes = 0;
      setProgress(0);
      ui.summary.textContent = `${stored} stored…`;
    };
    for (const file of dicoms) {
      const why = await notDicom(file);
      if (why) {
        failed.push(`${fileName(file)}: ${why}`);
        done += file.size;
        continue;
      }
      batch.push(file);
      batchBytes += file.size;
      if (batch.length >= STOW_BATCH_FILES || batchBytes >= STOW_BATCH_BYTES) await flush();
    }
    await flush();
    ui.bar.value = 100;
    ui.item.classList.add(failed.length ? "has-failures" : "ok");
    ui.summary.textContent =
      `${stored} instance${stored === 1 ? "" : "s"} stored` +
      (failed.length ? `, ${failed.length} failed:` : ".");
    for (const reason of failed) {
      const li = document.createElement("li");
      li.textContent = reason;
      ui.failures.appendChild(li);
    }
    await loadStudies();
  }

  // Folders dropped: walk FileSystemEntry trees (Chromium, Firefox, Safari).
  function readEntry(entry, path) {
    return new Promise((resolve) => {
      if (entry.isFile) {
        entry.file(
          (file) => {
            file.relativePath = path + file.name;
            resolve([file]);
          },
          () => resolve([])
        );
        return;
      }
      const reader = entry.createReader();
      const all = [];
      const next = () =>
        reader.readEntries(async (entries) => {
          if (!entries.length) {
            const nested = await Promise.all(all.map((e) => readEntry(e, `${path}${entry.name}/`)));
            resolve(nested.flat());
            return;
          }
          all.push(...entries);
          next();
        }, () => resolve([]));
      next();
    });
  }

  async function filesFromDrop(dataTransfer) {
    const entries = [...dataTransfer.items]
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    if (!entries.length) return [...dataTransfer.files];
    return (await Promise.all(entries.map((entry) => readEntry(entry, "")))).flat();
  }

  function describe(files) {
    return files.length === 1 ? files[0].name : `${files.length} files`;
  }

  function setUpUpload() {
    const zone = $("#dropzone");
    for (const input of [$("#file-input"), $("#folder-input")]) {
      input.addEventListener("change", () => {
        const files = [...input.files];
        input.value = "";
        if (files.length) uploadFiles(files, describe(files));
      });
    }
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = await filesFromDrop(event.dataTransfer);
      if (files.length) uploadFiles(files, describe(files));
    });
  }

  // ---- search, sort, paging ------------------------------------------------------------
  function setUpList() {
    const form = $("#search");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.filters = Object.fromEntries(
        [...new FormData(form).entries()].map(([k, v]) => [k, String(v).trim()]).filter(([, v]) => v)
      );
      state.offset = 0;
      loadStudies();
    });
    form.addEventListener("reset", () => {
      state.filters = {};
      state.offset = 0;
      setTimeout(loadStudies, 0);
    });
    $("#prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - config.pageSize);
      loadStudies();
    });
    $("#next").addEventListener("click", () => {
      state.offset += config.pageSize;
      loadStudies();
    });
    for (const th of document.querySelectorAll("#study-table th[data-sort]")) {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        state.sortDir = state.sortKey === key ? -state.sortDir : 1;
        state.sortKey = key;
        render();
      });
    }
  }

  // A viewer link opened without a session lands here as ?next=viewer/...; once logged in,
  // go back to it. Only viewer paths of this server are followed.
  function nextLink() {
    const next = new URLSearchParams(window.location.search).get("next") || "";
    return /^viewer(\/|$)/.test(next) ? next : null;
  }

  async function start() {
    const next = nextLink();
    if (next) $("#login-next").hidden = false;
    await refreshUser();
    if (next) {
      window.location.replace(next);
      return;
    }
    await loadStudies();
  }

  $("#login").addEventListener("cancel", (event) => event.preventDefault());
  $("#logout").addEventListener("click", logout);
  setUpUpload();
  setUpList();
  setUpAnalyze();
  start();
})();
