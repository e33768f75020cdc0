/**
 * Task records in KV. Every write is compare-and-set on the revision read; a lost race surfaces
 * as MeshError CONFLICT so callers decide: re-read and retry (API calls) or stop (fenced owner).
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { isMeshError, MeshError } from "../errors.js";
import {
  isStoreFull,
  isWrongLastSequence,
  type JsPublisher,
  kvChangedKeys,
  kvLastSeq,
  kvSubject,
  readKvTail,
  scanKv,
  TASKS_BUCKET,
  TASKS_BUCKET_STREAM,
} from "../nats/index.js";
import { assertTransition } from "./machine/states.js";
import {
  boundRecord,
  parseTaskRecord,
  type TaskRecord,
  type UnreadableRecord,
  type VersionedRecord,
} from "./record.js";

const enc = new TextEncoder();

export interface TaskStoreOptions {
  /** A record that cannot be read, reported once per key and revision (log it, count it). */
  onUnreadable?(u: UnreadableRecord): void;
}

/** The NATS side the store works on (the queue room's Topology is one). */
export interface TaskBucket {
  /** The task records bucket. */
  tasks: KV;
  js: JetStreamClient;
  jsm: JetStreamManager;
  publisher: JsPublisher;
  /** Where compare-and-set writes go, `<prefix>.<task id>` (domain-aware, as the KV client does). */
  tasksPutPrefix: string;
}

export class TaskStore {
  private readonly kv: KV;
  private readonly jsm: JetStreamManager;
  private readonly js: JetStreamClient;
  private readonly publisher: JsPublisher;
  private readonly putPrefix: string;
  private readonly now: () => Date;
  private readonly opts: TaskStoreOptions;
  /** `key@revision` of the unreadable records already reported. */
  private readonly reported = new Set<string>();

  /**
   * Reads and creates go through the KV client; compare-and-set writes go through the
   * topology's JsPublisher (lighter than kv.update; see js-publisher.ts) to
   * `<tasksPutPrefix>.<id>`, the domain-aware subject the KV client would use.
   */
  constructor(topo: TaskBucket, now: () => Date = () => new Date(), opts: TaskStoreOptions = {}) {
    this.opts = opts;
    this.kv = topo.tasks;
    this.jsm = topo.jsm;
    this.js = topo.js;
    this.publisher = topo.publisher;
    this.putPrefix = topo.tasksPutPrefix;
    this.now = now;
  }

  /** Throws MeshError DATA_LOSS when the stored record cannot be read (see parseTaskRecord). */
  async get(id: string): Promise<VersionedRecord | undefined> {
    const e = await this.kv.get(id);
    if (e?.operation !== "PUT" || e.value.length === 0) return undefined;
    return { record: this.parse(e.value, id, e.revision), revision: e.revision };
  }

  private parse(value: Uint8Array, key: string, revision: number): TaskRecord {
    try {
      return parseTaskRecord(value, key, revision);
    } catch (err) {
      if (isMeshError(err, "DATA_LOSS")) this.report({ key, revision, reason: err.message });
      throw err;
    }
  }

  private report(u: UnreadableRecord): void {
    const k = `${u.key}@${u.revision}`;
    if (this.reported.has(k)) return;
    if (this.reported.size > 10_000) this.reported.clear();
    this.reported.add(k);
    try {
      this.opts.onUnreadable?.(u);
    } catch {
      // reporting never breaks a read
    }
  }

