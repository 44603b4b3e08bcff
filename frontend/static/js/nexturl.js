// Where to go after logging in: only a path on this very origin.
//
// Parsed the way the browser will parse it, so "/\evil", "/\t/evil" and
// "//evil" (all of which browsers read as another host) are refused.
export function safeNext(next, origin) {
  if (typeof next !== "string" || !next.startsWith("/")) return "/";
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return "/";
  }
  if (url.origin !== origin) return "/";
  return url.pathname + url.search + url.hash;
}
