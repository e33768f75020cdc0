/**
 * Scheduling inside a plan: a waiting task is queued exactly once, when every need has
 * succeeded; a need that fails, dies or is cancelled settles its dependents by their policy;
 * `mesh retry` of a need re-opens what it had cancelled.
 *
 * Exactly once: whoever settles a need writes its own outcome first, then reads the other
 * needs. Of two daemons finishing a task's last two needs at once, at least one therefore sees
 * both succeeded, and the release is a compare-and-set on the dependent's revision, so only
 * one of them writes it (and rings the doorbell, whose message id is derived from that
 * revision: a repeat is dropped by JetStream). A daemon that dies between its success and the
 * release leaves the task waiting with all needs terminal: the sweeper's pass calls
 * `reconcile` with the records it read anyway.
 *
 * Dependents come from the plan record (read by revision, cached), never from a scan of the tasks.
 */
import { errorMessage, isMeshError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  blockByDependency,
  expectState,
  type FailedNeed,
  isTerminal,
  type Notice,
  release,
  reopen,
  TRANSITIONS,
  type TaskRecord,
  type TaskState,
  type TaskStore,
  type VersionedRecord,
} from "../tasks/index.js";
import { type PlanRecord, planDependents, planNeeds } from "./plan-record.js";
import type { PlanStore } from "./plan-store.js";

export interface PlanSchedulerDeps {
  store: TaskStore;
  plans: PlanStore;
  /** Rings the released task's doorbell (msgID `dedupKey`). */
  ring(v: VersionedRecord, dedupKey: string): Promise<void>;
  /** Publishes a written step's state events. */
  announce(written: TaskRecord, notices: readonly Notice[]): void;
  log: Logger;
  now?: () => Date;
}

export type ReconcileResult =
  | { kind: "released"; written: VersionedRecord }
  | { kind: "blocked"; written: VersionedRecord }
  | { kind: "waiting" }
  | { kind: "not-waiting" };

/** Records as the caller already read them (the sweeper's pass); a miss is read from KV. */
export type Lookup = (id: string) => TaskRecord | undefined;

const FAILED: ReadonlySet<TaskState> = new Set(["failed", "dead", "cancelled"]);
const KNOWN_MAX = 50_000;
/** Dependents settled at once after one need (a wide fan-out is thousands). */
const CONCURRENCY = 32;

export class PlanScheduler {
  /** Tasks seen succeeded: `succeeded` is final (no edge leaves it), so never read again. */
  private readonly succeeded = new Set<string>();
  /** Each plan record's graph, made once (the store caches the records themselves). */
  private readonly graphs = new WeakMap<
    PlanRecord,
    { dependents: Map<string, string[]>; needs: Map<string, string[]> }
  >();
  /**
   * Per waiting task, how many of its needs (in order) are known succeeded: final, so a wide
   * fan-in looks at each of its needs once over all of their settles, not all of them each time.
   */
  private readonly knownPrefix = new Map<string, number>();
  private readonly now: () => Date;

  constructor(private readonly d: PlanSchedulerDeps) {
    this.now = d.now ?? (() => new Date());
  }

  /** The ids of the tasks that need `r` (none when its plan record cannot be read). */
  async dependentsOf(r: TaskRecord): Promise<string[]> {
    return (await this.graphOf(r))?.dependents.get(r.id) ?? [];
  }

  /** The graph of `r`'s plan, from its record read fresh (undefined when it cannot be read). */
  private async graphOf(
    r: TaskRecord,
  ): Promise<{ dependents: Map<string, string[]>; needs: Map<string, string[]> } | undefined> {
    if (!r.spec.plan) return undefined;
    // Fresh: a task added by delegation since this daemon cached the record is a dependent too
    // (one request; the cached record and its graph while the bucket is unchanged).
    const plan = await this.d.plans.get(r.spec.plan, { fresh: true }).catch((err: unknown) => {
      this.d.log.warn({ plan: r.spec.plan, err: errorMessage(err) }, "plan record not readable");
      return undefined;
    });
    if (!plan) return undefined;
    let g = this.graphs.get(plan);
    if (!g) {
      g = { dependents: planDependents(plan), needs: planNeeds(plan) };
      this.graphs.set(plan, g);
    }
    return g;
  }

  /**
   * Whether waiting task `dep` certainly still waits: a need of it (from the plan's graph) is
   * neither succeeded nor failed, as read now. Then its record (a wide fan-in's holds thousands
   * of needs) is not read at all: whoever settles that need later looks again. False when every
   * need succeeded, one failed or has no record: the caller reads the task and decides.
   */
  private async stillWaits(
    dep: string,
    needs: readonly string[] | undefined,
    look: Lookup,
  ): Promise<boolean> {
    if (!needs) return false;
    let i = this.knownPrefix.get(dep) ?? 0;
    for (; i < needs.length; i++) {
      const n = needs[i]!;
      if (this.succeeded.has(n)) continue;
      const nr = look(n) ?? (await this.d.store.get(n))?.record;
      if (nr?.state === "succeeded") {
        this.remember(n);
        continue;
      }
      if (this.knownPrefix.size >= KNOWN_MAX) this.knownPrefix.clear();
      this.knownPrefix.set(dep, i);
      return nr !== undefined && !FAILED.has(nr.state);
    }
    this.knownPrefix.delete(dep);
    return false;
  }

