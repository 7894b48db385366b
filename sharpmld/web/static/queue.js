// Keeps the queue page fresh: polls /api/jobs and /api/status every 2 s and rebuilds the
// rows and the engine and disk panel the way pages.py renders them.
// Names come from strangers, so every value is set with textContent or setAttribute;
// no HTML is ever parsed from data.

const POLL_MS = 2000;
const GB = 1024 ** 3;
const MB = 1024 ** 2;

function clock(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

function duration(job) {
  const started = job.progress && job.progress.started_at;
  if (job.state === "working" && typeof started === "number") {
    return clock(Math.max(0, Date.now() / 1000 - started));
  }
  const s = job.result && job.result.duration_seconds;
  return typeof s === "number" ? clock(s) : "";
}

function errorText(job) {
  const e = job.error || {};
  if (e.message && e.code) return `${e.message} (${e.code})`;
  return String(e.message || e.code || "");
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function notice(text) {
  document.getElementById("notice").textContent = text;
}

async function post(id, action, okText, failText) {
  const r = await fetch(`/api/jobs/${encodeURIComponent(id)}/${action}`, {
    method: "POST",
    credentials: "same-origin",
  });
  let body = {};
  try {
    body = await r.json();
  } catch (e) {
    body = {};
  }
  const why = body.message ? `: ${body.message}.` : ".";
  notice(r.ok ? okText(body) : `${failText}${why}`);
  refresh();
}

const retry = (id) => post(id, "retry", () => "Sent back to the inbox.", "This job could not be retried");
const cancel = (id) =>
  post(
    id,
    "cancel",
    (body) =>
      body.state === "failed"
        ? "Cancelled: the job is in failed/, its photos kept."
        : "Cancel requested: the job stops after the photo in hand.",
    "This job could not be cancelled",
  );

function progressCell(job) {
  const td = el("td", undefined, "progress");
  if (job.state === "working") {
    const p = job.progress || {};
    const photos = Array.isArray(p.photos) ? p.photos : [];
    const total = Number(p.images_total || photos.length || 0);
    const done = Number(p.images_done || 0);
    if (!total) {
      td.appendChild(el("span", "starting", "meta"));
      return td;
    }
    const bar = document.createElement("progress");
    bar.max = total;
    bar.value = done;
    td.append(bar, " ", el("span", `${done} of ${total} photos`, "tally"));
    const list = el("ol", undefined, "photos");
    for (const photo of photos) {
      const item = el("li", undefined, `photo ${photo.state}`);
      item.append(el("span", String(photo.source), "source"), " ", el("span", String(photo.state), "photo-state"));
      list.appendChild(item);
    }
    td.appendChild(list);
  } else if (job.result) {
    const made = (job.result.images || []).length;
    const refused = (job.result.rejected || []).length;
    td.appendChild(el("span", `${made} made` + (refused ? `, ${refused} not used` : ""), "tally"));
  }
  return td;
}

function button(label, className, onClick) {
  const b = el("button", label, className);
  b.addEventListener("click", onClick);
  return b;
}

function row(job) {
  const tr = document.createElement("tr");
  tr.dataset.id = job.id;
  const name = document.createElement("td");
  const link = el("a", job.name || job.id);
  link.setAttribute("href", `/jobs/${encodeURIComponent(job.id)}`);
  name.appendChild(link);
  tr.append(name, el("td", String(job.photos ?? "")), el("td", job.state, `state ${job.state}`));
  tr.append(progressCell(job), el("td", duration(job)), el("td", errorText(job), "error"));
  const action = document.createElement("td");
  if (job.state === "failed") action.appendChild(button("Retry", "retry", () => retry(job.id)));
  if (job.state === "inbox" || job.state === "working") {
    action.appendChild(button("Cancel", "cancel", () => cancel(job.id)));
  }
  tr.appendChild(action);
  return tr;
}

function size(n) {
  return n >= GB ? `${(n / GB).toFixed(1)} GB` : `${(n / MB).toFixed(0)} MB`;
}

function statusLines(info) {
  const lines = [];
  const daemons = info.daemons || [];
  if (!daemons.length) lines.push(["warn", "No daemon is running on this folder: start one with `sharpmld run`."]);
  for (const d of daemons) {
    const device = d.device ? ` on ${d.device}` : "";
    const why = d.engine_message ? `: ${d.engine_message}` : "";
    lines.push(["engine", `Engine ${d.engine}${device}${why} (daemon ${d.pid}@${d.host})`]);
    if (d.paused) lines.push(["warn", `Paused: ${d.paused}`]);
  }
  const c = info.counts || {};
  lines.push(["counts", ["inbox", "working", "done", "failed"].map((s) => `${s} ${c[s] || 0}`).join(" · ")]);
  const disk = info.disk || {};
  if (typeof disk.free_bytes === "number") {
    const min = disk.min_free_bytes;
    const low = typeof min === "number" && disk.free_bytes < min;
    const limit = typeof min === "number" ? `; jobs wait below ${size(min)}` : "";
    lines.push([low ? "warn" : "disk", `Disk: ${size(disk.free_bytes)} free${limit}`]);
  }
  for (const h of info.held_back || []) lines.push(["held", `Held back: ${h.name}: ${h.message || h.reason}`]);
  return lines;
}

async function getJson(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (!r.ok) throw new Error(String(r.status));
  return r.json();
}

async function refresh() {
  try {
    const [{ jobs }, info] = await Promise.all([getJson("/api/jobs"), getJson("/api/status")]);
    document.querySelector("#jobs tbody").replaceChildren(...jobs.map(row));
    document.getElementById("empty").hidden = jobs.length > 0;
    document.getElementById("status").replaceChildren(...statusLines(info).map(([k, t]) => el("li", t, k)));
  } catch (e) {
    notice("The server is not answering; retrying.");
  }
}

for (const b of document.querySelectorAll("button.retry")) b.addEventListener("click", () => retry(b.dataset.id));
for (const b of document.querySelectorAll("button.cancel")) b.addEventListener("click", () => cancel(b.dataset.id));
setInterval(refresh, POLL_MS);
