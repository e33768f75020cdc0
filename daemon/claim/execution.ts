/**
 * One attempt of one task on this worker, from a won claim to its final fenced write:
 * heartbeat the lease, prepare the workspace, run the runner, record the outcome, then ack or
 * hand the doorbell back. Once another writer holds the record nothing more leaves this worker:
 * no commit or push, no result, no events. The outcome write is retried through NATS outages
 * while the record is still ours, so a finished run is not repeated for a blip.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, isMeshError, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { OwnsViolationError, recordedViolations } from "../plans/index.js";
import type { Delivery } from "../queue/index.js";
import {
  type AccountLimit,
  type HeldSlots,
  isActive,
  jitterCap,
  parkedUntil,
  type Taken,
} from "../quota/index.js";
import {
  type AttemptEnd,
  type AttemptOutcome,
  type EventPublisher,
  expectState,
  type Notice,
  noteSession,
  type ResultBundle,
  type RunnerEvent,
  type Step,
  settle,
  start,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  TRANSITIONS,
  type VersionedRecord,
} from "../tasks/index.js";
import { monotonicNow } from "../util/index.js";
import {
  type NeedResult,
  NeedsConflictError,
  type PrepareCarry,
  type PreparedWorkspace,
  type WorkspaceProvider,
} from "../workspace/index.js";
import type { AccountLimits } from "./account-limits.js";
import type { LeaseBeacon } from "./beacon.js";
import { Lease } from "./lease.js";
import type { MeshObserver } from "./observer.js";
import type { PlanCheck } from "./plan-check.js";
import type { AbortReason, Runner, RunOutcome } from "./runner.js";
import { settleDoorbell } from "./settle-doorbell.js";

export interface ExecutionDeps {
  store: TaskStore;
  events: EventPublisher;
  runner: Runner;
  workspaces: WorkspaceProvider;
  log: Logger;
  workerId: string;
  host: string;
  pool: string;
  stateDir: string;
  leaseMs: number;
  heartbeatMs: number;
  retryDelayMs: number;
  defaultTimeoutMs: number;
  observer: MeshObserver;
  /** Whether a new attempt resumes the agent session of an earlier one (a task's agent.resume wins). */
  defaultResume?: "auto" | "never";
  /** Called when the attempt has settled (e.g. to refresh presence). */
  onFinished?(): void;
  /** The attempt's outcome was written (its plan's dependents are released or settled by it). */
  onSettled?(written: TaskRecord): Promise<void>;
  /** Announces each revision the lease holds, so observers time a dead owner's silence early. */
  beacon?: LeaseBeacon;
  /** Account usage limits: a paused account starts no session, a limit met parks the task. */
  limits?: AccountLimits;
  /** The early conflict check of plans (absent: not checked). */
  plans?: PlanCheck;
  /** Takes the attempt's mesh-wide quota slots before it runs (issue 15; quota/gate.ts). */
  quota?: QuotaPort;
}

/** The quota side an execution calls (quota/gate.ts implements it). */
export interface QuotaPort {
  take(r: { id: string; attempt: number; spec: TaskSpec; workerId: string; host: string }): Promise<Taken>;
}

/** What a runner that needs no workspace gets: no directory, nothing to commit. */
const NO_WORKSPACE: PreparedWorkspace = {
  workdir: "",
  finish: async () => ({}),
};

export type ExecutionResult = "done" | "requeued" | "fenced";

export class Execution {
  readonly taskId: string;
  private readonly abort = new AbortController();
  /** Aborted only when the lease is lost: what the finishing steps (commit, push) must stop on. */
  private readonly fence = new AbortController();
  private readonly lease: Lease;
  private finished: Promise<ExecutionResult> | undefined;
  /** The daemon is stopping: an outcome write that cannot reach NATS gives up. */
  private quitting = false;
  private held: HeldSlots | undefined;
  /** No quota slot: the attempt is handed back without running. */
  private noSlot: Extract<Taken, { ok: false }> | undefined;
  /** A rejection was reported live (from a rate_limit event) and counted. */
  private limitCounted = false;

