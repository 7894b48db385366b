// Keeps the queue table fresh: polls /api/jobs every 2 s and rebuilds the rows.
// Names come from strangers, so every value is set with textContent or setAttribute;
// no HTML is ever parsed from data.

const POLL_MS = 2000;

function duration(job) {
  const s = job.result && job.result.duration_seconds;
  if (typeof s !== "number") return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

function errorText(job) {
  const e = job.error || {};
  if (e.message && e.code) return `${e.message} (${e.code})`;
  return String(e.message || e.code || "");
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function notice(text) {
  document.getElementById("notice").textContent = text;
}

async function retry(id) {
  const r = await fetch(`/api/jobs/${encodeURIComponent(id)}/retry`, {
    method: "POST",
    credentials: "same-origin",
  });
  notice(r.ok ? "Sent back to the inbox." : "This job could not be retried.");
  refresh();
}

function row(job) {
  const tr = document.createElement("tr");
  const name = document.createElement("td");
  const link = document.createElement("a");
  link.setAttribute("href", `/jobs/${encodeURIComponent(job.id)}`);
  link.textContent = job.name || job.id;
  name.appendChild(link);
  tr.appendChild(name);
  tr.appendChild(cell(String(job.photos ?? "")));
  tr.appendChild(cell(job.state, `state ${job.state}`));
  tr.appendChild(cell(duration(job)));
  tr.appendChild(cell(errorText(job), "error"));
  const action = document.createElement("td");
  if (job.state === "failed") {
    const button = document.createElement("button");
    button.className = "retry";
    button.textContent = "Retry";
    button.addEventListener("click", () => retry(job.id));
    action.appendChild(button);
  }
  tr.appendChild(action);
  return tr;
}

async function refresh() {
  try {
    const r = await fetch("/api/jobs", { credentials: "same-origin" });
    if (!r.ok) throw new Error(String(r.status));
    const { jobs } = await r.json();
    document.querySelector("#jobs tbody").replaceChildren(...jobs.map(row));
  } catch (e) {
    notice("The server is not answering; retrying.");
  }
}

for (const button of document.querySelectorAll("button.retry")) {
  button.addEventListener("click", () => retry(button.dataset.id));
}
setInterval(refresh, POLL_MS);
