/**
 * Parses submit documents in worker threads. YAML parsing is slow on some inputs (many keys
 * in one map cost quadratic time, deep nesting, long flows): on the event loop a document of a
 * few hundred KiB can stall it for seconds, long enough for running tasks to miss heartbeats
 * and lose their leases. A parse still running after `timeoutMs` is stopped (its worker is
 * terminated) and refused; so is one that needs more memory than `maxMemoryMb`.
 */
import { Worker } from "node:worker_threads";
import { isMeshError, MeshError, type MeshErrorCode } from "../../errors.js";
import type { TaskSpec } from "../../tasks/index.js";

export interface ParseRequest {
  id: number;
  text: string;
  source: string;
}

export type ParseReply =
  | { id: number; ok: true; specs: TaskSpec[] }
  | { id: number; ok: false; error: { code: MeshErrorCode; message: string; field?: string } };

export interface SpecParserOptions {
  /** A parse running longer is stopped and refused (RESOURCE_EXHAUSTED). */
  timeoutMs: number;
  /** Workers parsing at once (default 2); later parses wait their turn. */
  maxWorkers?: number;
  /** Parses allowed to wait for a worker (default 8); more are refused at once. */
  maxWaiting?: number;
  /** Heap of one worker (default 1024 MB); a document needing more is refused. */
  maxMemoryMb?: number;
  /** Names the timeout option in messages (default `limits.submitParseTimeout`). */
  timeoutField?: string;
}

interface Job {
  req: ParseRequest;
  resolve: (specs: TaskSpec[]) => void;
  reject: (err: unknown) => void;
}

/** The worker module, built JS next to this one, or the TypeScript source through tsx (tests). */
function spawnWorker(maxMemoryMb: number): Worker {
  const resourceLimits = { maxOldGenerationSizeMb: maxMemoryMb, stackSizeMb: 4 };
  if (import.meta.url.endsWith(".ts")) {
    const tsx = import.meta.resolve("tsx/esm/api");
    const entry = new URL("./spec-parse-worker.ts", import.meta.url).href;
    const boot = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry)});`;
    return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { resourceLimits });
  }
  return new Worker(new URL("./spec-parse-worker.js", import.meta.url), { resourceLimits });
}

class ParseWorker {
  readonly worker: Worker;
  private job: Job | undefined;
  private timer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(
    maxMemoryMb: number,
    private readonly onIdle: (w: ParseWorker) => void,
    private readonly onDead: (w: ParseWorker) => void,
  ) {
    this.worker = spawnWorker(maxMemoryMb);
    this.worker.unref();
    this.worker.on("message", (reply: ParseReply) => {
      const job = this.job;
      if (!job || reply.id !== job.req.id) return;
      this.done();
      if (reply.ok) job.resolve(reply.specs);
      else {
        const e = reply.error;
        job.reject(new MeshError(e.code, e.message, e.field ? { field: e.field } : {}));
      }
      this.onIdle(this);
    });
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", () => this.fail(undefined));
  }

  run(job: Job, timeoutMs: number, timeoutField: string): void {
    this.job = job;
    this.timer = setTimeout(() => {
      const secs = Math.round(timeoutMs / 100) / 10;
      this.fail(
        new MeshError(
          "RESOURCE_EXHAUSTED",
          `document: ${job.req.source} was still being parsed after ${secs}s (${timeoutField}); nothing was submitted. Split it into smaller submits, or simplify it (fewer keys per map, less nesting)`,
          { field: "document" },
        ),
      );
    }, timeoutMs);
    this.worker.postMessage(job.req);
  }

  private done(): void {
    clearTimeout(this.timer);
    this.job = undefined;
  }

  /** The worker is unusable (timed out, out of memory, crashed, shut down): reject its job and drop it. */
  fail(err: unknown): void {
    if (this.dead) return;
    this.dead = true;
    const job = this.job;
    this.done();
    void this.worker.terminate();
    if (job) {
      const oom = (err as { code?: string } | undefined)?.code === "ERR_WORKER_OUT_OF_MEMORY";
      job.reject(
        isMeshError(err)
          ? err
          : oom
            ? new MeshError(
                "RESOURCE_EXHAUSTED",
                `document: ${job.req.source} needs too much memory to parse; nothing was submitted. Split it into smaller submits`,
                { field: "document", cause: err },
              )
            : new MeshError(
                "INTERNAL",
                `the spec parser stopped (${err instanceof Error ? err.message : "its worker exited"}); nothing was submitted`,
                { cause: err },
              ),
      );
    }
    this.onDead(this);
  }
}

export class SpecParser {
  private readonly idle: ParseWorker[] = [];
  private readonly busy = new Set<ParseWorker>();
  private readonly waiting: Job[] = [];
  private nextId = 1;
  private closed = false;
  private readonly maxWorkers: number;
  private readonly maxWaiting: number;
  private readonly maxMemoryMb: number;
  private readonly timeoutField: string;

  constructor(private readonly opts: SpecParserOptions) {
    this.maxWorkers = opts.maxWorkers ?? 2;
    this.maxWaiting = opts.maxWaiting ?? 8;
    this.maxMemoryMb = opts.maxMemoryMb ?? 1024;
    this.timeoutField = opts.timeoutField ?? "limits.submitParseTimeout";
  }

  /** Parses and validates, all or nothing, exactly as `parseTaskSpecs` does, off the event loop. */
  parse(text: string, source: string): Promise<TaskSpec[]> {
    if (this.closed) return Promise.reject(new MeshError("UNAVAILABLE", "meshd is shutting down"));
    if (this.waiting.length >= this.maxWaiting && this.busy.size >= this.maxWorkers) {
      return Promise.reject(
        new MeshError(
          "RESOURCE_EXHAUSTED",
          `document: ${this.busy.size + this.waiting.length} submits are being parsed already; try again shortly`,
          { field: "document" },
        ),
      );
    }
    return new Promise<TaskSpec[]>((resolve, reject) => {
      this.waiting.push({ req: { id: this.nextId++, text, source }, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.waiting.length > 0 && (this.idle.length > 0 || this.busy.size < this.maxWorkers)) {
      const w =
        this.idle.pop() ??
        new ParseWorker(
          this.maxMemoryMb,
          (x) => this.release(x),
          (x) => this.forget(x),
        );
      const job = this.waiting.shift() as Job;
      this.busy.add(w);
      w.run(job, this.opts.timeoutMs, this.timeoutField);
    }
  }

  private release(w: ParseWorker): void {
    this.busy.delete(w);
    // One idle worker is kept warm; more would only hold memory.
    if (!this.closed && this.idle.length === 0) this.idle.push(w);
    else void w.worker.terminate();
    this.pump();
  }

  private forget(w: ParseWorker): void {
    this.busy.delete(w);
    const i = this.idle.indexOf(w);
    if (i >= 0) this.idle.splice(i, 1);
    this.pump();
  }

  /** Refuses waiting parses and stops every worker. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0))
      job.reject(new MeshError("UNAVAILABLE", "meshd is shutting down"));
    const all = [...this.idle.splice(0), ...this.busy];
    for (const w of all)
      w.fail(new MeshError("UNAVAILABLE", "meshd is shutting down; submit again when it is back"));
    await Promise.all(all.map((w) => w.worker.terminate()));
  }
}