  constructor(
    private readonly deps: ExecutionDeps,
    claimed: VersionedRecord,
    msg: Delivery,
  ) {
    this.taskId = claimed.record.id;
    this.lease = new Lease(deps.store, claimed, msg, {
      workerId: deps.workerId,
      heartbeatMs: deps.heartbeatMs,
      leaseMs: deps.leaseMs,
      log: deps.log,
      onLost: (reason) => {
        deps.log.warn({ taskId: this.taskId, reason }, "lease lost; stopping the run");
        this.fence.abort("fenced");
        this.stop("fenced");
      },
      onCancelRequested: () => this.stop("cancelled"),
      ...(deps.beacon ? { onHeld: (rev: number) => deps.beacon?.announce(this.taskId, rev) } : {}),
    });
  }

  get attempt(): number {
    return this.lease.attempt;
  }

  adopt(msg: Delivery): void {
    this.lease.adopt(msg);
  }

  /** Aborts the run; the first reason wins. */
  stop(reason: AbortReason): void {
    if (reason === "shutdown") this.quitting = true;
    if (!this.abort.signal.aborted) this.abort.abort(reason);
  }

  /** Another writer holds the record: this attempt may not publish or write anything more. */
  private get fencedOut(): boolean {
    return this.lease.lostTo === "other";
  }

  /** Fenced in any way (also self-fenced): nothing may leave the worker for this attempt's work. */
  private get fenced(): boolean {
    return this.lease.isLost;
  }

  run(): Promise<ExecutionResult> {
    // Quota slots are returned once the attempt has settled, whichever way it ended.
    this.finished ??= this.execute().finally(() => this.held?.release());
    return this.finished;
  }

  /** Takes the attempt's quota slots; a refusal says why the attempt is handed back. */
  private async takeQuota(): Promise<Extract<Taken, { ok: false }> | undefined> {
    const q = this.deps.quota;
    if (!q) return undefined;
    const r = this.lease.record;
    const got = await q.take({
      id: r.id,
      attempt: this.attempt,
      spec: r.spec,
      workerId: this.deps.workerId,
      host: this.deps.host,
    });
    if (!got.ok) return got;
    this.held = got.held;
    return undefined;
  }

  private emit = (event: RunnerEvent): void => {
    if (this.fenced) return;
    const model = this.lease.record.spec.agent.model;
    this.deps.observer.runnerEvent({ pool: this.deps.pool, event, ...(model ? { model } : {}) });
    this.deps.events.publish({
      ...event,
      taskId: this.taskId,
      at: new Date().toISOString(),
      attempt: this.attempt,
      workerId: this.deps.workerId,
    });
    if (event.type === "agent" && (event.kind === "shim_started" || event.kind === "session_started")) {
      this.recordSessionId(event.data.sessionId);
    }
    if (event.type === "agent" && event.kind === "rate_limit") this.reportLive(event.data);
  };

  /**
   * A `rate_limit` agent event (typed fields from mesh-shim): a rejection or a warning is
   * recorded for the account at once, while the session is still ending, so the other daemons
   * stop starting sessions as early as possible.
   */
  private reportLive(data: Record<string, unknown>): void {
    const limits = this.deps.limits;
    const account = limits?.accountOf(this.lease.record.spec);
    if (!limits || !account) return;
    if (typeof data.utilization === "number")
      this.deps.observer.accountUtilization?.({ account, utilization: data.utilization });
    const status = data.status;
    if (status !== "rejected" && status !== "allowed_warning") return;
    const limit: AccountLimit = {
      state: status === "rejected" ? "rejected" : "warning",
      source: "rate_limit_event",
    };
    if (typeof data.resetsAt === "number") limit.resetsAt = data.resetsAt;
    if (typeof data.window === "string") limit.window = data.window;
    if (typeof data.utilization === "number") limit.utilization = data.utilization;
    if (limit.state === "rejected" && !this.limitCounted) {
      this.limitCounted = true;
      this.deps.observer.limitHit?.({ account, source: limit.source });
    }
    limits
      .report(account, limit)
      .catch((err: unknown) =>
        this.deps.log.warn({ err: errorMessage(err), account }, "could not record the account limit"),
      );
  }

  /** The outcome of an attempt whose account is paused here: parked without starting a session. */
  private pausedOutcome(): RunOutcome | undefined {
    const limits = this.deps.limits;
    const account = limits?.accountOf(this.lease.record.spec);
    if (!limits || !account || limits.pausedMs(account) <= 0) return undefined;
    const s = limits.state(account);
    const limit: AccountLimit = { state: "rejected", source: "paused" };
    if (s) limit.resetsAt = Date.parse(s.until);
    return {
      status: "rate_limited",
      reason: `account ${account} is paused at its usage limit${s ? ` until ${s.until}` : ""}; no session started`,
      limit,
    };
  }

