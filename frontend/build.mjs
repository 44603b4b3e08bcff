// Copies the browser builds of our npm dependencies into static/vendor/.
// No bundler: the pages are plain ES modules, so "building" is a copy.
// Offline-safe and idempotent: reads only node_modules/.
import { cpSync, mkdirSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "static", "vendor");

const copies = [
  // [source under node_modules, destination under static/vendor]
  ["openseadragon/build/openseadragon/openseadragon.min.js", "openseadragon/openseadragon.min.js"],
  ["openseadragon/build/openseadragon/images", "openseadragon/images"],
  ["openseadragon/LICENSE.txt", "openseadragon/LICENSE.txt"],
  // SHA-256 of a file before it is uploaded (the "identical file" question), in a worker.
  ["hash-wasm/dist/sha256.umd.min.js", "hash-wasm/sha256.umd.min.js"],
  ["hash-wasm/LICENSE", "hash-wasm/LICENSE"],
];

rmSync(vendor, { recursive: true, force: true });
for (const [src, dst] of copies) {
  const from = join(here, "node_modules", src);
  if (!existsSync(from)) {
    console.error(`build: missing ${from}; run "npm ci" in frontend/ first`);
    process.exit(1);
  }
  const to = join(vendor, dst);
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to, { recursive: true });
}
// Pre-compressed copies: aiohttp's FileResponse sends "x.js.gz" to clients
// that accept gzip, so the 350 KB viewer library travels as ~100 KB.
for (const file of ["openseadragon/openseadragon.min.js"]) {
  const path = join(vendor, file);
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
}
console.log(`build: copied ${copies.length} vendor assets to static/vendor/`);
