/**
 * Publishes task events to MESH_EVENTS. Best effort: a lost event never changes a task's state
 * (the record is the truth; watchers fall back to it), so publishing never throws.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "../log.js";
import type { TaskEvent } from "./events.js";
import { taskEventSubject } from "./events.js";

export class EventPublisher {
  private pending = new Set<Promise<unknown>>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly log: Logger,
  ) {}

  publish(event: TaskEvent): void {
    const subject = `${taskEventSubject(event.taskId)}.${event.type === "state" ? "state" : "run"}`;
    const p = this.js.publish(subject, JSON.stringify(event)).catch((err: unknown) => {
      this.log.debug({ err, taskId: event.taskId }, "event not published");
    });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Waits for in-flight publishes (used at shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
