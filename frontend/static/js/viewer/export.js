// "Download" in the image's info panel: the portable OME-Zarr (NGFF 0.5 with
// specification codecs only, readable by stock zarr / ome-zarr / zarrita) as
// one zip, streamed by GET /api/images/{id}/export.  Shown to signed-in users
// (the session cookie authorises the plain link); share-link visitors get none.
import { el } from "../ui.js";

export function setupExport(app) {
  const panel = document.querySelector("#info-panel");
  if (!panel || !app.user || app.token || document.querySelector("#export-download")) return;
  const id = encodeURIComponent(app.id);
  panel.append(el("p", { id: "export-download" },
    el("a", { href: `/api/images/${id}/export?format=ome-zarr&codec=zstd`, download: "",
      title: "NGFF 0.5, zstd: opens with zarr.storage.ZipStore, ome-zarr, vizarr" },
      "Download portable OME-Zarr (zip)")));
}
