/**
 * Where git bundles live on the bus: a JetStream Object Store (`mesh-bundles`) holds the bytes,
 * a KV bucket (`mesh-bundle-index`) says which commits the mesh has: key `<repo id>.<commit>`,
 * one per bundle tip, value the bundle's name and the commits it requires. A bundle is named by
 * the SHA-256 of its ref set (repo, tip, required commits), so the same content is stored once.
 * Both buckets expire entries after the same TTL (tied to the task retention), so an index entry
 * never outlives its bundle by more than the put between them.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable, Transform, type Writable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { errorMessage, MeshError } from "../errors.js";
import { BUNDLE_INDEX_BUCKET, BUNDLES_BUCKET, isInsufficientResources, isStoreFull } from "../nats/index.js";
import { formatBytes } from "../util/index.js";
import { useNativeSha256 } from "./native-sha256.js";

/** One bundle as the index records it. */
export interface BundleEntry {
  v: 1;
  /** Object name in the store. */
  name: string;
  repoId: string;
  /** The commit the bundle carries (its one ref, `refs/mesh/c/<tip>`). */
  tip: string;
  /** Commits a repository must have before it can import the bundle (each is some bundle's tip, or the task's base). */
  requires: string[];
  size: number;
  kind: "source" | "result";
  taskId?: string;
  attempt?: number;
  at: string;
}

export interface BundleStoreOptions {
  replicas: number;
  /** The store's byte limit (limits.bundlesMaxBytes). */
  maxBytes: number;
  /** The largest bundle accepted (limits.bundleMaxBytes). */
  maxBundleBytes: number;
  /** Entries expire after this long; 0 keeps them. */
  ttlMs: number;
  /** Object Store chunk size (bench/transfer.ts measured it; at most the server's max_payload). */
  chunkBytes: number;
}

/** The chunk size: 1 MiB put and got faster than 128 KiB on loopback (bench/results/transfer.json). */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

const SHA_RE = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;
export const isCommitId = (s: string): boolean => SHA_RE.test(s);

export const indexKey = (repoId: string, commit: string): string => `${repoId}.${commit}`;

export class BundleStore {
  private constructor(
    private readonly objects: ObjectStore,
    private readonly index: KV,
    readonly opts: BundleStoreOptions,
  ) {}

  static async open(js: JetStreamClient, maxPayload: number, opts: BundleStoreOptions): Promise<BundleStore> {
    useNativeSha256();
    const ttl = opts.ttlMs > 0 ? opts.ttlMs * 1_000_000 : 0;
    const create = async () => {
      const objects = await new Objm(js).create(BUNDLES_BUCKET, {
        replicas: opts.replicas,
        max_bytes: opts.maxBytes,
        ...(ttl ? { ttl } : {}),
      });
      const index = await new Kvm(js).create(BUNDLE_INDEX_BUCKET, {
        history: 1,
        replicas: opts.replicas,
        ...(opts.ttlMs > 0 ? { ttl: opts.ttlMs } : {}),
      });
      return { objects, index };
    };
    const { objects, index } = await create().catch((err: unknown) => {
      if (!isInsufficientResources(err)) throw err;
      throw new MeshError(
        "RESOURCE_EXHAUSTED",
        `cannot create the bundle store: NATS has not enough JetStream storage for limits.bundlesMaxBytes (${formatBytes(opts.maxBytes)}); lower it in meshd's config, or give JetStream more storage`,
        { field: "limits.bundlesMaxBytes", cause: err },
      );
    });
    // A chunk is one message: it cannot pass the server's max_payload (headers need a little room).
    const chunkBytes = Math.max(16 * 1024, Math.min(opts.chunkBytes, maxPayload - 4096));
    return new BundleStore(objects, index, { ...opts, chunkBytes });
  }

