// Writes of annotations from the viewer: optimistic on screen, confirmed by
// the server, recorded in the undo/redo history with exact before/after
// states (fetched from the server when the screen only has the viewport's
// rounded or simplified copy).  A failed create keeps the drawing in red
// with Retry/Discard; shapes crossing the image edge are clipped by the
// server (clip=true) instead of refused.
import { toast } from "../../ui.js";
import { bboxOf, translate } from "./geom.js";
import { History, snapshot, translateShape } from "./history.js";
import { toFeature } from "./layer.js";

export class Edits {
  /**
   * @param layer AnnotationLayer
   * @param annoApi the endpoint table of panel.js
   * @param ctx {imageId, projectId(), currentTerms(), select(id), selectedChanged()}
   */
  constructor(layer, annoApi, ctx) {
    this.layer = layer;
    this.api = annoApi;
    this.ctx = ctx;
    this.tempId = -1;
    this.history = new History({
      create: (body) => this.api.create(ctx.imageId, this.withProject(body)),
      update: (id, body) => this.api.update(id, body),
      remove: (id) => this.api.remove(id),
      applied: (oldId, newId, feature) => this.applied(oldId, newId, feature),
    });
  }

  withProject(body) {
    const pid = this.ctx.projectId();
    return pid ? { ...body, project_id: Number(pid) } : body;
  }

  /** The server's copy of an annotation, kept so edits know its exact state. */
  remember(feature) {
    const f = { ...toFeature(feature), full: true };
    this.layer.features.set(f.id, f);
    return f;
  }

  /** The exact state of `id` now (the viewport copy may be rounded/simplified). */
  async exact(id) {
    const f = this.layer.features.get(id);
    if (f && f.full && f.properties && "data" in f.properties) return f;
    return this.remember(await this.api.get(id));
  }

  /** A history step done: show its result. */
  applied(oldId, newId, feature) {
    const { layer } = this;
    layer.writes += 1;
    layer.local.delete(oldId);
    if (oldId !== newId) layer.features.delete(oldId);
    if (feature) this.remember(feature);
    if (layer.selectedId === oldId) layer.selectedId = newId;
    layer.invalidate();
    layer.onData(layer);
    this.ctx.selectedChanged();
  }

  // -- create -----------------------------------------------------------------
  create(geometry, shape = null) {
    const tempId = this.tempId--;
    const local = { id: tempId, geometry, terms: this.ctx.currentTerms(), bbox: bboxOf(geometry), shape, pending: true };
    this.layer.local.set(tempId, local);
    this.layer.invalidate();
    return this.history.track(this.save(local));
  }

  async save(local) {
    const body = this.withProject({ geometry: local.geometry, terms: local.terms });
    if (local.shape) body.shape = local.shape;
    const { layer } = this;
    try {
      const created = await this.api.create(this.ctx.imageId, body);
      layer.writes += 1;
      layer.local.delete(local.id);
      const f = this.remember(created);
      this.history.record(f.id, null, snapshot(f));
      if (layer.selectedId === local.id) layer.selectedId = f.id;
      layer.invalidate();
      layer.onData(layer);
      document.dispatchEvent(new CustomEvent("microtome:annotation-created", { detail: { id: f.id } }));
      return f.id;
    } catch (e) {
      local.pending = false;
      local.error = `Not saved: ${e.message}`;
      layer.invalidate();
      layer.onData(layer);
      const why = e.status === 401 ? "your session has expired: log in again in another tab" : e.message;
      toast(`The annotation was not saved (${why}); it is kept in red, select it to retry.`, "error");
      return null;
    }
  }

  async retry(local) {
    local.error = null;
    local.pending = true;
    this.layer.invalidate();
    const id = await this.history.track(this.save(local));
    if (id !== null) this.ctx.select(id);
    else this.ctx.select(local.id);
  }

  discard(local) {
    this.layer.local.delete(local.id);
    this.ctx.select(null);
    this.layer.invalidate();
    this.layer.onData(this.layer);
  }

  // -- change -----------------------------------------------------------------
  /**
   * A drag ended: `how` is "move" (by `delta`) or "vertex".  A move is
   * applied to the exact geometry (and to a rectangle's or ellipse's
   * parameters, so it stays one); a vertex edit sends the edited outline.
   */
  update(id, geometry, how = "vertex", delta = null) {
    const f = this.layer.get(id);
    if (!f) return null;
    if (id < 0) { f.geometry = geometry; f.bbox = bboxOf(geometry); this.layer.invalidate(); return null; }
    this.layer.local.set(id, { ...f, geometry, bbox: bboxOf(geometry), dragging: false });
    this.layer.invalidate();
    return this.history.track(this.write(id, async (exact) => {
      if (how === "move" && delta) {
        const p = exact.properties || {};
        const shape = (p.kind === "rectangle" || p.kind === "ellipse") ? translateShape(p.shape, delta[0], delta[1]) : null;
        return shape ? { shape } : { geometry: translate(exact.geometry, delta[0], delta[1]) };
      }
      return { geometry };
    }, "The change was not saved"));
  }

  setTerms(id, terms) {
    const f = this.layer.get(id);
    if (!f) return null;
    if (id < 0) { f.terms = terms; this.layer.invalidate(); return null; }
    return this.history.track(this.write(id, async () => ({ terms }), "The term was not saved"));
  }

  async write(id, makeBody, failure) {
    const { layer } = this;
    try {
      const before = await this.exact(id);
      const saved = await this.api.update(id, await makeBody(before));
      layer.writes += 1;
      layer.local.delete(id);
      const after = this.remember(saved);
      this.history.record(id, snapshot(before), snapshot(after));
    } catch (e) {
      layer.local.delete(id);
      toast(`${failure}: ${e.message}`, "error");
    }
    layer.invalidate();
    layer.onData(layer);
    this.ctx.selectedChanged();
  }

  async remove(id) {
    const { layer } = this;
    const f = layer.get(id);
    if (!f) return;
    if (id < 0) { this.discard(f); return; }
    const run = async () => {
      try {
        const before = await this.exact(id);
        await this.api.remove(id);
        layer.writes += 1;
        layer.features.delete(id);
        layer.local.delete(id);
        this.history.record(id, snapshot(before), null);
        this.ctx.select(null);
        layer.invalidate();
        layer.onData(layer);
      } catch (e) { toast(`Could not delete: ${e.message}`, "error"); }
    };
    await this.history.track(run());
  }

  // -- history ----------------------------------------------------------------
  async undo() { return this.step("undo"); }

  async redo() { return this.step("redo"); }

  async step(which) {
    try {
      const entry = await this.history[which]();
      if (!entry) toast(which === "undo" ? "Nothing to undo" : "Nothing to redo");
    } catch (e) {
      const what = which === "undo" ? "Undo" : "Redo";
      toast(e.dropped ? `${what} not possible (${e.message}); that step was skipped.`
        : `${what} failed: ${e.message}; try again.`, "error");
    }
  }
}
