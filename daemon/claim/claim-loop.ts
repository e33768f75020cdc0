/**
 * The claim loop: while a slot is free, pull ONE doorbell from a pool this daemon serves,
 * let the claimer decide (claim.ts), settle the doorbell as the decision says, publish the
 * decision's state events, and run won claims as Executions. Pulling one at a time matters: a
 * prefetched doorbell would time out while the worker is busy.
 *
 * Each pool has several lanes (its share of the slots), each pulling one doorbell at a time
 * for a slot it holds: under load the round trips of one doorbell's pull and claim overlap those
 * of the others, instead of the whole daemon waiting on one doorbell at a time (issue 17). An
 * idle pool pulls on one lane only: the others park after an empty pull and wake when a doorbell
 * arrives, so an idle daemon sends no more pull requests than with a single lane.
 */
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { type Delivery, doorbellTaskId, type Puller } from "../queue/index.js";
import type { DoorbellAction, EventPublisher, TaskRecord, TaskState } from "../tasks/index.js";
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
  /**
   * Records a parked task in the index of parked tasks (queue/parked.ts); called before its
   * doorbell is acked. None: parked doorbells are just acked.
   */
  park?(pool: string, taskId: string): Promise<void>;
}

/** When a parked task's index entry cannot be written, its doorbell comes back this much later. */
const PARK_RETRY_MS = 1_000;

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
    const { pools, slots } = this.deps;
    // The slots are shared by the pools' lanes: a pending pull holds one, so each pool pulls
    // on at most its share and no pool's lanes can hold every slot while another has work.
    const lanes = Math.max(1, Math.floor(slots.total / pools.length));
    this.loops = pools.flatMap((pool) => {
      const wake = new Wake();
      return Array.from({ length: lanes }, (_, lane) => this.life.track(this.poolLoop(pool, lane, wake)));
    });
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

  /** Lane 0 always pulls; another lane parks after an empty pull until a doorbell arrives. */
  private async poolLoop(pool: string, lane: number, wake: Wake): Promise<void> {
    const { slots, log } = this.deps;
    const signal = this.intake.signal;
    // With several pools a pending pull holds a slot, so keep pulls short.
    const expires = this.deps.pools.length > 1 ? 1000 : 5000;
    let backoff = 100;
    let parked = lane > 0;
    while (!signal.aborted) {
      if (parked && !(await wake.wait(signal))) break;
      parked = false;
      if (!(await slots.acquire(signal))) break;
      let handedOff = false;
      try {
        const puller = await this.deps.puller(pool);
        const msg = await puller.pull(expires, signal);
        if (!msg) parked = lane > 0;
        // Stopping: give it straight back.
        else if (signal.aborted) msg.nak(0);
        else {
          wake.wakeAll();
          handedOff = await this.handleInTurn(pool, msg);
        }
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

  /** Doorbells being handled, by task id: two doorbells of one task are decided one after the other. */
  private readonly handling = new Map<string, Promise<boolean>>();

  /**
   * handle(), after any other lane's handling of a doorbell of the same task (a duplicate
   * doorbell): the second then sees the first's claim as ours and running here.
   */
  private async handleInTurn(pool: string, msg: Delivery): Promise<boolean> {
    const id = doorbellTaskId(msg.subject);
    const before = this.handling.get(id);
    const mine = (before ? before.then(undefined, () => false) : Promise.resolve(false)).then(() =>
      this.handle(pool, msg),
    );
    this.handling.set(id, mine);
    try {
      return await mine;
    } finally {
      if (this.handling.get(id) === mine) this.handling.delete(id);
    }
  }

  /**
   * The decision's doorbell action, once a parked task is in the index of parked tasks: a
   * parked doorbell is acked only after that, so a parked task always has a doorbell or an
   * entry. When the entry cannot be written the doorbell is given back instead.
   */
  private async parking(pool: string, d: Decision): Promise<DoorbellAction> {
    if (d.doorbell.kind !== "park" || d.kind !== "skip" || !this.deps.park) return d.doorbell;
    try {
      await this.deps.park(pool, d.taskId);
      return d.doorbell;
    } catch (err) {
      this.deps.log.warn(
        { pool, taskId: d.taskId, err: errorMessage(err) },
        "could not index a parked task; its doorbell comes back",
      );
      return { kind: "nak", delayMs: PARK_RETRY_MS };
    }
  }

  /** Returns true when an execution took the slot. */
  private async handle(pool: string, msg: Delivery): Promise<boolean> {
    if (msg.deliveryCount > 1) this.deps.observer.redelivered({ pool });
    const d = await this.deps.claimer.judge(msg, (id) => this.running.has(id));
    await settleDoorbell(msg, await this.parking(pool, d));
    if (d.kind === "skip" && d.parked)
      this.deps.log.info(
        { pool, taskId: d.taskId, why: d.why },
        "task parked: no live worker serves it (rung again once one does)",
      );
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

/** Wakes a pool's parked lanes when a doorbell arrives. */
class Wake {
  private waiters: Array<() => void> = [];

  /** Resolves true when woken, false when `signal` aborts. */
  wait(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      });
    });
  }

  wakeAll(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }
}
