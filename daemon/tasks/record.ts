/**
 * The task record kept in KV (bucket `mesh-tasks`, key = task id); its state machine is in machine/.
 * Every write is compare-and-set on the KV revision; the revision is the fencing token.
 */
import { MeshError } from "../errors.js";
import { ID_RE, type TaskSpec } from "./spec.js";

export const TASK_STATES = [
  /** A task of a plan whose needs have not all succeeded yet: no doorbell, nobody claims it. */
  "waiting",
  "queued",
  "claimed",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "dead",
] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(["succeeded", "failed", "cancelled", "dead"]);
export const isTerminal = (s: TaskState): boolean => TERMINAL_STATES.has(s);

export type AttemptOutcome =
  | "succeeded"
  | "failed" // the runner reported failure (non-zero exit, agent error)
  | "timeout"
  | "lost" // the worker stopped heartbeating; another worker took over
  | "interrupted" // graceful shutdown handed it back; does not count against maxAttempts
  | "rate_limited" // the agent hit an API rate limit; retried after a delay, not counted
  | "cancelled";

/**
 * A task branch stored as a git bundle (`base..head`) in the mesh's bundle store (see
 * daemon/transfer/): what `mesh fetch` imports, and what a later attempt on another host
 * continues from. `name` is absent when there was nothing to store (head equals base).
 */
export interface ResultBundle {
  name?: string;
  /** The repo's identity (its first-parent root commit; `mesh://<repoId>`). */
  repoId: string;
  base: string;
  head: string;
  size: number;
}

export interface AttemptInfo {
  attempt: number;
  workerId: string;
  host: string;
  claimedAt: string;
  /** The Claude account the attempt runs on (claude runner; issue 15): a name, never a key. */
  account?: string;
  startedAt?: string;
  endedAt?: string;
  outcome?: AttemptOutcome;
  reason?: string;
  exitCode?: number | null;
  signal?: string | null;
  /** The attempt's commits as a bundle (kept for failed attempts too). */
  bundle?: ResultBundle;
  /** A rate_limited attempt that met its account's usage limit and parked the task (counts for nothing). */
  parked?: boolean;
}

/** Agent numbers attached by the runner (the Claude Code shim fills them). */
export interface TaskResultInfo {
  summary?: string;
  costUsd?: number;
  tokens?: { input: number; output: number; cacheRead: number; cacheCreation: number };
  turns?: number;
  sessionId?: string;
  branch?: string;
  headCommit?: string;
  durationMs?: number;
  model?: string;
  /** The task branch as a bundle, for `mesh fetch` / `mesh diff`. */
  bundle?: ResultBundle;
  /** Changed paths outside the spec's `owns`, let through by `ownsViolation: report` (the first 100). */
  ownsViolations?: string[];
  /** How many more such paths there were than `ownsViolations` lists. */
  ownsViolationsOmitted?: number;
}

/**
 * The record schema version this daemon writes and reads. A newer daemon that changes the record
 * in a way older readers would misread bumps it; older daemons then leave such records alone.
 */
export const RECORD_VERSION = 1;

export interface ParkedInfo {
  account: string;
  /** ISO time the account's limit resets. */
  until: string;
  reason: string;
  /** The worker whose disk holds the agent session (transcript) to resume. */
  workerId: string;
}

