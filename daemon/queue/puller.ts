/**
 * Single-message pulls from one pool's durable consumer over ONE long-lived subscription.
 *
 * Each pull request asks the server for exactly one message (`batch: 1`), so a daemon never
 * holds a doorbell it has no free slot for. nats.js's fetch() would build a subscription per
 * pull (SUB, request, UNSUB, timers); on the claim path of a short task that was a large part
 * of the daemon's work. Every request gets its own reply subject under the shared wildcard
 * subscription, so a status (408 expired, 409 ...) settles exactly its request; a message
 * settles the oldest open request (the server serves them in order).
 *
 * A pull given up locally (aborted, or the server stayed silent past expiry + grace) may still
 * be held by the server until it expires. Such a request is kept as an orphan: the next pull()
 * adopts it instead of sending another one, and a message arriving for an orphan nobody adopted
 * is handed straight back (nak) rather than held until AckWait.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { Part } from "../../lib/index.js";
import { MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import { monotonicNow } from "../util/index.js";
import { type Delivery, NatsDelivery, parseAckSubject } from "./delivery.js";

interface Waiter {
  resolve(d: Delivery | null): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** A pull request sent to the server, answered at most once. */
interface Request {
  token: string;
  /** When the server gives up on it (sent + expires). */
  expiresAt: number;
  waiter?: Waiter;
}

export interface PullerOptions {
  /** `$JS.API`, or `$JS.<domain>.API` behind a leaf node. */
  apiPrefix: string;
  stream: string;
  consumer: string;
  log: Logger;
  /** How long past its expiry an unanswered pull is given up (default 2 s). */
  graceMs?: number;
  /** The server said the consumer is gone (409 Consumer Deleted): it must be created again. */
  onConsumerGone?(): void;
}

