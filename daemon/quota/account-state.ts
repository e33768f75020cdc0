/**
 * An account's rate-limit state as the limits side records it in `mesh-accounts` (key = the
 * account): read loosely (`state`, `rejectedUntil`), so `mesh quota` shows it whatever else the
 * record carries. No bucket, no key or an unreadable value: undefined (shown as "ok").
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { ACCOUNTS_BUCKET } from "../nats/index.js";
import type { AccountState } from "./view.js";

export function accountStateReader(
  js: JetStreamClient,
): (account: string) => Promise<AccountState | undefined> {
  let kv: Promise<KV> | undefined;
  return async (account) => {
    kv ??= new Kvm(js).open(ACCOUNTS_BUCKET);
    const bucket = await kv.catch(() => {
      kv = undefined; // not there (yet): look again next time
      return undefined;
    });
    const e = await bucket?.get(account).catch(() => null);
    if (e?.operation !== "PUT" || e.value.length === 0) return undefined;
    try {
      const v = JSON.parse(new TextDecoder().decode(e.value)) as { state?: unknown; rejectedUntil?: unknown };
      if (typeof v.state !== "string") return undefined;
      return {
        state: v.state,
        ...(typeof v.rejectedUntil === "string" ? { rejectedUntil: v.rejectedUntil } : {}),
      };
    } catch {
      return undefined;
    }
  };
}
