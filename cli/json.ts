/**
 * The CLI's --json shapes. These field names are a stable interface (documented in
 * cli/README-fields.md): add fields, never rename or remove them. Absent values are null,
 * so every key is always present.
 */
import {
  type Attempt,
  type ResultBundle,
  type SubmitResult,
  type Task,
  type TaskEvent,
  taskStateName,
  type WatchMeshResponse,
  type Worker,
} from "../proto/index.js";

const orNull = (s: string): string | null => (s === "" ? null : s);

export interface TaskJson {
  id: string;
  title: string | null;
  state: string;
  pool: string;
  labels: Record<string, string>;
  runner: string;
  attempt: number;
  maxAttempts: number;
  countedFailures: number;
  workerId: string | null;
  host: string | null;
  cancelRequested: boolean;
  submittedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  notBefore: string | null;
  reason: string | null;
  unschedulable: string | null;
  /** Queued after meeting its account's usage limit: resumed after the reset (issue 15). */
  parked: { account: string; until: string; reason: string } | null;
  /** What every view shows (the one status model): kind, detail, attention. */
  status: { kind: string; detail: string | null; attention: boolean } | null;
  attempts: AttemptJson[];
  result: ResultJson | null;
  revision: number;
}

export interface AttemptJson {
  attempt: number;
  workerId: string;
  host: string;
  claimedAt: string;
  startedAt: string | null;
  endedAt: string | null;
  outcome: string | null;
  reason: string | null;
  exitCode: number | null;
  signal: string | null;
  /** The attempt's commits as a bundle in the mesh's store (failed attempts too). */
  bundle: BundleJson | null;
}

export interface BundleJson {
  name: string | null;
  repoId: string;
  base: string;
  head: string;
  size: number;
}

function bundleJson(b: ResultBundle | undefined): BundleJson | null {
  return b ? { name: orNull(b.name), repoId: b.repoId, base: b.base, head: b.head, size: b.size } : null;
}

export interface ResultJson {
  summary: string | null;
  costUsd: number | null;
  tokens: { input: number; output: number; cacheRead: number; cacheCreation: number } | null;
  turns: number | null;
  sessionId: string | null;
  branch: string | null;
  headCommit: string | null;
  durationMs: number | null;
  model: string | null;
  /** The task branch as a bundle (`mesh fetch` imports it). */
  bundle: BundleJson | null;
  /** Changed paths outside `owns` that `ownsViolation: report` let through (null: none). */
  ownsViolations: string[] | null;
  /** How many more such paths there were than `ownsViolations` lists. */
  ownsViolationsOmitted: number;
}

function attemptJson(a: Attempt): AttemptJson {
  return {
    attempt: a.attempt,
    workerId: a.workerId,
    host: a.host,
    claimedAt: a.claimedAt,
    startedAt: orNull(a.startedAt),
    endedAt: orNull(a.endedAt),
    outcome: orNull(a.outcome),
    reason: orNull(a.reason),
    exitCode: a.exitCode ?? null,
    signal: orNull(a.signal),
    bundle: bundleJson(a.bundle),
  };
}

export function taskJson(t: Task): TaskJson {
  const r = t.result;
  return {
    id: t.id,
    title: orNull(t.title),
    state: taskStateName(t.state),
    pool: t.pool,
    labels: t.labels,
    runner: t.runner,
    attempt: t.attempt,
    maxAttempts: t.maxAttempts,
    countedFailures: t.countedFailures,
    workerId: orNull(t.ownerWorkerId),
    host: orNull(t.ownerHost),
    cancelRequested: t.cancelRequested,
    submittedAt: t.submittedAt,
    updatedAt: t.updatedAt,
    finishedAt: orNull(t.finishedAt),
    notBefore: orNull(t.notBefore),
    reason: orNull(t.reason),
    unschedulable: orNull(t.unschedulableReason),
    parked: parkedOf(t),
    status: t.status?.kind
      ? { kind: t.status.kind, detail: orNull(t.status.detail), attention: t.status.attention }
      : null,
    attempts: t.attempts.map(attemptJson),
    result: r
      ? {
          summary: orNull(r.summary),
          costUsd: r.costUsd ?? null,
          tokens: r.tokens
            ? {
                input: r.tokens.input,
                output: r.tokens.output,
                cacheRead: r.tokens.cacheRead,
                cacheCreation: r.tokens.cacheCreation,
              }
            : null,
          turns: r.turns ?? null,
          sessionId: orNull(r.sessionId),
          branch: orNull(r.branch),
          headCommit: orNull(r.headCommit),
          durationMs: r.durationMs ?? null,
          model: orNull(r.model),
          bundle: bundleJson(r.bundle),
          ...ownsViolationsOf(t),
        }
      : null,
    revision: t.revision,
  };
}

