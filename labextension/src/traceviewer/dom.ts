// Row elements: built once, then updated in place so CSS transitions can animate changes.
import type { JsonValue } from "../frames";
import {
  formatBytes,
  formatLatency,
  formatRate,
  formatTokens,
  hitRate,
  latencyClass,
  localTime,
  rateClass,
} from "../shared/format";
import { attachmentOf, thumbnailGrid, type ImageContext, type ImageRef } from "../shared/images";
import { binaryPlaceholder, highlight, payloadBlock, prettyJson } from "../shared/json";
import type { ChatTotals, CutValue, SentRequest, TimelineEntry, TurnCache } from "./protocol";
import type { DetailState, Nested, ShownTrace, TraceItem, Turn } from "./state";
import { runningCalls } from "./state";
import { h } from "../shared/dom";

/** Characters of a payload shown before "show more". */
export const CUT = 4000;
/** Characters "show more" shows at most; the REST detail endpoint has the rest. */
export const SHOW_MORE_LIMIT = 2_000_000;
/** Beyond this many characters a payload is shown as plain text (highlighting costs DOM). */
const HIGHLIGHT_LIMIT = 200_000;

function child(el: HTMLElement, selector: string): HTMLElement {
  const found = el.querySelector<HTMLElement>(selector);
  if (found === null) throw new Error(`boonb trace viewer: missing ${selector}`);
  return found;
}

function setClass(el: HTMLElement, cls: string, on: boolean): void {
  el.classList.toggle(cls, on);
}

// Turn rows

/** The turn row's ``data-*`` figures (camel case, as ``dataset`` names them). */
const TURN_DATA = ["modelCalls", "tools", "tokens", "errors", "latencyMs", "spanMs"] as const;

export function createTurnRow(): HTMLElement {
  const row = h("div", "tv-row tv-turn");
  row.setAttribute("role", "treeitem");
  row.setAttribute("aria-level", "1");
  row.append(
    h("span", "tv-chevron"),
    h("span", "tv-turn-label"),
    h("span", "tv-turn-summary"),
  );
  const cache = h("span", "tv-cache");
  // The bar opens the turn's per-segment breakdown (a row of its own below the turn).
  cache.setAttribute("role", "button");
  cache.setAttribute("aria-expanded", "false");
  const bar = h("span", "tv-cache-bar");
  bar.append(h("span", "tv-cache-hit"), h("span", "tv-cache-miss"));
  cache.append(bar, h("span", "tv-hit-rate"));
  row.append(cache);
  return row;
}