  /** The bundle whose tip is `commit`, if the mesh has one. */
  async entry(repoId: string, commit: string): Promise<BundleEntry | undefined> {
    const e = await this.index.get(indexKey(repoId, commit));
    if (e?.operation !== "PUT") return undefined;
    try {
      const v = e.json<BundleEntry>();
      return v && v.v === 1 && typeof v.name === "string" && Array.isArray(v.requires) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every commit of `repoId` the mesh holds as a bundle tip. */
  async knownTips(repoId: string): Promise<string[]> {
    const out: string[] = [];
    const keys = await this.index.keys(`${repoId}.*`);
    for await (const k of keys) {
      const commit = k.slice(repoId.length + 1);
      if (isCommitId(commit)) out.push(commit);
    }
    return out;
  }

  /** Refuses a bundle over the size limit, or one the store has no room for. */
  async admit(size: number, what: string, field: string): Promise<void> {
    if (size > this.opts.maxBundleBytes) {
      throw new MeshError(
        "RESOURCE_EXHAUSTED",
        `${what} is ${formatBytes(size)}, over the largest bundle accepted (${formatBytes(this.opts.maxBundleBytes)}, limits.bundleMaxBytes); ship less history (a shallower base) or raise limits.bundleMaxBytes`,
        { field },
      );
    }
    const used = (await this.objects.status()).size;
    if (used + size > this.opts.maxBytes) {
      throw new MeshError(
        "RESOURCE_EXHAUSTED",
        `${what} (${formatBytes(size)}) does not fit in the bundle store: ${formatBytes(used)} of ${formatBytes(this.opts.maxBytes)} used (limits.bundlesMaxBytes); raise it, or wait for finished tasks' bundles to expire`,
        { field },
      );
    }
  }

  /** Stores the bundle file (unless the store has it already), then its index entry. */
  async put(entry: BundleEntry, file: string): Promise<{ uploaded: boolean }> {
    const existing = await this.objects.info(entry.name).catch(() => null);
    // Stored again when past half its TTL: a new bundle built on it must not outlive it.
    const stale =
      existing && this.opts.ttlMs > 0 && Date.now() - Date.parse(existing.mtime) >= this.opts.ttlMs / 2;
    let uploaded = false;
    if (!existing || existing.deleted || existing.size !== entry.size || stale) {
      const size = (await stat(file)).size;
      await this.admit(
        size,
        `bundle ${entry.name.slice(0, 12)}`,
        entry.kind === "source" ? "repo" : "result",
      );
      try {
        const body = Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>;
        await this.objects.put(
          {
            name: entry.name,
            options: { max_chunk_size: this.opts.chunkBytes },
            metadata: { repo: entry.repoId, tip: entry.tip },
          },
          body,
        );
      } catch (err) {
        if (isStoreFull(err) || isInsufficientResources(err)) {
          throw new MeshError(
            "RESOURCE_EXHAUSTED",
            `the bundle store is full (limits.bundlesMaxBytes ${formatBytes(this.opts.maxBytes)}): ${errorMessage(err)}; raise it, or wait for finished tasks' bundles to expire`,
            { field: "limits.bundlesMaxBytes", cause: err },
          );
        }
        throw new MeshError("UNAVAILABLE", `cannot store bundle ${entry.name}: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      uploaded = true;
    }
    await this.index.put(indexKey(entry.repoId, entry.tip), JSON.stringify(entry));
    return { uploaded };
  }

  /**
   * Stores the bundle that `produce` writes into the sink it is given, while it writes it (no
   * temp file), unless the store has a fresh object of that name already (the name is the hash
   * of the ref set, so it carries the same commits). Over limits.bundleMaxBytes, or past the
   * store's room, the upload is aborted and its chunks purged: RESOURCE_EXHAUSTED, nothing
   * stored. `produce` resolves when all is written (the sink is then ended here); when it
   * fails, so does the upload. Then the index entry, with the size.
   */
  async putStream(
    entry: Omit<BundleEntry, "size">,
    what: string,
    produce: (sink: Writable, signal: AbortSignal) => Promise<void>,
  ): Promise<{ uploaded: boolean; size: number }> {
    const field = entry.kind === "source" ? "repo" : "result";
    const existing = await this.objects.info(entry.name).catch(() => null);
    const stale =
      existing && this.opts.ttlMs > 0 && Date.now() - Date.parse(existing.mtime) >= this.opts.ttlMs / 2;
    if (existing && !existing.deleted && !stale && existing.size > 0) {
      await this.index.put(
        indexKey(entry.repoId, entry.tip),
        JSON.stringify({ ...entry, size: existing.size }),
      );
      return { uploaded: false, size: existing.size };
    }
    const used = (await this.objects.status()).size;
    const room = this.opts.maxBytes - used;
    let size = 0;
    let refused: MeshError | undefined;
    const abort = new AbortController();
    const meter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        size += chunk.length;
        if (size > this.opts.maxBundleBytes) {
          refused = new MeshError(
            "RESOURCE_EXHAUSTED",
            `${what} is over ${formatBytes(this.opts.maxBundleBytes)}, the largest bundle accepted (limits.bundleMaxBytes); ship less history (a shallower base) or raise limits.bundleMaxBytes`,
            { field },
          );
        } else if (size > room) {
          refused = new MeshError(
            "RESOURCE_EXHAUSTED",
            `${what} (over ${formatBytes(size)}) does not fit in the bundle store: ${formatBytes(used)} of ${formatBytes(this.opts.maxBytes)} used (limits.bundlesMaxBytes); raise it, or wait for finished tasks' bundles to expire`,
            { field },
          );
        }
        if (refused) {
          abort.abort(refused);
          done(refused);
        } else done(null, chunk);
      },
    });
    const body = Readable.toWeb(meter) as unknown as ReadableStream<Uint8Array>;
    const upload = this.objects.put(
      {
        name: entry.name,
        options: { max_chunk_size: this.opts.chunkBytes },
        metadata: { repo: entry.repoId, tip: entry.tip },
      },
      body,
    );
    let first: { from: "producer" | "store"; err: unknown } | undefined;
    upload.catch((err: unknown) => {
      first ??= { from: "store", err };
    });
    const wrote = produce(meter, abort.signal).then(
      () => {
        meter.end();
      },
      (err: unknown) => {
        first ??= { from: "producer", err };
        abort.abort(err);
        meter.destroy(refused ?? (err instanceof Error ? err : new Error(String(err))));
        throw err;
      },
    );
    try {
      await Promise.all([wrote, upload]);
    } catch (err) {
      abort.abort(err);
      meter.destroy();
      await Promise.allSettled([wrote, upload]);
      if (refused) throw refused;
      const cause = first?.err ?? err;
      if (first?.from === "producer") throw cause;
      if (isStoreFull(cause) || isInsufficientResources(cause)) {
        throw new MeshError(
          "RESOURCE_EXHAUSTED",
          `the bundle store is full (limits.bundlesMaxBytes ${formatBytes(this.opts.maxBytes)}): ${errorMessage(cause)}; raise it, or wait for finished tasks' bundles to expire`,
          { field: "limits.bundlesMaxBytes", cause },
        );
      }
      throw new MeshError("UNAVAILABLE", `cannot store bundle ${entry.name}: ${errorMessage(cause)}`, {
        cause,
      });
    }
    await this.index.put(indexKey(entry.repoId, entry.tip), JSON.stringify({ ...entry, size }));
    return { uploaded: true, size };
  }