  /** Where an attempt that met its account's limit parks the task, or undefined (not parked). */
  private async parking(outcome: RunOutcome | undefined): Promise<AttemptEnd["parked"]> {
    const limits = this.deps.limits;
    const spec = this.lease.record.spec;
    const account = limits?.accountOf(spec);
    if (!limits || !account || outcome?.status !== "rate_limited" || outcome.limit?.state !== "rejected")
      return undefined;
    if (outcome.limit.source !== "paused") {
      if (!this.limitCounted) this.deps.observer.limitHit?.({ account, source: outcome.limit.source });
      this.limitCounted = true;
      // Without a reset time (API keys) the pause lasts the runner's retry delay.
      const limit: AccountLimit = { ...outcome.limit };
      if (limit.resetsAt === undefined && outcome.retryAfterMs !== undefined)
        limit.retryAfterMs = outcome.retryAfterMs;
      await limits.report(account, limit).catch((err: unknown) => {
        this.deps.log.warn({ err: errorMessage(err), account }, "could not record the account limit");
      });
    }
    const s = limits.state(account);
    const now = Date.now();
    const active = isActive(s, now) ? s : undefined;
    const untilMs = active
      ? Date.parse(active.until)
      : (outcome.limit.resetsAt ?? now + (outcome.retryAfterMs ?? limits.fallbackPauseMs));
    const until = new Date(Math.max(untilMs, now)).toISOString();
    const jitterMs = active ? jitterCap(active, limits.jitterMs) : Math.min(limits.jitterMs, untilMs - now);
    this.deps.observer.parked?.({ pool: this.deps.pool, account, taskId: this.lease.record.id });
    return {
      info: {
        account,
        until,
        reason: outcome.reason ?? "usage limit reached",
        workerId: this.deps.workerId,
      },
      resumeAt: parkedUntil(Date.parse(until), Math.max(0, jitterMs), this.lease.record.submittedAt),
    };
  }

  /** The agent's session id goes into the record at once: a takeover after a crash can resume it. */
  private recordSessionId(sessionId: unknown): void {
    if (typeof sessionId !== "string" || !sessionId || this.fenced) return;
    if (this.lease.record.result?.sessionId === sessionId) return;
    this.lease
      .write((r) =>
        noteSession(expectState(r, "note the session of", TRANSITIONS.noteSession.from), sessionId),
      )
      .catch((err: unknown) =>
        this.deps.log.debug({ err, taskId: this.taskId }, "could not record the session id"),
      );
  }

  /**
   * Publishes a written step's state events. `now`: they go out before what this connection
   * publishes next (the attempt's outcome before the ack or the hand-back that lets another
   * worker claim the task again).
   */
  private announce(written: TaskRecord, notices: readonly Notice[], now = false): void {
    this.deps.events.announce(written, notices, {
      now,
      onState: (to) => this.deps.observer.transition({ pool: this.deps.pool, to }),
    });
  }

