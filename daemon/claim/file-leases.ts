/**
 * First-come leases on the files a task without `owns` writes, in KV bucket
 * `mesh-file-leases` (key `<repo hash>.<path hash>`; value: holder task, attempt, worker, at).
 * A lease is live while its holder's task record is running that attempt on that worker and the
 * lease was renewed within `ttlMs` (a dead worker stops renewing); anything else is free and is
 * taken over with compare-and-set, so two takers never both win.
 */
import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { FILE_LEASES_BUCKET } from "../nats/index.js";
import type { TaskStore } from "../tasks/index.js";

export interface FileLeaseHolder {
  taskId: string;
  attempt: number;
  workerId: string;
}

export interface FileLeaseValue extends FileLeaseHolder {
  /** When the holder last took or renewed it (ISO). */
  at: string;
  repo: string;
  path: string;
}

export type FileLeaseAnswer = { granted: true } | { granted: false; holder: FileLeaseHolder };

export interface FileLeasesOptions {
  js: JetStreamClient;
  store: Pick<TaskStore, "get">;
  /** A lease not renewed for this long is free (the holder's worker is gone). */
  ttlMs: number;
  replicas?: number;
  log?: Logger;
  now?: () => number;
}

const hash = (s: string, n: number): string => createHash("sha256").update(s).digest("hex").slice(0, n);

/** The KV key of one file of one repository. */
export function fileLeaseKey(repo: string, path: string): string {
  return `${hash(repo, 16)}.${hash(path, 40)}`;
}

const MAX_CAS_TRIES = 8;

export class FileLeases {
  private kv: Promise<KV> | undefined;
  private readonly now: () => number;

  constructor(private readonly opts: FileLeasesOptions) {
    this.now = opts.now ?? Date.now;
  }

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.opts.js).create(FILE_LEASES_BUCKET, {
      history: 1,
      ...(this.opts.replicas ? { replicas: this.opts.replicas } : {}),
    });
    this.kv.catch(() => {
      this.kv = undefined;
    });
    return this.kv;
  }

  private value(repo: string, path: string, h: FileLeaseHolder): string {
    const v: FileLeaseValue = { ...h, at: new Date(this.now()).toISOString(), repo, path };
    return JSON.stringify(v);
  }

  /** Whether `v` still binds: its holder runs that attempt on that worker and renewed it lately. */
  private async live(v: FileLeaseValue): Promise<boolean> {
    const at = Date.parse(v.at);
    if (!Number.isFinite(at) || this.now() - at > this.opts.ttlMs) return false;
    const rec = (await this.opts.store.get(v.taskId).catch(() => undefined))?.record;
    return (
      rec !== undefined &&
      rec.state === "running" &&
      rec.attempt === v.attempt &&
      rec.owner?.workerId === v.workerId
    );
  }

  /** Takes (or keeps, or takes over) the lease on `path` of `repo` for `holder`. */
  async acquire(repo: string, path: string, holder: FileLeaseHolder): Promise<FileLeaseAnswer> {
    const kv = await this.bucket();
    const key = fileLeaseKey(repo, path);
    for (let i = 0; i < MAX_CAS_TRIES; i++) {
      const e = await kv.get(key);
      try {
        if (e?.operation !== "PUT") {
          await kv.create(key, this.value(repo, path, holder));
          return { granted: true };
        }
        const cur = parse(e.string());
        const mine =
          cur &&
          cur.taskId === holder.taskId &&
          cur.attempt === holder.attempt &&
          cur.workerId === holder.workerId;
        if (cur && !mine && (await this.live(cur))) {
          return {
            granted: false,
            holder: { taskId: cur.taskId, attempt: cur.attempt, workerId: cur.workerId },
          };
        }
        await kv.update(key, this.value(repo, path, holder), e.revision);
        if (cur && !mine)
          this.opts.log?.info({ path, from: cur.taskId, to: holder.taskId }, "file lease taken over");
        return { granted: true };
      } catch (err) {
        // Someone else wrote the key between our read and write: read again.
        this.opts.log?.debug({ path, err: errorMessage(err) }, "file lease compare-and-set lost; retrying");
      }
    }
    throw new Error(`could not settle the file lease on ${path} after ${MAX_CAS_TRIES} tries`);
  }

  /** Renews the leases `holder` has on `paths` (those it lost are left alone). */
  async renew(repo: string, paths: Iterable<string>, holder: FileLeaseHolder): Promise<void> {
    const kv = await this.bucket();
    for (const path of paths) {
      const key = fileLeaseKey(repo, path);
      const e = await kv.get(key);
      if (e?.operation !== "PUT" || !sameHolder(parse(e.string()), holder)) continue;
      await kv.update(key, this.value(repo, path, holder), e.revision).catch(() => undefined);
    }
  }

  /** Gives up the leases `holder` has on `paths`. */
  async release(repo: string, paths: Iterable<string>, holder: FileLeaseHolder): Promise<void> {
    const kv = await this.bucket();
    for (const path of paths) {
      const key = fileLeaseKey(repo, path);
      const e = await kv.get(key);
      if (e?.operation !== "PUT" || !sameHolder(parse(e.string()), holder)) continue;
      await kv.delete(key, { previousSeq: e.revision }).catch(() => undefined);
    }
  }

  /** The current holder of `path`'s lease, live or not (tests, `mesh doctor`). */
  async peek(repo: string, path: string): Promise<FileLeaseValue | undefined> {
    const e = await (await this.bucket()).get(fileLeaseKey(repo, path));
    return e && e.operation === "PUT" ? parse(e.string()) : undefined;
  }
}

function sameHolder(v: FileLeaseValue | undefined, h: FileLeaseHolder): boolean {
  return v !== undefined && v.taskId === h.taskId && v.attempt === h.attempt && v.workerId === h.workerId;
}

function parse(text: string): FileLeaseValue | undefined {
  try {
    const v = JSON.parse(text) as FileLeaseValue;
    return typeof v.taskId === "string" && typeof v.attempt === "number" ? v : undefined;
  } catch {
    return undefined;
  }
}
