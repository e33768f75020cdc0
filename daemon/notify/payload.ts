/**
 * What a webhook is sent for an event of MESH_EVENTS: which events count (terminal states;
 * needs-attention: failed or dead, parked on a usage limit, a tool denied, a plan conflict),
 * the JSON body, the ntfy form, and the idempotency key each one is delivered under.
 */
import type { PlanEvent } from "../claim/index.js";
import type { StateEvent, TaskEvent } from "../tasks/index.js";
import type { WebhookConfig, WebhookEventKind } from "./config.js";
import { DELIVERY_HEADER, SIGNATURE_HEADER, signBody, TIMESTAMP_HEADER } from "./signature.js";

const TERMINAL = new Set(["succeeded", "failed", "dead", "cancelled"]);
const ATTENTION = new Set(["failed", "dead"]);

/** Whether state event `e` is one the webhook asked for, and as what (attention wins: it is the louder). */
export function webhookEventOf(
  e: StateEvent,
  wanted: readonly WebhookEventKind[],
): WebhookEventKind | undefined {
  if (wanted.includes("attention") && (ATTENTION.has(e.state) || (e.state === "queued" && e.parked))) {
    return "attention";
  }
  if (wanted.includes("terminal") && TERMINAL.has(e.state)) return "terminal";
  return undefined;
}

/**
 * The idempotency key of a state event: the same for every retry and every daemon
 * (`X-Mesh-Delivery`). A parked task's is `<task>-parked-<attempt>`.
 */
export const deliveryKey = (e: StateEvent): string =>
  `${e.taskId}-${e.state === "queued" && e.parked ? "parked" : e.state}-${e.attempt}`;

/** A state change (terminal, failed/dead, or queued and parked at a usage limit). */
export interface WebhookStateBody {
  type: "task.state";
  delivery: string;
  event: WebhookEventKind;
  taskId: string;
  state: string;
  attempt: number;
  workerId: string | null;
  reason: string | null;
  /** Set when the task was parked at its account's usage limit (state `queued`). */
  parked: { account: string; until: string } | null;
  at: string;
  sentAt: string;
}

/** Claude Code denied a tool call (a permission rule or the ownership hook), reported at the session's end. */
export interface WebhookDeniedBody {
  type: "task.tool_denied";
  delivery: string;
  event: "attention";
  taskId: string;
  attempt: number;
  workerId: string;
  tool: string;
  toolUseId: string | null;
  filePath: string | null;
  at: string;
  sentAt: string;
}

/** Two finished branches of a plan do not merge (`conflict`), or a task's needs do not (`needs_conflict`). */
export interface WebhookConflictBody {
  type: "plan.conflict" | "plan.needs_conflict";
  delivery: string;
  event: "attention";
  plan: string;
  /** The two tasks (`conflict`), or the dependent and the needs that did not merge (`needs_conflict`). */
  tasks: string[];
  files: string[];
  workerId: string;
  at: string;
  sentAt: string;
}

export type WebhookBody = WebhookStateBody | WebhookDeniedBody | WebhookConflictBody;

/** One thing to deliver: its key, its kind, the JSON body (but `sentAt`) and the ntfy form. */
export interface WebhookNotice {
  delivery: string;
  kind: WebhookEventKind;
  body:
    | Omit<WebhookStateBody, "sentAt">
    | Omit<WebhookDeniedBody, "sentAt">
    | Omit<WebhookConflictBody, "sentAt">;
  ntfy: { title: string; text: string; tags: string };
}

const TAGS: Record<string, string> = {
  succeeded: "white_check_mark",
  failed: "x",
  dead: "skull",
  cancelled: "no_entry_sign",
  parked: "hourglass",
};

