/**
 * The quota gate an attempt passes before its runner starts (issue 15 §2). Two steps:
 * - `admit` (the claimer, before it claims a queued task): a read-only look at the caps. A task
 *   whose slots are all held is not claimed: its doorbell goes back with a delay, the task stays
 *   queued and held by nobody, so nothing is lost and nothing spins.
 * - `take` (the execution, once the claim is written): the compare-and-set that decides. Losing
 *   that race (another daemon took the last slot between the look and the take) hands the
 *   attempt back, interrupted and not counted, after the same delay.
 * Slots are taken in key order and all or nothing (a refused one gives back those taken), so no
 * two attempts each hold part of what the other needs.
 */
import { errorMessage, MeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { TaskSpec } from "../tasks/index.js";
import { type AttemptNeeds, effectiveCaps, needsOf, type QuotaDecl, slotKey, startsKey } from "./caps.js";
import type { Liveness, SlotStore } from "./slot-store.js";

export interface QuotaGateDeps {
  store: SlotStore;
  /** This daemon's Claude account (undefined: it runs no claude tasks). */
  account: string | undefined;
  /** This daemon's declared caps. */
  own: QuotaDecl;
  /** The caps the other live daemons declare (presence). */
  others: () => QuotaDecl[];
  live: Liveness;
  log: Logger;
  /** How long a task that found no slot waits before it is looked at again (plus jitter). */
  retryMs?: number;
  random?: () => number;
  now?: () => number;
}

export interface Wait {
  why: string;
  delayMs: number;
}

export type Taken =
  | { ok: true; held: HeldSlots }
  | { ok: false; why: string; delayMs: number; permanent?: boolean };

export interface HeldSlots {
  /** Keys held; empty when the attempt needs no slot. */
  readonly keys: readonly string[];
  release(): Promise<void>;
}

const NOTHING: HeldSlots = { keys: [], release: async () => undefined };

export class QuotaGate {
  private readonly retryMs: number;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly d: QuotaGateDeps) {
    this.retryMs = d.retryMs ?? 1000;
    this.random = d.random ?? Math.random;
    this.now = d.now ?? Date.now;
  }

  /** The caps in force now (own and the other live daemons'). */
  caps() {
    return effectiveCaps([this.d.own, ...this.d.others()]);
  }

  needs(spec: Pick<TaskSpec, "runner" | "pool" | "uses">): AttemptNeeds {
    return needsOf(spec, this.d.account, this.caps());
  }

  private delay(): number {
    return this.retryMs + Math.floor(this.random() * this.retryMs);
  }

  /**
   * Refuses at submit a use of a resource no live daemon declares, or above its capacity
   * (INVALID_ARGUMENT naming the field and the fix); nothing is submitted then.
   */
  checkUses(spec: Pick<TaskSpec, "uses">, field = "uses"): void {
    const caps = this.caps();
    for (const [name, units] of Object.entries(spec.uses ?? {})) {
      const cap = caps.slots.get(slotKey("resource", name));
      if (!cap) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          `${field}.${name}: no live daemon declares resource "${name}"; declare it in meshd's config (quota.resources.${name}.capacity) or fix the name`,
          { field: `${field}.${name}` },
        );
      }
      if (units > cap.capacity) {
        throw new MeshError(
          "INVALID_ARGUMENT",
          `${field}.${name}: ${units} units, but resource "${name}" has a capacity of ${cap.capacity}; use at most ${cap.capacity}`,
          { field: `${field}.${name}` },
        );
      }
    }
  }

  /** Why a queued task should not be claimed now, or undefined (see module comment). */
  async admit(spec: TaskSpec): Promise<Wait | undefined> {
    const n = this.needs(spec);
    if (n.impossible) return undefined; // the claim's take fails it with the reason
    if (n.undeclared) return { why: n.undeclared, delayMs: this.delay() };
    try {
      for (const need of n.needs) {
        const holders = await this.d.store.live(need.key, this.d.live);
        const used = holders.reduce((s, h) => s + h.units, 0);
        if (used + need.units > need.capacity)
          return { why: full(need.kind, need.name, used, need.capacity), delayMs: this.delay() };
      }
      if (n.starts) {
        const { doc } = await this.d.store.readStarts(startsKey(n.starts.account));
        const t = this.now();
        const recent = doc.starts.filter((s) => s.at > t - 60_000);
        if (recent.length >= n.starts.perMinute) {
          return {
            why: `account ${n.starts.account}: ${recent.length} sessions started in the last minute (startsPerMinute ${n.starts.perMinute})`,
            delayMs: Math.max(100, recent[0]!.at + 60_000 - t) + Math.floor(this.random() * this.retryMs),
          };
        }
      }
    } catch (err) {
      // Only a first look: the take after the claim decides.
      this.d.log.debug({ err: errorMessage(err) }, "quota look failed");
    }
    return undefined;
  }

  /** Takes every slot an attempt needs, all or nothing. */
  async take(r: {
    id: string;
    attempt: number;
    spec: TaskSpec;
    workerId: string;
    host: string;
  }): Promise<Taken> {
    const n = this.needs(r.spec);
    if (n.impossible) return { ok: false, why: n.impossible, delayMs: 0, permanent: true };
    if (n.undeclared) return { ok: false, why: n.undeclared, delayMs: this.delay() };
    if (n.needs.length === 0 && !n.starts) return { ok: true, held: NOTHING };
    const me = { taskId: r.id, attempt: r.attempt, workerId: r.workerId, host: r.host };
    const taken: string[] = [];
    const giveBack = () =>
      Promise.all(taken.map((k) => this.d.store.release(k, me).catch(() => undefined))).then(() => undefined);
    try {
      for (const need of n.needs) {
        const got = await this.d.store.take(need, me, this.d.live);
        if (!got.ok) {
          await giveBack();
          return {
            ok: false,
            why: full(need.kind, need.name, got.used, need.capacity),
            delayMs: this.delay(),
          };
        }
        taken.push(need.key);
      }
      if (n.starts) {
        const s = await this.d.store.start(startsKey(n.starts.account), n.starts.perMinute, {
          taskId: r.id,
          attempt: r.attempt,
        });
        if (!s.ok) {
          await giveBack();
          return {
            ok: false,
            why: `account ${n.starts.account}: ${s.count} sessions started in the last minute (startsPerMinute ${n.starts.perMinute})`,
            delayMs: Math.max(100, s.retryAt - this.now()) + Math.floor(this.random() * this.retryMs),
          };
        }
      }
    } catch (err) {
      await giveBack();
      return { ok: false, why: `quota: ${errorMessage(err)}`, delayMs: this.delay() };
    }
    const keys = [...taken];
    let released: Promise<void> | undefined;
    return {
      ok: true,
      held: {
        keys,
        release: () => {
          // A release that cannot reach NATS leaves a dead holder: the next taker drops it.
          released ??= Promise.all(
            keys.map((k) =>
              this.d.store
                .release(k, me)
                .catch((err) =>
                  this.d.log.debug({ err: errorMessage(err), key: k, taskId: r.id }, "quota release failed"),
                ),
            ),
          ).then(() => undefined);
          return released;
        },
      },
    };
  }
}

function full(kind: string, name: string, used: number, capacity: number): string {
  return `${kind} ${name}: ${used} of ${capacity} in use`;
}
