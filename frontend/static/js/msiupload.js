// imzML mass spectrometry images are two files: X.imzML (XML) and X.ibd (data).
// Each is uploaded on its own; the server joins them into one image once both
// have arrived (in either order).  A half that arrived alone says which file
// it waits for, and the upload row follows it until the pair is joined.
import { api } from "./api.js";

const HALVES = /\.(imzml|ibd)$/i;

/** Is this file one half of an imzML pair? */
export function isMsiHalf(file) { return HALVES.test(file.name); }

/** The other half's file name ("X.ibd" for "X.imzML" and back). */
export function otherHalf(name) {
  return name.replace(HALVES, (m) => (m.toLowerCase() === ".imzml" ? ".ibd" : ".imzML"));
}

/**
 * The other half is not among the files chosen with this one: a hint for the
 * row (the upload still goes ahead; the server waits for the other file).
 */
export function missingHalfNote(file, chosen) {
  if (!isMsiHalf(file)) return null;
  const want = otherHalf(file.name).toLowerCase();
  if ([...chosen].some((f) => f.name.toLowerCase() === want)) return null;
  return `needs ${otherHalf(file.name)} too: add it to convert this mass spectrometry image`;
}

/**
 * Poll the upload until its pair is joined (it then has a job); shows what it
 * waits for meanwhile.  Returns the upload's state with its job_id.
 */
export async function waitForPair(url, info, status) {
  while (info.waiting_for && !info.job_id) {
    status.textContent = `uploaded; waiting for ${info.waiting_for} (the other file of this mass spectrometry image): add it here`;
    status.dataset.waitingFor = info.waiting_for;
    await new Promise((r) => setTimeout(r, 1500));
    info = await api(url.replace(/^\/api\//, ""));
  }
  delete status.dataset.waitingFor;
  return info;
}
