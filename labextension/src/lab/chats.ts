// The sidebar's Chats section: the project's chats, newest first, searchable by title;
// a row opens the chat's traces in the main area.
import type { ServerConnection } from "@jupyterlab/services";
import { h } from "../shared/dom";
import { formatRate, formatTokens, rateClass } from "../shared/format";
import { ago } from "../orchestrator/dom";
import type { ChatPage } from "./api";
import { shortId } from "./ids";
import type { ListQuery, ListSource, Page } from "./list";
import { getJson } from "./rest";

export type ChatSummary = ChatPage["chats"][number];

export const CHAT_STATES = [
  "in_progress", "awaiting_input", "completed", "failed", "interrupted", "cancelled",
] as const; // fmt: skip

export function chatLabel(chat: { title: string; chat_id: string }): string {
  return chat.title.trim() || `chat ${shortId(chat.chat_id)}`;
}

export function chatsSource(
  settings: ServerConnection.ISettings,
  open: (chat: ChatSummary) => void,
): ListSource<ChatSummary> {
  return {
    name: "chats",
    searchLabel: "Search titles",
    states: CHAT_STATES,
    moreLabel: "Older chats",
    emptyText: "No chats yet: run %%agent in a notebook.",
    noMatchText: "No chat matches.",
    async fetch(query: ListQuery): Promise<Page<ChatSummary>> {
      // The user's own chats: subagents' and workflow agents' chats are under their task
      // or run (Background tasks, Workflow runs), so a busy project's list stays readable.
      const params = { ...listParams(query), top_level: "true" };
      const page = await getJson<ChatPage>(settings, "boonb/api/chats", params);
      return { items: page.chats, next_cursor: page.next_cursor };
    },
    key: (chat) => chat.chat_id,
    row: chatRow,
    open,
  };
}

/** The query string of a list request: only the filters that are set. */
export function listParams(query: ListQuery): Record<string, string> {
  const params: Record<string, string> = { limit: String(query.limit) };
  if (query.cursor !== null) params["cursor"] = query.cursor;
  if (query.search !== "") params["search"] = query.search;
  if (query.state !== "") params["state"] = query.state;
  return params;
}

function chatRow(chat: ChatSummary, nowMs: number): HTMLElement {
  const label = chatLabel(chat);
  const state = chat.state ?? "new";
  const row = h("div", "boonb-row boonb-chat");
  row.dataset["chatId"] = chat.chat_id;
  row.dataset["state"] = state;
  const head = h("div", "boonb-row-head");
  const title = h("span", "boonb-row-title", label);
  title.title = label;
  head.append(title, stateChip(state));
  const when = ago(chat.last_activity, nowMs);
  const cost = chat.cost_usd === null ? "–" : formatCost(chat.cost_usd);
  const cache = h("span", `boonb-chat-cache ${rateClass(chat.cache_hit_rate)}`, `cache ${formatRate(chat.cache_hit_rate)}`);
  const figures = h("div", "boonb-row-figures");
  figures.append(
    h("span", "boonb-chat-turns", `${chat.turns} ${chat.turns === 1 ? "turn" : "turns"}`),
    h("span", "boonb-chat-tokens", `${formatTokens(chat.tokens_used)} tok`),
    h("span", "boonb-chat-cost", cost),
    cache,
    h("span", "boonb-row-when", when),
  );
  row.append(head, figures);
  row.setAttribute(
    "aria-label",
    `${label}, ${state.replace(/_/g, " ")}, ${chat.turns} turns, ${chat.tokens_used} tokens, ` +
      `cost ${cost}, cache ${formatRate(chat.cache_hit_rate)}, ${when}`,
  );
  return row;
}

export function stateChip(state: string): HTMLElement {
  const chip = h("span", "boonb-state", state.replace(/_/g, " "));
  chip.dataset["state"] = state;
  return chip;
}

/** Dollars: cents and up with 2 decimals, less with the first 2 significant digits. */
export function formatCost(usd: number): string {
  if (usd === 0) return "$0";
  if (usd >= 0.01) return `$${usd.toFixed(2)}`;
  return `$${usd.toPrecision(2)}`;
}
