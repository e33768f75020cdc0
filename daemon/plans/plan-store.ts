/**
 * Plan records in KV (bucket `mesh-plans`). A record is written with create at submit; later
 * it only grows, by compare-and-set, when a task of the plan delegates (tasks appended, none
 * changed). Readers cache it with its revision: `get` answers from the cache, `get(id, {fresh})`
 * reads the revision and reuses the cached record while it is the same.
 *
 * A fresh read of an unchanged record costs a stream-info request, not the record: the bucket's
 * mark (its last sequence and message count, from the stream's leader) is noted before each
 * read of a record, and while the bucket's mark is still that one, nothing in the bucket was
 * written, appended or purged since, so the cached record is the latest. A plan's scheduler
 * asks for it once per settled task (a 5,000-task plan's record is 80-200 KiB).
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { isMeshError, MeshError } from "../errors.js";
import { isWrongLastSequence, kvStream, kvSubject, PLANS_BUCKET, scanKv } from "../nats/index.js";
import { type PlanRecord, parsePlanRecord } from "./plan-record.js";

const enc = new TextEncoder();
const CACHE_MAX = 256;

export class PlanStore {
  private readonly cache = new Map<string, { record: PlanRecord; revision: number; mark?: string }>();

  private constructor(
    private readonly kv: KV,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
  ) {}

  /** Opens the plans bucket, creating it when it is not there. */
  static async open(js: JetStreamClient, jsm: JetStreamManager, replicas: number): Promise<PlanStore> {
    const kv = await new Kvm(js).create(PLANS_BUCKET, { history: 1, replicas });
    return new PlanStore(kv, js, jsm);
  }

  /** Creates the record; returns the one stored when a plan with this id exists already. */
  async create(p: PlanRecord): Promise<{ record: PlanRecord; created: boolean }> {
    try {
      const revision = await this.kv.create(p.id, enc.encode(JSON.stringify(p)));
      this.remember(p, revision);
      return { record: p, created: true };
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      const existing = await this.get(p.id);
      if (!existing) throw err;
      return { record: existing, created: false };
    }
  }

  /**
   * Throws DATA_LOSS when the stored record cannot be read. `fresh`: the latest revision (one
   * read), for whoever must see tasks added since (the cached record while it is the same).
   */
  async get(id: string, opts: { fresh?: boolean } = {}): Promise<PlanRecord | undefined> {
    const hit = this.cache.get(id);
    if (!opts.fresh) {
      if (hit) return hit.record;
    }
    const mark = await this.mark();
    if (hit?.mark !== undefined && hit.mark === mark) return hit.record;
    return (await this.getVersioned(id, mark))?.record;
  }

  /** The bucket's state: it changes with every write, append or purge in the bucket. */
  private async mark(): Promise<string> {
    const { state } = await this.jsm.streams.info(kvStream(PLANS_BUCKET));
    return `${state.last_seq}/${state.messages}`;
  }

  /** The latest record with its revision (for a compare-and-set with `update`). */
  async getVersioned(
    id: string,
    mark?: string,
  ): Promise<{ record: PlanRecord; revision: number } | undefined> {
    const e = await this.kv.get(id);
    if (e?.operation !== "PUT" || e.value.length === 0) return undefined;
    const hit = this.cache.get(id);
    if (hit && hit.revision === e.revision) {
      if (mark !== undefined) hit.mark = mark;
      return hit;
    }
    const r = parsePlanRecord(e.value, id);
    this.remember(r, e.revision, mark);
    return { record: r, revision: e.revision };
  }

  /** Writes `next` if the record is still at `revision`; CONFLICT when someone wrote it since. */
  async update(next: PlanRecord, revision: number): Promise<number> {
    try {
      const rev = await this.kv.update(next.id, enc.encode(JSON.stringify(next)), revision);
      this.remember(next, rev);
      return rev;
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
      throw new MeshError("CONFLICT", `plan ${next.id} changed meanwhile; read it again`, { cause: err });
    }
  }

  /** Takes back a record this daemon created for a submit that then failed. */
  async remove(id: string): Promise<void> {
    this.cache.delete(id);
    await this.jsm.streams.purge(kvStream(PLANS_BUCKET), { filter: kvSubject(PLANS_BUCKET, id) });
  }

  /** Every readable plan record (unreadable ones are skipped). */
  async list(): Promise<PlanRecord[]> {
    const entries = await scanKv({ js: this.js, jsm: this.jsm }, this.kv, PLANS_BUCKET);
    const out: PlanRecord[] = [];
    for (const e of entries) {
      if (e.value.length === 0) continue;
      try {
        out.push(parsePlanRecord(e.value, e.key));
      } catch (err) {
        if (!isMeshError(err, "DATA_LOSS")) throw err;
      }
    }
    return out;
  }

  /** `mark`: the bucket's mark taken before the record was read (none: the next fresh read reads it). */
  private remember(p: PlanRecord, revision: number, mark?: string): void {
    this.cache.delete(p.id);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(p.id, mark === undefined ? { record: p, revision } : { record: p, revision, mark });
  }
}
