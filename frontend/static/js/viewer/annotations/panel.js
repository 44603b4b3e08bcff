// Annotation layer: filled in by the annotation tools (see overlay.js).
export function setupAnnotations() {}
