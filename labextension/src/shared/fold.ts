// A payload shown readable, for every view that shows a result: JSON pretty-printed and
// highlighted, text as text, and a long one folded behind a "Show all" button.
import type { JsonValue } from "../frames";
import { h } from "./dom";
import { highlight, payloadBlock, prettyJson } from "./json";

/** How a view draws the block: its class names, its button, where it folds. */
export interface FoldLook {
  /** Class of the highlighted JSON block (with shared/styles.css's `boonb-json`). */
  jsonClass: string;
  /** Class of the plain-text block. */
  textClass: string;
  /** Class of the box holding a folded block and its "Show all" button. */
  wrapClass: string;
  /** The view's own button, with this text (its click unfolds). */
  button: (text: string) => HTMLButtonElement;
  /** A text longer than this many characters, or lines, is folded until asked for. */
  foldChars: number;
  foldLines: number;
}

/** A string that holds a JSON object or list: shown as that JSON, not as text. */
export function isJsonLike(text: string): boolean {
  const trimmed = text.trim();
  if (!(trimmed.startsWith("{") || trimmed.startsWith("["))) return false;
  try {
    JSON.parse(trimmed);
    return true;
  } catch {
    return false;
  }
}

/** The first lines (or characters) of a long text, ending in an ellipsis. */
export function foldedText(text: string, lines: readonly string[], look: FoldLook): string {
  const head = lines.slice(0, look.foldLines).join("\n");
  return (head.length > look.foldChars ? text.slice(0, look.foldChars) : head) + "\n…";
}

/** The value, readable; folded (with a button calling ``unfold``) while long and ``folded``. */
export function foldableBlock(value: JsonValue, folded: boolean, unfold: () => void, look: FoldLook): HTMLElement {
  const asText = typeof value === "string" && !isJsonLike(value);
  const text = typeof value === "string" && asText ? value : prettyJson(value);
  const lines = text.split("\n");
  const long = text.length > look.foldChars || lines.length > look.foldLines;
  const shown = long && folded ? foldedText(text, lines, look) : text;
  const block = asText ? h("div", look.textClass) : payloadBlock(look.jsonClass);
  if (asText) block.textContent = shown;
  else highlight(shown, block);
  if (!long || !folded) return block;
  const wrap = h("div", look.wrapClass);
  const more = look.button(`Show all (${lines.length} lines, ${text.length} characters)`);
  more.addEventListener("click", unfold);
  wrap.append(block, more);
  return wrap;
}
