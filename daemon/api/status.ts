/**
 * The one status model every view shows (`mesh top`, `mesh tmux`, the web dashboard, the API):
 * derived only from what the daemons own, so a remote task reads exactly like a local one.
 *
 * - the record (state, owner, lease), judged on the reader's clock;
 * - presence: the owner's worker is gone -> lost (its presence TTL is three of its intervals);
 * - the lease: silent for three heartbeats (the owner's `leaseMs`, heartbeats are a third of it) -> lost;
 * - agent events of the running attempt (folded by `foldActivity`): a tool in flight -> waiting
 *   for a tool; a tool denied -> needs attention;
 * - optional record fields other parts add: `parked` (quota), `conflicts` (plan branches).
 *
 * Pure: no NATS, no clock of its own (`now` is given), so every view computes the same answer.
 */

/** What a view shows for a task. */
export type StatusKind =
  | "working"
  | "tool" // waiting for a tool the agent called
  | "attention" // needs a person: denied tool, parked on quota, conflict, no worker serves it
  | "queued"
  | "waiting" // a plan task waiting for its dependencies
  | "succeeded"
  | "failed"
  | "cancelled"
  | "lost";

export const STATUS_KINDS: readonly StatusKind[] = [
  "attention",
  "lost",
  "tool",
  "working",
  "queued",
  "waiting",
  "failed",
  "cancelled",
  "succeeded",
];

export interface TaskStatus {
  kind: StatusKind;
  /** One line saying why (the tool, the denial, the missing worker, the terminal reason). */
  detail?: string;
  /** Kinds a person should look at first: attention and lost. */
  attention: boolean;
  /** The worker it runs (or ran) on, by id. */
  workerId?: string;
}

/** Which of the task's agent events matter for its status, folded per attempt. */
export interface AgentActivity {
  attempt: number;
  /** Tool calls started and not yet answered, by tool use id. */
  inFlight: Record<string, string>;
  /** The last tool denied in this attempt. */
  denied?: string;
}

/** Fields of the record the model reads (state may be one a newer daemon added, e.g. `waiting`). */
export interface StatusRecord {
  state: string;
  attempt: number;
  owner?: { workerId: string; leaseMs?: number };
  heartbeatAt?: string;
  updatedAt: string;
  reason?: string;
  cancelRequested?: boolean;
  attempts?: ReadonlyArray<{ workerId: string }>;
  /** Parked on a quota (issue 15): set by the limits part. */
  parked?: { reason?: string; account?: string; until?: string } | boolean;
  /** Files in conflict with a sibling branch of its plan (issue 14). */
  conflicts?: ReadonlyArray<string | { file?: string; path?: string; with?: string }>;
}

export interface StatusInput {
  record: StatusRecord;
  /** Ids of the live workers (presence). */
  liveWorkers: ReadonlySet<string>;
  /** Reader's clock, ms. */
  now: number;
  /**
   * How long ago the reader first saw the record's current revision (timed on its own monotonic
   * clock); the lease's silence is the shorter of this and `now` less the owner's `heartbeatAt`,
   * so neither an owner's skewed clock nor a jump of the reader's shows a live task lost.
   */
  revisionSeenForMs?: number;
  activity?: AgentActivity;
  /** Set while queued and no live worker serves it. */
  unschedulable?: string;
  /** The reader's lease, for records without `owner.leaseMs`. */
  defaultLeaseMs?: number;
}

const DEFAULT_LEASE_MS = 30_000;

