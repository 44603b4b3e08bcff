// SHA-256 of a File off the main thread, in slices (a slide of several GB never sits in
// memory), with progress. Classic worker: hash-wasm's browser build is a UMD script.
/* global hashwasm */
importScripts("/static/vendor/hash-wasm/sha256.umd.min.js");

const SLICE = 8 << 20;

self.onmessage = async (ev) => {
  const file = ev.data.file;
  try {
    const hasher = await hashwasm.createSHA256();
    hasher.init();
    const reader = new FileReaderSync();
    for (let at = 0; at < file.size; at += SLICE) {
      hasher.update(new Uint8Array(reader.readAsArrayBuffer(file.slice(at, at + SLICE))));
      self.postMessage({ progress: Math.min(1, (at + SLICE) / file.size) });
    }
    self.postMessage({ digest: hasher.digest("hex") });
  } catch (e) {
    self.postMessage({ error: String(e && e.message || e) });
  }
};
