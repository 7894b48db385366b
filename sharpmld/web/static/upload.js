// The upload page: collects photos (picker, camera, folder, drag and drop), sends them as
// one multipart POST to /api/jobs with progress, shows the server's answer, then follows
// the job until the daemon has finished it. Every text from the server goes in as text.

const $ = (id) => document.getElementById(id);
const chosen = []; // {file, path}: path is the name inside the job, folders kept

function pathsOf(list) {
  return list.map((c) => c.path);
}

// A folder dropped or picked arrives as "garden/a.jpg", "garden/b.jpg": the folder is the job,
// so its name becomes the job name and the files go in without it.
function commonFolder(paths) {
  if (paths.length === 0 || !paths.every((p) => p.includes("/"))) return null;
  const top = paths[0].split("/")[0];
  return paths.every((p) => p.split("/")[0] === top) ? top : null;
}

function show() {
  const list = $("files");
  list.replaceChildren(...chosen.map((c) => {
    const li = document.createElement("li");
    li.textContent = `${c.path} (${(c.file.size / 1e6).toFixed(1)} MB)`;
    return li;
  }));
  $("send").disabled = chosen.length === 0;
}

function add(file, path) {
  chosen.push({ file, path: path || file.name });
  $("error").textContent = "";
  show();
}

function fromInput(input) {
  for (const file of input.files) add(file, file.webkitRelativePath || file.name);
  input.value = "";
}

// Drag and drop of folders: the entries must be taken during the drop event itself.
function readAll(reader) {
  return new Promise((resolve, reject) => {
    const all = [];
    const next = () => reader.readEntries((batch) => {
      if (batch.length === 0) resolve(all);
      else { all.push(...batch); next(); }
    }, reject);
    next();
  });
}

async function walk(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    add(file, entry.fullPath.replace(/^\/+/, ""));
  } else if (entry.isDirectory) {
    for (const child of await readAll(entry.createReader())) await walk(child);
  }
}

function onDrop(event) {
  event.preventDefault();
  $("drop").classList.remove("over");
  const items = [...(event.dataTransfer.items || [])];
  const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (entries.length && entries.every((e) => e)) {
    Promise.all(entries.map(walk)).catch((e) => { $("error").textContent = `Could not read the drop: ${e}`; });
  } else {
    for (const file of event.dataTransfer.files) add(file, file.name);
  }
}

async function followJob(url) {
  const status = $("status");
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    let info;
    try {
      info = await (await fetch(url, { credentials: "same-origin" })).json();
    } catch {
      continue;
    }
    if (info.id && (info.state === "done" || info.state === "failed")) {
      status.textContent = `Job ${info.id} is ${info.state}. `;
      const link = document.createElement("a");
      link.href = `/jobs/${encodeURIComponent(info.id)}`;
      link.textContent = "Open it";
      status.append(link);
      status.dataset.state = info.state;
      return;
    }
    status.textContent = info.state === "working" ? `Job ${info.id} is being processed…` : "Waiting for the daemon to take the job…";
    status.dataset.state = info.state;
  }
}

const HEAD_BYTES = 4096; // what the server's magic looks at (intake.magic.DESCRIBE_BYTES)

async function headOf(file) {
  const bytes = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function refuse(answer, status) {
  $("progress").hidden = true;
  $("status").textContent = "";
  const where = answer.file ? ` (${answer.file})` : "";
  $("error").textContent = `${answer.message || `The server refused the upload (HTTP ${status}).`}${where}`;
  $("error").dataset.code = answer.code || "";
}

// The server's own rules on each file's path, size and first bytes, before any photo is sent:
// a refusal is shown at once instead of after the whole upload.
async function check(entries) {
  const files = await Promise.all(entries.map(async (e) => ({ path: e.path, size: e.file.size, head: await headOf(e.file) })));
  const response = await fetch("/api/jobs/check", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ files }),
  });
  if (response.ok) return true;
  let answer = {};
  try { answer = await response.json(); } catch { /* not JSON: say the status */ }
  refuse(answer, response.status);
  return false;
}

async function send(event) {
  event.preventDefault();
  if (chosen.length === 0) return;
  const picked = chosen.splice(0);
  show();
  const folder = commonFolder(pathsOf(picked));
  const files = picked.map((c) => ({ file: c.file, path: folder ? c.path.slice(folder.length + 1) : c.path }));
  const progress = $("progress");
  const status = $("status");
  $("error").textContent = "";
  delete $("error").dataset.code;
  delete status.dataset.state;
  status.textContent = "Checking…";
  try {
    if (!(await check(files))) return;
  } catch (e) {
    refuse({ message: `The files could not be checked: ${e}` }, 0);
    return;
  }

  const form = new FormData();
  form.append("name", $("name").value.trim() || folder || "");
  for (const c of files) form.append("file", c.file, c.path);
  progress.hidden = false;
  progress.value = 0;
  status.textContent = "Uploading…";

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/jobs");
  xhr.responseType = "json";
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; };
  xhr.onload = () => {
    progress.hidden = true;
    const answer = xhr.response || {};
    if (xhr.status === 201) {
      status.textContent = `Uploaded ${answer.files} file(s) as “${answer.inbox}”. Waiting for the daemon…`;
      status.dataset.state = "inbox";
      followJob(answer.follow);
    } else {
      refuse(answer, xhr.status);
    }
  };
  xhr.onerror = () => {
    refuse({ message: "The connection was lost during the upload; nothing was kept. Try again." }, 0);
  };
  xhr.send(form);
}

for (const id of ["photos", "folder", "camera"]) $(id).addEventListener("change", (e) => fromInput(e.target));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", onDrop);
$("upload").addEventListener("submit", send);