export interface TaskRecord {
  /** Schema version (RECORD_VERSION). */
  v: 1;
  id: string;
  spec: TaskSpec;
  state: TaskState;
  /** Number of the current/last attempt (0 while never claimed). */
  attempt: number;
  /** Attempts that count against maxAttempts (failed, timeout, lost). */
  countedFailures: number;
  maxAttempts: number;
  /**
   * The current/last owner. `leaseMs` is the owner's lease: another worker takes the task over
   * only after max(its own lease, this) of silence, as the owner self-fences only after its own
   * lease (daemons of one mesh may run with different leases). Absent in older records.
   */
  owner?: { workerId: string; host: string; leaseMs?: number };
  cancelRequested?: boolean;
  submittedAt: string;
  updatedAt: string;
  /** Owner's wall clock at the last heartbeat; informational (staleness is judged by revision). */
  heartbeatAt?: string;
  finishedAt?: string;
  /** Do not start before this time (retry back-off). */
  notBefore?: string;
  /**
   * While queued after an attempt met its account's usage limit: the account, when the limit
   * resets, why, and the worker that holds the agent's session (it resumes the task first).
   * The attempt did not count; cleared when the next attempt settles.
   */
  parked?: ParkedInfo;
  attempts: AttemptInfo[];
  result?: TaskResultInfo;
  /** Human reason of the terminal state. */
  reason?: string;
  /** Cancelled because a need of its plan failed, died or was cancelled (`mesh retry` of it re-opens this task). */
  cancelCause?: { dependency: string };
  /** Waiting although a need has failed, died or was cancelled (policy `dependencyFailure: wait`). */
  blockedBy?: { dependency: string; reason: string };
  /** Attempts no longer listed in `attempts` (the oldest go first; see boundRecord). */
  droppedAttempts?: number;
  /** How many of the dropped attempts were rate-limited (they count towards the rate-limit cap). */
  droppedRateLimited?: number;
}

/** A new task's record: `waiting` when it has needs (a task of a plan), else `queued`. */
export function newTaskRecord(spec: TaskSpec, now: Date): TaskRecord {
  const at = now.toISOString();
  return {
    v: RECORD_VERSION,
    id: spec.id,
    spec,
    state: spec.needs && spec.needs.length > 0 ? "waiting" : "queued",
    attempt: 0,
    countedFailures: 0,
    maxAttempts: spec.maxAttempts,
    submittedAt: at,
    updatedAt: at,
    attempts: [],
  };
}

/** The record as read from KV with its revision (the fencing token). */
export interface VersionedRecord {
  record: TaskRecord;
  revision: number;
}

/** A stored entry of the tasks bucket that is not a readable record: reported, skipped, left alone. */
export interface UnreadableRecord {
  key: string;
  revision: number;
  /** What is wrong with it (the MeshError DATA_LOSS message). */
  reason: string;
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);
const isCount = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
const isTime = (x: unknown): boolean => typeof x === "string" && !Number.isNaN(Date.parse(x));
/** The first of `keys` of `o` that is present but fails `ok`. */
const badOptional = (o: Record<string, unknown>, keys: readonly string[], ok: (x: unknown) => boolean) =>
  keys.find((k) => o[k] !== undefined && !ok(o[k]));
const isString = (x: unknown): boolean => typeof x === "string";
const isNumber = (x: unknown): boolean => typeof x === "number" && Number.isFinite(x);
const SHA = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;
const isSha = (x: unknown): boolean => typeof x === "string" && SHA.test(x);
/** A ResultBundle: hex ids, a size; the name a SHA-256 when present. */
const isBundle = (x: unknown): boolean =>
  isObject(x) &&
  isSha(x.repoId) &&
  isSha(x.base) &&
  isSha(x.head) &&
  isCount(x.size) &&
  (x.name === undefined || (typeof x.name === "string" && /^[0-9a-f]{64}$/.test(x.name)));

function attemptProblem(a: unknown, i: number): string | undefined {
  if (!isObject(a)) return `"attempts[${i}]" is not an object`;
  if (!isCount(a.attempt)) return `"attempts[${i}].attempt" is not a whole number`;
  for (const k of ["workerId", "host"] as const)
    if (typeof a[k] !== "string") return `"attempts[${i}].${k}" is not a string`;
  if (!isTime(a.claimedAt)) return `"attempts[${i}].claimedAt" is not a time`;
  const bad =
    badOptional(a, ["startedAt", "endedAt"], isTime) ??
    badOptional(a, ["outcome", "reason"], isString) ??
    badOptional(a, ["exitCode"], (x) => x === null || isNumber(x)) ??
    badOptional(a, ["signal"], (x) => x === null || isString(x)) ??
    badOptional(a, ["bundle"], isBundle) ??
    badOptional(a, ["parked"], (x) => typeof x === "boolean");
  return bad ? `"attempts[${i}].${bad}" has the wrong type` : undefined;
}