export function updateTurnRow(
  row: HTMLElement,
  turn: Turn,
  cache: TurnCache | undefined,
  collapsed: boolean,
  cacheOpen: boolean,
): void {
  // The figures are the kernel's (projections.turns over the turn's stored calls): the
  // view does not add up its rows, which may be only part of the turn.
  const figures = turn.figures;
  const running = runningCalls(turn);
  row.dataset["turn"] = String(turn.turn);
  row.setAttribute("aria-expanded", String(!collapsed));
  setClass(row, "is-collapsed", collapsed);
  setClass(row, "is-running", running > 0);
  child(row, ".tv-turn-label").textContent = `Turn ${turn.turn}`;
  const summary = child(row, ".tv-turn-summary");
  if (figures === null) {
    for (const key of TURN_DATA) delete row.dataset[key];
    setClass(row, "has-error", false);
    summary.textContent = running > 0 ? " · running…" : " · …";
    summary.title = "";
  } else {
    const t = figures.totals;
    const data: Record<(typeof TURN_DATA)[number], string> = {
      modelCalls: String(t.model_calls),
      tools: String(t.tool_calls),
      tokens: String(t.tokens_used),
      errors: String(t.errors),
      latencyMs: String(t.latency_ms),
      spanMs: figures.span_ms === null ? "" : String(figures.span_ms),
    };
    for (const key of TURN_DATA) row.dataset[key] = data[key];
    setClass(row, "has-error", t.errors > 0);
    const parts = [
      `${t.tool_calls} tool${t.tool_calls === 1 ? "" : "s"}`,
      `${formatTokens(t.tokens_used)} tokens`,
      running > 0 ? "running…" : formatLatency(figures.span_ms),
    ];
    if (t.errors > 0) parts.push(`${t.errors} error${t.errors === 1 ? "" : "s"}`);
    summary.textContent = parts.map((p) => ` · ${p}`).join("");
    summary.title =
      `${t.model_calls} model call${t.model_calls === 1 ? "" : "s"}, ` +
      `${t.tool_calls} tool call${t.tool_calls === 1 ? "" : "s"}\n` +
      `${formatTokens(t.tokens_used)} tokens: ${formatTokens(t.input_tokens)} in ` +
      `(${formatTokens(t.cache_tokens)} cached), ${formatTokens(t.output_tokens)} out\n` +
      `wall time ${formatLatency(figures.span_ms)}; calls' latencies added up ` +
      formatLatency(t.latency_ms);
  }

  const cacheEl = child(row, ".tv-cache");
  const badge = child(row, ".tv-hit-rate");
  if (cache === undefined || cache.input_tokens === 0) {
    cacheEl.hidden = true;
    delete cacheEl.dataset["hitRate"];
    return;
  }
  cacheEl.hidden = false;
  cacheEl.setAttribute("aria-expanded", String(cacheOpen));
  setClass(cacheEl, "is-open", cacheOpen);
  const rate = hitRate(cache.cache_tokens, cache.input_tokens);
  cacheEl.dataset["hitRate"] = String(rate ?? "");
  cacheEl.dataset["cacheTokens"] = String(cache.cache_tokens);
  cacheEl.dataset["inputTokens"] = String(cache.input_tokens);
  if (cache.broken_by !== null) cacheEl.dataset["brokenBy"] = cache.broken_by;
  else delete cacheEl.dataset["brokenBy"];
  child(row, ".tv-cache-hit").style.width = `${((rate ?? 0) * 100).toFixed(1)}%`;
  badge.className = `tv-hit-rate ${rateClass(rate)}`;
  badge.textContent = formatRate(rate);
  cacheEl.title = `${cacheTooltip(cache)}\n(click for the breakdown)`;
}

/** Per segment of a turn's prompt: tokens, cached and uncached (summed over its calls). */
export function segmentTotals(
  cache: TurnCache,
): Array<{ segment: string; tokens: number; hit: number; miss: number }> {
  const bySegment = new Map<string, { segment: string; tokens: number; hit: number; miss: number }>();
  for (const s of cache.segments) {
    const sum = bySegment.get(s.segment) ?? { segment: s.segment, tokens: 0, hit: 0, miss: 0 };
    sum.tokens += s.tokens;
    sum.hit += s.hit_tokens;
    sum.miss += s.miss_tokens;
    bySegment.set(s.segment, sum);
  }
  return [...bySegment.values()];
}

/** A turn's cache breakdown, shown under the turn when its cache bar is clicked. */
export function createCacheBreakdown(turn: number, cache: TurnCache): HTMLElement {
  const panel = h("div", "tv-panel tv-cache-detail");
  panel.dataset["cacheFor"] = String(turn);
  const rate = hitRate(cache.cache_tokens, cache.input_tokens);
  panel.append(
    h(
      "div",
      "tv-detail-meta",
      `Prompt cache of turn ${turn}: ${formatTokens(cache.cache_tokens)} of ` +
        `${formatTokens(cache.input_tokens)} prompt tokens cached (${formatRate(rate)})`,
    ),
  );
  const table = h("table", "tv-segments");
  const head = h("tr", "");
  for (const title of ["Segment", "Tokens", "Hit", "Miss"]) head.append(h("th", "", title));
  table.append(head);
  for (const sum of segmentTotals(cache)) {
    const row = h("tr", "tv-segment");
    row.dataset["segment"] = sum.segment;
    row.append(
      h("td", "tv-segment-name", sum.segment),
      h("td", "tv-segment-tokens", String(sum.tokens)),
      h("td", "tv-segment-hit", String(sum.hit)),
      h("td", "tv-segment-miss", String(sum.miss)),
    );
    setClass(row, "is-broken", sum.segment === cache.broken_by);
    table.append(row);
  }
  panel.append(table);
  if (cache.segments.length === 0) {
    panel.append(h("div", "tv-note", "No per-segment figures were recorded for this turn."));
  }
  if (cache.broken_by !== null) {
    panel.append(
      h("div", "tv-cache-broken", `cache broken by: ${cache.broken_by} changed since the last call`),
    );
  }
  return panel;
}