  /**
   * `r` (a task of a plan) was written in a terminal state: its waiting dependents are released
   * or settled by policy, and the ones that end cancelled settle theirs in turn.
   */
  async afterSettled(r: TaskRecord): Promise<void> {
    if (!r.spec.plan || !isTerminal(r.state)) return;
    const pending: TaskRecord[] = [r];
    for (let next = pending.shift(); next; next = pending.shift()) {
      if (next.state === "succeeded") this.remember(next.id);
      const settled = next;
      const graph = await this.graphOf(settled);
      const deps = graph?.dependents.get(settled.id) ?? [];
      const look: Lookup = (id) => (id === settled.id ? settled : undefined);
      const one = async (dep: string) => {
        try {
          // Succeeded: a dependent with another need not done yet stays waiting (no read of it).
          if (settled.state === "succeeded" && (await this.stillWaits(dep, graph?.needs.get(dep), look)))
            return;
          const res = await this.reconcileId(dep, look);
          if (res.kind === "blocked" && isTerminal(res.written.record.state))
            pending.push(res.written.record);
        } catch (err) {
          // The sweeper's pass settles it later.
          this.d.log.warn({ taskId: dep, err: errorMessage(err) }, "could not settle a dependent");
        }
      };
      // CONCURRENCY in flight all the time: a wide fan-out is not released in batches that
      // each wait for their slowest.
      let cursor = 0;
      const settler = async () => {
        while (cursor < deps.length) await one(deps[cursor++]!);
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, deps.length) }, settler));
    }
  }

  /** Reads task `id` and reconciles it (see reconcile). */
  async reconcileId(id: string, lookup?: Lookup): Promise<ReconcileResult> {
    const cur = await this.d.store.get(id);
    if (!cur) return { kind: "not-waiting" };
    return this.reconcile(cur, lookup);
  }

  /**
   * A waiting task, given as read: released when every need has succeeded; cancelled (or
   * blocked, by its policy) when one failed, died or was cancelled; else left waiting. A lost
   * compare-and-set reads the task again and decides anew.
   */
  async reconcile(v: VersionedRecord, lookup?: Lookup): Promise<ReconcileResult> {
    let cur: VersionedRecord | undefined = v;
    let look = lookup;
    for (let i = 0; i < 10 && cur; i++) {
      if (cur.record.state !== "waiting") return { kind: "not-waiting" };
      const r = expectState(cur.record, "release", TRANSITIONS.release.from);
      const needs = r.spec.needs ?? [];
      const asFailed = (n: string, nr: TaskRecord | undefined): FailedNeed | undefined =>
        nr && FAILED.has(nr.state)
          ? { id: n, state: nr.state as FailedNeed["state"], reason: nr.reason }
          : undefined;
      // What the caller holds already first: a failure there decides without a read.
      let failed: FailedNeed | undefined;
      for (const n of needs) {
        failed = asFailed(n, look?.(n));
        if (failed) break;
      }
      let allSucceeded = !failed;
      // Then one by one, stopping at the first need not done: a wide fan-in reads little per settle.
      if (!failed) {
        for (const n of needs) {
          if (this.succeeded.has(n)) continue;
          const nr = look?.(n) ?? (await this.d.store.get(n))?.record;
          if (nr?.state === "succeeded") {
            this.remember(n);
            continue;
          }
          allSucceeded = false;
          failed = asFailed(n, nr);
          break;
        }
      }
      try {
        if (failed) {
          const step = blockByDependency(r, failed, this.now());
          if (!step.write) return { kind: "waiting" };
          const written = await this.d.store.update(cur, step.record);
          this.d.announce(written.record, step.notices);
          this.d.log.info(
            { taskId: r.id, dependency: failed.id, state: written.record.state },
            "dependency did not succeed: task settled by its policy",
          );
          return { kind: "blocked", written };
        }
        if (!allSucceeded) return { kind: "waiting" };
        const step = release(r, () => "succeeded");
        const written = await this.d.store.update(cur, step.record);
        this.d.announce(written.record, step.notices);
        await this.d.ring(written, `${r.id}#release-${cur.revision}`);
        this.d.log.debug({ taskId: r.id }, "every need succeeded: released");
        return { kind: "released", written };
      } catch (err) {
        if (!isMeshError(err, "CONFLICT")) throw err;
        // Someone else wrote it first (another releaser, a cancel): decide on the record as it is.
        look = undefined;
        cur = await this.d.store.get(r.id);
      }
    }
    return { kind: "not-waiting" };
  }

  /**
   * `id` was retried: the dependents it had cancelled wait again (and theirs, transitively);
   * the ones it blocked under policy `wait` are no longer blocked. Returns the re-opened ids.
   */
  async reopenDependents(id: string): Promise<string[]> {
    const first = await this.d.store.get(id);
    if (!first?.record.spec.plan) return [];
    const reopened: string[] = [];
    const pending: TaskRecord[] = [first.record];
    for (let next = pending.shift(); next; next = pending.shift()) {
      const need = next.id;
      for (const dep of await this.dependentsOf(next)) {
        let notices: readonly Notice[] = [];
        const { after, changed } = await this.d.store.mutate(dep, (r) => {
          if (
            !(r.state === "cancelled" && r.cancelCause?.dependency === need) &&
            r.blockedBy?.dependency !== need
          )
            return undefined;
          if (r.state !== "cancelled" && r.state !== "waiting") return undefined;
          const step = reopen(expectState(r, "reopen", TRANSITIONS.reopen.from), need);
          notices = step.notices;
          return step.write ? step.record : undefined;
        });
        if (!changed) continue;
        this.d.announce(after.record, notices);
        reopened.push(dep);
        pending.push(after.record);
      }
    }
    // A re-opened task may have another need that failed meanwhile: settle it by that.
    for (const dep of reopened) await this.reconcileId(dep).catch(() => undefined);
    return reopened;
  }

  private remember(id: string): void {
    if (this.succeeded.size >= KNOWN_MAX) this.succeeded.clear();
    this.succeeded.add(id);
  }
}
