/**
 * The safety net under the doorbells: every so often, any task that is not terminal but has no
 * doorbell in the stream (lost with a single-replica server, or a crash between writing the
 * record and ringing) gets one again. A spare doorbell is harmless: the record decides.
 * The same pass deletes the records of tasks finished longer ago than the retention.
 *
 * One daemon of the mesh sweeps (`elected`: the live worker with the lowest id, as the caller
 * sees it, unless that one stops reporting finished passes). Two sweeping at once while their
 * views differ is harmless: a doorbell too many is recognised by its record, and a purge only
 * removes the revision it read.
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { isTerminal, type VersionedRecord } from "../tasks/record.js";
import type { TaskStore } from "../tasks/store.js";
import { hasDoorbell, ringDoorbell } from "./doorbell.js";

export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  /** Passes run so far (timer or sweep()). */
  passes = 0;
  /** When the last pass that could read the records finished. */
  lastPassAt: Date | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly log: Logger,
    private readonly opts: {
      intervalMs: number;
      minAgeMs: number;
      /** Finished tasks older than this are deleted (0: never). */
      retentionMs?: number;
      /** Whether this daemon is the one that sweeps, asked at every tick (default: always). */
      elected?: () => boolean;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.opts.elected?.() === false) return;
      void this.sweep();
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass; returns how many doorbells it rang. */
  sweep(): Promise<number> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<number> {
    this.passes++;
    let records: VersionedRecord[];
    try {
      records = await this.store.list();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "sweep failed: cannot list the tasks");
      return 0;
    }
    const rung = await this.visit(records, Date.now());
    this.lastPassAt = new Date();
    return rung;
  }

  private async visit(records: VersionedRecord[], now: number): Promise<number> {
    let rung = 0;
    for (const v of records) {
      const r = v.record;
      // One task's trouble does not stop the pass for the others.
      try {
        if (isTerminal(r.state)) {
          const keep = this.opts.retentionMs ?? 0;
          if (keep > 0 && r.finishedAt && now - Date.parse(r.finishedAt) > keep) {
            await this.store.purge(v);
            this.log.debug({ taskId: r.id, state: r.state }, "finished task past its retention: deleted");
          }
          continue;
        }
        if (now - Date.parse(r.updatedAt) < this.opts.minAgeMs) continue;
        if (await hasDoorbell(this.jsm, r.spec.pool, r.id)) continue;
        await ringDoorbell(this.js, r.spec.pool, r.id, `${r.id}#sweep-${r.attempt}-${now}`, v);
        this.log.warn({ taskId: r.id, state: r.state }, "task had no doorbell; rang it again");
        rung++;
      } catch (err) {
        this.log.warn({ err: errorMessage(err), taskId: r.id }, "sweep could not re-ring a task");
      }
    }
    return rung;
  }
}
