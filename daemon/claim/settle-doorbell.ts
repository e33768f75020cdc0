/** Does with a delivered doorbell what a transition or the claimer's decision says. */
import type { Delivery } from "../queue/index.js";
import { type DoorbellAction, nakDelayMs } from "../tasks/index.js";

/**
 * `ring` and `leave` do nothing here (a new doorbell is the caller's; a left one stays with
 * the attempt). A confirmed ack waits for the server's answer and ignores its failure.
 */
export async function settleDoorbell(msg: Delivery, action: DoorbellAction): Promise<void> {
  switch (action.kind) {
    case "ack":
    case "park":
      if (action.kind === "ack" && action.confirm) await msg.ackAck().catch(() => undefined);
      else msg.ack();
      return;
    case "nak":
      msg.nak(nakDelayMs(action, Date.now()));
      return;
    case "leave":
    case "ring":
      return;
  }
}
