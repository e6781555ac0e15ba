// Payload display for every view: images replaced by placeholders, pretty JSON, a tiny
// highlighter whose token classes are coloured by shared/styles.css.
import type { JsonValue } from "../frames";
import { h } from "./dom";
import { formatBytes } from "./format";

const DATA_URI = /^data:([\w.+-]+\/[\w.+-]+)?[^,]*?(;base64)?,/i;
const BASE64 = /^[A-Za-z0-9+/\r\n]+={0,2}$/;
const MIN_BASE64 = 256;
const MAX_DEPTH = 64;

/** A short placeholder for image or other binary data carried as a string, else null. */
export function binaryPlaceholder(text: string): string | null {
  const uri = DATA_URI.exec(text);
  if (uri !== null && text.length > 64) {
    const mime = uri[1] ?? "data";
    const body = text.length - uri[0].length;
    const bytes = uri[2] !== undefined ? Math.floor((body * 3) / 4) : body;
    return `‹${mime} data URI, ${formatBytes(bytes)} — not shown›`;
  }
  if (text.length >= MIN_BASE64 && BASE64.test(text) && looksEncoded(text)) {
    return `‹base64 data, ${formatBytes(Math.floor((text.length * 3) / 4))} — not shown›`;
  }
  return null;
}

/** Encoded bytes mix upper case, lower case and digits; a long run of prose-like text does not. */
function looksEncoded(text: string): boolean {
  const sample = text.slice(0, 512);
  return /[A-Z]/.test(sample) && /[a-z]/.test(sample) && /[0-9+/]/.test(sample);
}

/** A copy of ``value`` whose base64 / data-URI strings are replaced by placeholders. */
export function withoutBinary(value: JsonValue, depth = 0): JsonValue {
  if (typeof value === "string") return binaryPlaceholder(value) ?? value;
  if (value === null || typeof value !== "object" || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((item) => withoutBinary(item, depth + 1));
  const copy: { [key: string]: JsonValue } = {};
  for (const [key, item] of Object.entries(value)) copy[key] = withoutBinary(item, depth + 1);
  return copy;
}

/** Pretty JSON of a payload, images replaced; a JSON string that holds JSON is unpacked. */
export function prettyJson(value: JsonValue): string {
  let shown = value;
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        shown = JSON.parse(trimmed) as JsonValue;
      } catch {
        shown = value;
      }
    }
  }
  return JSON.stringify(withoutBinary(shown), null, 2) ?? "null";
}

export type TokenClass =
  | "json-key"
  | "json-string"
  | "json-number"
  | "json-boolean"
  | "json-null"
  | "json-punct";

const TOKEN =
  /("(?:[^"\\]|\\.)*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false)\b|\b(null)\b|([{}[\],])/g;

/** Split JSON text into highlighted tokens and the plain text between them. */
export function tokenize(text: string): Array<[TokenClass | null, string]> {
  const out: Array<[TokenClass | null, string]> = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    const at = match.index ?? 0;
    if (at > last) out.push([null, text.slice(last, at)]);
    if (match[1] !== undefined) {
      out.push([match[2] !== undefined ? "json-key" : "json-string", match[1]]);
      if (match[2] !== undefined) out.push(["json-punct", match[2]]);
    } else if (match[3] !== undefined) out.push(["json-number", match[3]]);
    else if (match[4] !== undefined) out.push(["json-boolean", match[4]]);
    else if (match[5] !== undefined) out.push(["json-null", match[5]]);
    else out.push(["json-punct", match[0]]);
    last = at + match[0].length;
  }
  if (last < text.length) out.push([null, text.slice(last)]);
  return out;
}

/** A block for a payload, styled by shared/styles.css; ``className`` adds the view's own. */
export function payloadBlock(className: string): HTMLPreElement {
  return h("pre", `boonb-json ${className}`);
}

/** Highlighted JSON as DOM nodes (text nodes only: payloads are never parsed as HTML). */
export function highlight(text: string, into: HTMLElement): void {
  const fragment = document.createDocumentFragment();
  for (const [cls, part] of tokenize(text)) {
    if (cls === null) {
      fragment.appendChild(document.createTextNode(part));
    } else {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = part;
      fragment.appendChild(span);
    }
  }
  into.appendChild(fragment);
}
