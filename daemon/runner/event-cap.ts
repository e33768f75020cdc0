/**
 * Bounds the agent events one attempt puts on the bus. Claude Code's output is the agent's to
 * shape, and a long or looping session could otherwise write without end into MESH_EVENTS and
 * evict every other task's events. Past the cap one `events_truncated` marker goes out and the
 * rest are only counted; the session itself goes on. The first `result` always goes out: it
 * carries the session's totals (tokens, cost) that metrics and watchers rely on.
 */
export interface EventCapLimits {
  maxEvents: number;
  maxBytes: number;
}

export type EventVerdict = "send" | "truncate" | "drop";

export class EventCap {
  private events = 0;
  private bytes = 0;
  private truncated = false;
  private resultSent = false;
  /** Events not sent because of the cap (the marker not counted). */
  dropped = 0;

  constructor(private readonly limits: EventCapLimits) {}

  /** What to do with an event of `kind` whose data serialises to `size` bytes. */
  admit(kind: string, size: number): EventVerdict {
    if (kind === "result" && !this.resultSent) {
      this.resultSent = true;
      return "send";
    }
    if (
      !this.truncated &&
      this.events + 1 <= this.limits.maxEvents &&
      this.bytes + size <= this.limits.maxBytes
    ) {
      this.events++;
      this.bytes += size;
      return "send";
    }
    this.dropped++;
    if (this.truncated) return "drop";
    this.truncated = true;
    return "truncate";
  }

  /** The marker's data: which limit was reached. */
  marker(): Record<string, unknown> {
    return {
      afterEvents: this.events,
      afterBytes: this.bytes,
      maxEvents: this.limits.maxEvents,
      maxBytes: this.limits.maxBytes,
      note: "this attempt's further agent events are not published (limits.agentEventsPerAttempt, limits.agentEventBytesPerAttempt); the session continues",
    };
  }
}