export function cacheTooltip(cache: TurnCache): string {
  const rate = hitRate(cache.cache_tokens, cache.input_tokens);
  const lines = [
    `Prompt cache: ${formatTokens(cache.cache_tokens)} of ${formatTokens(cache.input_tokens)} ` +
      `tokens cached (${formatRate(rate)})`,
  ];
  const bySegment = new Map<string, { tokens: number; hit: number }>();
  for (const segment of cache.segments) {
    const sum = bySegment.get(segment.segment) ?? { tokens: 0, hit: 0 };
    sum.tokens += segment.tokens;
    sum.hit += segment.hit_tokens;
    bySegment.set(segment.segment, sum);
  }
  for (const [name, sum] of bySegment) {
    lines.push(`  ${name}: ${formatTokens(sum.hit)}/${formatTokens(sum.tokens)} cached`);
  }
  if (cache.broken_by !== null) lines.push(`cache broken by: ${cache.broken_by} changed`);
  return lines.join("\n");
}

// Trace rows

export function createTraceRow(): HTMLElement {
  const row = h("div", "tv-row tv-trace");
  row.setAttribute("role", "treeitem");
  const latency = h("span", "tv-latency");
  latency.append(h("span", "tv-latency-bar"));
  // The name cell is as wide on every row, its indent taken from it, so the latency tracks
  // line up and the waterfall reads across rows.
  const name = h("span", "tv-name");
  name.append(h("span", "tv-indent"), h("span", "tv-chevron"), h("span", "tv-error-marker"));
  name.append(h("span", "tv-badge"));
  row.append(name, latency, h("span", "tv-latency-text"), h("span", "tv-tokens"));
  return row;
}

/** Where a trace row's bar goes: its start and length as shares of the turn's span. */
export interface Waterfall {
  entry: TimelineEntry | undefined;
  spanMs: number | null;
  /** The slowest loaded call: the scale of a bar not on the waterfall yet. */
  maxLatency: number;
}

export function updateTraceRow(
  row: HTMLElement,
  item: TraceItem,
  place: Nested,
  expanded: boolean,
  waterfall: Waterfall,
): void {
  const { trace, running } = item;
  row.dataset["traceId"] = trace.id;
  row.dataset["turn"] = String(trace.turn_number);
  row.dataset["kind"] = trace.kind;
  row.dataset["depth"] = String(place.depth);
  if (trace.parent_id !== null) row.dataset["parentId"] = trace.parent_id;
  else delete row.dataset["parentId"];
  row.dataset["outcome"] = running ? "running" : trace.outcome;
  if (trace.latency_ms !== null) row.dataset["latencyMs"] = String(trace.latency_ms);
  else delete row.dataset["latencyMs"];
  row.setAttribute("aria-level", String(2 + place.depth));
  row.setAttribute("aria-expanded", String(expanded));
  row.style.setProperty("--tv-depth", String(place.depth));
  setClass(row, "is-nested", place.depth > 0);
  setClass(row, "is-expanded", expanded);
  setClass(row, "is-error", trace.outcome === "error");
  setClass(row, "is-cancelled", trace.outcome === "cancelled");
  setClass(row, "is-running", running);
  row.title = trace.error ?? "";
  drawIndent(child(row, ".tv-indent"), place);

  const badge = child(row, ".tv-badge");
  badge.className = `tv-badge tv-badge-${trace.kind}`;
  badge.textContent = trace.tool_name;

  drawBar(row, child(row, ".tv-latency-bar"), item, waterfall);
  child(row, ".tv-latency-text").textContent = running
    ? "running…"
    : formatLatency(trace.latency_ms);
  child(row, ".tv-tokens").textContent =
    trace.tokens_used > 0 ? `${formatTokens(trace.tokens_used)} tok` : "";
}

