/**
 * A cached view of the live workers, refreshed in the background. The claim loop asks it
 * whether some other worker can serve a task it cannot, to decide how soon to hand it back.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Part } from "../../lib/index.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { listWorkers } from "./presence.js";
import { type WorkerInfo, workerServes } from "./worker-info.js";

export class WorkerDirectory extends Part {
  private workers: WorkerInfo[] = [];
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private lastRefresh = 0;

  constructor(
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
    private readonly opts: { refreshMs: number; staleMs: number; log: Logger },
  ) {
    super("directory", opts.log);
  }

  protected async onStart(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs);
    this.timer.unref();
  }

  /** Stops refreshing; a refresh in flight is waited for. */
  protected onStop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.life.track(
      (async () => {
        try {
          this.workers = await listWorkers(this.kv, this.jsm, this.opts.staleMs);
          this.lastRefresh = Date.now();
        } catch (err) {
          this.opts.log.debug({ err: errorMessage(err) }, "worker directory refresh failed");
        } finally {
          this.refreshing = undefined;
        }
      })(),
    );
    return this.refreshing;
  }

  /**
   * Whether `self` should do a mesh-wide chore such as sweeping (as last seen): it comes first
   * among the live workers that are not draining (lowest id), or every worker before it has
   * failed to report the chore done (`doneAt`) within `staleMs` since it started, so a first
   * worker that is alive but cannot do it does not stop the mesh from having it done.
   */
  isChoreHolder(self: string, doneAt: (w: WorkerInfo) => string | undefined, staleMs: number): boolean {
    const now = Date.now();
    return this.workers
      .filter((w) => w.workerId < self && !w.draining)
      .every((w) => {
        const last = Date.parse(doneAt(w) ?? w.startedAt);
        return Number.isFinite(last) && now - last > staleMs;
      });
  }

  /** The live workers, as last seen. */
  list(): readonly WorkerInfo[] {
    return this.workers;
  }

  /** Whether worker `id` is live (as last seen). */
  isLive(id: string): boolean {
    return this.workers.some((w) => w.workerId === id);
  }

  /** Whether a live worker other than `self` serves this kind of task (as last seen). */
  servedByAnother(self: string, pool: string, labels: Record<string, string>, runner: string): boolean {
    const found = this.workers.some(
      (w) => w.workerId !== self && !w.draining && workerServes(w, pool, labels, runner),
    );
    // A worker that just joined may not be cached yet: look again soon (at most every 250 ms).
    if (!found && Date.now() - this.lastRefresh > 250) void this.refresh();
    return found;
  }
}
