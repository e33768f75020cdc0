/**
 * JetStream publishes that await their PubAck over ONE shared reply subscription (the pattern of
 * the Go client's PublishAsync). nats.js's js.publish() makes a request object per publish with
 * a timer and an Error built even on success; on the claim path, where every task costs a few
 * compare-and-set writes, that was a tenth of the daemon's CPU. Timeouts are checked by one
 * shared timer. Semantics match js.publish: a timeout means "unknown", not "failed"; a refusal
 * is nats.js's JetStreamApiError with the server's code (see js-errors.ts).
 */
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { MeshError } from "../errors.js";
import { monotonicNow } from "../util/index.js";

export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

export interface JsPublishOptions {
  /** Dedup id (`Nats-Msg-Id`). */
  msgID?: string;
  /** Compare-and-set: only if the subject's last sequence is this (`0`: no message yet). */
  expectLastSubjectSequence?: number;
  timeoutMs?: number;
}

/** What ringDoorbell and the task store need; nats.js's JetStreamClient has the same shape. */
export interface JsPublish {
  publish(subject: string, data: string | Uint8Array, opts?: { msgID?: string }): Promise<{ seq: number }>;
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  deadline: number;
}

const dec = new TextDecoder();

export class JsPublisher implements JsPublish {
  private readonly prefix = createInbox();
  private sub: Subscription | undefined;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly defaultTimeoutMs = 5000,
  ) {}

  publish(subject: string, data: string | Uint8Array, opts: JsPublishOptions = {}): Promise<PubAck> {
    if (this.nc.isClosed()) return Promise.reject(new MeshError("UNAVAILABLE", "NATS connection closed"));
    this.sub ??= this.nc.subscribe(`${this.prefix}.*`, { callback: (_err, m) => this.answer(m) });
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.expire(), 250);
      this.sweeper.unref();
    }
    const token = (this.next++).toString(36);
    let h: ReturnType<typeof headers> | undefined;
    if (opts.msgID !== undefined || opts.expectLastSubjectSequence !== undefined) {
      h = headers();
      if (opts.msgID !== undefined) h.set("Nats-Msg-Id", opts.msgID);
      if (opts.expectLastSubjectSequence !== undefined)
        h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLastSubjectSequence));
    }
    return new Promise<PubAck>((resolve, reject) => {
      this.pending.set(token, {
        resolve,
        reject,
        deadline: monotonicNow() + (opts.timeoutMs ?? this.defaultTimeoutMs),
      });
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, ...(h ? { headers: h } : {}) });
      } catch (err) {
        this.pending.delete(token);
        reject(err as Error);
      }
    });
  }

  /** Fails what is still waiting and stops the timer. Idempotent. */
  close(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const p of this.pending.values()) p.reject(new MeshError("UNAVAILABLE", "publisher closed"));
    this.pending.clear();
  }

  private answer(m: Msg): void {
    const token = m.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // timed out already
    this.pending.delete(token);
    const code = m.headers?.code ?? 0;
    if (code === 503) {
      p.reject(
        new MeshError("UNAVAILABLE", "no JetStream responders (is JetStream enabled and the stream there?)"),
      );
      return;
    }
    try {
      const r = JSON.parse(dec.decode(m.data)) as {
        stream?: string;
        seq?: number;
        duplicate?: boolean;
        error?: { code: number; err_code: number; description: string };
      };
      if (r.error) p.reject(new JetStreamApiError(r.error));
      else p.resolve({ stream: r.stream ?? "", seq: r.seq ?? 0, duplicate: r.duplicate === true });
    } catch (err) {
      p.reject(new MeshError("INTERNAL", `unreadable PubAck: ${(err as Error).message}`));
    }
  }

  private expire(): void {
    if (this.pending.size === 0 && this.sweeper) {
      clearInterval(this.sweeper); // re-armed by the next publish
      this.sweeper = undefined;
      return;
    }
    const now = monotonicNow();
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(new MeshError("UNAVAILABLE", "JetStream publish timed out; its outcome is unknown"));
      }
    }
  }
}
