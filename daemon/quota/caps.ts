/**
 * Caps: what the operator declares (each daemon's `quota` config, published in its presence)
 * and what one attempt needs of them. Where daemons declare different values for one cap, the
 * smallest among the live daemons applies: a cap only ever tightens by adding a daemon, and
 * one daemon's stale config cannot raise it for the others.
 */

/** One daemon's `quota` config, as it goes into presence. */
export interface QuotaDecl {
  accounts?: Record<string, { maxSessions?: number; startsPerMinute?: number }>;
  pools?: Record<string, { maxSessions: number }>;
  resources?: Record<string, { capacity: number }>;
}

export type CapKind = "account" | "pool" | "resource";

const PREFIX: Record<CapKind, string> = { account: "acct", pool: "pool", resource: "res" };

/** The slot record of a cap in the `mesh-slots` bucket. */
export const slotKey = (kind: CapKind, name: string): string => `${PREFIX[kind]}.${name}`;
/** The recent-starts record of an account (its start-rate cap). */
export const startsKey = (account: string): string => `starts.${account}`;

export function parseSlotKey(key: string): { kind: CapKind; name: string } | undefined {
  const dot = key.indexOf(".");
  const p = key.slice(0, dot);
  const kind = (Object.keys(PREFIX) as CapKind[]).find((k) => PREFIX[k] === p);
  return kind && dot > 0 ? { kind, name: key.slice(dot + 1) } : undefined;
}

/** The caps in force: per slot key its capacity, per account its starts per minute. */
export interface EffectiveCaps {
  slots: Map<string, { kind: CapKind; name: string; capacity: number }>;
  startsPerMinute: Map<string, number>;
}

/** The smallest declared value of each cap across `decls`. */
export function effectiveCaps(decls: readonly QuotaDecl[]): EffectiveCaps {
  const slots: EffectiveCaps["slots"] = new Map();
  const startsPerMinute = new Map<string, number>();
  const add = (kind: CapKind, name: string, capacity: number | undefined) => {
    if (capacity === undefined) return;
    const key = slotKey(kind, name);
    const cur = slots.get(key);
    if (!cur || capacity < cur.capacity) slots.set(key, { kind, name, capacity });
  };
  for (const d of decls) {
    for (const [name, a] of Object.entries(d.accounts ?? {})) {
      add("account", name, a.maxSessions);
      if (a.startsPerMinute !== undefined)
        startsPerMinute.set(name, Math.min(a.startsPerMinute, startsPerMinute.get(name) ?? Infinity));
    }
    for (const [name, p] of Object.entries(d.pools ?? {})) add("pool", name, p.maxSessions);
    for (const [name, r] of Object.entries(d.resources ?? {})) add("resource", name, r.capacity);
  }
  return { slots, startsPerMinute };
}

/** One cap an attempt takes units of. */
export interface Need {
  key: string;
  kind: CapKind;
  name: string;
  units: number;
  capacity: number;
}

export interface AttemptNeeds {
  /** In key order: every taker takes in the same order. */
  needs: Need[];
  /** The account's start-rate cap, when it has one and the attempt is a session on it. */
  starts?: { account: string; perMinute: number };
  /** A use no live daemon declares: the attempt waits for one that does. */
  undeclared?: string;
  /** A use above its resource's capacity: it can never run. */
  impossible?: string;
}

/**
 * What an attempt of a task needs: a slot of its pool's cap (any runner), of its account's
 * (claude tasks, on the account of the daemon running it), and `uses` units of each resource.
 */
export function needsOf(
  spec: { runner: string; pool: string; uses?: Record<string, number> | undefined },
  account: string | undefined,
  caps: EffectiveCaps,
): AttemptNeeds {
  const out: AttemptNeeds = { needs: [] };
  const slot = (kind: CapKind, name: string, units: number): void => {
    const cap = caps.slots.get(slotKey(kind, name));
    if (cap) out.needs.push({ key: slotKey(kind, name), kind, name, units, capacity: cap.capacity });
    else if (kind === "resource")
      out.undeclared ??= `resource ${name}: no live daemon declares it (quota.resources)`;
  };
  slot("pool", spec.pool, 1);
  const session = spec.runner === "claude" && account !== undefined;
  if (session) slot("account", account, 1);
  for (const [name, units] of Object.entries(spec.uses ?? {})) {
    slot("resource", name, units);
    const cap = caps.slots.get(slotKey("resource", name));
    if (cap && units > cap.capacity)
      out.impossible ??= `uses ${name}: ${units}, but its capacity is ${cap.capacity}`;
  }
  out.needs.sort((a, b) => a.key.localeCompare(b.key));
  const perMinute = session ? caps.startsPerMinute.get(account) : undefined;
  if (session && perMinute !== undefined) out.starts = { account, perMinute };
  return out;
}