/** The record's `parked` field (carried in recordJson, which the proto Task has for such fields). */
function parkedOf(t: Task): TaskJson["parked"] {
  if (!t.recordJson?.includes('"parked":{')) return null;
  try {
    const p = (
      JSON.parse(t.recordJson) as { parked?: { account?: unknown; until?: unknown; reason?: unknown } }
    ).parked;
    if (typeof p?.account !== "string" || typeof p.until !== "string") return null;
    return { account: p.account, until: p.until, reason: typeof p.reason === "string" ? p.reason : "" };
  } catch {
    return null;
  }
}

/** The record's `result.ownsViolations` (recordJson, like `parked`; the proto result lacks it). */
function ownsViolationsOf(t: Task): Pick<ResultJson, "ownsViolations" | "ownsViolationsOmitted"> {
  const none = { ownsViolations: null, ownsViolationsOmitted: 0 };
  if (!t.recordJson?.includes('"ownsViolations":')) return none;
  try {
    const r = (
      JSON.parse(t.recordJson) as { result?: { ownsViolations?: unknown; ownsViolationsOmitted?: unknown } }
    ).result;
    const paths = r?.ownsViolations;
    if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === "string"))
      return none;
    const omitted = typeof r?.ownsViolationsOmitted === "number" ? r.ownsViolationsOmitted : 0;
    return { ownsViolations: paths as string[], ownsViolationsOmitted: omitted };
  } catch {
    return none;
  }
}

/** Where a task stands in its plan (`mesh task <id>`). */
export interface TaskPlanJson {
  plan: string | null;
  needs: string[];
  /** While waiting: the needs not succeeded yet. */
  waitingOn: string[];
  /** Waiting on a need that did not succeed (policy `wait`). */
  blockedBy: { dependency: string; reason: string } | null;
  /** Cancelled because this need did not succeed. */
  cancelCause: { dependency: string } | null;
}

function recordOf(t: Task): unknown {
  try {
    return t.recordJson ? JSON.parse(t.recordJson) : null;
  } catch {
    return null;
  }
}

function taskPlanJson(t: Task, record: unknown): TaskPlanJson {
  const r = (typeof record === "object" && record !== null ? record : {}) as Partial<
    Pick<TaskPlanJson, "blockedBy" | "cancelCause">
  >;
  return {
    plan: orNull(t.plan),
    needs: t.needs,
    waitingOn: t.waitingOn,
    blockedBy: r.blockedBy ?? null,
    cancelCause: r.cancelCause ?? null,
  };
}

/**
 * `mesh task <id> --json`: the task, where it stands in its plan, and the daemon's full record
 * (not covered by the stability promise).
 */
export function taskDetailJson(t: Task): TaskJson & TaskPlanJson & { record: unknown } {
  const record = recordOf(t);
  return { ...taskJson(t), ...taskPlanJson(t, record), record };
}

export interface WorkerJson {
  workerId: string;
  name: string;
  host: string;
  pools: string[];
  labels: Record<string, string>;
  runners: string[];
  slotsTotal: number;
  slotsFree: number;
  running: string[];
  version: string;
  startedAt: string;
  lastSeen: string;
  draining: boolean;
  httpUrl: string | null;
  /** Every URL its HTTP side is advertised at (interface addresses or `http.advertise`). */
  httpUrls: string[];
  /** `loopback` (only its own machine reaches its HTTP side), `network`, or null (no HTTP side). */
  reach: string | null;
  /** Runners the worker does not offer, with why and the fix. */
  unavailableRunners: { runner: string; reason: string }[];
}

