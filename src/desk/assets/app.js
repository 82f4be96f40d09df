// The desk page. Every text from the server is put in with textContent, never as HTML.
"use strict";
// The token for the X-Facegate-Token header of the page's own requests; images and the
// page's files come with the HttpOnly cookie set on the first visit.
const token = document.querySelector('meta[name="facegate-token"]').content;

function el(id) { return document.getElementById(id); }

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

async function api(path, body) {
  const opts = { headers: { "X-Facegate-Token": token } };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const v = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (!r.ok) { throw new Error(v.error || ("HTTP " + r.status)); }
  return v;
}

let lastSeq = -1;
let lastEnrollState = "";
async function refreshLive() {
  try {
    const v = await api("/api/live");
    el("source-error").textContent = v.source_error || "";
    if (v.seq !== lastSeq) {
      lastSeq = v.seq;
      el("preview").src = "/api/frame.jpg?seq=" + v.seq;
      el("preview").dataset.faces = String(v.faces.length);
      const verdict = el("verdict");
      verdict.textContent = v.verdict;
      verdict.className = "verdict " + (v.faces.length === 1 && !v.faces[0].problem ? "good" : "bad");
    }
    const e = v.enroll;
    const st = el("enroll-status");
    st.dataset.state = e.state;
    if (e.state === "running") {
      st.textContent = "Enrolling " + e.name + ": " + e.got + " of " + e.needed + " good frames (" + e.message + ")";
    } else if (e.state === "idle") {
      st.textContent = "";
    } else {
      st.textContent = e.message;
    }
    showSamples(v.samples);
    if (e.state !== lastEnrollState) {
      lastEnrollState = e.state;
      if (e.state === "done") { refreshPeople(); }
    }
  } catch (err) {
    el("source-error").textContent = String(err.message || err);
  }
}

function peopleMessage(text) { el("people-message").textContent = text; }

async function refreshPeople() {
  try {
    const v = await api("/api/people");
    const list = el("people-list");
    list.replaceChildren();
    el("people-count").textContent = "(" + v.people.length + ")";
    for (const p of v.people) {
      const row = document.createElement("tr");
      row.className = "person";
      cell(row, p.name).className = "person-name";
      cell(row, String(p.templates));
      cell(row, new Date(p.created * 1000).toLocaleString());
      // The enrolled network, and how far the person has migrated to a newer one.
      const migrated = (p.migrated || []).map((m) => " + " + m.templates + " of " + m.model + " (on grants)");
      cell(row, p.model + migrated.join(""));
      const access = [];
      if (p.valid_from) { access.push("from " + p.valid_from); }
      if (p.valid_until) { access.push("until " + p.valid_until); }
      if (p.groups && p.groups.length) { access.push("groups " + p.groups.join(", ")); }
      cell(row, access.length ? access.join("; ") : "every door, any time").className = "person-access";
      const actions = cell(row, "");
      const edit = document.createElement("button");
      edit.textContent = "Access";
      edit.className = "access";
      edit.addEventListener("click", () => startAccess(row, p));
      actions.append(edit);
      const rename = document.createElement("button");
      rename.textContent = "Rename";
      rename.className = "rename";
      rename.addEventListener("click", () => startRename(row, p.name));
      const remove = document.createElement("button");
      remove.textContent = "Remove";
      remove.className = "remove";
      remove.addEventListener("click", () => confirmRemove(actions, p.name));
      actions.append(rename, remove);
      list.appendChild(row);
    }
  } catch (err) {
    peopleMessage(String(err.message || err));
  }
}

// Validity (RFC 3339 times, empty for none) and groups (comma-separated), saved signed.
function startAccess(row, p) {
  const td = row.querySelector(".person-access");
  td.replaceChildren();
  const field = (value, hint, cls) => {
    const i = document.createElement("input");
    i.value = value || "";
    i.placeholder = hint;
    i.className = cls;
    td.appendChild(i);
    return i;
  };
  const from = field(p.valid_from, "valid from, e.g. 2027-01-04T08:00:00Z", "access-from");
  const until = field(p.valid_until, "valid until, e.g. 2027-01-31T18:00:00Z", "access-until");
  const groups = field((p.groups || []).join(", "), "groups, e.g. staff", "access-groups");
  const save = document.createElement("button");
  save.textContent = "Save";
  save.className = "access-save";
  save.addEventListener("click", async () => {
    try {
      await api("/api/people/access", {
        name: p.name, valid_from: from.value, valid_until: until.value, groups: groups.value,
      });
      peopleMessage("access of " + p.name + " saved");
    } catch (err) {
      peopleMessage(String(err.message || err));
    }
    refreshPeople();
  });
  td.appendChild(save);
}

function startRename(row, name) {
  const input = document.createElement("input");
  input.className = "rename-input";
  input.maxLength = 64;
  input.value = name;
  const save = document.createElement("button");
  save.textContent = "Save";
  save.className = "rename-save";
  save.addEventListener("click", async () => {
    try {
      await api("/api/people/rename", { old: name, new: input.value });
      peopleMessage("renamed " + name + " to " + input.value);
    } catch (err) { peopleMessage(String(err.message || err)); }
    refreshPeople();
  });
  const td = row.lastChild;
  td.replaceChildren(input, save);
}

