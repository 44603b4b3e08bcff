// A small tus 1.0.0 client (creation + resumable PATCH) for /api/uploads.
// Why our own: the server speaks plain tus and we need ~150 lines, not a
// 60 KB dependency.  Resumes after network drops (HEAD for the offset, then
// PATCH from there) and across page reloads (upload URL kept in localStorage
// keyed by file name, size and mtime).
import { authHeaders } from "./api.js";

const VERSION = "1.0.0";
const CHUNK = 8 * 1024 * 1024;
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000];

function b64(s) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(String(s))));
}

function fingerprint(file, metadata) {
  return `microtome.tus:${file.name}:${file.size}:${file.lastModified}:${metadata.project_id || ""}`;
}

export class UploadError extends Error {
  constructor(message, status, retryable) {
    super(message);
    this.status = status;
    this.retryable = retryable;
  }
}

function xhr(method, url, { headers = {}, body = null, onProgress = null, signal = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = new XMLHttpRequest();
    req.open(method, url);
    req.withCredentials = true;
    for (const [k, v] of Object.entries({ "Tus-Resumable": VERSION, ...authHeaders(), ...headers })) req.setRequestHeader(k, v);
    if (onProgress) req.upload.onprogress = (e) => onProgress(e.loaded);
    req.onload = () => resolve(req);
    req.onerror = () => reject(new UploadError("network error", 0, true));
    req.onabort = () => reject(new UploadError("cancelled", 0, false));
    if (signal) signal.addEventListener("abort", () => req.abort(), { once: true });
    req.send(body);
  });
}

// 507: the server's disk is full.  Not retried by itself (it will not change
// in seconds); the bytes already sent are kept, so "Retry" resumes.
const NO_SPACE = "not enough space on the server";

function failure(req) {
  if (req.status === 507) return new UploadError(NO_SPACE, 507, false);
  return new UploadError(serverMessage(req), req.status, req.status >= 500 || req.status === 423);
}

function serverMessage(req) {
  try {
    const data = JSON.parse(req.responseText);
    return data.error + (data.detail && typeof data.detail === "string" ? `: ${data.detail}` : "");
  } catch {
    return `${req.status} ${req.statusText}`;
  }
}

export class TusUpload {
  /**
   * @param {File} file
   * @param {{endpoint: string, metadata: object, onProgress: (sent:number, total:number)=>void}} opts
   */
  constructor(file, { endpoint = "/api/uploads", metadata = {}, onProgress = () => {} } = {}) {
    this.file = file;
    this.endpoint = endpoint;
    this.metadata = { filename: file.name, ...metadata };
    this.onProgress = onProgress;
    this.key = fingerprint(file, this.metadata);
    this.url = localStorage.getItem(this.key);
    this.offset = 0;
    this.controller = null;
  }

  async create() {
    const meta = Object.entries(this.metadata).map(([k, v]) => `${k} ${b64(v)}`).join(",");
    const req = await xhr("POST", this.endpoint, { headers: { "Upload-Length": String(this.file.size), "Upload-Metadata": meta }, signal: this.controller.signal });
    if (req.status !== 201) throw failure(req);
    this.url = new URL(req.getResponseHeader("Location"), location.origin).pathname;
    localStorage.setItem(this.key, this.url);
    this.offset = 0;
  }

  /** The server's offset for a known upload URL; false if it is gone (start over). */
  async resumeOffset() {
    const req = await xhr("HEAD", this.url, { signal: this.controller.signal });
    if (req.status === 200) {
      this.offset = Number(req.getResponseHeader("Upload-Offset")) || 0;
      return true;
    }
    if (req.status === 404 || req.status === 410 || req.status === 403) return false;
    throw new UploadError(`${req.status} ${req.statusText}`, req.status, req.status >= 500);
  }

  async patchChunk() {
    const end = Math.min(this.offset + CHUNK, this.file.size);
    const start = this.offset;
    const req = await xhr("PATCH", this.url, {
      headers: { "Upload-Offset": String(start), "Content-Type": "application/offset+octet-stream" },
      body: this.file.slice(start, end),
      onProgress: (loaded) => this.onProgress(start + loaded, this.file.size),
      signal: this.controller.signal,
    });
    if (req.status === 204) {
      this.offset = Number(req.getResponseHeader("Upload-Offset"));
      this.onProgress(this.offset, this.file.size);
      return;
    }
    if (req.status === 409) { await this.resumeOffset(); return; }
    throw failure(req);
  }

  /** Upload everything; resolves with the upload URL.  Retries transient failures. */
  async start() {
    this.controller = new AbortController();
    let attempt = 0;
    for (;;) {
      try {
        if (!this.url || !(await this.resumeOffset())) await this.create();
        while (this.offset < this.file.size) {
          await this.patchChunk();
          attempt = 0;
        }
        localStorage.removeItem(this.key);
        return this.url;
      } catch (e) {
        if (!(e instanceof UploadError) || !e.retryable || attempt >= RETRY_DELAYS.length) throw e;
        await new Promise((r) => setTimeout(r, RETRY_DELAYS[attempt]));
        attempt += 1;
      }
    }
  }

  abort() {
    if (this.controller) this.controller.abort();
  }
}
