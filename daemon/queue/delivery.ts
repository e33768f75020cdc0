/**
 * One delivered doorbell and its acknowledgements (the subset of JetStream's message API the
 * claim path uses). The reply subject carries the delivery info and is where acks go.
 */
import type { NatsConnection } from "@nats-io/transport-node";

export interface Delivery {
  readonly subject: string;
  readonly data: Uint8Array;
  /** 1 on the first delivery, more on redeliveries. */
  readonly deliveryCount: number;
  readonly streamSequence: number;
  json<T>(): T;
  /** Done with it: the work-queue stream removes it. */
  ack(): void;
  /** Give it back, delivered again after `delayMs` (at once without). */
  nak(delayMs?: number): void;
  /** Still on it: restart the AckWait timer. */
  working(): void;
  /** Ack and wait for the server's confirmation (which, on 2.9, proves nothing about ownership). */
  ackAck(timeoutMs?: number): Promise<boolean>;
}

const dec = new TextDecoder();

/**
 * Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` and the form with
 * domain and account hash (`$JS.ACK.<domain>.<hash>.<stream>...`). Undefined when not an ack subject.
 */
export function parseAckSubject(
  reply: string,
): { deliveryCount: number; streamSequence: number } | undefined {
  const t = reply.split(".");
  if (t[0] !== "$JS" || t[1] !== "ACK") return undefined;
  const base = t.length === 9 ? 2 : t.length >= 11 ? 4 : -1;
  if (base < 0) return undefined;
  const deliveryCount = Number(t[base + 2]);
  const streamSequence = Number(t[base + 3]);
  if (!Number.isFinite(deliveryCount) || !Number.isFinite(streamSequence)) return undefined;
  return { deliveryCount, streamSequence };
}

export class NatsDelivery implements Delivery {
  readonly deliveryCount: number;
  readonly streamSequence: number;
  private settled = false;

  constructor(
    private readonly nc: NatsConnection,
    readonly subject: string,
    readonly data: Uint8Array,
    private readonly reply: string,
    info: { deliveryCount: number; streamSequence: number },
  ) {
    this.deliveryCount = info.deliveryCount;
    this.streamSequence = info.streamSequence;
  }

  json<T>(): T {
    return JSON.parse(dec.decode(this.data)) as T;
  }

  ack(): void {
    this.settle("+ACK");
  }

  nak(delayMs?: number): void {
    this.settle(
      delayMs && delayMs > 0 ? `-NAK ${JSON.stringify({ delay: Math.round(delayMs * 1e6) })}` : "-NAK",
    );
  }

  working(): void {
    if (!this.settled) this.nc.publish(this.reply, "+WPI");
  }

  async ackAck(timeoutMs = 5000): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    await this.nc.request(this.reply, "+ACK", { timeout: timeoutMs });
    return true;
  }

  /** Only the first ack or nak counts, as with nats.js. */
  private settle(body: string): void {
    if (this.settled) return;
    this.settled = true;
    this.nc.publish(this.reply, body);
  }
}
