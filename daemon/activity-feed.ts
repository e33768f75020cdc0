/**
 * What the status model needs beyond the record, kept by every daemon for the whole mesh: each
 * live task's agent activity (folded from MESH_EVENTS, whoever ran it) and when this daemon first
 * saw each record revision (the lease's silence on the reader's own clock). A remote task's events
 * arrive on the same stream as a local one's, so both read the same.
 *
 * Best effort like the events themselves: a lost event leaves the status at "working" until the
 * next one; the record (state, lease, presence) is never overridden by it.
 *
 * Only runner and agent events are read (`.run`), never state events: the fold takes nothing from
 * a state change (the status reads the state from the record), and every daemon reading every
 * task's three or four state events cost each daemon, and the server delivering them, work that
 * grew with the number of daemons on the claim path (issue 17). An activity with nothing in
 * flight and nothing denied says nothing either, so it is not kept: what is remembered is only
 * the tasks whose agents wait on a tool or had one denied.
 */
import { DeliverPolicy, type JetStreamClient } from "@nats-io/jetstream";
import { type AgentActivity, foldActivity } from "./api/index.js";
import { errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { EVENTS_STREAM, RUN_EVENTS_FILTER } from "./nats/index.js";
import type { TaskEvent } from "./tasks/index.js";
import { monotonicNow, pause } from "./util/index.js";

/** How far back a daemon that starts reads agent events (tasks started before it). */
const REPLAY_MS = 30 * 60_000;
/** Bounds on what is remembered: the oldest beyond this are dropped. */
const MAX_TASKS = 20_000;

export class ActivityFeed {
  private readonly activity = new Map<string, AgentActivity>();
  private readonly seen = new Map<string, { revision: number; at: number }>();
  private readonly stop = new AbortController();
  private done: Promise<void> | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly log: Logger,
    private readonly retryMs = 1000,
  ) {}

  start(): void {
    this.done ??= this.run();
  }

  /** Stops reading; does not wait longer than `graceMs` for a consumer NATS no longer answers. */
  async close(graceMs = 2000): Promise<void> {
    this.stop.abort();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise((r) => (t = setTimeout(r, graceMs)))]);
    clearTimeout(t);
  }

  /** The task's folded agent activity, if any was heard. */
  of(taskId: string): AgentActivity | undefined {
    return this.activity.get(taskId);
  }

  /** How long ago this daemon first saw the task at `revision` (ms on its monotonic clock; 0: now). */
  revisionSeenFor(taskId: string, revision: number): number {
    const now = monotonicNow();
    const s = this.seen.get(taskId);
    if (s && s.revision === revision) return Math.round(now - s.at);
    this.seen.set(taskId, { revision, at: now });
    bound(this.seen);
    return 0;
  }

  /** Folds one event (exposed for tests and for events heard elsewhere); state events change nothing. */
  note(e: TaskEvent): void {
    if (e.type === "state") return;
    const next = foldActivity(this.activity.get(e.taskId), e);
    // Nothing in flight and nothing denied: the same status as no activity at all.
    if (!next.denied && Object.keys(next.inFlight).length === 0) {
      this.activity.delete(e.taskId);
      return;
    }
    // Re-inserted: the map's order is the order of the latest events, the oldest dropped first.
    this.activity.delete(e.taskId);
    this.activity.set(e.taskId, next);
    bound(this.activity);
  }

  private async run(): Promise<void> {
    let lastSeq = 0;
    const signal = this.stop.signal;
    while (!signal.aborted) {
      try {
        const c = await this.js.consumers.get(EVENTS_STREAM, {
          filter_subjects: RUN_EVENTS_FILTER,
          ...(lastSeq > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }
            : {
                deliver_policy: DeliverPolicy.StartTime,
                opt_start_time: new Date(Date.now() - REPLAY_MS).toISOString(),
              }),
        });
        const msgs = await c.consume();
        const onAbort = () => void msgs.close();
        signal.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const m of msgs) {
            lastSeq = m.seq;
            try {
              this.note(m.json<TaskEvent>());
            } catch {
              // not an event: skip it
            }
          }
        } finally {
          signal.removeEventListener("abort", onAbort);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.log.debug({ err: errorMessage(err) }, "activity feed: events consumer failed; reopening");
      }
      try {
        await pause(this.retryMs, signal);
      } catch {
        return;
      }
    }
  }
}

function bound<V>(m: Map<string, V>): void {
  while (m.size > MAX_TASKS) {
    const first = m.keys().next();
    if (first.done) return;
    m.delete(first.value);
  }
}
