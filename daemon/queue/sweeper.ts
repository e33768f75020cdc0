/**
 * The safety net under the doorbells: every so often, any task that is not terminal but has no
 * doorbell in the stream (lost with a single-replica server, or a crash between writing the
 * record and ringing) gets one again. A spare doorbell is harmless: the record decides.
 * The same pass deletes the records of tasks finished longer ago than the retention, and
 * cancels a queued task that has a cancel pending (one that raced a requeue), and releases or
 * settles a plan's waiting task whose needs are all done (see plans/scheduler.ts).
 *
 * A task no live worker serves is parked: claimers ack its doorbell so that it holds no
 * delivery slot, and the sweeper does not ring it while nobody serves it. When a worker joins
 * (`watchMs`), the sweeper passes once more, one watch period later (so that every claimer's
 * view of the workers has caught up), and rings what the newcomers serve and the workers live
 * before them did not (everything else waits for the regular pass).
 *
 * The pass keeps the index of parked tasks (parked.ts) in step: it removes the entry of a task
 * it rang or found with a doorbell, and of one no longer queued (claimed, finished, deleted),
 * and gives one to a queued task nobody serves that has none. It reads the index before the
 * records, and removes only what the index held then.
 *
 * A pass reads the whole bucket only every `fullEvery` passes (and first). The others read what
 * can need it: the tasks that were not finished at the last pass, the ones written since (the
 * bucket's messages after the sequence the last pass began at, see kv-changes.ts) and those in
 * the index, each by key. A task finished and unchanged since needs nothing but its deletion
 * past the retention, which the full passes do (so it can come up to `fullEvery` intervals late).
 * An idle mesh of 100,000 finished tasks then costs a pass two stream-info requests.
 *
 * One daemon of the mesh sweeps (`elected`: the live worker with the lowest id, as the caller
 * sees it, unless that one stops reporting finished passes). Two sweeping at once while their
 * views differ is harmless: a doorbell too many is recognised by its record, and a purge only
 * removes the revision it read.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { Part } from "../../lib/index.js";
import { errorMessage, isMeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PlanScheduler } from "../plans/index.js";
import { type WorkerInfo, workerServes } from "../registry/index.js";
import {
  applyCancel,
  type From,
  inState,
  isTerminal,
  type Notice,
  type TaskRecord,
  type TaskSpec,
  type TaskStore,
  TRANSITIONS,
  type VersionedRecord,
} from "../tasks/index.js";
import { hasDoorbell, ringDoorbell } from "./doorbell.js";
import { markParked, type ParkedIndex, readParked, unmarkParked } from "./parked.js";

export type ServingWorker = Pick<WorkerInfo, "workerId" | "pools" | "labels" | "runners" | "draining">;

export interface SweeperOptions {
  intervalMs: number;
  minAgeMs: number;
  /** Finished tasks older than this are deleted (0: never). */
  retentionMs?: number;
  /** Whether this daemon is the one that sweeps, asked at every tick (default: always). */
  elected?: () => boolean;
  /**
   * The live workers, read afresh by every pass: a task none of them serves stays parked (not
   * rung). Without it every task is rung; when it fails, so is every task.
   */
  liveWorkers?: () => Promise<ServingWorker[]>;
  /**
   * Every this many passes reads the whole bucket (the first does too); the rest read only the
   * unfinished tasks and what changed since the last pass (default 10; 1: every pass reads all).
   */
  fullEvery?: number;
  /** How often to look for workers that joined (0 or unset: never). */
  watchMs?: number;
  /**
   * The pass finished this task (a queued task with a cancel pending): `written` is the record
   * as written, `notices` the state events its transition names (see tasks/machine).
   */
  onSettled?: (written: TaskRecord, notices: readonly Notice[]) => void;
  /**
   * Waiting tasks of plans: each pass releases (or settles by policy) any whose needs are all
   * done, from the records it read anyway (a daemon died between a need's success and the
   * release). None: waiting tasks are left alone.
   */
  plans?: Pick<PlanScheduler, "reconcile" | "afterSettled">;
}

export interface SweepResult {
  rung: number;
  parked: number;
  cancelled: number;
  /** Waiting tasks released or settled by a dependency's failure. */
  released?: number;
  /** Finished tasks' records deleted, past the retention. */
  purged?: number;
  /** Records the pass read, and whether it read the whole bucket to get them. */
  read?: number;
  full?: boolean;
}