  private async execute(): Promise<ExecutionResult> {
    const { deps } = this;
    const started = monotonicNow();
    const spec = this.lease.record.spec;
    // Bindings per call rather than a child logger per attempt: a child costs on every task.
    const log = bound(deps.log, { taskId: this.taskId, attempt: this.attempt });
    this.lease.start();
    const timeoutMs = spec.timeout ?? deps.defaultTimeoutMs;
    const timer = setTimeout(() => this.stop("timeout"), timeoutMs);
    let outcome: RunOutcome | undefined;
    let failure: string | undefined;
    let headCommit: string | undefined;
    let branch: string | undefined;
    let bundle: ResultBundle | undefined;
    let permanent = false;
    /** Changes outside `owns` that `ownsViolation: report` let through. */
    let ownsReport: { paths: string[]; omitted: number } | undefined;
    /** The run succeeded and its finishing (commit, push) is done: a finished run. */
    let completed = false;
    const scratchDir = join(deps.stateDir, "scratch", this.taskId, `a${this.attempt}`);
    try {
      let ws: PreparedWorkspace | undefined;
      this.noSlot = await this.takeQuota();
      if (this.noSlot) log.info({ why: this.noSlot.why }, "no quota slot: handing the task back");
      try {
        if (this.noSlot) ws = undefined;
        else if (deps.runner.needsWorkspace === false) ws = NO_WORKSPACE;
        else {
          await rm(scratchDir, { recursive: true, force: true });
          await mkdir(scratchDir, { recursive: true, mode: 0o700 });
          // The latest earlier attempt's commits (a bundle, maybe made on another host) carry over.
          const previous = this.lease.record.attempts.findLast((a) => a.bundle?.name)?.bundle;
          const carry: PrepareCarry = previous ? { previous } : {};
          // A dependent starts from its needs' results (see git-workspace.ts startOfNeeds).
          if (spec.needs?.length && spec.repo) carry.needs = await needResults(deps, spec.repo, spec.needs);
          ws = await deps.workspaces.prepare(spec, this.attempt, this.abort.signal, carry);
        }
      } catch (err) {
        if (!this.abort.signal.aborted) {
          failure = `workspace: ${errorMessage(err)}`;
          // Bad input, or needs whose results cannot make a start (conflicting, missing): another try ends alike.
          permanent = isMeshError(err, "INVALID_ARGUMENT") || isMeshError(err, "FAILED_PRECONDITION");
          if (err instanceof NeedsConflictError && !this.fenced) {
            log.warn({ needs: err.tasks, files: err.files }, "the results of the task's needs conflict");
            deps.plans?.needsConflict(this.lease.record, err.tasks, err.files);
          }
        }
      }
      if (ws && !this.abort.signal.aborted) {
        branch = ws.branch;
        // `running` now, or claimed straight into it (nothing to prepare): announced either way.
        const begin = (r: TaskRecord) =>
          start(expectState(r, "start", TRANSITIONS.start.from), deps.workerId, new Date());
        const first = begin(this.lease.record);
        let notices = first.notices;
        const running = first.write
          ? await this.lease.write((r) => {
              const s = begin(r);
              notices = s.notices;
              return s;
            })
          : { record: first.record };
        this.announce(running.record, notices);
        log.info("running");
        const resume = (spec.agent.resume ?? deps.defaultResume ?? "auto") === "auto";
        const previousSessionId = resume ? this.lease.record.result?.sessionId : undefined;
        // Checked again here, just before the session: a pause recorded since the claim holds it back.
        outcome =
          this.pausedOutcome() ??
          (await deps.runner.run({
            spec,
            attempt: this.attempt,
            workerId: deps.workerId,
            pool: deps.pool,
            workdir: ws.workdir,
            scratchDir,
            signal: this.abort.signal,
            emit: this.emit,
            ...(previousSessionId ? { previousSessionId } : {}),
          }));
        // A fenced attempt commits and pushes nothing: another worker may own the task by now.
        if (!this.fenced && (!this.abort.signal.aborted || outcome.status === "succeeded")) {
          try {
            const fin = await ws.finish({
              succeeded: outcome.status === "succeeded",
              message: `${spec.title ?? this.taskId} (mesh task ${this.taskId}, attempt ${this.attempt})`,
              // Not the run's abort: a cancelled run that had succeeded still commits.
              signal: this.fence.signal,
            });
            headCommit = fin.headCommit;
            bundle = fin.bundle;
            completed = outcome.status === "succeeded";
            if (fin.ownsViolations) {
              ownsReport = recordedViolations(fin.ownsViolations);
              this.emitOwnsViolation("report", fin.ownsViolations);
            }
          } catch (err) {
            if (isMeshError(err, "FENCED")) throw err;
            if (err instanceof OwnsViolationError && outcome.status === "succeeded") {
              // The result-time gate: the run wrote outside its owns; another attempt would too.
              this.emitOwnsViolation("fail", err.paths);
              outcome = { ...outcome, status: "failed", reason: err.message, permanent: true };
              log.warn({ count: err.paths.length }, "changes outside owns: the attempt fails");
            } else {
              // The result could not be committed or pushed: this attempt did not succeed.
              if (outcome.status === "succeeded") {
                outcome = { ...outcome, status: "failed", reason: `workspace: ${errorMessage(err)}` };
                // A workspace the daemon refuses to touch (e.g. a rewritten .git): retrying cannot help.
                if (isMeshError(err, "FAILED_PRECONDITION")) outcome.permanent = true;
              }
              log.warn({ err: errorMessage(err) }, "finishing the workspace failed");
            }
          }
        }
      }
    } catch (err) {
      if (isMeshError(err, "FENCED")) {
        clearTimeout(timer);
        this.lease.stop();
        if (this.fencedOut) return this.fencedResult(log, started);
      } else {
        failure = `internal: ${errorMessage(err)}`;
        log.error({ err }, "attempt failed inside the daemon");
      }
    } finally {
      clearTimeout(timer);
      this.lease.stop();
    }
    if (this.fencedOut) return this.fencedResult(log, started);
    // Self-fenced (cut off from NATS for most of the lease): the run has stopped and the record
    // may still be ours, so the outcome is still written (see finish()).
    return this.finish(
      log,
      started,
      outcome,
      failure,
      permanent,
      headCommit,
      branch,
      completed,
      bundle,
      ownsReport,
    );
  }

