/**
 * Single-message pulls from one pool's durable consumer over ONE long-lived inbox subscription.
 *
 * Each pull() asks the server for exactly one message (`batch: 1`), so a daemon still never
 * holds a doorbell it has no free slot for. nats.js's fetch() would build a subscription per
 * pull (SUB, request, UNSUB, timers); on the claim path of a short task that was a large part
 * of the daemon's work. Pull requests are served in order, and each ends with exactly one
 * answer on the inbox: a message, or a status (408 expired, 409 ...). So every answer settles
 * the oldest waiting pull. A pull the server never answers (it restarted) is given up locally;
 * a message that arrives when nobody waits any more is handed straight back (nak).
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { type Delivery, NatsDelivery, parseAckSubject } from "./delivery.js";

interface Waiter {
  resolve(d: Delivery | null): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface PullerOptions {
  /** `$JS.API`, or `$JS.<domain>.API` behind a leaf node. */
  apiPrefix: string;
  stream: string;
  consumer: string;
  log: Logger;
  /** How long past its expiry an unanswered pull is given up (default 2 s). */
  graceMs?: number;
}

export class Puller {
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;
  private readonly waiters: Waiter[] = [];
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: PullerOptions,
  ) {}

  /** One message, or null when the pull expired, was given up, or `signal` aborted. */
  pull(expiresMs: number, signal?: AbortSignal): Promise<Delivery | null> {
    if (this.closed || signal?.aborted) return Promise.resolve(null);
    this.sub ??= this.nc.subscribe(this.inbox, { callback: (_err, m) => this.answer(m) });
    return new Promise<Delivery | null>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => this.giveUp(w), expiresMs + (this.opts.graceMs ?? 2000)),
      };
      const onAbort = () => this.giveUp(w);
      signal?.addEventListener("abort", onAbort, { once: true });
      w.resolve = (d) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(d);
      };
      w.reject = (err) => {
        signal?.removeEventListener("abort", onAbort);
        reject(err);
      };
      this.waiters.push(w);
      const { apiPrefix, stream, consumer } = this.opts;
      try {
        this.nc.publish(
          `${apiPrefix}.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
          JSON.stringify({ batch: 1, expires: Math.round(expiresMs * 1e6) }),
          { reply: this.inbox },
        );
      } catch (err) {
        this.drop(w);
        reject(err as Error);
      }
    });
  }

  /** Ends every waiting pull with null, e.g. after a reconnect lost the server's pull requests. */
  abandonAll(): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
  }

  /** Stops pulling. The inbox stays subscribed (until the connection closes) so that a message
   * still on its way is handed back at once rather than left to time out. Idempotent. */
  close(): void {
    this.closed = true;
    this.abandonAll();
  }

  private answer(m: Msg): void {
    const info = m.reply ? parseAckSubject(m.reply) : undefined;
    if (info && m.reply) {
      const d = new NatsDelivery(this.nc, m.subject, m.data, m.reply, info);
      const w = this.waiters.shift();
      if (!w) {
        // Nobody waits for it any more (the pull was given up or intake stopped): give it back.
        this.opts.log.debug({ subject: m.subject }, "unwanted doorbell handed back");
        d.nak();
        return;
      }
      clearTimeout(w.timer);
      w.resolve(d);
      return;
    }
    const code = m.headers?.code ?? 0;
    if (code === 100) return; // idle heartbeat (not requested, but harmless)
    const w = this.waiters.shift();
    if (!w) return;
    clearTimeout(w.timer);
    const why = m.headers?.description ?? "";
    // No message, the request expired, or the server is going away or changing leader: this
    // pull ended empty, and the caller simply pulls again.
    if (code === 404 || code === 408 || (code === 409 && /shutdown|leadership/i.test(why))) w.resolve(null);
    else {
      w.reject(
        new MeshError(
          "UNAVAILABLE",
          `pull from ${this.opts.stream}/${this.opts.consumer} failed: ${code} ${why}`,
        ),
      );
    }
  }

  private giveUp(w: Waiter): void {
    if (this.drop(w)) w.resolve(null);
  }

  private drop(w: Waiter): boolean {
    const i = this.waiters.indexOf(w);
    if (i < 0) return false;
    this.waiters.splice(i, 1);
    clearTimeout(w.timer);
    return true;
  }
}