/** One column per level: a line passing through for an ancestor with later siblings, then
 * the elbow joining this call to the one above it that asked for it. */
function drawIndent(indent: HTMLElement, place: Nested): void {
  const columns: HTMLElement[] = place.through.map((on) =>
    h("span", on ? "tv-guide is-through" : "tv-guide"),
  );
  if (place.depth > 0) columns.push(h("span", place.last ? "tv-elbow is-last" : "tv-elbow"));
  indent.replaceChildren(...columns);
}

/**
 * The latency bar. On the turn's waterfall (``projections.timeline``), it starts where the
 * call started in the turn and is as long as the call, both as shares of the turn's wall
 * time, so calls that ran at once overlap. A running call fills its track, animated; a
 * call the kernel's figures do not cover yet is scaled to the slowest loaded call.
 */
function drawBar(row: HTMLElement, bar: HTMLElement, item: TraceItem, waterfall: Waterfall): void {
  const { trace, running } = item;
  const { entry, spanMs, maxLatency } = waterfall;
  if (entry !== undefined) row.dataset["offsetMs"] = String(entry.offset_ms);
  else delete row.dataset["offsetMs"];
  if (running || trace.latency_ms === null) {
    bar.className = "tv-latency-bar latency-running";
    bar.style.marginLeft = "0";
    bar.style.width = "100%";
    return;
  }
  bar.className = `tv-latency-bar ${latencyClass(trace.latency_ms)}`;
  const duration = entry?.duration_ms ?? null;
  if (entry !== undefined && duration !== null && spanMs !== null && spanMs > 0) {
    const left = Math.min(1, entry.offset_ms / spanMs) * 100;
    const width = Math.max(MIN_BAR_PERCENT, Math.min(100 - left, (duration / spanMs) * 100));
    bar.style.marginLeft = `${Math.min(left, 100 - width).toFixed(2)}%`;
    bar.style.width = `${width.toFixed(2)}%`;
    return;
  }
  const share = maxLatency > 0 ? trace.latency_ms / maxLatency : 0;
  bar.style.marginLeft = "0";
  bar.style.width = `${Math.max(MIN_BAR_PERCENT, share * 100).toFixed(1)}%`;
}

/** A bar never narrower than this, so a 1 ms call still shows. */
const MIN_BAR_PERCENT = 2;

// Detail (an expanded trace)

/**
 * An expanded trace: its input and output (whole once the kernel sent them, a preview
 * before), and for a model call the request as it was sent.
 */
export function createDetail(
  trace: ShownTrace,
  detail: DetailState | undefined,
  showMore: boolean,
  images: ImageContext,
): HTMLElement {
  const panel = h("div", "tv-panel tv-detail");
  panel.dataset["detailFor"] = trace.id;
  panel.dataset["detail"] = detail?.status ?? "none";
  const whole = detail?.status === "loaded" ? detail.reply.trace : null;
  const meta = [
    trace.kind === "model" ? "model call" : "tool call",
    `turn ${trace.turn_number}`,
    `started ${localTime(trace.started_at)}`,
  ];
  if (trace.call_id !== null) meta.push(`call ${trace.call_id}`);
  if (trace.kind === "model") {
    meta.push(
      `in ${formatTokens(trace.input_tokens)} (cached ${formatTokens(trace.cache_tokens)})`,
      `out ${formatTokens(trace.output_tokens)}`,
    );
  }
  const metaEl = h("div", "tv-detail-meta", meta.join(" · "));
  metaEl.title = `started ${trace.started_at} (UTC)`;
  panel.append(metaEl);
  if (trace.error !== null) panel.append(h("div", "tv-error-message", trace.error));
  if (detail?.status === "failed") {
    panel.append(h("div", "tv-error-message", `could not load the whole trace: ${detail.message}`));
  }
  // A model call's request as sent comes first: it is what a user checks when a prompt
  // went wrong. Its trace input (what was new, and the recorded context) stays at hand.
  if (trace.kind === "model") panel.append(requestSection(detail, images));
  let cut = false;
  for (const [label, value, preview, cls] of [
    ["Input", whole?.input ?? trace.input, whole === null ? trace.input_cut : null, "tv-json-input"],
    ["Output", whole?.output ?? trace.output, whole === null ? trace.output_cut : null, "tv-json-output"],
  ] as const) {
    const folded = trace.kind === "model" && label === "Input";
    const section = h(folded ? "details" : "div", "tv-detail-section");
    const pageCut = label === "Input" ? trace.input_cut : trace.output_cut;
    let title = folded ? "Trace input (new messages, recorded context)" : label;
    if (pageCut) {
      const size = formatBytes(pageCut.bytes);
      title += whole === null ? ` · preview of ${size}` : ` · whole value, ${size}`;
    }
    section.append(h(folded ? "summary" : "div", "tv-detail-label", title));
    if (preview !== null && preview !== undefined) {
      section.append(previewBlock(preview, cls, detail));
    } else {
      const [pre, wasCut] = jsonBlock(value, cls, showMore);
      cut ||= wasCut;
      section.append(pre);
    }
    panel.append(section);
  }
  if (cut || showMore) {
    const button = h("button", "tv-show-more", showMore ? "show less" : "show more");
    button.type = "button";
    panel.append(button);
  }
  return panel;
}