function confirmRemove(td, name) {
  const q = document.createElement("span");
  q.textContent = "Remove " + name + "? ";
  const yes = document.createElement("button");
  yes.textContent = "Yes, remove";
  yes.className = "remove-confirm";
  yes.addEventListener("click", async () => {
    try {
      await api("/api/people/remove", { name: name });
      peopleMessage("removed " + name);
    } catch (err) { peopleMessage(String(err.message || err)); }
    refreshPeople();
  });
  const no = document.createElement("button");
  no.textContent = "Keep";
  no.addEventListener("click", refreshPeople);
  td.replaceChildren(q, yes, no);
}

async function refreshHealth() {
  try {
    const v = await api("/api/health");
    if (!v.health) {
      el("drift").textContent = "no audit log given (--audit FILE)";
      el("threshold").textContent = typeof v.threshold === "number" ? v.threshold.toFixed(3) : "-";
      return;
    }
    const h = v.health;
    el("threshold").textContent = h.threshold.toFixed(3);
    const drift = el("drift");
    drift.textContent = h.drift || "genuine scores are steady";
    drift.className = h.drift ? "bad" : "good";
    const scores = el("scores");
    scores.replaceChildren();
    const top = Math.max(h.threshold * 1.1, ...h.grant_distances);
    for (const d of h.grant_distances) {
      const b = document.createElement("div");
      b.className = "bar" + (d > 0.9 * h.threshold ? " near" : "");
      b.style.height = (100 * d / top).toFixed(1) + "%";
      b.title = d.toFixed(3);
      scores.appendChild(b);
    }
    const line = document.createElement("div");
    line.className = "line";
    line.style.bottom = (100 * h.threshold / top).toFixed(1) + "%";
    scores.appendChild(line);
    const hours = el("hours");
    hours.replaceChildren();
    const most = Math.max(1, ...h.grants_per_hour.map((x) => x[1]));
    for (const [t, n] of h.grants_per_hour) {
      const b = document.createElement("div");
      b.className = "hourbar";
      b.style.height = (100 * n / most).toFixed(1) + "%";
      b.title = new Date(t * 1000).toLocaleString() + ": " + n;
      hours.appendChild(b);
    }
    const list = el("decisions");
    list.replaceChildren();
    for (const r of h.recent) {
      const row = document.createElement("tr");
      row.className = "decision";
      cell(row, new Date(r.time * 1000).toLocaleString());
      cell(row, r.decision);
      cell(row, r.person || "");
      cell(row, r.distance == null ? "" : r.distance.toFixed(3));
      cell(row, r.reason || "");
      list.appendChild(row);
    }
  } catch (err) {
    el("drift").textContent = String(err.message || err);
  }
}

el("enroll-start").addEventListener("click", async () => {
  try {
    await api("/api/enroll", { name: el("enroll-name").value });
  } catch (err) { el("enroll-status").textContent = String(err.message || err); }
});
el("enroll-cancel").addEventListener("click", () => api("/api/enroll/cancel", {}).catch(() => {}));
el("identify-button").addEventListener("click", async () => {
  const out = el("identify-result");
  try {
    const v = await api("/api/identify", {});
    if (!v.face) { out.textContent = "no face in the frame"; return; }
    const r = v.result;
    const d = r.distance == null ? "no one enrolled" : "distance " + r.distance.toFixed(3);
    const m = r.margin == null ? "" : ", margin " + r.margin.toFixed(3);
    out.textContent = (r.person ? r.person : "unknown") + " (" + d + m + ", threshold " + v.threshold.toFixed(3) + ")";
  } catch (err) { out.textContent = String(err.message || err); }
});

refreshLive();
refreshPeople();
refreshHealth();
let suggested = false;
function showSamples(s) {
  el("samples-counts").textContent =
    "Recorded: " + s.counts[0] + " bona fide, " + s.counts[1] + " attack" +
    (s.state === "recording" ? " (recording " + s.kind + ": " + s.saved + " of " + s.wanted + ")" : "");
  const st = el("samples-status");
  st.dataset.state = s.state;
  st.textContent = s.message || "";
  // Once per evaluation, offer the threshold at which at most 5% of people are refused.
  if (s.report && s.report.at_bpcer_5pct && !suggested && s.state === "done") {
    suggested = true;
    st.textContent += "\nSuggested threshold (BPCER 5%): " + s.report.at_bpcer_5pct.threshold.toFixed(3);
    el("samples-threshold").value = s.report.at_bpcer_5pct.threshold.toFixed(3);
  }
}
function samplesMessage(text) { el("samples-status").textContent = text; }
for (const [id, kind] of [["samples-bona-fide", "bona-fide"], ["samples-attack", "attack"]]) {
  el(id).addEventListener("click", () => {
    api("/api/samples/record", { kind, frames: Number(el("samples-frames").value) })
      .catch((err) => samplesMessage(String(err.message || err)));
  });
}
el("samples-evaluate").addEventListener("click", () => {
  suggested = false;
  api("/api/samples/evaluate", { threshold: Number(el("samples-threshold").value) })
    .catch((err) => samplesMessage(String(err.message || err)));
});
el("samples-apply").addEventListener("click", async () => {
  try {
    const v = await api("/api/samples/apply", { threshold: Number(el("samples-threshold").value) });
    samplesMessage("Written to " + v.written + ": texture = true, texture_threshold = " +
      v.texture_threshold + " (restart the door to use it)");
  } catch (err) {
    samplesMessage(String(err.message || err));
  }
});

setInterval(refreshLive, 500);
setInterval(refreshHealth, 5000);