/**
 * Why `value` is not a task record this daemon can work with (of task `id` when given), or
 * undefined when it is one. Checks every field the daemon, the API and the CLI read; the spec
 * only as far as routing needs it (it was validated when submitted).
 */
export function recordProblem(value: unknown, id?: string): string | undefined {
  if (!isObject(value)) return "not a JSON object";
  const v = value.v;
  if (typeof v === "number" && Number.isSafeInteger(v) && v > RECORD_VERSION)
    return `written by a newer agent-mesh (record version ${v}; this daemon reads version ${RECORD_VERSION}): upgrade this daemon`;
  if (v !== RECORD_VERSION) return `unknown record version ${JSON.stringify(v) ?? "(none)"}`;
  if (typeof value.id !== "string" || !ID_RE.test(value.id) || (id !== undefined && value.id !== id))
    return `"id" is ${JSON.stringify(value.id) ?? "missing"}, not the key`;
  if (typeof value.state !== "string" || !(TASK_STATES as readonly string[]).includes(value.state))
    return `"state" is ${JSON.stringify(value.state) ?? "missing"}`;
  for (const k of ["attempt", "countedFailures", "maxAttempts"] as const)
    if (!isCount(value[k])) return `"${k}" is not a whole number`;
  for (const k of ["submittedAt", "updatedAt"] as const) if (!isTime(value[k])) return `"${k}" is not a time`;
  const badField =
    badOptional(value, ["heartbeatAt", "finishedAt", "notBefore"], isTime) ??
    badOptional(value, ["reason"], isString) ??
    badOptional(value, ["droppedAttempts", "droppedRateLimited"], isCount) ??
    badOptional(value, ["cancelRequested"], (x) => typeof x === "boolean") ??
    badOptional(
      value,
      ["owner"],
      (x) =>
        isObject(x) &&
        isString(x.workerId) &&
        isString(x.host) &&
        (x.leaseMs === undefined || isCount(x.leaseMs)),
    ) ??
    badOptional(value, ["result"], isObject) ??
    badOptional(value, ["cancelCause"], (x) => isObject(x) && isString(x.dependency)) ??
    badOptional(value, ["blockedBy"], (x) => isObject(x) && isString(x.dependency) && isString(x.reason)) ??
    badOptional(
      value,
      ["parked"],
      (x) =>
        isObject(x) && isString(x.account) && isTime(x.until) && isString(x.reason) && isString(x.workerId),
    );
  if (badField) return `"${badField}" has the wrong type`;
  if (!Array.isArray(value.attempts)) return `"attempts" is not a list`;
  for (const [i, a] of value.attempts.entries()) {
    const p = attemptProblem(a, i);
    if (p) return p;
  }
  const result = value.result as Record<string, unknown> | undefined;
  if (result) {
    const bad =
      badOptional(result, ["summary", "sessionId", "branch", "headCommit", "model"], isString) ??
      badOptional(result, ["costUsd", "turns", "durationMs", "ownsViolationsOmitted"], isNumber) ??
      badOptional(result, ["ownsViolations"], (v) => Array.isArray(v) && v.every(isString)) ??
      badOptional(
        result,
        ["tokens"],
        (t) => isObject(t) && ["input", "output", "cacheRead", "cacheCreation"].every((k) => isNumber(t[k])),
      ) ??
      badOptional(result, ["bundle"], isBundle);
    if (bad) return `"result.${bad}" has the wrong type`;
  }
  const spec = value.spec;
  if (!isObject(spec)) return `"spec" is not an object`;
  if (typeof spec.pool !== "string" || typeof spec.runner !== "string") return `"spec" lacks pool or runner`;
  if (!isObject(spec.labels) || !Object.values(spec.labels).every(isString))
    return `"spec.labels" is not a map of strings`;
  if (spec.title !== undefined && !isString(spec.title)) return `"spec.title" is not a string`;
  if (!isObject(spec.agent ?? {})) return `"spec.agent" is not an object`;
  return undefined;
}

