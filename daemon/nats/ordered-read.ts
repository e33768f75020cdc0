/**
 * One pass of an ordered consumer up to a stream sequence, as the KV readers (kv-scan.ts,
 * kv-changes.ts) make it: messages are handed to `onMessage` (the last may be past `until`)
 * until one reaches `until` or the consumer has nothing pending. Nothing may come at all (every message in the range removed
 * since), so after `idleMs` without one the server is asked whether any are left; and the pass
 * gives up after `timeoutMs`. The consumer is deleted afterwards.
 */
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { monotonicNow } from "../util/index.js";

/** How the pass ended: it reached the end, found nothing left, or ran out of time. */
export type OrderedReadEnd = "reached" | "idle" | "timeout";

export async function readOrdered(
  consumer: Consumer,
  until: number,
  onMessage: (m: JsMsg) => void,
  opts: { maxMessages: number; timeoutMs: number; idleMs: number },
): Promise<OrderedReadEnd | "closed"> {
  const messages = await consumer.consume({ max_messages: opts.maxMessages });
  let end: OrderedReadEnd | undefined;
  const close = (why: OrderedReadEnd) => {
    end ??= why;
    void messages.close();
  };
  const timer = setTimeout(() => close("timeout"), opts.timeoutMs);
  let lastAt = monotonicNow();
  const idle = setInterval(async () => {
    if (monotonicNow() - lastAt < opts.idleMs) return;
    const ci = await consumer.info().catch(() => undefined);
    if (ci?.num_pending === 0 && monotonicNow() - lastAt >= opts.idleMs) close("idle");
  }, opts.idleMs / 2);
  try {
    for await (const m of messages) {
      lastAt = monotonicNow();
      onMessage(m);
      if (m.seq >= until || m.info.pending === 0) {
        end ??= "reached";
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    clearInterval(idle);
    await messages.close();
    await consumer.delete().catch(() => undefined);
  }
  return end ?? "closed";
}