/** A part: start() opens the reply subscription, stop() ends every waiting pull. */
export class Puller extends Part {
  private readonly inbox = createInbox();
  private sub: Subscription | undefined;
  private readonly requests = new Map<string, Request>();
  private next = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: PullerOptions,
  ) {
    super("puller", opts.log.child({ consumer: opts.consumer }));
  }

  protected onStart(): void {
    this.subscribe();
  }

  private subscribe(): void {
    this.sub ??= this.nc.subscribe(`${this.inbox}.*`, { callback: (_err, m) => this.answer(m) });
  }

  /** Requests the server may still answer (for tests and diagnostics). */
  get outstanding(): number {
    return this.requests.size;
  }

  /** One message, or null when the pull expired, was given up, or `signal` aborted. */
  pull(expiresMs: number, signal?: AbortSignal): Promise<Delivery | null> {
    if (this.life.stopSignal.aborted || signal?.aborted) return Promise.resolve(null);
    this.subscribe();
    return new Promise<Delivery | null>((resolve, reject) => {
      const onAbort = () => giveUp();
      const settle = () => {
        clearTimeout(w.timer);
        signal?.removeEventListener("abort", onAbort);
        if (req?.waiter === w) delete req.waiter;
      };
      const w: Waiter = {
        resolve: (d) => {
          settle();
          resolve(d);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
        timer: setTimeout(() => giveUp(), expiresMs + (this.opts.graceMs ?? 2000)),
      };
      const now = monotonicNow();
      const grace = this.opts.graceMs ?? 2000;
      for (const [t, r] of this.requests)
        if (!r.waiter && r.expiresAt + grace <= now) this.requests.delete(t);
      // Adopt a request the server may still answer, else send a new one.
      let req: Request | undefined;
      for (const r of this.requests.values()) {
        if (!r.waiter && r.expiresAt > now + 100) {
          req = r;
          break;
        }
      }
      if (req) req.waiter = w;
      else {
        req = { token: (this.next++).toString(36), expiresAt: now + expiresMs, waiter: w };
        this.requests.set(req.token, req);
        const { apiPrefix, stream, consumer } = this.opts;
        try {
          this.nc.publish(
            `${apiPrefix}.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
            JSON.stringify({ batch: 1, expires: Math.round(expiresMs * 1e6) }),
            { reply: `${this.inbox}.${req.token}` },
          );
        } catch (err) {
          this.requests.delete(req.token);
          w.reject(err as Error);
          return;
        }
      }
      const held = req;
      const giveUp = () => {
        // The request stays (an orphan) until the server answers it or its expiry passes.
        if (held.waiter === w) w.resolve(null);
        if (held.expiresAt + grace <= monotonicNow()) this.requests.delete(held.token);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Ends every waiting pull with null and forgets every request: after a reconnect the server
   * may have lost them (it restarted), and any answer still coming is handed back.
   */
  abandonAll(): void {
    const reqs = [...this.requests.values()];
    this.requests.clear();
    for (const r of reqs) r.waiter?.resolve(null);
  }

  /** Stops pulling. The subscription stays (until the connection closes) so that a message
   * still on its way is handed back at once rather than left to time out. Idempotent. */
  protected onStop(): void {
    this.abandonAll();
  }

  /** stop() by its older name. */
  close(): Promise<void> {
    return this.stop();
  }

  private answer(m: Msg): void {
    if (m.reply) {
      this.delivered(m, m.reply);
      return;
    }
    // A status is addressed to its request's own reply subject.
    const token = m.subject.slice(this.inbox.length + 1);
    const req = this.requests.get(token);
    const code = m.headers?.code ?? 0;
    if (code === 100 || !req) return; // an idle heartbeat does not end the request
    this.requests.delete(token);
    const w = req.waiter;
    if (!w) return;
    const why = m.headers?.description ?? "";
    // No message, the request expired, or the server is going away or changing leader: this
    // pull ended empty, and the caller simply pulls again.
    if (code === 404 || code === 408 || (code === 409 && pullEndedBy(why) === "server")) {
      w.resolve(null);
      return;
    }
    if (code === 409 && pullEndedBy(why) === "consumer-gone") this.opts.onConsumerGone?.();
    w.reject(
      new MeshError(
        "UNAVAILABLE",
        `pull from ${this.opts.stream}/${this.opts.consumer} failed: ${code} ${why}`,
      ),
    );
  }

  /**
   * A message carries its own subject, not the request's reply subject. The server serves pull
   * requests in order, so it answers the oldest one we still count as open; it goes to that
   * request's waiter, or else to the oldest request that has one (whose own request then stays
   * open, unwaited, for a later pull to adopt).
   */
  private delivered(m: Msg, reply: string): void {
    const oldest = this.requests.values().next().value as Request | undefined;
    if (oldest) this.requests.delete(oldest.token);
    let w = oldest?.waiter;
    if (!w) {
      for (const r of this.requests.values()) {
        if (r.waiter) {
          w = r.waiter;
          delete r.waiter;
          break;
        }
      }
    }
    const info = parseAckSubject(reply);
    if (!info) {
      // A message we cannot read the delivery of: hand it back rather than leave it held.
      this.nc.publish(reply, "-NAK");
      w?.resolve(null);
      return;
    }
    const d = new NatsDelivery(this.nc, m.subject, m.data, reply, info);
    if (!w) {
      // Nobody waits for it any more (the pull was given up or intake stopped): give it back.
      this.opts.log.debug({ subject: m.subject }, "unwanted doorbell handed back");
      d.nak();
      return;
    }
    w.resolve(d);
  }
}

/**
 * Why a 409 ended a pull. The server says it only in the status's description header ("Server
 * Shutdown", "Leadership Change", "Consumer Deleted"): a pull status has no finer code than 409,
 * so this is the one place meshd reads NATS error text (nats.js's JetStreamStatus does the same).
 */
function pullEndedBy(description: string): "server" | "consumer-gone" | undefined {
  if (/shutdown|leadership/i.test(description)) return "server";
  if (/consumer deleted|consumer not found/i.test(description)) return "consumer-gone";
  return undefined;
}
