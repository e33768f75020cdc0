/**
 * This daemon's live view of every account's limit state (KV bucket `mesh-accounts`, watched:
 * a pause another daemon records reaches this one within a watch delivery, far inside 2 s),
 * the gate the claimer asks before starting a Claude session, and the one writer of a limit
 * this daemon's sessions met (compare-and-set; see nextAccountState for who wins). Each pause
 * ends for this daemon at `until` plus its own jitter, drawn once per recorded state, so the
 * daemons of a mesh do not all start again in the same instant. Every change is announced on
 * `mesh.events.account.<name>`.
 */

import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { ACCOUNTS_BUCKET, accountEventSubject } from "../nats/index.js";
import {
  type AccountLimit,
  type AccountState,
  type AccountStateName,
  isActive,
  jitterCap,
  nextAccountState,
  parseAccountState,
  type ReportPolicy,
  stateAt,
} from "./account-state.js";

export interface AccountBookOptions extends ReportPolicy {
  workerId: string;
  log: Logger;
  /** Each daemon resumes starts up to this long after a reset (uniformly drawn). */
  jitterMs: number;
  replicas?: number;
  random?: () => number;
  now?: () => number;
  /** Told of every state this daemon learns (metrics). */
  onState?: (account: string, state: AccountState | undefined) => void;
}

/** An account event on the bus: the state recorded (or `open` when it was removed). */
export interface AccountEvent {
  type: "account";
  account: string;
  state: AccountStateName;
  at: string;
  record?: AccountState;
}

interface Known {
  state: AccountState;
  revision: number;
  /** This daemon's jitter for this state. */
  jitterMs: number;
}

export async function openAccountsBucket(js: JetStreamClient, replicas = 1): Promise<KV> {
  return new Kvm(js).create(ACCOUNTS_BUCKET, { history: 1, replicas });
}

/** Every account's recorded state (active or passed), for `mesh quota` and tools. */
export async function readAccountStates(kv: KV): Promise<AccountState[]> {
  const out: AccountState[] = [];
  const keys = await kv.keys();
  for await (const key of keys) {
    const e = await kv.get(key);
    if (e?.operation !== "PUT") continue;
    const s = parseAccountState(safeJson(e.string()));
    if (s) out.push(s);
  }
  return out.sort((a, b) => a.account.localeCompare(b.account));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export class AccountBook {
  private readonly known = new Map<string, Known>();
  private readonly now: () => number;
  private readonly random: () => number;
  private watching: { stop(): void } | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  private constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly opts: AccountBookOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
  }

  static async open(js: JetStreamClient, nc: NatsConnection, opts: AccountBookOptions): Promise<AccountBook> {
    const kv = await openAccountsBucket(js, opts.replicas ?? 1);
    const book = new AccountBook(kv, nc, opts);
    await book.startWatch();
    return book;
  }

  get bucket(): KV {
    return this.kv;
  }

  private async startWatch(): Promise<void> {
    const iter = await this.kv.watch({ key: ">" });
    let initialDone!: () => void;
    const initial = new Promise<void>((resolve) => {
      initialDone = resolve;
    });
    // The watch first delivers every key's current value; then changes as they happen.
    const timer = setTimeout(initialDone, 2_000);
    void (async () => {
      for await (const e of iter) {
        this.learn(e);
        if (e.delta === 0) initialDone();
      }
    })().catch((err: unknown) => this.opts.log.warn({ err: String(err) }, "account watch ended"));
    this.watching = { stop: () => iter.stop() };
    const status = await this.kv.status();
    if (status.values === 0) initialDone();
    await initial;
    clearTimeout(timer);
  }

  private learn(e: KvWatchEntry): void {
    const account = e.key;
    if (e.operation !== "PUT") {
      this.known.delete(account);
      this.opts.onState?.(account, undefined);
      return;
    }
    const s = parseAccountState(safeJson(e.string()));
    if (!s) return;
    const prev = this.known.get(account);
    if (prev && prev.revision >= e.revision) return;
    const jitterMs =
      prev && prev.state.until === s.until
        ? prev.jitterMs
        : Math.floor(this.random() * jitterCap(s, this.opts.jitterMs));
    this.known.set(account, { state: s, revision: e.revision, jitterMs });
    this.opts.log.info(
      { account, state: s.state, until: s.until, by: s.by, window: s.window },
      "account limit state",
    );
    this.opts.onState?.(account, s);
    this.whenOver(account, s);
  }

  /** At the state's end: told again (it reads `open` then); its writer announces the reopening. */
  private whenOver(account: string, s: AccountState): void {
    clearTimeout(this.timers.get(account));
    const left = Date.parse(s.until) - this.now();
    if (left <= 0) return;
    const t = setTimeout(() => {
      this.timers.delete(account);
      if (this.known.get(account)?.state !== s) return;
      this.opts.onState?.(account, s);
      if (s.by === this.opts.workerId) this.publish(account, s);
    }, left + 1);
    t.unref();
    this.timers.set(account, t);
  }

  /** The account's state (undefined: never limited, or removed). */
  state(account: string): AccountState | undefined {
    return this.known.get(account)?.state;
  }

  states(): AccountState[] {
    return [...this.known.values()].map((k) => k.state);
  }

  stateName(account: string): AccountStateName {
    return stateAt(this.state(account), this.now());
  }

  /** How long this daemon still holds back new sessions of `account` (0: start now). */
  pausedMs(account: string): number {
    const k = this.known.get(account);
    if (!k) return 0;
    const left = Date.parse(k.state.until) + k.jitterMs - this.now();
    return Math.max(left, 0);
  }

  /**
   * Records a limit a session of `account` met; returns the state written, or undefined when the
   * recorded one already covers it. Compare-and-set: a concurrent writer makes this re-read.
   */
  async report(account: string, limit: AccountLimit): Promise<AccountState | undefined> {
    for (let i = 0; i < 10; i++) {
      const e = await this.kv.get(account);
      const cur = e && e.operation === "PUT" ? parseAccountState(safeJson(e.string())) : undefined;
      const next = nextAccountState(cur, account, limit, this.opts, this.opts.workerId, this.now());
      if (!next) return undefined;
      try {
        const data = JSON.stringify(next);
        if (e) await this.kv.update(account, data, e.revision);
        else await this.kv.create(account, data);
      } catch (err) {
        this.opts.log.debug({ err: String(err), account }, "account state write lost a race; re-reading");
        continue;
      }
      this.publish(account, next);
      return next;
    }
    return undefined;
  }

  private publish(account: string, s: AccountState): void {
    const event: AccountEvent = {
      type: "account",
      account,
      state: isActive(s, this.now()) ? s.state : "open",
      at: new Date(this.now()).toISOString(),
      record: s,
    };
    try {
      this.nc.publish(accountEventSubject(account), JSON.stringify(event));
    } catch (err) {
      this.opts.log.debug({ err: String(err) }, "could not publish the account event");
    }
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.watching?.stop();
    this.watching = undefined;
  }
}