  /**
   * Creates the record; returns undefined when one with this id exists already. Written like
   * kv.create (no message on the key yet, or over its delete marker), through the JsPublisher:
   * half the client work of kv.create, on the path of every submit.
   */
  async create(record: TaskRecord): Promise<VersionedRecord | undefined> {
    const subject = `${this.putPrefix}.${record.id}`;
    const data = enc.encode(JSON.stringify(record));
    try {
      try {
        const { seq } = await this.publisher.publish(subject, data, { expectLastSubjectSequence: 0 });
        return { record, revision: seq };
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        // The key has messages: a live record (it exists), or a delete marker to write over.
        const e = await this.kv.get(record.id);
        if (e?.operation !== "DEL" && e?.operation !== "PURGE") return undefined;
        const { seq } = await this.publisher.publish(subject, data, {
          expectLastSubjectSequence: e.revision,
        });
        return { record, revision: seq };
      }
    } catch (err) {
      // Someone else created it meanwhile.
      if (isWrongLastSequence(err)) return undefined;
      if (isStoreFull(err)) {
        throw new MeshError(
          "RESOURCE_EXHAUSTED",
          `task ${record.id}: the task records bucket is full (limits.tasksMaxBytes); it was not submitted. Finished tasks' records are deleted after taskRetention: wait for that, lower taskRetention, or raise limits.tasksMaxBytes`,
          { field: "limits.tasksMaxBytes", cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Writes `next` only if the record is still at `revision`. Checks the state machine.
   * Throws CONFLICT when another writer got there first.
   */
  async update(prev: VersionedRecord, next: TaskRecord): Promise<VersionedRecord> {
    if (next.state !== prev.record.state) assertTransition(next.id, prev.record.state, next.state);
    next.updatedAt = this.now().toISOString();
    boundRecord(next);
    try {
      const data = enc.encode(JSON.stringify(next));
      const { seq: revision } = await this.publisher.publish(`${this.putPrefix}.${next.id}`, data, {
        expectLastSubjectSequence: prev.revision,
      });
      return { record: next, revision };
    } catch (err) {
      if (isWrongLastSequence(err)) {
        throw new MeshError("CONFLICT", `task ${next.id} changed concurrently (revision ${prev.revision})`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * Read-modify-write with retries on conflict, for writers that are not fenced owners
   * (cancel, retry). `mutate` returns undefined to leave the record as it is.
   */
  async mutate(
    id: string,
    mutate: (r: TaskRecord) => TaskRecord | undefined,
    attempts = 20,
  ): Promise<{ before: VersionedRecord; after: VersionedRecord; changed: boolean }> {
    for (let i = 0; i < attempts; i++) {
      const cur = await this.get(id);
      if (!cur) throw new MeshError("NOT_FOUND", `no task with id "${id}"; list them with \`mesh tasks\``);
      const next = mutate(structuredClone(cur.record));
      if (!next) return { before: cur, after: cur, changed: false };
      try {
        return { before: cur, after: await this.update(cur, next), changed: true };
      } catch (err) {
        if (!isMeshError(err, "CONFLICT")) throw err;
      }
    }
    throw new MeshError("CONFLICT", `task ${id}: too much contention; try again`);
  }

  /**
   * Deletes the record as it was at `v.revision` and anything older: a write made since (a
   * retry) survives. Afterwards the id is free again.
   */
  async purge(v: VersionedRecord): Promise<void> {
    await this.jsm.streams.purge(TASKS_BUCKET_STREAM, {
      filter: kvSubject(TASKS_BUCKET, v.record.id),
      seq: v.revision + 1,
    });
  }

  /**
   * The records by id, read by key (64 at a time): ids without a record (or an unreadable one,
   * reported as `get` reports it) are left out.
   */
  async getMany(
    ids: readonly string[],
  ): Promise<{ records: VersionedRecord[]; unreadable: UnreadableRecord[] }> {
    const records: VersionedRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (let i = 0; i < ids.length; i += 64) {
      const got = await Promise.all(
        ids.slice(i, i + 64).map((id) =>
          this.get(id).catch((err: unknown) => {
            if (!isMeshError(err, "DATA_LOSS")) throw err;
            unreadable.push({ key: id, revision: 0, reason: err.message });
            return undefined;
          }),
        ),
      );
      for (const v of got) if (v) records.push(v);
    }
    return { records, unreadable };
  }

  /**
   * The `limit` most recently written records that `match`, newest write first, read from the
   * bucket's tail (see kv-tail.ts) without reading the rest; undefined when that takes more than
   * `maxSequences` reads (the caller scans instead). Unreadable records are returned apart.
   */
  async newest(
    limit: number,
    match: (r: TaskRecord) => boolean,
    maxSequences: number | ((span: number) => number),
  ): Promise<{ records: VersionedRecord[]; unreadable: UnreadableRecord[] } | undefined> {
    const records: VersionedRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    const read = await readKvTail(this.jsm, TASKS_BUCKET, { maxSequences }, (e) => {
      let record: TaskRecord;
      try {
        record = this.parse(e.value, e.key, e.revision);
      } catch (err) {
        if (!isMeshError(err, "DATA_LOSS")) throw err;
        unreadable.push({ key: e.key, revision: e.revision, reason: err.message });
        return false;
      }
      if (match(record)) records.push({ record, revision: e.revision });
      return records.length >= limit;
    });
    return records.length >= limit || read.exhausted ? { records, unreadable } : undefined;
  }

  /**
   * The records of `ids` (those that exist), read the cheaper way: by key, unless they are a big
   * share of the bucket (over 100 ids and more than a quarter of its records), when one pass over
   * the bucket costs less than a read per id. A plan's tasks among 100,000 records are read by key.
   */
  async readSome(ids: readonly string[]): Promise<VersionedRecord[]> {
    if (ids.length <= 100 || ids.length * 4 < (await this.count())) return (await this.getMany(ids)).records;
    const want = new Set(ids);
    return (await this.list()).filter((v) => want.has(v.record.id));
  }

  /** The bucket's last sequence now: a later `changedSince` of it names what was written after. */
  lastSeq(): Promise<number> {
    return kvLastSeq(this.jsm, TASKS_BUCKET);
  }

  /**
   * The ids of the records written (or deleted) after the bucket's sequence `afterSeq`, and the
   * sequence they reach (see kv-changes.ts); undefined when a whole pass costs less.
   */
  async changedSince(
    afterSeq: number,
  ): Promise<
    { ids: Map<string, { seq: number; put: boolean }>; lastSeq: number; records: number } | undefined
  > {
    const c = await kvChangedKeys({ js: this.js, jsm: this.jsm }, TASKS_BUCKET, afterSeq);
    return c && { ids: c.keys, lastSeq: c.lastSeq, records: c.messages };
  }

  /** How many records the bucket holds (one stream-info request). */
  async count(): Promise<number> {
    return (await this.jsm.streams.info(TASKS_BUCKET_STREAM)).state.messages;
  }

  /** All readable records, read in one pass over the bucket (see kv-scan.ts). */
  async list(): Promise<VersionedRecord[]> {
    return (await this.scan()).records;
  }

  /** All records in one pass, and the entries that are not readable records (skipped). */
  async scan(): Promise<{ records: VersionedRecord[]; unreadable: UnreadableRecord[] }> {
    const unreadable: UnreadableRecord[] = [];
    const entries = await scanKv({ js: this.js, jsm: this.jsm }, this.kv, TASKS_BUCKET, {
      onUnreadableKey: (key, reason) => {
        const u = { key, revision: 0, reason: `task record "${key}" cannot be read: ${reason}` };
        this.report(u);
        unreadable.push(u);
      },
    });
    const records: VersionedRecord[] = [];
    for (const e of entries) {
      if (e.value.length === 0) continue;
      try {
        records.push({ record: this.parse(e.value, e.key, e.revision), revision: e.revision });
      } catch (err) {
        if (!isMeshError(err, "DATA_LOSS")) throw err;
        unreadable.push({ key: e.key, revision: e.revision, reason: err.message });
      }
    }
    return { records, unreadable };
  }
}
