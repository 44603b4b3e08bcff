"""Split a GeoJSON FeatureCollection (or a JSON array of features) into the raw
bytes of each feature, reading the file a chunk at a time.

Why not json.load: a million cells is ~0.5 GB of text and several GB as
Python objects; here memory stays at one chunk plus one feature, and a
feature larger than the limit (say a 10-million-vertex polygon) is refused
from its size before anything is parsed.  Each feature is then decoded by
orjson, which is strict (NaN/Infinity, trailing commas, bad escapes fail).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from microtome.pyramid.errors import TooLarge, Unprocessable

CHUNK = 1 << 20

# One JSON token of the document's outer structure: string | punctuation | literal.
_TOKEN = re.compile(rb'\s*(?:("(?:[^"\\]|\\.)*")|([{}\[\],:])|([^\s{}\[\],:"]+))', re.S)
# Inside a feature only strings (which may hide braces) and braces matter.  An
# unterminated string runs to the end of the buffer so it is never misread.
_SCAN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[{}]', re.S)
_WS = re.compile(rb"\s*")
# What follows a '}' that may end a feature: the array's ']' or ',' + the next '{'.
_AFTER = re.compile(rb"\s*(?:\]|,\s*\{)")
# ... or only the beginning of that, cut by the end of the buffer.
_PARTIAL = re.compile(rb"\s*(?:,\s*)?")
#: Candidate ends tried with the JSON parser before falling back to the scanner.
_ATTEMPTS = 12


class _Reader:
    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.offset = 0  # file offset of buf[0], for messages

    def fill(self) -> bool:
        if self.eof:
            return False
        data = self.fh.read(CHUNK)
        if not data:
            self.eof = True
            return False
        if self.pos > CHUNK:
            self.offset += self.pos
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += data
        return True

    def token(self) -> bytes | None:
        """The next outer-structure token (stripped), None at the end of input."""
        while True:
            m = _TOKEN.match(self.buf, self.pos)
            if m and (m.end() < len(self.buf) or self.eof):
                self.pos = m.end()
                return m.group(m.lastindex or 0)
            if not self.fill():
                m = _TOKEN.match(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m.group(m.lastindex or 0)
                if _WS.match(self.buf, self.pos).end() == len(self.buf):  # type: ignore[union-attr]
                    return None
                raise Unprocessable(f"invalid JSON near byte {self.offset + self.pos}")

    def peek_char(self) -> bytes:
        while True:
            m = _WS.match(self.buf, self.pos)
            assert m is not None
            if m.end() < len(self.buf):
                self.pos = m.end()
                return self.buf[self.pos:self.pos + 1]
            if not self.fill():
                self.pos = len(self.buf)
                return b""

    def object_value(self, limit: int, index: int) -> Any:
        """The decoded `{...}` starting at pos (which must hold '{').

        Fast path: JSON objects are self-delimiting, so the first candidate end
        at which the slice parses as JSON *is* the end of the object (orjson
        does the scanning in C, and we get the decoded value at once).  A
        candidate is a '}' followed by ']' or by ',' and '{' (the next feature):
        inside a feature a '},' is followed by a member name instead.  Odd
        inputs fall back to the brace scanner.
        """
        start = self.pos
        i = start
        tries = 0
        while tries < _ATTEMPTS:
            buf = self.buf
            j = buf.find(b"}", i)
            m = _AFTER.match(buf, j + 1) if j >= 0 else None
            if j < 0 or (m is None and _PARTIAL.match(buf, j + 1).end() == len(buf)):  # type: ignore[union-attr]
                # Need more input to decide.
                if len(buf) - start > limit:
                    break
                self.pos = start
                if not self.fill():
                    break
                shift = start - self.pos  # fill() may have dropped consumed bytes
                start, i = self.pos, i - shift
                continue
            if m is not None:
                try:
                    value = orjson.loads(buf[start:j + 1])
                except orjson.JSONDecodeError:
                    tries += 1
                else:
                    self.pos = j + 1
                    return value
            i = j + 1
        self.pos = start
        raw = self.object_bytes(limit, index)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise Unprocessable(f"feature {index}: invalid JSON: {e}",
                                {"feature_index": index}) from None

    def object_bytes(self, limit: int, index: int) -> bytes:
        """The raw `{...}` starting at pos (which must hold '{')."""
        start = self.pos
        while True:
            depth = 0
            for m in _SCAN.finditer(self.buf, start):
                tok = m.group()
                if tok == b"{":
                    depth += 1
                elif tok == b"}":
                    depth -= 1
                    if depth == 0:
                        self.pos = m.end()
                        return self.buf[start:self.pos]
            if len(self.buf) - start > limit:
                raise TooLarge(f"feature {index} is larger than {limit} bytes",
                               {"feature_index": index, "limit_bytes": limit})
            # Incomplete: read more and rescan the feature from its start
            # (fill() may trim the consumed bytes before pos, which is start).
            self.pos = start
            if not self.fill():
                raise Unprocessable(f"feature {index}: unexpected end of input",
                                    {"feature_index": index})
            start = self.pos


def _skip_value(r: _Reader, first: bytes) -> None:
    """Skip one JSON value of the outer structure whose first token is `first`."""
    if first not in (b"{", b"["):
        return
    depth = 1
    while depth:
        tok = r.token()
        if tok is None:
            raise Unprocessable("unexpected end of input")
        if tok in (b"{", b"["):
            depth += 1
        elif tok in (b"}", b"]"):
            depth -= 1


def _expect(r: _Reader, want: bytes, what: str) -> None:
    tok = r.token()
    if tok != want:
        raise Unprocessable(f"not a GeoJSON FeatureCollection: expected {what}")


def _features(r: _Reader, limit: int) -> Iterator[Any]:
    """Elements of the array whose '[' was just consumed."""
    index = 0
    while True:
        c = r.peek_char()
        if c == b"":
            raise Unprocessable(f"unexpected end of input after {index} features",
                                {"feature_index": index})
        if c == b"]":
            r.pos += 1
            return
        if index:
            if c != b",":
                raise Unprocessable(f"feature {index}: expected ',' or ']' between features",
                                    {"feature_index": index})
            r.pos += 1
            c = r.peek_char()
        if c != b"{":
            raise Unprocessable(f"feature {index}: not a JSON object", {"feature_index": index})
        yield r.object_value(limit, index)
        index += 1


def iter_features(fh: BinaryIO, max_feature_bytes: int = 16 << 20) -> Iterator[Any]:
    """Each feature (decoded JSON object) of a FeatureCollection or of a top-level array."""
    r = _Reader(fh)
    first = r.token()
    if first == b"[":
        yield from _features(r, max_feature_bytes)
        if r.token() is not None:
            raise Unprocessable("unexpected content after the features array")
        return
    if first != b"{":
        raise Unprocessable("not a GeoJSON FeatureCollection (expected a JSON object)")
    seen_features = False
    while True:
        tok = r.token()
        if tok == b"}":
            break
        if seen_features or tok != b'"features"':
            if tok == b",":
                continue
            if tok is None or not tok.startswith(b'"'):
                raise Unprocessable("not a GeoJSON FeatureCollection (bad member)")
            _expect(r, b":", "':'")
            value = r.token()
            if value is None:
                raise Unprocessable("unexpected end of input")
            if tok == b'"type"' and value != b'"FeatureCollection"':
                raise Unprocessable("not a GeoJSON FeatureCollection (type is not "
                                    "'FeatureCollection')")
            _skip_value(r, value)
            continue
        _expect(r, b":", "':'")
        _expect(r, b"[", "'features' to be an array")
        seen_features = True
        yield from _features(r, max_feature_bytes)
    if not seen_features:
        raise Unprocessable("not a GeoJSON FeatureCollection (no 'features' array)")
    if r.token() is not None:
        raise Unprocessable("unexpected content after the FeatureCollection")
