/**
 * One Claude Code process: spawned with argv only (never a shell), fed the prompt as a
 * stream-json user message, its stdout parsed into agent events, watched for silence, and
 * stopped in escalating steps: interrupt request, close stdin, SIGTERM, SIGKILL.
 */
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import { buildClaudeArgs, interruptLine, type SessionChoice, userMessageLine } from "./claude-args.js";
import { type AgentEvent, type ResultEvent, StreamParser } from "./events.js";
import type { ShimJob } from "./job.js";
import { type LimitReport, LimitTracker } from "./limits.js";
import type { Redactor } from "./redact.js";
import { type Spawned, type SpawnFn, spawnChild } from "./spawn.js";

export type SessionState = "idle" | "running" | "stopping" | "exited";
export type StopKind = "cancelled" | "hung";

export interface SessionEnd {
  exitCode: number | null;
  signal: string | null;
  /** Set when the process could not be started at all. */
  spawnError?: string;
  /** Its errno code (`ENOENT`: no such program). */
  spawnErrorCode?: string;
  result?: ResultEvent;
  /** From the init line (or the result line). */
  sessionId?: string;
  /** Why the shim stopped the session, when it did; `beforeResult` tells whether it cut work short. */
  stop?: { kind: StopKind; detail: string; beforeResult: boolean };
  lastRetry?: Extract<AgentEvent, { kind: "api_retry" }>;
  /** The usage limit the session met (see limits.ts). */
  limit?: LimitReport;
  /** The last limit warning it was given (a later `allowed` event clears it). */
  warning?: LimitReport;
  /** The last lines Claude Code wrote on stderr (redacted). */
  stderrTail: string[];
}

export interface ClaudeSessionDeps {
  log: Logger;
  redact: Redactor;
  onEvent: (event: AgentEvent) => void;
  /** Injected for tests; defaults to node:child_process. */
  spawn?: SpawnFn;
  now?: () => number;
}

const STDERR_TAIL = 20;

function delay(ms: number): { promise: Promise<false>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Resolves true when `p` settles within `ms`, false on timeout. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  const d = delay(ms);
  try {
    return await Promise.race([p.then(() => true as const), d.promise]);
  } finally {
    d.cancel();
  }
}

export class ClaudeSession {
  private state: SessionState = "idle";
  private proc: Spawned | undefined;
  private readonly parser = new StreamParser();
  private readonly now: () => number;
  private lastOutputAt: number;
  private hangTimer: NodeJS.Timeout | undefined;
  private result: ResultEvent | undefined;
  private lastRetry: SessionEnd["lastRetry"];
  readonly limits = new LimitTracker();
  private stopInfo: SessionEnd["stop"];
  private readonly stderrTail: string[] = [];
  private stopping: Promise<void> | undefined;
  private resultSeen!: () => void;
  private readonly resultPromise = new Promise<void>((resolve) => {
    this.resultSeen = resolve;
  });
  private exited!: () => void;
  private readonly exitPromise = new Promise<void>((resolve) => {
    this.exited = resolve;
  });
  readonly done: Promise<SessionEnd>;
  private resolveDone!: (end: SessionEnd) => void;