/** What a pass read: the records, the keys that were not readable records, and the sequence it read at. */
interface PassRead {
  records: VersionedRecord[];
  unreadable: Set<string>;
  seq: number;
  full: boolean;
  /** Written since the last pass, but read older than that write (a replica behind): read again next time. */
  unsure?: string[];
}

export class Sweeper extends Part {
  private timer: NodeJS.Timeout | undefined;
  private watcher: NodeJS.Timeout | undefined;
  private running: Promise<SweepResult> | undefined;
  /** A "joined" pass asked for while one ran: the workers that were live before the join. */
  private again: ServingWorker[] | undefined;
  /** The live workers that are not draining, at the last look, by id. */
  private known = new Map<string, ServingWorker>();
  /** Set when workers joined: the ones live before and still live (what served before). */
  private joinedPending: ServingWorker[] | undefined;
  /** Passes run so far (timer or sweep()). */
  passes = 0;
  /** When the last pass that could read the records finished. */
  lastPassAt: Date | undefined;
  /** The last finished pass's figures. */
  last: SweepResult = { rung: 0, parked: 0, cancelled: 0 };
  /** The tasks not finished as of `seenSeq` (the bucket's sequence the last pass began at). */
  private open: Set<string> | undefined;
  private seenSeq = 0;

  constructor(
    private readonly store: TaskStore,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly log: Logger,
    private readonly opts: SweeperOptions,
  ) {
    super("sweeper", log);
  }

  protected onStart(): void {
    this.timer = setInterval(() => {
      if (this.opts.elected?.() === false) return;
      void this.sweep();
    }, this.opts.intervalMs);
    this.timer.unref();
    const watchMs = this.opts.watchMs ?? 0;
    if (watchMs > 0 && this.opts.liveWorkers) {
      this.watcher = setInterval(() => void this.watch(), watchMs);
      this.watcher.unref();
    }
  }

