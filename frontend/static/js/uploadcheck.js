// Uploads that explain themselves (issue 14, item 6): what the browser can tell
// before sending a byte (empty files, folders, files over the server's limit,
// files whose first bytes show they are no image), a file that is already in
// the project, and failures in words a user understands.
import { api, items } from "./api.js";
import { el, formatBytes } from "./ui.js";

/** Signatures of common files that are never slides, with what they are. */
const NOT_IMAGES = [
  [[0x25, 0x50, 0x44, 0x46], 0, "a PDF document"],
  [[0x7f, 0x45, 0x4c, 0x46], 0, "a program (ELF)"],
  [[0x4d, 0x5a], 0, "a Windows program"],
  [[0x49, 0x44, 0x33], 0, "an MP3 audio file"],
  [[0x66, 0x74, 0x79, 0x70], 4, "a video (MP4/MOV)"],
  [[0x52, 0x61, 0x72, 0x21], 0, "a RAR archive (use zip for multi-file slides)"],
  [[0x37, 0x7a, 0xbc, 0xaf], 0, "a 7-Zip archive (use zip for multi-file slides)"],
  [[0x1f, 0x8b], 0, "a gzip archive (use zip for multi-file slides)"],
];

function startsWith(bytes, sig, at) {
  return sig.every((b, i) => bytes[at + i] === b);
}

/** Plain text (not XML, which some formats use): every byte printable or whitespace. */
function isText(bytes) {
  if (!bytes.length) return false;
  const head = new TextDecoder("utf-8", { fatal: false }).decode(bytes.slice(0, 16)).trimStart();
  if (head.startsWith("<")) return false;
  return bytes.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b !== 127) );
}

let limit = null;
/** The server's upload limit (bytes), from the tus OPTIONS answer; null if unknown. */
async function serverLimit() {
  if (limit === null) {
    try {
      const res = await api("uploads", { method: "OPTIONS", raw: true });
      limit = Number(res.headers.get("Tus-Max-Size")) || 0;
    } catch { limit = 0; }
  }
  return limit || null;
}

/**
 * Why `file` cannot be uploaded, or null.  Reads only the first 4 KB.  Whatever
 * the browser cannot tell is decided by the server after the upload.
 */
export async function refusal(file) {
  if (file.size === 0) return "the file is empty (0 bytes)";
  const max = await serverLimit();
  if (max && file.size > max) return `the file (${formatBytes(file.size)}) is larger than the server's limit of ${formatBytes(max)}`;
  let bytes;
  try {
    bytes = new Uint8Array(await file.slice(0, 4096).arrayBuffer());
  } catch {
    return "this is a folder or an unreadable file (zip a multi-file slide first)";
  }
  for (const [sig, at, what] of NOT_IMAGES) {
    if (startsWith(bytes, sig, at)) return `this is ${what}, not an image`;
  }
  if (isText(bytes)) return "this is a text file, not an image";
  return null;
}

/** Show a refused file in its upload row, with the reason. */
export function showRefusal(row, status, bar, action, reason) {
  row.dataset.state = "refused";
  status.className = "status error";
  status.textContent = `not uploaded: ${reason}`;
  bar.hidden = true;
  action.hidden = true;
}

/**
 * An image of this project made from a file of the same name, if any: the user
 * is asked before a second copy is uploaded (the exact check, by checksum,
 * follows the conversion: see `duplicateNote`).
 */
export async function sameNameIn(projectId, file) {
  try {
    const data = await api(`projects/${projectId}/images?limit=50&q=${encodeURIComponent(file.name)}`);
    return items(data).find((im) => im.source_filename === file.name || im.name === file.name) || null;
  } catch { return null; }
}

/**
 * SHA-256 of the file, hashed in a worker with progress; null when the user skips it
 * (`skip` is a button shown meanwhile) or the browser cannot (the exact check then
 * follows the conversion, see `duplicateNote`).
 */
export function sha256Of(file, onProgress, skip) {
  return new Promise((resolve) => {
    let worker;
    try { worker = new Worker("/static/js/hashworker.js"); } catch { resolve(null); return; }
    const done = (value) => { worker.terminate(); resolve(value); };
    if (skip) {
      skip.textContent = "Skip check";
      skip.setAttribute("aria-label", `Skip the duplicate check of ${file.name}`);
      skip.onclick = () => done(null);
    }
    worker.onmessage = (ev) => {
      if (ev.data.progress !== undefined) onProgress(ev.data.progress);
      else done(ev.data.digest || null);
    };
    worker.onerror = (ev) => { ev.preventDefault(); done(null); };
    worker.postMessage({ file });
  });
}

/** An image of this project made from a file with exactly this content, if any. */
export async function identicalIn(projectId, digest) {
  if (!digest) return null;
  try {
    const data = await api(`projects/${projectId}/images?limit=1&checksum=${digest}`);
    return items(data)[0] || null;
  } catch { return null; }
}

/** "Same file as X" on an image card, with a link to the earlier copy. */
export function duplicateNote(im, projectId) {
  if (!im.duplicate_of) return null;
  const d = im.duplicate_of;
  const href = `/viewer/${d.id}${projectId ? `?project=${encodeURIComponent(projectId)}` : ""}`;
  return el("span", { class: "duplicate muted", style: "font-size:.8rem;display:block" },
    "Same file as ", el("a", { href }, d.name), " (identical checksum).");
}

/** Conversion failures as a user reads them; the server's words stay behind a toggle. */
const PLAIN = [
  [/not a recognised image format|unsupported|cannot identify|not an image/i, "Microtome cannot read this file: it is not an image format it knows. Check the file, or zip the files of a multi-file slide (MRXS) together."],
  [/disk space|disk full|no space/i, "The server ran out of disk space. Free some space, then Retry."],
  [/too large|implausibly large/i, "The image is larger than the server accepts."],
  [/no pixels/i, "The file holds no image data."],
  [/truncated|corrupt|unexpected end|invalid/i, "The file looks damaged or incomplete. Upload it again."],
  [/deleted before its conversion/i, "The image was deleted before it was converted. Retry to convert it now."],
  [/internal error/i, "The conversion failed on the server. Retry; if it fails again, tell your administrator."],
];

export function failureDetails(error) {
  if (!error) return null;
  const plain = (PLAIN.find(([rx]) => rx.test(error)) || [null, "The conversion failed."])[1];
  return el("details", { class: "failure", style: "font-size:.8rem" },
    el("summary", { class: "error" }, plain),
    el("code", {}, error));
}
