/**
 * Leased slots in the `mesh-slots` bucket: one record per cap holding its holders, changed only
 * by compare-and-set, so two takers never both get the last unit. A holder is one attempt of one
 * task (task id, attempt, worker). Its lease is the task's: a holder whose task record no longer
 * shows that attempt held by that worker (settled, taken over after its lease expired, gone) is
 * dead, and every taker drops it before counting. So a slot needs no renewal of its own beyond
 * the attempt's lease heartbeat, and no crash leaks one: its holder's task is taken over (the
 * takeover rule, a lease of silence) and from then on the slot is free.
 */
import type { KV } from "@nats-io/kv";
import { MeshError } from "../errors.js";
import { isWrongLastSequence } from "../nats/index.js";
import type { Need } from "./caps.js";

export interface Holder {
  taskId: string;
  attempt: number;
  workerId: string;
  host: string;
  units: number;
  since: string;
}

export interface SlotDoc {
  v: 1;
  holders: Holder[];
}

export interface StartsDoc {
  v: 1;
  /** Starts within the last minute, oldest first (ms since the epoch, the starter's clock). */
  starts: { at: number; taskId: string; attempt: number }[];
}

/** Whether a holder's attempt is still the one holding its task (see module comment). */
export type Liveness = (h: Pick<Holder, "taskId" | "attempt" | "workerId">) => Promise<boolean>;

export type TakeResult = { ok: true } | { ok: false; used: number; holders: Holder[] };

const enc = new TextEncoder();
const dec = new TextDecoder();
const TRIES = 50;
export const START_WINDOW_MS = 60_000;

interface Versioned<T> {
  doc: T;
  revision: number | undefined;
}

export class SlotStore {
  constructor(
    private readonly kv: KV,
    private readonly now: () => number = Date.now,
  ) {}

  async read(key: string): Promise<Versioned<SlotDoc>> {
    const e = await this.kv.get(key);
    if (!e) return { doc: { v: 1, holders: [] }, revision: undefined };
    if (e.operation !== "PUT" || e.value.length === 0)
      return { doc: { v: 1, holders: [] }, revision: e.revision };
    return { doc: parseSlotDoc(dec.decode(e.value)), revision: e.revision };
  }

  /** The holders of `key` still alive. */
  async live(key: string, live: Liveness): Promise<Holder[]> {
    return (await this.prune((await this.read(key)).doc.holders, live)).kept;
  }

  /**
   * Takes `need.units` of its cap for `me`, unless the live holders leave too little. Any entry
   * of the same task (an earlier attempt's, or this one's from a try whose answer was lost) is
   * replaced.
   */
  async take(need: Need, me: Omit<Holder, "units" | "since">, live: Liveness): Promise<TakeResult> {
    for (let i = 0; i < TRIES; i++) {
      const cur = await this.read(need.key);
      const others = cur.doc.holders.filter((h) => h.taskId !== me.taskId);
      const { kept } = await this.prune(others, live);
      const used = kept.reduce((n, h) => n + h.units, 0);
      if (used + need.units > need.capacity) return { ok: false, used, holders: kept };
      const mine: Holder = { ...me, units: need.units, since: new Date(this.now()).toISOString() };
      if (await this.write(need.key, { v: 1, holders: [...kept, mine] }, cur.revision)) return { ok: true };
    }
    throw new MeshError("UNAVAILABLE", `quota slot ${need.key}: too much contention; try again`);
  }

  /** Returns the slot of attempt `attempt` of `taskId` on `workerId` (nothing if it holds none). */
  async release(key: string, h: Pick<Holder, "taskId" | "attempt" | "workerId">): Promise<void> {
    for (let i = 0; i < TRIES; i++) {
      const cur = await this.read(key);
      const rest = cur.doc.holders.filter(
        (x) => !(x.taskId === h.taskId && x.attempt === h.attempt && x.workerId === h.workerId),
      );
      if (rest.length === cur.doc.holders.length) return;
      if (await this.write(key, { v: 1, holders: rest }, cur.revision)) return;
    }
    throw new MeshError("UNAVAILABLE", `quota slot ${key}: too much contention releasing it`);
  }

  /**
   * Counts a start against an account's start-rate cap; when the last minute is full, says when
   * the oldest start leaves the window.
   */
  async start(
    key: string,
    perMinute: number,
    who: { taskId: string; attempt: number },
  ): Promise<{ ok: true } | { ok: false; retryAt: number; count: number }> {
    for (let i = 0; i < TRIES; i++) {
      const cur = await this.readStarts(key);
      const t = this.now();
      const recent = cur.doc.starts.filter(
        (s) => s.at > t - START_WINDOW_MS && !(s.taskId === who.taskId && s.attempt === who.attempt),
      );
      if (recent.length >= perMinute)
        return { ok: false, retryAt: recent[0]!.at + START_WINDOW_MS, count: recent.length };
      const doc: StartsDoc = { v: 1, starts: [...recent, { at: t, ...who }] };
      if (await this.write(key, doc, cur.revision)) return { ok: true };
    }
    throw new MeshError("UNAVAILABLE", `quota ${key}: too much contention; try again`);
  }

  async readStarts(key: string): Promise<Versioned<StartsDoc>> {
    const e = await this.kv.get(key);
    if (e?.operation !== "PUT" || e.value.length === 0)
      return { doc: { v: 1, starts: [] }, revision: e?.revision };
    return { doc: parseStartsDoc(dec.decode(e.value)), revision: e.revision };
  }

  /** Every record's key (slots and starts). */
  async keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys()) out.push(k);
    return out.sort();
  }

  private async prune(holders: Holder[], live: Liveness): Promise<{ kept: Holder[] }> {
    const alive = await Promise.all(holders.map((h) => live(h)));
    return { kept: holders.filter((_, i) => alive[i]) };
  }

  /** Compare-and-set at `revision` (undefined: the key must not exist). False when another writer won. */
  private async write(key: string, doc: unknown, revision: number | undefined): Promise<boolean> {
    try {
      const data = enc.encode(JSON.stringify(doc));
      if (revision === undefined) await this.kv.create(key, data);
      else await this.kv.update(key, data, revision);
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }
}

/** A malformed record counts as no holders would be unsafe: it is refused (DATA_LOSS). */
function parseSlotDoc(text: string): SlotDoc {
  try {
    const d = JSON.parse(text) as SlotDoc;
    if (d?.v === 1 && Array.isArray(d.holders)) {
      const ok = d.holders.every(
        (h) =>
          typeof h?.taskId === "string" &&
          Number.isSafeInteger(h.attempt) &&
          typeof h.workerId === "string" &&
          Number.isSafeInteger(h.units) &&
          h.units > 0,
      );
      if (ok) return d;
    }
  } catch {
    // below
  }
  throw new MeshError("DATA_LOSS", "a quota slot record in mesh-slots is malformed");
}

function parseStartsDoc(text: string): StartsDoc {
  try {
    const d = JSON.parse(text) as StartsDoc;
    if (d?.v === 1 && Array.isArray(d.starts) && d.starts.every((s) => Number.isFinite(s?.at))) return d;
  } catch {
    // below
  }
  throw new MeshError("DATA_LOSS", "a quota starts record in mesh-slots is malformed");
}