  /**
   * The bundle `name` as a stream, read while it arrives; `verified` resolves once the stream
   * has been read to its end and matched its SHA-256 digest (reject: DATA_LOSS). Use nothing
   * from the stream before `verified` has resolved.
   */
  async open(name: string): Promise<{ data: Readable; size: number; verified: Promise<void> }> {
    const res = await this.objects.get(name);
    if (!res) {
      throw new MeshError(
        "NOT_FOUND",
        `bundle ${name} is not in the bundle store (expired with the task retention, or never stored)`,
      );
    }
    const data = Readable.fromWeb(res.data as unknown as WebReadableStream<Uint8Array>);
    // The client reports a digest mismatch by failing the stream (not through res.error): the
    // bundle is verified once the stream has ended cleanly and the client saw no error.
    const damaged = (err: unknown) =>
      new MeshError("DATA_LOSS", `bundle ${name} arrived damaged: ${errorMessage(err)}`, { cause: err });
    const ended = new Promise<void>((resolve, reject) => {
      data.once("end", resolve);
      data.once("error", (err) => reject(damaged(err)));
    });
    const verified = Promise.all([
      ended,
      res.error.then(
        (err) => {
          if (err) throw damaged(err);
        },
        (err: unknown) => {
          throw damaged(err);
        },
      ),
    ]).then(() => undefined);
    verified.catch(() => undefined);
    return { data, size: res.info.size, verified };
  }

  /** Bytes and objects in the store (tests, `mesh` status). */
  async usage(): Promise<{ bytes: number; objects: number }> {
    const list = await this.objects.list();
    return { bytes: list.reduce((n, o) => n + o.size, 0), objects: list.length };
  }

  /** Direct access for tests that plant a damaged bundle. */
  get objectStore(): ObjectStore {
    return this.objects;
  }
}