  constructor(
    private readonly job: ShimJob,
    private readonly env: Record<string, string>,
    private readonly deps: ClaudeSessionDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.lastOutputAt = this.now();
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  get sessionId(): string | undefined {
    return this.parser.sessionId;
  }

  /** Milliseconds since Claude Code last wrote a stdout line (or since start). */
  idleMs(): number {
    return this.now() - this.lastOutputAt;
  }

  private setState(next: SessionState): void {
    this.deps.log.debug({ from: this.state, to: next }, "session state");
    this.state = next;
  }

  start(choice: SessionChoice): void {
    if (this.state !== "idle") throw new Error(`ClaudeSession.start: already ${this.state}`);
    this.setState("running");
    const [cmd, ...prefix] = this.job.claudeCommand;
    const args = [...prefix, ...buildClaudeArgs(this.job, choice)];
    this.deps.log.info(
      { cmd, args: args.map((a) => this.deps.redact(a)), cwd: this.job.workdir },
      "starting claude",
    );
    const spawn = this.deps.spawn ?? spawnChild;
    const proc = spawn(cmd!, args, { cwd: this.job.workdir, env: this.env });
    this.proc = proc;
    this.lastOutputAt = this.now();

    proc.stdin?.on("error", (err) => this.deps.log.debug({ err: err.message }, "claude stdin closed"));
    const stdoutDone = new Promise<void>((resolve) => {
      if (!proc.stdout) return resolve();
      const rl = createInterface({ input: proc.stdout, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on("line", (line) => this.onStdout(line));
      rl.on("close", resolve);
    });
    const stderrDone = new Promise<void>((resolve) => {
      if (!proc.stderr) return resolve();
      const rl = createInterface({ input: proc.stderr, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on("line", (line) => {
        const clean = this.deps.redact(line);
        this.stderrTail.push(clean);
        if (this.stderrTail.length > STDERR_TAIL) this.stderrTail.shift();
        this.deps.log.warn({ line: clean }, "claude stderr");
      });
      rl.on("close", resolve);
    });

    this.hangTimer = setTimeout(() => this.onHang(), this.job.hangTimeoutMs);
    if (proc.pid !== undefined) proc.stdin?.write(userMessageLine(this.job.prompt));

    void (async () => {
      const res = await proc.exited;
      this.exited();
      await Promise.all([stdoutDone, stderrDone]);
      clearTimeout(this.hangTimer);
      this.setState("exited");
      const spawnError = res.spawnError;
      this.deps.log.info({ exitCode: res.exitCode ?? null, signal: res.signal ?? null }, "claude exited");
      const end: SessionEnd = {
        exitCode: res.exitCode ?? null,
        signal: res.signal ?? null,
        stderrTail: [...this.stderrTail],
      };
      if (spawnError) end.spawnError = this.deps.redact(spawnError);
      if (res.spawnErrorCode) end.spawnErrorCode = res.spawnErrorCode;
      if (this.result) end.result = this.result;
      const sessionId = this.result?.sessionId || this.parser.sessionId;
      if (sessionId) end.sessionId = sessionId;
      if (this.stopInfo) end.stop = this.stopInfo;
      if (this.lastRetry) end.lastRetry = this.lastRetry;
      const limit = this.limits.rejection(this.result?.apiErrorStatus ?? null, true);
      if (limit) end.limit = limit;
      const warning = this.limits.lastWarning;
      if (warning) end.warning = warning;
      this.resolveDone(end);
    })();
  }

  private onStdout(line: string): void {
    this.lastOutputAt = this.now();
    this.hangTimer?.refresh();
    for (const event of this.parser.parseLine(line)) {
      if (event.kind === "api_retry") {
        this.lastRetry = event;
        this.limits.onApiRetry(event);
      }
      if (event.kind === "rate_limit") this.limits.onRateLimitEvent(event);
      if (event.kind === "assistant_text") this.limits.onText(event.text);
      if (event.kind === "result") this.limits.onText(event.summary);
      if (event.kind === "result" && !this.result) {
        this.result = event;
        this.resultSeen();
        // One prompt per session: after its result Claude Code would wait for another turn.
        void this.finish();
      }
      this.deps.onEvent(event);
    }
  }

  private onHang(): void {
    if (this.state !== "running") return;
    const secs = Math.round(this.job.hangTimeoutMs / 1000);
    this.deps.log.warn({ hangTimeoutMs: this.job.hangTimeoutMs }, "claude produced no output; stopping it");
    void this.stop("hung", `hung: no output for ${secs}s`);
  }

  /** Stops the session gracefully, escalating on timeouts. Idempotent; the first reason wins. */
  stop(kind: StopKind, detail: string): Promise<void> {
    if (!this.stopInfo && this.state !== "exited") {
      this.stopInfo = { kind, detail, beforeResult: !this.result };
      this.deps.log.info({ kind, detail }, "stopping claude");
    }
    return this.finish();
  }

  private finish(): Promise<void> {
    this.stopping ??= this.runStop();
    return this.stopping;
  }

  private async runStop(): Promise<void> {
    const proc = this.proc;
    if (!proc || this.state === "exited" || this.state === "idle") return;
    this.setState("stopping");
    const { interruptGraceMs, exitGraceMs } = this.job;
    if (!this.result && proc.stdin?.writable) {
      proc.stdin.write(interruptLine(`mesh-interrupt-${this.now()}`));
      await within(Promise.race([this.resultPromise, this.exitPromise]), interruptGraceMs);
    }
    proc.stdin?.end();
    if (await within(this.exitPromise, exitGraceMs)) return;
    this.deps.log.warn({ pid: proc.pid }, "claude still running; sending SIGTERM");
    proc.kill("SIGTERM");
    if (await within(this.exitPromise, exitGraceMs)) return;
    this.deps.log.warn({ pid: proc.pid }, "claude ignored SIGTERM; sending SIGKILL");
    proc.kill("SIGKILL");
    await this.exitPromise;
  }
}