  /** Stops the timers; a pass in progress is waited for (tracked). */
  protected onStop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.watcher) clearInterval(this.watcher);
    this.timer = undefined;
    this.watcher = undefined;
  }

  /** One pass; returns how many doorbells it rang. */
  async sweep(): Promise<number> {
    return (await this.pass()).rung;
  }

  /**
   * One pass (or the one running). `joinedAfter`: a pass for workers that joined, which rings
   * only what they serve and `joinedAfter` (the workers live before them) did not; asked while
   * another pass runs, it follows that one.
   */
  pass(joinedAfter?: ServingWorker[]): Promise<SweepResult> {
    if (this.running) {
      if (joinedAfter) this.again = this.again ? common(this.again, joinedAfter) : joinedAfter;
      return this.running;
    }
    this.running = this.life.track(
      this.run(joinedAfter).finally(() => {
        this.running = undefined;
        const next = this.again;
        this.again = undefined;
        if (next && !this.life.stopSignal.aborted) void this.pass(next);
      }),
    );
    return this.running;
  }

  /** Notices workers that joined (or stopped draining) since the last look. */
  private async watch(): Promise<void> {
    if (this.opts.elected?.() === false || !this.opts.liveWorkers) return;
    const before = this.joinedPending;
    if (before) {
      // One watch period after the change: every claimer's directory has seen the new worker.
      this.joinedPending = undefined;
      void this.pass(before);
      return;
    }
    try {
      const now = new Map(
        (await this.opts.liveWorkers()).filter((w) => !w.draining).map((w) => [w.workerId, w] as const),
      );
      const added = [...now.keys()].some((id) => !this.known.has(id));
      // The base is who was live at both looks: a worker that left (or restarted under a new
      // id) is not in it, so what only it served counts as newly served.
      if (added) this.joinedPending = [...this.known.values()].filter((w) => now.has(w.workerId));
      this.known = now;
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, "sweeper could not read the live workers");
    }
  }

  private async run(joinedAfter: ServingWorker[] | undefined): Promise<SweepResult> {
    this.passes++;
    // Read before the records: an entry written after this read is never removed by this pass.
    const index = await readParked(this.jsm).catch((err: unknown) => {
      this.log.debug({ err: errorMessage(err) }, "sweeper could not read the index of parked tasks");
      return undefined;
    });
    let read: PassRead;
    try {
      read = await this.read(index);
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "sweep failed: cannot list the tasks");
      return { rung: 0, parked: 0, cancelled: 0 };
    }
    const { records, unreadable } = read;
    let served: ((spec: TaskSpec) => boolean) | undefined;
    if (this.opts.liveWorkers) {
      try {
        const live = await this.opts.liveWorkers();
        const serving = live.filter((w) => !w.draining);
        served = (s) => serving.some((w) => workerServes(w, s.pool, s.labels, s.runner));
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, "sweep cannot read the live workers: ringing every task");
      }
    }
    // After a join: only what the newcomers serve and the workers live before them did not.
    const newlyServed =
      joinedAfter && served
        ? (s: TaskSpec) => served(s) && !joinedAfter.some((w) => workerServes(w, s.pool, s.labels, s.runner))
        : undefined;
    const res = await this.visit(
      records,
      Date.now(),
      served,
      joinedAfter ? (newlyServed ?? (() => false)) : undefined,
      index,
    );
    if (index) await this.pruneIndex(index, records, unreadable);
    this.open = new Set(records.filter((v) => !isTerminal(v.record.state)).map((v) => v.record.id));
    for (const id of read.unsure ?? []) this.open.add(id);
    this.seenSeq = read.seq;
    res.read = records.length;
    res.full = read.full;
    this.last = res;
    this.lastPassAt = new Date();
    if (res.rung > 0 || res.cancelled > 0 || (res.released ?? 0) > 0 || (res.purged ?? 0) > 0)
      this.log.info(
        { joined: joinedAfter !== undefined, ...res },
        "sweep rang doorbells, cancelled tasks or deleted finished ones",
      );
    return res;
  }

  /**
   * The records this pass looks at: only the unfinished ones of the last pass, those written
   * since and those in the index, read by key, unless this is a full pass (the first, every
   * `fullEvery`th, or when the changes cannot be read or are most of the bucket).
   */
  private async read(index: ParkedIndex | undefined): Promise<PassRead> {
    const every = this.opts.fullEvery ?? 10;
    if (this.open && every > 1 && (this.passes - 1) % every !== 0) {
      try {
        const changes = await this.store.changedSince(this.seenSeq);
        if (changes) {
          const ids = new Set([...this.open, ...changes.ids.keys(), ...(index ? index.pools.keys() : [])]);
          if (ids.size <= 100 || ids.size * 4 < changes.records) {
            const got = await this.store.getMany([...ids]);
            const unreadable = new Set(got.unreadable.map((u) => u.key));
            // A read by key may be answered by a replica that is behind (direct get): a record
            // older than the write the changes showed is looked at again by the next pass.
            const revision = new Map(got.records.map((v) => [v.record.id, v.revision] as const));
            const unsure = [...changes.ids]
              .filter(([id, c]) => c.put && (revision.get(id) ?? 0) < c.seq)
              .map(([id]) => id);
            return { records: got.records, unreadable, seq: changes.lastSeq, full: false, unsure };
          }
        }
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, "sweep could not read what changed: reading every task");
      }
    }
    // The sequence first: what is written while the pass reads shows up as a change next time.
    const seq = await this.store.lastSeq();
    const scan = await this.store.scan();
    return { records: scan.records, unreadable: new Set(scan.unreadable.map((u) => u.key)), seq, full: true };
  }

  private async visit(
    records: VersionedRecord[],
    now: number,
    served: ((spec: TaskSpec) => boolean) | undefined,
    /** A pass after a join: only these tasks, however young. */
    newlyServed: ((spec: TaskSpec) => boolean) | undefined,
    /** The index of parked tasks, read before the records (undefined: it could not be read). */
    index: ParkedIndex | undefined,
  ): Promise<SweepResult> {
    const res: SweepResult = { rung: 0, parked: 0, cancelled: 0 };
    let byId: Map<string, TaskRecord> | undefined;
    for (const v of records) {
      const r = v.record;
      // One task's trouble does not stop the pass for the others.
      try {
        if (r.state === "waiting") {
          // No doorbell while waiting: released (or settled) here when its needs are done.
          if (!this.opts.plans) continue;
          byId ??= new Map(records.map((x) => [x.record.id, x.record]));
          const lookup = byId;
          const out = await this.opts.plans.reconcile(v, (id) => lookup.get(id));
          if (out.kind === "released" || out.kind === "blocked") {
            res.released = (res.released ?? 0) + 1;
            this.log.info({ taskId: r.id, result: out.kind }, "sweep settled a waiting task of a plan");
            if (out.kind === "blocked") await this.opts.plans.afterSettled(out.written.record);
          }
          continue;
        }
        if (isTerminal(r.state)) {
          const keep = this.opts.retentionMs ?? 0;
          // A finished record without its finishedAt (written by hand, or by an old version) goes
          // by its last change instead: nothing finished stays forever.
          const ended = Date.parse(r.finishedAt ?? r.updatedAt);
          if (keep > 0 && Number.isFinite(ended) && now - ended > keep) {
            await this.store.purge(v);
            res.purged = (res.purged ?? 0) + 1;
            this.log.debug({ taskId: r.id, state: r.state }, "finished task past its retention: deleted");
          }
          continue;
        }
        if (inState(r, TRANSITIONS.applyCancel.from) && r.cancelRequested) {
          if (await this.cancelQueued({ record: r, revision: v.revision })) res.cancelled++;
          continue;
        }
        if (newlyServed) {
          // Parked tasks are rung as soon as a new worker serves them, however young.
          if (!newlyServed(r.spec)) continue;
        } else if (now - Date.parse(r.updatedAt) < this.opts.minAgeMs) {
          continue; // a submit or requeue rings its own doorbell just after writing the record
        }
        // A dead owner's task with a cancel pending needs a doorbell: any worker can settle it.
        if (served && !r.cancelRequested && !served(r.spec)) {
          res.parked++;
          // Parked before the index existed, or its entry lost in a race: listed from now on.
          if (index && r.state === "queued" && !index.pools.has(r.id))
            await markParked(this.js, r.spec.pool, r.id);
          continue;
        }
        if (!(await hasDoorbell(this.jsm, r.spec.pool, r.id))) {
          await ringDoorbell(this.js, r.spec.pool, r.id, `${r.id}#sweep-${r.attempt}-${now}`, v);
          this.log.debug({ taskId: r.id, state: r.state }, "task had no doorbell; rang it again");
          res.rung++;
        }
        // It has a doorbell now: no longer parked (after the ring, so it is never in neither).
        const pool = index?.pools.get(r.id);
        if (index && pool !== undefined) {
          await unmarkParked(this.jsm, pool, r.id, index.lastSeq);
          index.pools.delete(r.id); // done: not pruned again
        }
      } catch (err) {
        this.log.warn({ err: errorMessage(err), taskId: r.id }, "sweep could not re-ring a task");
      }
    }
    return res;
  }

  /**
   * Removes the index entries of tasks whose record this pass read as not queued, or did not
   * find (deleted), as the index held them when the pass read it: a claimer that parks one of
   * them again since wrote a newer entry, which stays.
   */
  private async pruneIndex(index: ParkedIndex, records: VersionedRecord[], unreadable: Set<string>) {
    const states = new Map(records.map((v) => [v.record.id, v.record.state] as const));
    for (const [id, pool] of index.pools) {
      const state = states.get(id);
      if (state === "queued" || (state === undefined && unreadable.has(id))) continue;
      try {
        await unmarkParked(this.jsm, pool, id, index.lastSeq);
      } catch (err) {
        this.log.debug({ err: errorMessage(err), taskId: id }, "sweep could not unindex a parked task");
      }
    }
  }

  private async cancelQueued(v: { record: From<"applyCancel">; revision: number }): Promise<boolean> {
    const step = applyCancel(v.record, new Date());
    try {
      const written = await this.store.update(v, step.record);
      this.log.info({ taskId: v.record.id }, "queued task with a cancel pending: cancelled");
      this.opts.onSettled?.(written.record, step.notices);
      return true;
    } catch (err) {
      // Changed since the read: whoever changed it saw the cancel (or the next pass will).
      if (isMeshError(err, "CONFLICT")) return false;
      throw err;
    }
  }
}

/** The workers in both lists (by id). */
function common(a: ServingWorker[], b: ServingWorker[]): ServingWorker[] {
  const ids = new Set(b.map((w) => w.workerId));
  return a.filter((w) => ids.has(w.workerId));
}