/** The status of one task. */
export function taskStatus(i: StatusInput): TaskStatus {
  const r = i.record;
  // The worker it runs on, or ran on last once it ended; none while it waits for one (a task
  // queued again after a retry or a hand-back is not on the worker of its last attempt).
  const waitsForWorker = r.state === "queued" || r.state === "waiting";
  const workerId = waitsForWorker ? undefined : (r.owner?.workerId ?? r.attempts?.at(-1)?.workerId);
  const out = (kind: StatusKind, detail?: string): TaskStatus => ({
    kind,
    attention: kind === "attention" || kind === "lost",
    ...(detail ? { detail } : {}),
    ...(workerId ? { workerId } : {}),
  });
  switch (r.state) {
    case "succeeded":
      return out("succeeded", r.reason);
    case "failed":
    case "dead":
      return out("failed", r.reason ?? r.state);
    case "cancelled":
      return out("cancelled", r.reason);
    case "waiting":
      return out("waiting", "for its dependencies");
  }
  const conflict = conflictDetail(r.conflicts);
  if (conflict) return out("attention", conflict);
  if (r.parked) return out("attention", parkedDetail(r.parked));
  if (r.state === "queued") {
    if (i.unschedulable) {
      // The scheduler's reason usually says it already ("no live worker serves pool ..."): once.
      const u = i.unschedulable;
      return out("attention", u.startsWith("no live worker serves") ? u : `no live worker serves it: ${u}`);
    }
    return out("queued");
  }
  // claimed or running: it has an owner whose liveness we can judge.
  const owner = r.owner;
  if (owner && !i.liveWorkers.has(owner.workerId))
    return out("lost", `worker ${owner.workerId} left the mesh`);
  const leaseMs = owner?.leaseMs ?? i.defaultLeaseMs ?? DEFAULT_LEASE_MS;
  const beat = Date.parse(r.heartbeatAt ?? r.updatedAt);
  const silentMs = Math.min(
    Number.isNaN(beat) ? Number.POSITIVE_INFINITY : i.now - beat,
    i.revisionSeenForMs ?? Number.POSITIVE_INFINITY,
  );
  if (silentMs > leaseMs) return out("lost", `lease silent for ${Math.round(silentMs / 1000)}s`);
  const act = i.activity && i.activity.attempt === r.attempt ? i.activity : undefined;
  if (act?.denied) return out("attention", `tool denied: ${act.denied}`);
  if (r.cancelRequested) return out("working", "cancelling");
  const tools = act ? Object.values(act.inFlight) : [];
  if (tools.length > 0) return out("tool", tools.join(", "));
  return out("working", r.state === "claimed" ? "starting" : undefined);
}

function parkedDetail(p: NonNullable<StatusRecord["parked"]>): string {
  if (p === true) return "parked on quota";
  if (typeof p !== "object") return "parked on quota";
  const parts = ["parked on quota"];
  if (p.account) parts.push(`account ${p.account}`);
  if (p.reason) parts.push(p.reason);
  if (p.until) parts.push(`until ${p.until}`);
  return parts.join(": ");
}

function conflictDetail(c: StatusRecord["conflicts"]): string | undefined {
  if (!c || c.length === 0) return undefined;
  const names = c.map((x) => (typeof x === "string" ? x : (x.file ?? x.path ?? "?")));
  return `conflict: ${names.slice(0, 3).join(", ")}${names.length > 3 ? ` (+${names.length - 3})` : ""}`;
}

/** A task event as the activity fold reads it (a TaskEvent, or its JSON). */
export interface ActivityEvent {
  type: string;
  attempt: number;
  kind?: string;
  data?: Record<string, unknown>;
}

/** Folds one task event into the task's activity; a new attempt starts afresh. */
export function foldActivity(prev: AgentActivity | undefined, e: ActivityEvent): AgentActivity {
  const cur: AgentActivity =
    prev && prev.attempt === e.attempt
      ? { ...prev, inFlight: { ...prev.inFlight } }
      : { attempt: e.attempt, inFlight: {} };
  if (e.type !== "agent" || !e.data) return cur;
  const d = e.data;
  const id = typeof d.toolUseId === "string" ? d.toolUseId : undefined;
  const tool = typeof d.tool === "string" ? d.tool : "tool";
  switch (e.kind) {
    case "tool_use":
      if (id) cur.inFlight[id] = tool;
      break;
    case "tool_result":
      if (id) delete cur.inFlight[id];
      break;
    case "tool_denied":
      if (id) delete cur.inFlight[id];
      cur.denied = tool;
      break;
    case "result":
      cur.inFlight = {};
      break;
  }
  return cur;
}

/** Attention first, then what is live, then what waits, then what is done. */
export function statusRank(k: StatusKind): number {
  return STATUS_KINDS.indexOf(k);
}