/** Text a payload shows as: a plain string as itself (a file reads like the file), the rest
 * as pretty JSON. */
function payloadText(value: JsonValue): [string, boolean] {
  if (typeof value === "string") {
    const trimmed = value.trim();
    if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) {
      return [binaryPlaceholder(value) ?? value, false];
    }
  }
  return [prettyJson(value), true];
}

function jsonBlock(value: JsonValue, cls: string, showMore: boolean): [HTMLElement, boolean] {
  const [text, isJson] = payloadText(value);
  const pre = payloadBlock(`tv-json ${cls}${isJson ? "" : " tv-text"}`);
  const limit = showMore ? SHOW_MORE_LIMIT : CUT;
  const shown = text.length <= limit ? text : text.slice(0, limit);
  if (isJson && shown.length <= HIGHLIGHT_LIMIT) highlight(shown, pre);
  else pre.textContent = shown;
  if (shown.length < text.length) {
    const more = text.length - shown.length;
    const rest = showMore
      ? `\n… ${more} more characters not shown; GET /boonb/api/traces/{id} has them all`
      : `\n… ${more} more characters`;
    pre.append(h("span", "tv-cut", rest));
  }
  return [pre, text.length > CUT];
}

/** A page's preview of a large value, until the whole value arrives. */
function previewBlock(preview: CutValue, cls: string, detail: DetailState | undefined): HTMLElement {
  const text = preview.kind === "string" ? "tv-text " : "";
  const pre = payloadBlock(`tv-json ${cls} ${text}tv-preview`);
  pre.dataset["bytes"] = String(preview.bytes);
  // A string's preview is its text, shown as the whole string will be; else JSON text.
  pre.textContent = preview.preview;
  const state =
    detail?.status === "failed" ? "not loaded" : "loading the whole value…";
  pre.append(
    h("span", "tv-cut", `\n… preview of ${formatBytes(preview.bytes)}; ${state}`),
  );
  return pre;
}

/** A model call's request as sent: system prompt, messages and tool schemas. */
function requestSection(detail: DetailState | undefined, images: ImageContext): HTMLElement {
  const section = h("div", "tv-detail-section tv-request");
  section.append(h("div", "tv-detail-label", "Request as sent"));
  if (detail === undefined || detail.status === "loading") {
    section.append(h("div", "tv-note", "loading…"));
    return section;
  }
  if (detail.status === "failed" || detail.reply.request === null) {
    section.append(h("div", "tv-note", "not available"));
    return section;
  }
  const request: SentRequest = detail.reply.request;
  for (const note of request.notes) section.append(h("div", "tv-note", note));
  const messages = h("div", "tv-messages");
  request.messages.forEach((message, i) => messages.append(messageBlock(message, i, images)));
  section.append(messages);
  const tools = h("details", "tv-tools");
  const count = request.tools?.length ?? 0;
  tools.append(h("summary", "", `Tools (${count} schema${count === 1 ? "" : "s"})`));
  if (request.tools !== null) {
    const pre = payloadBlock("tv-json tv-json-tools");
    highlight(prettyJson(request.tools), pre);
    tools.append(pre);
  }
  section.append(tools);
  return section;
}