/**
 * A record is one NATS message: it must stay below the server's max_payload (1 MiB by default)
 * whatever its attempts collect. The spec is at most MAX_SPEC_BYTES; reasons, the summary and the
 * list of attempts are bounded here, before every write.
 */
export const MAX_RECORD_BYTES = 960 * 1024;
/** A reason (of an attempt or of the record) longer than this is cut. */
export const MAX_REASON_CHARS = 2000;
/** The result's summary longer than this is cut. */
export const MAX_SUMMARY_CHARS = 16_000;
/** At most this many attempts are listed: the newest; older ones are only counted. */
export const MAX_KEPT_ATTEMPTS = 50;

const clipText = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

function dropOldest(r: TaskRecord, n: number): void {
  const gone = r.attempts.splice(0, n);
  if (gone.length === 0) return;
  r.droppedAttempts = (r.droppedAttempts ?? 0) + gone.length;
  const limited = gone.filter((a) => a.outcome === "rate_limited" && !a.parked).length;
  if (limited > 0) r.droppedRateLimited = (r.droppedRateLimited ?? 0) + limited;
}

/**
 * Bounds what grows in `r` (in place): reasons and the summary are cut, only the newest
 * MAX_KEPT_ATTEMPTS attempts are kept (the others counted in droppedAttempts), and older
 * attempts go until the record fits MAX_RECORD_BYTES. Returns `r`.
 */
export function boundRecord(r: TaskRecord): TaskRecord {
  if (r.reason !== undefined) r.reason = clipText(r.reason, MAX_REASON_CHARS);
  if (r.blockedBy) r.blockedBy = { ...r.blockedBy, reason: clipText(r.blockedBy.reason, MAX_REASON_CHARS) };
  for (const a of r.attempts) if (a.reason !== undefined) a.reason = clipText(a.reason, MAX_REASON_CHARS);
  if (r.result?.summary !== undefined) r.result.summary = clipText(r.result.summary, MAX_SUMMARY_CHARS);
  if (r.attempts.length > MAX_KEPT_ATTEMPTS) dropOldest(r, r.attempts.length - MAX_KEPT_ATTEMPTS);
  while (r.attempts.length > 1 && Buffer.byteLength(JSON.stringify(r)) > MAX_RECORD_BYTES) {
    dropOldest(r, Math.max(1, Math.floor(r.attempts.length / 4)));
  }
  return r;
}

/** Rate-limited attempts of the task so far, the dropped ones included. */
export function rateLimitedAttempts(r: TaskRecord): number {
  return (
    r.attempts.filter((a) => a.outcome === "rate_limited" && !a.parked).length + (r.droppedRateLimited ?? 0)
  );
}

const dec = new TextDecoder("utf-8", { fatal: true });

/**
 * The record stored under `key`. Throws MeshError DATA_LOSS, naming the key and the problem,
 * when the bytes are not a record this daemon can read (garbage, wrong shape, newer version).
 */
export function parseTaskRecord(data: Uint8Array, key: string, revision: number): TaskRecord {
  let value: unknown;
  let problem: string | undefined;
  if (data.length > MAX_RECORD_BYTES) {
    // No daemon writes one (boundRecord); it could not take another attempt below max_payload.
    problem = `${Math.ceil(data.length / 1024)} KiB, larger than a record can be (${MAX_RECORD_BYTES / 1024} KiB)`;
  } else {
    try {
      value = JSON.parse(dec.decode(data));
    } catch {
      problem = "not JSON";
    }
  }
  problem ??= recordProblem(value, key);
  if (problem) {
    throw new MeshError(
      "DATA_LOSS",
      `task record "${key}" (revision ${revision}) is unreadable: ${problem}; it is left as it is and skipped. Inspect it with \`nats kv get mesh-tasks ${key}\`; if it is garbage, delete it with \`nats kv del mesh-tasks ${key}\``,
    );
  }
  return value as TaskRecord;
}