  /** An event naming the changes outside owns (bounded like the record's list). */
  private emitOwnsViolation(policy: "fail" | "report", all: readonly string[]): void {
    const { paths, omitted } = recordedViolations(all);
    this.emit({ type: "agent", kind: "owns_violation", data: { policy, paths, omitted } });
  }

  private fencedResult(log: BoundLog, started: number): ExecutionResult {
    log.warn("fenced out: wrote no result");
    this.deps.observer.fenceLost({ pool: this.deps.pool });
    this.deps.observer.attemptFinished({
      pool: this.deps.pool,
      outcome: "fenced",
      durationMs: Math.round(monotonicNow() - started),
    });
    this.deps.onFinished?.();
    return "fenced";
  }

  private async finish(
    log: BoundLog,
    started: number,
    outcome: RunOutcome | undefined,
    failure: string | undefined,
    permanent: boolean,
    headCommit: string | undefined,
    branch: string | undefined,
    completed: boolean,
    bundle?: ResultBundle,
    ownsReport?: { paths: string[]; omitted: number },
  ): Promise<ExecutionResult> {
    const { deps } = this;
    const reason = this.abort.signal.reason as AbortReason | undefined;
    const now = new Date();
    let att: AttemptOutcome;
    let why: string | undefined;
    const selfFenced = this.lease.lostTo === "self";
    // A self-fenced attempt whose run had finished still records its success; one whose run was
    // stopped by the self-fence is handed back without counting (NATS was away, not the task).
    const noSlot = this.noSlot;
    if (outcome?.status === "succeeded" && (completed || !selfFenced)) att = "succeeded";
    else if (noSlot && !selfFenced && reason !== "cancelled") {
      att = noSlot.permanent ? "failed" : "interrupted";
      why = `no quota slot: ${noSlot.why}`;
    } else if (selfFenced) {
      deps.observer.fenceLost({ pool: deps.pool });
      att = "interrupted";
      why = "self-fenced: NATS was unreachable for most of the lease, so the run was stopped";
    } else if (reason === "cancelled") att = "cancelled";
    else if (reason === "shutdown") att = "interrupted";
    else if (reason === "timeout") {
      att = "timeout";
      why = `timed out after ${this.lease.record.spec.timeout ?? deps.defaultTimeoutMs} ms`;
    } else if (outcome?.status === "rate_limited") {
      att = "rate_limited";
      why = outcome.reason ?? "rate limited";
    } else {
      att = "failed";
      why = failure ?? outcome?.reason ?? "failed";
    }
    let written: VersionedRecord;
    const endedAt = now.toISOString();
    const landed = (r: TaskRecord): boolean =>
      r.attempts.some(
        (a) => a.attempt === this.attempt && a.workerId === deps.workerId && a.endedAt === endedAt,
      );
    const end: AttemptEnd = {
      outcome: att,
      workerId: deps.workerId,
      reason: why,
      exitCode: outcome?.exitCode,
      signal: outcome?.signal,
      result:
        outcome?.result || headCommit || branch
          ? {
              ...outcome?.result,
              ...(branch ? { branch } : {}),
              ...(headCommit ? { headCommit } : {}),
              ...(bundle && att === "succeeded" ? { bundle } : {}),
              ...(ownsReport && att === "succeeded" ? { ownsViolations: ownsReport.paths } : {}),
              ...(ownsReport?.omitted && att === "succeeded"
                ? { ownsViolationsOmitted: ownsReport.omitted }
                : {}),
            }
          : undefined,
      bundle,
      permanent: permanent || outcome?.permanent || noSlot?.permanent,
      retryAfterMs: outcome?.retryAfterMs ?? (noSlot && !noSlot.permanent ? noSlot.delayMs : undefined),
      parked: att === "rate_limited" ? await this.parking(outcome) : undefined,
    };
    // The write may apply the transition more than once (a concurrent cancel request): the last
    // step is the one written, and it says what becomes of the doorbell.
    let last: Step | undefined;
    try {
      written = await this.lease.settle(
        (r) => {
          last = settle(expectState(r, "settle", TRANSITIONS.settle.from), end, deps, now);
          return last;
        },
        landed,
        () => this.quitting,
      );
    } catch (err) {
      if (isMeshError(err, "FENCED")) return this.fencedResult(log, started);
      // Given up (the daemon is stopping and NATS is unreachable): leave the doorbell unacked;
      // the lease expires and another worker takes the task over, recording this attempt as lost.
      log.error({ err }, "could not record the attempt's outcome");
      return "fenced";
    }
    const step = last!;
    const result: ExecutionResult = written.record.state === "queued" ? "requeued" : "done";
    this.announce(written.record, step.notices, true);
    if (written.record.state === "succeeded") deps.plans?.finished(written.record, deps.pool);
    log.info({ state: written.record.state, outcome: att, reason: why }, "attempt finished");
    try {
      // A plain ack: the record, not the ack, says the task is done. A lost ack only means a
      // redelivered doorbell, which finds the record terminal and is acked then.
      await settleDoorbell(this.lease.message, step.doorbell);
    } catch (err) {
      // The record is written; a redelivered doorbell is recognised and acked or claimed.
      log.debug({ err }, "doorbell ack/nak failed");
    }
    if (deps.onSettled) {
      // After our own outcome is written (see plans/scheduler.ts: exactly-once release).
      await deps
        .onSettled(written.record)
        .catch((err: unknown) =>
          log.warn({ err: errorMessage(err) }, "could not release or settle the task's dependents"),
        );
    }
    deps.observer.attemptFinished({
      pool: deps.pool,
      outcome: att,
      durationMs: Math.round(monotonicNow() - started),
    });
    deps.onFinished?.();
    return result;
  }
}

