/**
 * What `mesh quota` shows: every cap in force with its live holders, and every account a live
 * worker runs on, with its start rate and its rate-limit state (read from `mesh-accounts`,
 * which the limits side writes; "ok" when it holds nothing for the account).
 */
import { type CapKind, parseSlotKey, startsKey } from "./caps.js";
import type { QuotaGate } from "./gate.js";
import type { Holder, Liveness, SlotStore } from "./slot-store.js";
import { START_WINDOW_MS } from "./slot-store.js";

export interface QuotaEntry {
  kind: CapKind;
  name: string;
  /** 0: no cap declared. */
  capacity: number;
  inUse: number;
  holders: Holder[];
  startsPerMinute?: number;
  startedLastMinute?: number;
  workers?: string[];
  state?: string;
  rejectedUntil?: string;
}

export interface AccountStateView {
  state: string;
  rejectedUntil?: string;
}

export interface QuotaViewDeps {
  gate: QuotaGate;
  store: SlotStore;
  live: Liveness;
  /** Live workers: id and the account their claude attempts run on. */
  workers: readonly { workerId: string; account?: string }[];
  accountState?: (account: string) => Promise<AccountStateView | undefined>;
  now?: () => number;
}

const ORDER: Record<CapKind, number> = { account: 0, pool: 1, resource: 2 };

export async function quotaView(d: QuotaViewDeps): Promise<QuotaEntry[]> {
  const caps = d.gate.caps();
  const now = (d.now ?? Date.now)();
  const out = new Map<string, QuotaEntry>();
  for (const [key, c] of caps.slots) {
    const holders = await d.store.live(key, d.live);
    out.set(key, {
      kind: c.kind,
      name: c.name,
      capacity: c.capacity,
      inUse: holders.reduce((n, h) => n + h.units, 0),
      holders,
    });
  }
  // Slots still recorded for a cap nobody declares any more: shown, so none goes unseen.
  for (const key of await d.store.keys()) {
    const k = parseSlotKey(key);
    if (!k || out.has(key)) continue;
    const holders = await d.store.live(key, d.live);
    if (holders.length === 0) continue;
    out.set(key, { ...k, capacity: 0, inUse: holders.reduce((n, h) => n + h.units, 0), holders });
  }
  const accounts = new Set<string>([...caps.startsPerMinute.keys()]);
  for (const w of d.workers) if (w.account) accounts.add(w.account);
  for (const e of out.values()) if (e.kind === "account") accounts.add(e.name);
  for (const name of accounts) {
    const key = `acct.${name}`;
    const e = out.get(key) ?? { kind: "account" as const, name, capacity: 0, inUse: 0, holders: [] };
    const { doc } = await d.store.readStarts(startsKey(name));
    const perMinute = caps.startsPerMinute.get(name);
    e.startedLastMinute = doc.starts.filter((s) => s.at > now - START_WINDOW_MS).length;
    if (perMinute !== undefined) e.startsPerMinute = perMinute;
    e.workers = d.workers.filter((w) => w.account === name).map((w) => w.workerId);
    const st = await d.accountState?.(name).catch(() => undefined);
    e.state = st?.state ?? "ok";
    if (st?.rejectedUntil) e.rejectedUntil = st.rejectedUntil;
    out.set(key, e);
  }
  return [...out.values()].sort((a, b) => ORDER[a.kind] - ORDER[b.kind] || a.name.localeCompare(b.name));
}
