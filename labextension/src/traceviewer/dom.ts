// Row elements: built once, then updated in place so CSS transitions can animate changes.
import type { TraceRecord } from "../frames";
import {
  formatLatency,
  formatRate,
  formatTokens,
  hitRate,
  latencyClass,
  rateClass,
} from "./format";
import { highlight, prettyJson } from "./json";
import type { ChatTotals, TurnCache } from "./protocol";
import type { TraceItem, Turn } from "./state";
import { turnFigures } from "./state";
import { h } from "../shared/dom";

/** Characters of a payload shown before "show more". */
export const CUT = 4000;
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
): void {
  const figures = turnFigures(turn);
  row.dataset["turn"] = String(turn.turn);
  row.dataset["tools"] = String(figures.tools);
  row.dataset["tokens"] = String(figures.tokens);
  row.setAttribute("aria-expanded", String(!collapsed));
  setClass(row, "is-collapsed", collapsed);
  setClass(row, "has-error", figures.errors > 0);
  setClass(row, "is-running", figures.running > 0);
  child(row, ".tv-turn-label").textContent = `Turn ${turn.turn}`;
  const parts = [
    `${figures.tools} tool${figures.tools === 1 ? "" : "s"}`,
    `${formatTokens(figures.tokens)} tokens`,
    figures.running > 0 ? "running…" : formatLatency(figures.spanMs),
  ];
  if (figures.errors > 0) parts.push(`${figures.errors} error${figures.errors === 1 ? "" : "s"}`);
  child(row, ".tv-turn-summary").textContent = parts.map((p) => ` · ${p}`).join("");

  const cacheEl = child(row, ".tv-cache");
  const badge = child(row, ".tv-hit-rate");
  if (cache === undefined || cache.input_tokens === 0) {
    cacheEl.hidden = true;
    delete cacheEl.dataset["hitRate"];
    return;
  }
  cacheEl.hidden = false;
  const rate = hitRate(cache.cache_tokens, cache.input_tokens);
  cacheEl.dataset["hitRate"] = String(rate ?? "");
  cacheEl.dataset["cacheTokens"] = String(cache.cache_tokens);
  cacheEl.dataset["inputTokens"] = String(cache.input_tokens);
  if (cache.broken_by !== null) cacheEl.dataset["brokenBy"] = cache.broken_by;
  else delete cacheEl.dataset["brokenBy"];
  child(row, ".tv-cache-hit").style.width = `${((rate ?? 0) * 100).toFixed(1)}%`;
  badge.className = `tv-hit-rate ${rateClass(rate)}`;
  badge.textContent = formatRate(rate);
  cacheEl.title = cacheTooltip(cache);
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
  row.setAttribute("aria-level", "2");
  const latency = h("span", "tv-latency");
  latency.append(h("span", "tv-latency-bar"));
  row.append(
    h("span", "tv-chevron"),
    h("span", "tv-error-marker"),
    h("span", "tv-badge"),
    latency,
    h("span", "tv-latency-text"),
    h("span", "tv-tokens"),
  );
  return row;
}

export function updateTraceRow(
  row: HTMLElement,
  item: TraceItem,
  expanded: boolean,
  maxLatency: number,
): void {
  const { trace, running } = item;
  row.dataset["traceId"] = trace.id;
  row.dataset["turn"] = String(trace.turn_number);
  row.dataset["kind"] = trace.kind;
  row.dataset["outcome"] = running ? "running" : trace.outcome;
  if (trace.latency_ms !== null) row.dataset["latencyMs"] = String(trace.latency_ms);
  else delete row.dataset["latencyMs"];
  row.setAttribute("aria-expanded", String(expanded));
  setClass(row, "is-expanded", expanded);
  setClass(row, "is-error", trace.outcome === "error");
  setClass(row, "is-cancelled", trace.outcome === "cancelled");
  setClass(row, "is-running", running);
  row.title = trace.error ?? "";

  const badge = child(row, ".tv-badge");
  badge.className = `tv-badge tv-badge-${trace.kind}`;
  badge.textContent = trace.tool_name;

  const bar = child(row, ".tv-latency-bar");
  if (running || trace.latency_ms === null) {
    bar.className = "tv-latency-bar latency-running";
    bar.style.width = "100%";
  } else {
    bar.className = `tv-latency-bar ${latencyClass(trace.latency_ms)}`;
    const share = maxLatency > 0 ? trace.latency_ms / maxLatency : 0;
    bar.style.width = `${Math.max(2, share * 100).toFixed(1)}%`;
  }
  child(row, ".tv-latency-text").textContent = running
    ? "running…"
    : formatLatency(trace.latency_ms);
  child(row, ".tv-tokens").textContent =
    trace.tokens_used > 0 ? `${formatTokens(trace.tokens_used)} tok` : "";
}

// Detail (an expanded trace)

export function createDetail(trace: TraceRecord, showMore: boolean): HTMLElement {
  const detail = h("div", "tv-detail");
  detail.dataset["detailFor"] = trace.id;
  const meta = [
    trace.kind === "model" ? "model call" : "tool call",
    `turn ${trace.turn_number}`,
    `started ${trace.started_at}`,
  ];
  if (trace.call_id !== null) meta.push(`call ${trace.call_id}`);
  if (trace.kind === "model") {
    meta.push(
      `in ${formatTokens(trace.input_tokens)} (cached ${formatTokens(trace.cache_tokens)})`,
      `out ${formatTokens(trace.output_tokens)}`,
    );
  }
  detail.append(h("div", "tv-detail-meta", meta.join(" · ")));
  if (trace.error !== null) detail.append(h("div", "tv-error-message", trace.error));
  let cut = false;
  for (const [label, value, cls] of [
    ["Input", trace.input, "tv-json-input"],
    ["Output", trace.output, "tv-json-output"],
  ] as const) {
    const section = h("div", "tv-detail-section");
    section.append(h("div", "tv-detail-label", label));
    const pre = h("pre", `tv-json ${cls}`);
    const text = prettyJson(value);
    const shown = showMore || text.length <= CUT ? text : text.slice(0, CUT);
    if (shown.length < text.length) cut = true;
    if (shown.length <= HIGHLIGHT_LIMIT) highlight(shown, pre);
    else pre.textContent = shown;
    if (shown.length < text.length) {
      pre.append(h("span", "tv-cut", `\n… ${text.length - shown.length} more characters`));
    }
    section.append(pre);
    detail.append(section);
  }
  if (cut || showMore) {
    const button = h("button", "tv-show-more", showMore ? "show less" : "show more");
    button.type = "button";
    detail.append(button);
  }
  return detail;
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
