/**
 * The claim loop: while a slot is free, pull ONE doorbell from a pool this daemon serves,
 * let the claimer decide (claim.ts), settle the doorbell as the decision says, publish the
 * decision's state events, and run won claims as Executions. Pulling one at a time matters: a
 * prefetched doorbell would time out while the worker is busy.
 */
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Delivery, Puller } from "../queue/index.js";
import type { EventPublisher, TaskRecord, TaskState } from "../tasks/index.js";
import { pause, type Slots } from "../util/index.js";
import type { Claimer, Decision } from "./claim.js";
import type { Execution } from "./execution.js";
import type { MeshObserver } from "./observer.js";
import { settleDoorbell } from "./settle-doorbell.js";

export interface ClaimLoopDeps {
  pools: string[];
  slots: Slots;
  claimer: Claimer;
  /** The pool's puller (its durable consumer ensured). */
  puller(pool: string): Promise<Puller>;
  /** Builds the execution for a won claim. */
  execution(pool: string, d: Extract<Decision, { kind: "claimed" }>, msg: Delivery): Execution;
  events: EventPublisher;
  /** A claimer's decision ended a task (a takeover found it dead or cancelled, a pending cancel). */
  onSettled?(written: TaskRecord): Promise<void>;
  log: Logger;
  observer: MeshObserver;
  /** How long stop() lets running executions finish before aborting them (default 0). */
  graceMs?: number;
}

/**
 * stop(): no new pulls, running executions get the grace period, the rest are aborted
 * ("shutdown": handed back), and it resolves once every execution has settled.
 */
export class ClaimLoop extends Part {
  private readonly intake = new AbortController();
  private loops: Promise<void>[] = [];
  private graceMs: number;
  readonly running = new Map<string, { execution: Execution; done: Promise<unknown> }>();

  constructor(private readonly deps: ClaimLoopDeps) {
    super("claim-loop", deps.log);
    this.graceMs = deps.graceMs ?? 0;
  }

  protected onStart(): void {
    this.loops = this.deps.pools.map((pool) => this.life.track(this.poolLoop(pool)));
  }

  /** Stops, giving running executions `graceMs` (the first call's) to finish. */
  override stop(graceMs?: number): Promise<void> {
    if (graceMs !== undefined && this.state !== "stopping") this.graceMs = graceMs;
    return super.stop();
  }

  protected async onStop(): Promise<void> {
    await this.stopIntake();
    if (this.running.size > 0 && !(await this.drain(this.graceMs)))
      this.deps.log.warn(
        { running: [...this.running.keys()] },
        "grace period over: handing running tasks back",
      );
    await this.abortAll("shutdown");
  }

  /** Stops taking new work; running executions go on. Idempotent. */
  async stopIntake(): Promise<void> {
    this.intake.abort();
    await Promise.allSettled(this.loops);
  }

  /** Waits for running executions, at most `ms`; returns whether all finished. */
  async drain(ms: number): Promise<boolean> {
    const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
    const timedOut = Symbol("timeout");
    let t: NodeJS.Timeout | undefined;
    const res = await Promise.race([
      all,
      new Promise((r) => {
        t = setTimeout(() => r(timedOut), ms);
      }),
    ]);
    clearTimeout(t);
    return res !== timedOut;
  }

  /** Aborts every running execution with `reason` and waits for them to settle. */
  async abortAll(reason: "shutdown" | "fenced"): Promise<void> {
    for (const r of this.running.values()) r.execution.stop(reason);
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  cancel(taskId: string): boolean {
    const r = this.running.get(taskId);
    r?.execution.stop("cancelled");
    return r !== undefined;
  }

  private async poolLoop(pool: string): Promise<void> {
    const { slots, log } = this.deps;
    const signal = this.intake.signal;
    // With several pools a pending pull holds a slot, so keep pulls short.
    const expires = this.deps.pools.length > 1 ? 1000 : 5000;
    let backoff = 100;
    while (!signal.aborted) {
      if (!(await slots.acquire(signal))) break;
      let handedOff = false;
      try {
        const puller = await this.deps.puller(pool);
        const msg = await puller.pull(expires, signal);
        if (msg && !signal.aborted) handedOff = await this.handle(pool, msg);
        else if (msg) msg.nak(0); // stopping: give it straight back
        backoff = 100;
      } catch (err) {
        if (signal.aborted) break;
        log.warn({ pool, err: errorMessage(err) }, "pull failed; retrying");
        await pause(backoff, signal);
        backoff = Math.min(backoff * 2, 5000);
      } finally {
        if (!handedOff) slots.release();
      }
    }
  }

  /** Returns true when an execution took the slot. */
  private async handle(pool: string, msg: Delivery): Promise<boolean> {
    if (msg.deliveryCount > 1) this.deps.observer.redelivered({ pool });
    const d = await this.deps.claimer.judge(msg, (id) => this.running.has(id));
    await settleDoorbell(msg, d.doorbell);
    if (d.kind === "skip" && d.unreadable === "doorbell") {
      this.deps.observer.unreadable({ kind: "doorbell" });
      this.deps.log.warn(
        { pool, subject: msg.subject, streamSequence: msg.streamSequence, why: d.why },
        "malformed doorbell set aside (acked)",
      );
    }
    if (d.kind === "ours") {
      this.running.get(d.taskId)?.execution.adopt(msg);
      return false;
    }
    const onState = (to: TaskState) => this.deps.observer.transition({ pool, to });
    if (d.kind === "settled") {
      this.deps.events.announce(d.record, d.notices, { onState });
      await this.deps
        .onSettled?.(d.record)
        .catch((err: unknown) =>
          this.deps.log.warn({ taskId: d.record.id, err }, "could not settle the task's dependents"),
        );
      return false;
    }
    if (d.kind !== "claimed") return false;
    const r = d.claimed.record;
    this.deps.observer.claimed({
      pool,
      latencyMs: Math.max(0, Date.now() - Date.parse(queuedSince(r))),
      takeover: d.takeoverFrom !== undefined,
    });
    // Always a `claimed` event, also when the claim went straight to `running` (the execution
    // announces `running`): watchers see the same sequence either way.
    this.deps.events.announce(r, d.notices, { onState });
    const execution = this.deps.execution(pool, d, msg);
    const done = execution
      .run()
      .catch((err) => this.deps.log.error({ err, taskId: r.id }, "execution crashed"))
      .finally(() => {
        this.running.delete(r.id);
        this.deps.slots.release();
      });
    this.running.set(r.id, { execution, done: this.life.track(done) });
    return true;
  }
}

/** When the task last became claimable: submit, or the end of its previous attempt. */
function queuedSince(r: {
  submittedAt: string;
  notBefore?: string;
  attempts: { endedAt?: string }[];
}): string {
  const prev = r.attempts.length > 1 ? r.attempts[r.attempts.length - 2]?.endedAt : undefined;
  const since = prev ?? r.submittedAt;
  return r.notBefore && r.notBefore > since ? r.notBefore : since;
}
