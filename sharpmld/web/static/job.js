// Keeps a running job's page current: asks /api/jobs/<id> every 2 s and reloads the page when
// the job's revision (its state and each photo's, from pages.revision) differs from the one
// the page was drawn with, so pages.py stays the only renderer. A job that has ended gets a
// page without this script.

const POLL_MS = 2000;
const live = document.getElementById("live");

async function check() {
  try {
    const url = `/api/jobs/${encodeURIComponent(live.dataset.job)}`;
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) return;
    const job = await r.json();
    if (job.revision !== live.dataset.revision) location.reload();
  } catch (e) {
    // the server is away for a moment: the next tick asks again
  }
}

setInterval(check, POLL_MS);