/** The notice for a state event, if the webhook wants it. */
export function stateNotice(e: StateEvent, wanted: readonly WebhookEventKind[]): WebhookNotice | undefined {
  const kind = webhookEventOf(e, wanted);
  if (!kind) return undefined;
  const delivery = deliveryKey(e);
  const parked = e.state === "queued" && e.parked ? e.parked : undefined;
  const shown = parked ? "parked" : e.state;
  const why = parked
    ? `: usage limit of ${parked.account} until ${parked.until}`
    : e.reason
      ? `: ${e.reason}`
      : "";
  return {
    delivery,
    kind,
    body: {
      type: "task.state",
      delivery,
      event: kind,
      taskId: e.taskId,
      state: e.state,
      attempt: e.attempt,
      workerId: e.workerId ?? null,
      reason: e.reason ?? null,
      parked: parked ? { account: parked.account, until: parked.until } : null,
      at: e.at,
    },
    ntfy: {
      title: `mesh: ${e.taskId} ${shown}`,
      text: `${e.taskId} ${shown} (attempt ${e.attempt}${e.workerId ? ` on ${e.workerId}` : ""})${why}`,
      tags: TAGS[shown] ?? "information_source",
    },
  };
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

/**
 * The notice for a task's runner event: only `tool_denied` (Claude Code's permission denials,
 * which list the ownership hook's denials too, so one notice per denied call). Key
 * `<task>-denied-<attempt>-<tool use id>` (the stream sequence when the call has no id).
 */
export function agentNotice(
  e: TaskEvent,
  seq: number,
  wanted: readonly WebhookEventKind[],
): WebhookNotice | undefined {
  if (!wanted.includes("attention") || e.type !== "agent" || e.kind !== "tool_denied") return undefined;
  const tool = str(e.data.tool) ?? "unknown";
  const toolUseId = str(e.data.toolUseId);
  const filePath = str(e.data.filePath);
  const delivery = `${e.taskId}-denied-${e.attempt}-${toolUseId ?? seq}`;
  return {
    delivery,
    kind: "attention",
    body: {
      type: "task.tool_denied",
      delivery,
      event: "attention",
      taskId: e.taskId,
      attempt: e.attempt,
      workerId: e.workerId,
      tool,
      toolUseId: toolUseId ?? null,
      filePath: filePath ?? null,
      at: e.at,
    },
    ntfy: {
      title: `mesh: ${e.taskId} denied ${tool}`,
      text: `${e.taskId} was denied ${tool}${filePath ? ` on ${filePath}` : ""} (attempt ${e.attempt} on ${e.workerId})`,
      tags: "no_entry",
    },
  };
}

/**
 * The notice for a plan event. Keys: `<plan>-conflict-<task a>-<task b>-<head a>-<head b>`
 * (12 hex each; the same conflict found by two daemons is one delivery) and
 * `<plan>-needs_conflict-<task>-<stream sequence>`.
 */
export function planNotice(
  e: PlanEvent,
  seq: number,
  wanted: readonly WebhookEventKind[],
): WebhookNotice | undefined {
  if (!wanted.includes("attention")) return undefined;
  if (e.type === "conflict") {
    const [a, b] = e.tasks;
    const [ha, hb] = e.heads.map((h) => h.slice(0, 12));
    const delivery = `${e.plan}-conflict-${a}-${b}-${ha}-${hb}`;
    return {
      delivery,
      kind: "attention",
      body: {
        type: "plan.conflict",
        delivery,
        event: "attention",
        plan: e.plan,
        tasks: [a, b],
        files: e.files,
        workerId: e.workerId,
        at: e.at,
      },
      ntfy: {
        title: `mesh: plan ${e.plan} conflict`,
        text: `plan ${e.plan}: ${a} and ${b} conflict in ${e.files.join(", ")}`,
        tags: "warning",
      },
    };
  }
  if (e.type === "needs_conflict") {
    const delivery = `${e.plan}-needs_conflict-${e.taskId}-${seq}`;
    return {
      delivery,
      kind: "attention",
      body: {
        type: "plan.needs_conflict",
        delivery,
        event: "attention",
        plan: e.plan,
        tasks: [e.taskId, ...e.needs],
        files: e.files,
        workerId: e.workerId,
        at: e.at,
      },
      ntfy: {
        title: `mesh: plan ${e.plan} needs conflict`,
        text: `plan ${e.plan}: the needs of ${e.taskId} (${e.needs.join(", ")}) conflict in ${e.files.join(", ")}`,
        tags: "warning",
      },
    };
  }
  return undefined;
}

export interface WebhookRequest {
  headers: Record<string, string>;
  body: string;
}

/** Header values are ASCII without control characters. */
const headerSafe = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);

export function webhookRequest(
  w: Pick<WebhookConfig, "format">,
  secret: string | undefined,
  n: WebhookNotice,
  now: Date,
  userAgent: string,
): WebhookRequest {
  const sentAt = now.toISOString();
  let body: string;
  const headers: Record<string, string> = {
    "user-agent": userAgent,
    [DELIVERY_HEADER]: headerSafe(n.delivery),
    [TIMESTAMP_HEADER]: sentAt,
  };
  if (w.format === "ntfy") {
    body = n.ntfy.text;
    headers["content-type"] = "text/plain; charset=utf-8";
    headers.title = headerSafe(n.ntfy.title);
    headers.priority = n.kind === "attention" ? "high" : "default";
    headers.tags = n.ntfy.tags;
  } else {
    body = JSON.stringify({ ...n.body, sentAt });
    headers["content-type"] = "application/json";
  }
  if (secret) headers[SIGNATURE_HEADER] = signBody(secret, body);
  return { headers, body };
}

/** The wait before retry `n` (1 = the first retry): backoff doubling, at most max. */
export function backoffMs(n: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(n - 1, 30)));
}
