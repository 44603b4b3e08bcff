// Undo/redo of annotation edits.  Every confirmed edit is recorded as the
// annotation's state before and after it (null = did not exist), so undo and
// redo are the same operation: bring the annotation to a recorded state.
// Re-creating a deleted annotation gives it a new id on the server; `alias`
// maps each dead id to its successor so older entries still find it.

/** The parts of an annotation that undo must restore exactly. */
export function snapshot(feature) {
  const p = feature.properties || {};
  return {
    geometry: feature.geometry,
    kind: p.kind || null,
    shape: p.shape || null,
    terms: [...(p.terms || feature.terms || [])],
    data: p.data && typeof p.data === "object" ? p.data : {},
    producer: p.producer ?? null,
  };
}

/**
 * The request body that recreates or restores `snap`: rectangles and
 * ellipses by their parameters (so they keep their kind), anything else by
 * its geometry.
 */
export function restoreBody(snap, { create = false } = {}) {
  const body = (snap.kind === "rectangle" || snap.kind === "ellipse") && snap.shape
    ? { shape: snap.shape }
    : { geometry: snap.geometry };
  body.terms = snap.terms;
  body.data = snap.data;
  if (create && snap.producer) body.producer = snap.producer;
  return body;
}

/** A rectangle's or ellipse's parameters moved by (dx, dy). */
export function translateShape(shape, dx, dy) {
  if (!shape) return null;
  if (shape.type === "rectangle") return { ...shape, x: shape.x + dx, y: shape.y + dy };
  if (shape.type === "ellipse" || shape.type === "circle") return { ...shape, cx: shape.cx + dx, cy: shape.cy + dy };
  return null;
}

/** HTTP statuses that will not change by trying again. */
const PERMANENT = new Set([400, 403, 404, 409, 422]);

export class History {
  /**
   * @param ops {create(body) → feature, update(id, body) → feature, remove(id),
   *             applied(oldId, newId, feature|null)}: the server calls and the
   *             hook that puts their result on screen.
   */
  constructor(ops, limit = 500) {
    this.ops = ops;
    this.limit = limit;
    this.undoStack = [];
    this.redoStack = [];
    this.alias = new Map();
    this.pending = new Set();
    this.chain = Promise.resolve();
    this.onChange = () => {};
  }

  /** The live id of an annotation first known as `id`. */
  resolve(id) {
    let cur = id;
    for (let guard = 0; this.alias.has(cur) && guard < 10_000; guard += 1) cur = this.alias.get(cur);
    return cur;
  }

  /** A confirmed edit of annotation `id` (a new edit forgets what could be redone). */
  record(id, before, after) {
    this.undoStack.push({ id, before, after });
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack = [];
    this.onChange();
  }

  /** Writes on their way: undo waits for them so it undoes the latest edit. */
  track(promise) {
    this.pending.add(promise);
    const done = () => this.pending.delete(promise);
    promise.then(done, done);
    return promise;
  }

  undo() { return this.step(this.undoStack, this.redoStack, "before"); }

  redo() { return this.step(this.redoStack, this.undoStack, "after"); }

  /**
   * Pop an entry, bring its annotation to the `side` state, and move the
   * entry to the other stack.  Steps run one after another (a held Ctrl+Z
   * must not race); a failed step stays where it was.  Resolves to the
   * entry, null when there was nothing to do; rejects with the server error.
   */
  step(from, to, side) {
    const run = async () => {
      await Promise.allSettled([...this.pending]);
      const entry = from.pop();
      if (!entry) return null;
      try {
        await this.apply(entry, side);
      } catch (e) {
        // Refused for good (someone else deleted it, a term is gone, no
        // right to it): drop the step so the rest of the history stays
        // usable.  Otherwise (network, server busy, logged out) keep it to retry.
        if (PERMANENT.has(e.status)) e.dropped = true;
        else from.push(entry);
        throw e;
      } finally {
        this.onChange();
      }
      to.push(entry);
      return entry;
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => {});
    return p;
  }

  async apply(entry, side) {
    const want = entry[side];
    const other = side === "before" ? entry.after : entry.before;
    const id = this.resolve(entry.id);
    if (want === null) {
      await this.ops.remove(id);
      this.ops.applied(id, null, null);
    } else if (other === null) {
      const created = await this.ops.create(restoreBody(want, { create: true }));
      if (created.id !== id) this.alias.set(id, created.id);
      this.ops.applied(id, created.id, created);
    } else {
      const saved = await this.ops.update(id, restoreBody(want));
      this.ops.applied(id, id, saved);
    }
  }
}