function messageBlock(message: JsonValue, index: number, images: ImageContext): HTMLElement {
  const block = h("div", "tv-message");
  const fields =
    message !== null && typeof message === "object" && !Array.isArray(message) ? message : {};
  const role = typeof fields["role"] === "string" ? fields["role"] : "?";
  block.dataset["role"] = role;
  block.append(h("span", "tv-message-role", `${index + 1}. ${role}`));
  const content = fields["content"] ?? null;
  const rest: { [key: string]: JsonValue } = {};
  for (const [key, value] of Object.entries(fields)) {
    if (key !== "role" && key !== "content") rest[key] = value;
  }
  const refs = Array.isArray(content) ? content.map(attachmentOf) : [];
  if (typeof content === "string") {
    block.append(h("div", "tv-message-text", content));
  } else if (Array.isArray(content) && refs.some((ref) => ref !== null)) {
    // Images as thumbnails, under the message's other parts (its text, as JSON).
    const others = content.filter((_, i) => refs[i] === null);
    if (others.length > 0) {
      const pre = payloadBlock("tv-json");
      highlight(prettyJson(others), pre);
      block.append(pre);
    }
    const shown = refs.filter((ref): ref is ImageRef => ref !== null);
    block.append(thumbnailGrid(shown, images.loader, images.lightbox));
  } else if (content !== null) {
    const pre = payloadBlock("tv-json");
    highlight(prettyJson(content), pre);
    block.append(pre);
  }
  if (Object.keys(rest).length > 0) {
    const pre = payloadBlock("tv-json tv-message-extra");
    highlight(prettyJson(rest), pre);
    block.append(pre);
  }
  return block;
}

// Footer

export function createFooter(): HTMLElement {
  const footer = h("div", "tv-footer");
  const bar = h("span", "tv-footer-bar");
  bar.append(h("span", "tv-footer-hit"));
  footer.append(h("span", "tv-cache-rate rate-none"), bar, h("span", "tv-totals"));
  return footer;
}

export function updateFooter(footer: HTMLElement, totals: ChatTotals | null): void {
  const rateEl = child(footer, ".tv-cache-rate");
  const totalsEl = child(footer, ".tv-totals");
  if (totals === null) {
    rateEl.textContent = "Cache hit rate: …";
    return;
  }
  const rate = hitRate(totals.cache_tokens, totals.input_tokens);
  rateEl.className = `tv-cache-rate ${rateClass(rate)}`;
  rateEl.dataset["cacheTokens"] = String(totals.cache_tokens);
  rateEl.dataset["inputTokens"] = String(totals.input_tokens);
  rateEl.dataset["hitRate"] = rate === null ? "" : String(rate);
  rateEl.textContent =
    rate === null
      ? "Cache hit rate: – (no prompt tokens yet)"
      : `Cache hit rate: ${formatRate(rate)} (${formatTokens(totals.cache_tokens)}/` +
        `${formatTokens(totals.input_tokens)} tokens)`;
  child(footer, ".tv-footer-hit").style.width = `${((rate ?? 0) * 100).toFixed(1)}%`;
  for (const [key, value] of Object.entries({
    traces: totals.traces,
    modelCalls: totals.model_calls,
    toolCalls: totals.tool_calls,
    errors: totals.errors,
    tokensUsed: totals.tokens_used,
    outputTokens: totals.output_tokens,
  })) {
    totalsEl.dataset[key] = String(value);
  }
  const parts = [
    `${totals.traces} call${totals.traces === 1 ? "" : "s"} ` +
      `(${totals.model_calls} model, ${totals.tool_calls} tool)`,
    `${formatTokens(totals.tokens_used)} tokens`,
    `${totals.errors} error${totals.errors === 1 ? "" : "s"}`,
  ];
  totalsEl.textContent = parts.join(" · ");
  setClass(totalsEl, "has-error", totals.errors > 0);
}
