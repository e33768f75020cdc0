/** What a webhook is sent for a state event: which events count, the JSON body, the ntfy form. */
import type { StateEvent } from "../tasks/index.js";
import type { WebhookConfig, WebhookEventKind } from "./config.js";
import { DELIVERY_HEADER, SIGNATURE_HEADER, signBody, TIMESTAMP_HEADER } from "./signature.js";

const TERMINAL = new Set(["succeeded", "failed", "dead", "cancelled"]);
const ATTENTION = new Set(["failed", "dead"]);

/** Whether `e` is one the webhook asked for, and as what (attention wins: it is the louder). */
export function webhookEventOf(
  e: StateEvent,
  wanted: readonly WebhookEventKind[],
): WebhookEventKind | undefined {
  if (wanted.includes("attention") && ATTENTION.has(e.state)) return "attention";
  if (wanted.includes("terminal") && TERMINAL.has(e.state)) return "terminal";
  return undefined;
}

/** The idempotency key: the same for every retry and every daemon (`X-Mesh-Delivery`). */
export const deliveryKey = (e: StateEvent): string => `${e.taskId}-${e.state}-${e.attempt}`;

export interface WebhookBody {
  type: "task.state";
  delivery: string;
  event: WebhookEventKind;
  taskId: string;
  state: string;
  attempt: number;
  workerId: string | null;
  reason: string | null;
  at: string;
  sentAt: string;
}

export interface WebhookRequest {
  headers: Record<string, string>;
  body: string;
}

const TAGS: Record<string, string> = {
  succeeded: "white_check_mark",
  failed: "x",
  dead: "skull",
  cancelled: "no_entry_sign",
};

/** Header values are ASCII without control characters. */
const headerSafe = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);

export function webhookRequest(
  w: Pick<WebhookConfig, "format">,
  secret: string | undefined,
  e: StateEvent,
  kind: WebhookEventKind,
  now: Date,
  userAgent: string,
): WebhookRequest {
  const delivery = deliveryKey(e);
  const sentAt = now.toISOString();
  let body: string;
  const headers: Record<string, string> = {
    "user-agent": userAgent,
    [DELIVERY_HEADER]: delivery,
    [TIMESTAMP_HEADER]: sentAt,
  };
  if (w.format === "ntfy") {
    body = `${e.taskId} ${e.state} (attempt ${e.attempt}${e.workerId ? ` on ${e.workerId}` : ""})${e.reason ? `: ${e.reason}` : ""}`;
    headers["content-type"] = "text/plain; charset=utf-8";
    headers.title = headerSafe(`mesh: ${e.taskId} ${e.state}`);
    headers.priority = kind === "attention" ? "high" : "default";
    headers.tags = TAGS[e.state] ?? "information_source";
  } else {
    const b: WebhookBody = {
      type: "task.state",
      delivery,
      event: kind,
      taskId: e.taskId,
      state: e.state,
      attempt: e.attempt,
      workerId: e.workerId ?? null,
      reason: e.reason ?? null,
      at: e.at,
      sentAt,
    };
    body = JSON.stringify(b);
    headers["content-type"] = "application/json";
  }
  if (secret) headers[SIGNATURE_HEADER] = signBody(secret, body);
  return { headers, body };
}

/** The wait before retry `n` (1 = the first retry): backoff doubling, at most max. */
export function backoffMs(n: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(n - 1, 30)));
}
