/**
 * An account's limit state for `mesh quota`: what the limits side keeps in `mesh-accounts`
 * (account-state.ts), read once per call. No bucket, no key, an unreadable value or a state
 * whose reset passed: undefined (shown as "ok").
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { ACCOUNTS_BUCKET } from "../nats/index.js";
import { parseAccountState, stateAt } from "./account-state.js";
import type { AccountStateView } from "./view.js";

export function accountStateReader(
  js: JetStreamClient,
): (account: string) => Promise<AccountStateView | undefined> {
  let kv: Promise<KV> | undefined;
  return async (account) => {
    kv ??= new Kvm(js).open(ACCOUNTS_BUCKET);
    const bucket = await kv.catch(() => {
      kv = undefined; // not there (yet): look again next time
      return undefined;
    });
    const e = await bucket?.get(account).catch(() => null);
    if (e?.operation !== "PUT" || e.value.length === 0) return undefined;
    let s: ReturnType<typeof parseAccountState>;
    try {
      s = parseAccountState(JSON.parse(new TextDecoder().decode(e.value)));
    } catch {
      return undefined;
    }
    const name = stateAt(s, Date.now());
    if (!s || name === "open") return undefined;
    return { state: name, rejectedUntil: s.until };
  };
}