/** The advertised URLs travel in the worker's full presence record (`infoJson`). */
function advertisedOf(w: Worker): { httpUrls: string[]; reach: string | null } {
  let info: { httpUrls?: unknown; reach?: unknown } = {};
  try {
    info = JSON.parse(w.infoJson || "{}") as typeof info;
  } catch {
    // an unreadable record advertises nothing more
  }
  const urls = Array.isArray(info.httpUrls) ? info.httpUrls.filter((u) => typeof u === "string") : [];
  const httpUrls = urls.length > 0 ? urls : w.httpUrl ? [w.httpUrl] : [];
  const reach = typeof info.reach === "string" ? info.reach : null;
  return { httpUrls, reach };
}

export function workerJson(w: Worker): WorkerJson {
  return {
    workerId: w.workerId,
    name: w.name,
    host: w.host,
    pools: w.pools,
    labels: w.labels,
    runners: w.runners,
    slotsTotal: w.slotsTotal,
    slotsFree: w.slotsFree,
    running: w.running,
    version: w.version,
    startedAt: w.startedAt,
    lastSeen: w.updatedAt,
    draining: w.draining,
    httpUrl: orNull(w.httpUrl),
    ...advertisedOf(w),
    unavailableRunners: w.unavailableRunners.map((u) => ({ runner: u.runner, reason: u.reason })),
  };
}

export interface SubmitJson {
  id: string;
  created: boolean;
  state: string;
}

export function submitJson(r: SubmitResult): SubmitJson {
  return { id: r.id, created: r.created, state: taskStateName(r.state) };
}

export type EventJson =
  | {
      type: "state";
      taskId: string;
      at: string;
      attempt: number;
      workerId: string | null;
      state: string;
      reason: string | null;
    }
  | {
      type: "log";
      taskId: string;
      at: string;
      attempt: number;
      workerId: string | null;
      stream: string;
      line: string;
    }
  | {
      type: "agent";
      taskId: string;
      at: string;
      attempt: number;
      workerId: string | null;
      kind: string;
      data: unknown;
    }
  | { type: "unknown"; taskId: string; at: string; attempt: number; workerId: string | null; event: unknown };

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

export function eventJson(e: TaskEvent): EventJson {
  const base = { taskId: e.taskId, at: e.at, attempt: e.attempt, workerId: orNull(e.workerId) };
  if (e.state)
    return { type: "state", ...base, state: taskStateName(e.state.state), reason: orNull(e.state.reason) };
  if (e.log) return { type: "log", ...base, stream: e.log.stream, line: e.log.line };
  if (e.agent) return { type: "agent", ...base, kind: e.agent.kind, data: parseJson(e.agent.dataJson) };
  return { type: "unknown", ...base, event: parseJson(e.eventJson) };
}

export interface UnschedulableEventJson {
  type: "unschedulable";
  taskId: string;
  at: string;
  /** As for a `queued` state event: the attempt it waits for. */
  attempt: number;
  workerId: null;
  reason: string;
}

/** The CLI's own event line: the task waits and no live worker serves its pool, labels and runner. */
export function unschedulableEventJson(
  taskId: string,
  u: { reason: string; state: string; attempt: number },
): UnschedulableEventJson {
  return {
    type: "unschedulable",
    taskId,
    at: new Date().toISOString(),
    attempt: u.state === "queued" ? u.attempt + 1 : u.attempt,
    workerId: null,
    reason: u.reason,
  };
}

export type MeshEventJson =
  | ({ type: "task_state" } & Omit<Extract<EventJson, { type: "state" }>, "type">)
  | { type: "worker_joined"; worker: WorkerJson }
  | { type: "worker_left"; workerId: string; at: string }
  | { type: "unknown" };

export function meshEventJson(m: WatchMeshResponse): MeshEventJson {
  if (m.task) {
    const e = eventJson(m.task);
    if (e.type === "state") {
      const { type: _type, ...rest } = e;
      return { type: "task_state", ...rest };
    }
  }
  if (m.workerJoined) return { type: "worker_joined", worker: workerJson(m.workerJoined) };
  if (m.workerLeft) return { type: "worker_left", workerId: m.workerLeft.workerId, at: m.workerLeft.at };
  return { type: "unknown" };
}
