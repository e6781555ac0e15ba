// Number and time formatting every view uses (rows, turns, footers, chips).

export const FAST_MS = 1000;
export const SLOW_MS = 5000;

/** 950 -> "950", 1234 -> "1.2K", 5_600_000 -> "5.6M" (the static summary uses the same). */
export function formatTokens(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1_000_000) return `${trimZero((n / 1000).toFixed(1))}K`;
  return `${trimZero((n / 1_000_000).toFixed(1))}M`;
}

function trimZero(text: string): string {
  return text.endsWith(".0") ? text.slice(0, -2) : text;
}

export function formatLatency(ms: number | null): string {
  if (ms === null) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m ${Math.round((ms % 60_000) / 1000)}s`;
}

export type LatencyClass = "latency-fast" | "latency-medium" | "latency-slow";

/** Green under 1 s, yellow under 5 s, red at 5 s and over. */
export function latencyClass(ms: number): LatencyClass {
  if (ms < FAST_MS) return "latency-fast";
  if (ms < SLOW_MS) return "latency-medium";
  return "latency-slow";
}

export type RateClass = "rate-good" | "rate-fair" | "rate-poor" | "rate-none";

/** Good at 60% and over, fair from 30%, poor under 30%. */
export function rateClass(rate: number | null): RateClass {
  if (rate === null) return "rate-none";
  if (rate >= 0.6) return "rate-good";
  if (rate >= 0.3) return "rate-fair";
  return "rate-poor";
}

export function formatRate(rate: number | null): string {
  return rate === null ? "–" : `${Math.round(rate * 100)}%`;
}

export function hitRate(cacheTokens: number, inputTokens: number): number | null {
  return inputTokens > 0 ? cacheTokens / inputTokens : null;
}

/**
 * An ISO timestamp as microseconds since the epoch, so rows sort like the store's
 * (turn_number, started_at, id) order; string order fails when fractions differ in length.
 */
export function timeKey(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return 0;
  const fraction = /\.(\d+)/.exec(iso)?.[1] ?? "";
  const micros = Number((fraction + "000000").slice(3, 6));
  return ms * 1000 + micros;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * An ISO timestamp in the user's local time, as the chat view shows times: "21:04:05.123",
 * with the local date in front when it is not today ("2026-01-01 21:04:05.123").
 */
export function localTime(iso: string | null, now: Date = new Date()): string {
  if (iso === null) return "–";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const two = (n: number): string => String(n).padStart(2, "0");
  const clock =
    `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}` +
    `.${String(at.getMilliseconds()).padStart(3, "0")}`;
  const day = `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())}`;
  const today = `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}`;
  return day === today ? clock : `${day} ${clock}`;
}