type BoundLog = Pick<Logger, "debug" | "info" | "warn" | "error">;

/** A logger that adds `bindings` to every line (pino skips disabled levels cheaply). */
function bound(log: Logger, bindings: Record<string, unknown>): BoundLog {
  const at =
    (level: "debug" | "info" | "warn" | "error") =>
    (objOrMsg: unknown, msg?: string): void => {
      if (!log.isLevelEnabled(level)) return;
      if (typeof objOrMsg === "string") log[level](bindings, objOrMsg);
      else log[level]({ ...bindings, ...(objOrMsg as object) }, msg);
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } as BoundLog;
}

/**
 * The results of a task's needs, in task id order, leaving out needs without commits. A need
 * that is not (or no longer) succeeded fails the task permanently: the plan releases a
 * dependent only after all its needs succeeded, so this is a task submitted out of order.
 */
async function needResults(
  deps: ExecutionDeps,
  repo: string,
  needs: readonly string[],
): Promise<NeedResult[]> {
  const out: NeedResult[] = [];
  for (const id of [...needs].sort()) {
    const v = await deps.store.get(id);
    if (!v) {
      throw new MeshError("FAILED_PRECONDITION", `needs: there is no task ${id}`, { field: "needs" });
    }
    if (v.record.state !== "succeeded") {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `needs: task ${id} is ${v.record.state}, not succeeded: a task starts only from succeeded needs`,
        { field: "needs" },
      );
    }
    const result = v.record.result;
    // Another repository's commits cannot be a start here (a plan works on one repo).
    if (result && v.record.spec.repo && v.record.spec.repo !== repo) {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `needs: task ${id} works on repo ${v.record.spec.repo}, this task on ${repo}: a task can start only from needs on its own repo`,
        { field: "needs" },
      );
    }
    const bundle = result?.bundle;
    if (bundle) {
      if (bundle.head !== bundle.base) out.push({ taskId: id, head: bundle.head, bundle });
    } else if (result?.headCommit) out.push({ taskId: id, head: result.headCommit });
  }
  return out;
}
