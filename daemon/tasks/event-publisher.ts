/**
 * Publishes task events to MESH_EVENTS. Best effort: a lost event never changes a task's state
 * (the record is the truth; watchers fall back to it), so publishing never throws.
 *
 * Events go out as plain NATS publishes that the stream captures, not as JetStream publishes
 * awaiting an ack: the ack would cost a request per event on the claim path and buys nothing for
 * a best-effort log. Order is kept (one connection). Events published while the connection is
 * down are lost (nats.js drops its outgoing buffer when it reconnects); watchers end from the
 * record.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { taskEventSubject } from "../nats/index.js";
import type { TaskEvent } from "./events.js";
import { type Notice, stateEvents } from "./machine/step.js";
import type { TaskRecord, TaskState } from "./record.js";

export interface AnnounceOptions {
  /** Send at once (see publishNow), not at the end of this turn. */
  now?: boolean;
  /** Told of each state published (the metrics count transitions). */
  onState?: (to: TaskState) => void;
}

export class EventPublisher {
  private queued: TaskEvent[] = [];
  private scheduled: NodeJS.Immediate | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {}

  /**
   * Queues the event; the queue goes out at the end of this turn of the event loop, so events
   * of several tasks share one socket write.
   */
  publish(event: TaskEvent): void {
    this.queued.push(event);
    this.scheduled ??= setImmediate(() => this.send());
  }

  /**
   * Sends the event now, after any queued ones: for an event that must reach the stream before
   * what the caller publishes next on this connection (a task's `queued` before its doorbell, so
   * no worker's `claimed` can be stored ahead of it).
   */
  publishNow(event: TaskEvent): void {
    this.queued.push(event);
    this.send();
  }

  /** Publishes the state events a transition's `notices` name for `written`, the record as written. */
  announce(written: TaskRecord, notices: readonly Notice[], opts: AnnounceOptions = {}): void {
    for (const event of stateEvents(written, notices)) {
      opts.onState?.(event.state);
      if (opts.now) this.publishNow(event);
      else this.publish(event);
    }
  }

  private send(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.queued;
    this.queued = [];
    for (const event of batch) {
      const subject = `${taskEventSubject(event.taskId)}.${event.type === "state" ? "state" : "run"}`;
      try {
        this.nc.publish(subject, JSON.stringify(event));
      } catch (err) {
        this.log.debug({ err, taskId: event.taskId }, "event not published");
      }
    }
  }

  /** Sends what is queued or buffered to the server (used at shutdown). */
  async flush(): Promise<void> {
    this.send();
    if (this.nc.isClosed()) return;
    await this.nc.flush().catch((err: unknown) => this.log.debug({ err }, "event flush failed"));
  }
}
