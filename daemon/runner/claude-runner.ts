/**
 * The Claude Code runner: one `mesh-shim` process per attempt. The shim owns Claude Code
 * (flags, stream parsing, hang detection, graceful interrupt); this side writes the job file,
 * hands over the API key through the environment only, relays the shim's events, and turns
 * its outcome line into a RunOutcome.
 */
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import pino, { type Logger } from "pino";
import { z } from "zod";
import {
  CANCEL_LINE,
  CREDENTIAL_ENV,
  PERMISSION_MODES,
  parseShimLine,
  type ShimJobInput,
  type ShimOutcome,
} from "../../agent-shim/index.js";
import { type Child, LEAN_NODE_FLAGS, spawnChild } from "../../lib/index.js";
import type { RunContext, Runner, RunOutcome } from "../claim/index.js";
import { isMeshError, MeshError } from "../errors.js";
import type { RunnerEvent, TaskResultInfo } from "../tasks/index.js";
import { monotonicNow } from "../util/index.js";
import { delegationPrompt } from "./delegation-prompt.js";
import { EventCap } from "./event-cap.js";
import type { PlanOwners } from "./plan-owners.js";
import type { TaskPortOpener } from "./task-port.js";
import { resolveExecutable } from "./which.js";

/** Daemon variables that look like secrets are not handed to agents unless named in `passEnv`. */
const SECRET_ENV_RE = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i;
/** A task's own env may not redirect the API, the key, or the isolation the shim sets up. */
const RESERVED_TASK_ENV_RE =
  /^(ANTHROPIC_|CLAUDE_|OTEL_)|^(NODE_OPTIONS|XDG_RUNTIME_DIR|DISABLE_AUTOUPDATER)$/;
const STDERR_TAIL = 10;

const apiKeySourceSchema = z.union([
  z.literal("none"),
  z.strictObject({ env: z.string().min(1), as: z.enum(CREDENTIAL_ENV).optional() }),
  z.strictObject({ file: z.string().min(1), as: z.enum(CREDENTIAL_ENV).optional() }),
]);

const ms = z.number().int().positive();

export const claudeRunnerOptionsSchema = z.strictObject({
  /** argv of Claude Code; default `["claude"]` (from PATH). */
  claudeCommand: z.array(z.string().min(1)).min(1).default(["claude"]),
  /** argv of the shim, before the job path; default node + dist/agent-shim/main.js next to this module. */
  shimCommand: z.array(z.string().min(1)).min(1).optional(),
  defaultModel: z.string().min(1).optional(),
  permissionMode: z.enum(PERMISSION_MODES).default("acceptEdits"),
  allowedTools: z.array(z.string().min(1)).default([]),
  disallowedTools: z.array(z.string().min(1)).default([]),
  maxTurns: z.number().int().positive().optional(),
  maxBudgetUsd: z.number().positive().optional(),
  appendSystemPrompt: z.string().optional(),
  /** `--settings`: a file path, inline JSON text, or an object (serialised inline). */
  settings: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
  /** Added to every session's environment (after the inherited daemon env). */
  extraEnv: z.record(z.string(), z.string()).default({}),
  /**
   * Inherit the daemon's whole environment (minus secret-looking names); by default the shim
   * gets a minimal set (PATH, HOME, locale, TLS trust and proxies) plus `passEnv`.
   */
  inheritEnv: z.boolean().default(false),
  /** Daemon variables to hand to agents as well, secret-looking ones included (e.g. `GITHUB_TOKEN`). */
  passEnv: z.array(z.string().min(1)).default([]),
  /** Where the API key comes from, read at each run; it reaches Claude Code as env `as`. */
  apiKey: apiKeySourceSchema.default({ env: "ANTHROPIC_API_KEY" }),
  /** Per-task `CLAUDE_CONFIG_DIR`s live under `<configRoot>/<task id>/config` (kept across attempts). */
  configRoot: z.string().min(1).default(join(tmpdir(), "agent-mesh-claude")),
  hangTimeoutMs: ms.default(15 * 60_000),
  heartbeatMs: ms.default(15_000),
  /** `CLAUDE_CODE_MAX_RETRIES`. */
  maxRetries: z.number().int().nonnegative().default(4),
  interruptGraceMs: ms.default(10_000),
  exitGraceMs: ms.default(5_000),
  /** After SIGTERM to the shim (cancel): SIGKILL its process group this much later. */
  killAfterMs: ms.optional(),
  /** No line from the shim (not even a heartbeat) for this long: kill it. Default 4 heartbeats + 30 s. */
  shimSilenceMs: ms.optional(),
  /** Minimum wait before retrying a rate-limited attempt. */
  rateLimitDelayMs: ms.default(60_000),
  /** Relay shim heartbeats as `agent` events of kind `heartbeat`. */
  emitHeartbeats: z.boolean().default(true),
  /** Keep one mesh-shim started and waiting after the first task, so the next one starts at once. */
  prewarm: z.boolean().default(true),
  /** Agent events one attempt may publish (limits.agentEventsPerAttempt); the rest are counted only. */
  maxEventsPerAttempt: z.number().int().positive().default(5000),
  /** Bytes of agent event data one attempt may publish (limits.agentEventBytesPerAttempt). */
  maxEventBytesPerAttempt: z
    .number()
    .int()
    .positive()
    .default(10 * 1024 * 1024),
});

export type ClaudeRunnerOptions = z.input<typeof claudeRunnerOptionsSchema> & {
  logger?: Logger;
  /** A tap on every raw line the shim prints (tests, debugging). */
  onShimLine?: (stream: "stdout" | "stderr", line: string) => void;
  /** The `owns` of the other tasks of a task's plan (names the owner of a refused path). */
  planOwners?: PlanOwners;
  /** Opens the per-task port (file leases) for an attempt of a task without `owns`. */
  taskPorts?: TaskPortOpener;
  /** Told of each agent event the per-attempt cap kept off the bus (metrics). */
  onEventDropped?: (e: { pool: string; model?: string; event: RunnerEvent }) => void;
};
type Config = z.output<typeof claudeRunnerOptionsSchema> & {
  shimCommand: string[];
  killAfterMs: number;
  shimSilenceMs: number;
};

const MINIMAL_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "TERM",
  "TMPDIR",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/** The shim next to this module: built JS in dist/, or the TypeScript source through tsx. */
export function defaultShimCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  const root = resolve(dirname(here), "..", "..");
  if (here.endsWith(".ts")) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    return [process.execPath, ...LEAN_NODE_FLAGS, "--import", tsx, join(root, "agent-shim", "main.ts")];
  }
  return [process.execPath, ...LEAN_NODE_FLAGS, join(root, "agent-shim", "main.js")];
}

type ShimProcess = Child;
type OpenTaskPortLike = Awaited<ReturnType<TaskPortOpener["open"]>>;

/** A shim's stdout line is one JSON message; held whole up to this size (events are capped). */
const MAX_SHIM_LINE = 16 * 1024 * 1024;

export class ClaudeRunner implements Runner {
  readonly kind = "claude";
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly onShimLine: ClaudeRunnerOptions["onShimLine"];
  private readonly onEventDropped: ClaudeRunnerOptions["onEventDropped"];
  private readonly planOwners: PlanOwners | undefined;
  private readonly taskPorts: TaskPortOpener | undefined;

  constructor(options: ClaudeRunnerOptions = {}) {
    const { logger, onShimLine, onEventDropped, planOwners, taskPorts, ...rest } = options;
    this.planOwners = planOwners;
    this.taskPorts = taskPorts;
    const parsed = claudeRunnerOptionsSchema.safeParse(rest);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = `claudeRunner.${issue?.path.join(".") ?? ""}`;
      throw new MeshError("INVALID_ARGUMENT", `${field}: ${issue?.message ?? "invalid"}`, {
        field,
        cause: parsed.error,
      });
    }
    const o = parsed.data;
    this.cfg = {
      ...o,
      shimCommand: o.shimCommand ?? defaultShimCommand(),
      killAfterMs: o.killAfterMs ?? o.interruptGraceMs + 2 * o.exitGraceMs + 5_000,
      shimSilenceMs: o.shimSilenceMs ?? 4 * o.heartbeatMs + 30_000,
    };
    this.log = (logger ?? pino({ level: "silent" })).child({ component: "claude-runner" });
    this.onShimLine = onShimLine;
    this.onEventDropped = onEventDropped;
  }

  private warm: ShimProcess | undefined;
  private warming: Promise<void> | undefined;
  private closed = false;

  /**
   * Starts mesh-shim. With `jobPath` "-" it loads and then waits for the path on stdin. stdin
   * stays open: a `cancel` line on it asks for the graceful stop, and its EOF tells the shim the
   * daemon is gone.
   */
  private spawnShim(env: Record<string, string>, cwd: string, jobPath: string): ShimProcess {
    const [cmd, ...prefix] = this.cfg.shimCommand;
    // Under a guardian where possible: Claude Code's tool processes die with the run, even those
    // that left its process group, and all of it dies at once with the daemon. Its own process
    // group, so a forced stop also reaches Claude Code and its tool processes.
    const child = spawnChild([cmd!, ...prefix, jobPath, "--parent-watch", "stdin"], {
      cwd,
      env,
      stdin: "pipe",
      maxLineChars: MAX_SHIM_LINE,
    });
    // A write to a shim that has just exited (EPIPE) is no error of ours: its exit says the rest.
    child.stdin?.on("error", () => undefined);
    return child;
  }

  private takeWarmShim(): ShimProcess | undefined {
    const w = this.warm;
    this.warm = undefined;
    return w?.running ? w : undefined;
  }

  /** Keeps one shim started and waiting, once this runner has run a task (idle daemons hold none). */
  private prewarmSoon(): void {
    if (this.closed || this.warm || this.warming) return;
    this.warming = (async () => {
      try {
        await mkdir(this.cfg.configRoot, { recursive: true, mode: 0o700 });
        const w = this.spawnShim(await this.shimEnv(), this.cfg.configRoot, "-");
        if (this.closed) w.kill();
        else this.warm = w;
      } catch (err) {
        this.log.debug({ err: String(err) }, "could not pre-start a shim");
      } finally {
        this.warming = undefined;
      }
    })();
  }

  /** Stops the pre-started shim. */
  async close(): Promise<void> {
    this.closed = true;
    await this.warming;
    const w = this.takeWarmShim();
    if (w) {
      w.stdin?.end();
      w.kill();
      await w.exited;
    }
  }

  /** The folder holding a task's Claude Code config and transcripts. */
  taskStateDir(taskId: string): string {
    return join(this.cfg.configRoot, taskId);
  }

  /** Drops a task's Claude Code state (call once the task is terminal). */
  async forgetTask(taskId: string): Promise<void> {
    await rm(this.taskStateDir(taskId), { recursive: true, force: true });
  }

  private async readApiKey(): Promise<{ name: string; value: string } | undefined> {
    const src = this.cfg.apiKey;
    if (src === "none") return undefined;
    const name = src.as ?? "ANTHROPIC_API_KEY";
    if ("env" in src) {
      const value = process.env[src.env];
      return value ? { name, value } : undefined;
    }
    try {
      const value = (await readFile(src.file, "utf8")).trim();
      return value ? { name, value } : undefined;
    } catch (err) {
      // The error names the file, never its content.
      throw new MeshError(
        "FAILED_PRECONDITION",
        `cannot read the API key file ${src.file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
        { cause: err },
      );
    }
  }

  private async shimEnv(): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    const pass = new Set(this.cfg.passEnv);
    const credentials = new Set<string>(CREDENTIAL_ENV);
    const names = this.cfg.inheritEnv ? Object.keys(process.env) : [...MINIMAL_ENV, ...this.cfg.passEnv];
    for (const k of names) {
      const v = process.env[k];
      if (v === undefined || credentials.has(k)) continue;
      if (SECRET_ENV_RE.test(k) && !pass.has(k)) continue;
      env[k] = v;
    }
    Object.assign(env, this.cfg.extraEnv);
    const key = await this.readApiKey();
    if (key) env[key.name] = key.value;
    else if (this.cfg.apiKey !== "none") throw new MeshError("FAILED_PRECONDITION", this.noKeyHint());
    return env;
  }

  private noKeyHint(): string {
    const src = this.cfg.apiKey;
    const where = src === "none" ? "" : "env" in src ? `$${src.env} is not set` : `${src.file} is empty`;
    return `no Anthropic API key for Claude Code on this worker (${where}): set ANTHROPIC_API_KEY in meshd's environment or claude.apiKeyFile in its config`;
  }

  /** Why Claude Code cannot run here: its command is missing, or there is no API key. */
  async unavailable(): Promise<string | undefined> {
    const [cmd] = this.cfg.claudeCommand;
    if (!resolveExecutable(cmd!, process.cwd())) {
      return `${cmd} not found on this worker (install Claude Code or set claude.command in meshd's config)`;
    }
    if (this.cfg.apiKey !== "none" && !(await this.readApiKey().catch(() => undefined)))
      return this.noKeyHint();
    return undefined;
  }

  private taskEnv(ctx: RunContext): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.spec.env)) {
      if (RESERVED_TASK_ENV_RE.test(k)) {
        this.log.warn({ taskId: ctx.spec.id, name: k }, "task env variable is reserved; ignored");
        continue;
      }
      out[k] = v;
    }
    return out;
  }

  private buildJob(ctx: RunContext): ShimJobInput {
    const a = ctx.spec.agent;
    const c = this.cfg;
    const resume = ctx.previousSessionId && a.resume !== "never" ? ctx.previousSessionId : undefined;
    const append = [c.appendSystemPrompt, a.appendSystemPrompt].filter((s): s is string => !!s).join("\n\n");
    const job: ShimJobInput = {
      v: 1,
      taskId: ctx.spec.id,
      attempt: ctx.attempt,
      prompt: ctx.spec.prompt,
      workdir: ctx.workdir,
      claudeCommand: c.claudeCommand,
      permissionMode: a.permissionMode ?? c.permissionMode,
      // A task narrows: its allowedTools replace the operator's (the ceilings allowed each one),
      // its disallowedTools add to the operator's.
      allowedTools: a.allowedTools ?? c.allowedTools,
      disallowedTools: [...new Set([...c.disallowedTools, ...(a.disallowedTools ?? [])])],
      sessionId: randomUUID(),
      configDir: join(this.taskStateDir(ctx.spec.id), "config"),
      tmpDir: join(ctx.scratchDir, "claude-tmp"),
      runtimeDir: join(ctx.scratchDir, "claude-run"),
      maxRetries: c.maxRetries,
      env: this.taskEnv(ctx),
      hangTimeoutMs: c.hangTimeoutMs,
      heartbeatMs: c.heartbeatMs,
      interruptGraceMs: c.interruptGraceMs,
      exitGraceMs: c.exitGraceMs,
    };
    const model = a.model ?? c.defaultModel;
    if (model) job.model = model;
    // The operator's values are ceilings: a task can only lower them (tasks/policy.ts refuses more).
    const maxTurns = lowest(a.maxTurns, c.maxTurns);
    if (maxTurns !== undefined) job.maxTurns = maxTurns;
    const budget = lowest(a.maxBudgetUsd, c.maxBudgetUsd);
    if (budget !== undefined) job.maxBudgetUsd = budget;
    if (append) job.appendSystemPrompt = append;
    if (c.settings !== undefined) {
      job.settings = typeof c.settings === "string" ? c.settings : JSON.stringify(c.settings);
    }
    if (resume) job.resumeSessionId = resume;
    return job;
  }

  /**
   * The ownership hook for this attempt: a task with `owns` is held to them (and told who owns
   * the rest of its plan); one without takes file leases through the per-task port, when this
   * daemon serves them and the task works in a repo.
   */
  private async guardWrites(ctx: RunContext, job: ShimJobInput): Promise<OpenTaskPortLike | undefined> {
    const owns = ctx.spec.owns;
    if (owns) job.ownsHook = { owns, others: (await this.planOwners?.(ctx.spec)) ?? {} };
    const leases = !owns && !!ctx.spec.repo && !!ctx.workdir;
    // A task of a plan may add tasks to it: `mesh-task` on its PATH, told in its system prompt.
    const addTask = !!ctx.spec.plan && this.taskPorts?.servesAddTask?.() === true;
    if (!this.taskPorts || (!leases && !addTask)) return undefined;
    const port = await this.taskPorts.open(ctx, { leases, addTask });
    if (leases) job.ownsHook = { port: { path: port.path, token: port.token } };
    if (addTask) {
      job.meshTask = { path: port.path, token: port.token };
      job.appendSystemPrompt = [job.appendSystemPrompt, delegationPrompt(ctx.spec)]
        .filter(Boolean)
        .join("\n\n");
    }
    return port;
  }

  async run(ctx: RunContext): Promise<RunOutcome> {
    let port: OpenTaskPortLike | undefined;
    try {
      return await this.runAttempt(ctx, (p) => {
        port = p;
      });
    } finally {
      await port?.close();
    }
  }

  private async runAttempt(ctx: RunContext, keepPort: (p: OpenTaskPortLike) => void): Promise<RunOutcome> {
    const log = this.log.child({ taskId: ctx.spec.id, attempt: ctx.attempt });
    if (ctx.signal.aborted)
      return { status: "failed", reason: `aborted before start (${String(ctx.signal.reason)})` };

    let env: Record<string, string>;
    const jobPath = join(ctx.scratchDir, "shim-job.json");
    let port: OpenTaskPortLike | undefined;
    try {
      env = await this.shimEnv();
      await mkdir(ctx.scratchDir, { recursive: true });
      const job = this.buildJob(ctx);
      port = await this.guardWrites(ctx, job);
      if (port) keepPort(port);
      await writeFile(jobPath, JSON.stringify(job), { mode: 0o600 });
    } catch (err) {
      const permanent = isMeshError(err, "FAILED_PRECONDITION");
      return {
        status: "failed",
        reason: `cannot prepare the claude session: ${(err as Error).message}`,
        permanent,
      };
    }

    log.info({ shim: this.cfg.shimCommand, resume: ctx.previousSessionId ?? null }, "starting mesh-shim");
    // A pre-started shim skips Node's start-up and module loading on this task's critical path.
    const warm = this.takeWarmShim();
    const proc = warm ?? this.spawnShim(env, ctx.scratchDir, jobPath);
    if (warm) warm.stdin?.write(`${jobPath}\n`);
    if (this.cfg.prewarm) this.prewarmSoon();

    let outcome: ShimOutcome | undefined;
    let lastLineAt = monotonicNow();
    const cap = new EventCap({
      maxEvents: this.cfg.maxEventsPerAttempt,
      maxBytes: this.cfg.maxEventBytesPerAttempt,
    });
    const stderrTail: string[] = [];
    let killedFor: string | undefined;
    const forceKill = (why: string): void => {
      killedFor ??= why;
      log.warn({ why }, "killing mesh-shim process group");
      proc.kill();
    };

    const onStdout = (line: string): void => {
      lastLineAt = monotonicNow();
      this.onShimLine?.("stdout", line);
      const msg = parseShimLine(line);
      if (!msg) {
        log.debug({ line }, "unexpected shim stdout");
        return;
      }
      switch (msg.type) {
        case "event": {
          const { kind, ...data } = msg.event;
          const verdict = cap.admit(kind, Buffer.byteLength(line));
          if (verdict === "send") ctx.emit({ type: "agent", kind, data });
          else {
            if (verdict === "truncate") {
              log.warn(cap.marker(), "agent event cap reached; further events are only counted");
              ctx.emit({ type: "agent", kind: "events_truncated", data: cap.marker() });
            }
            const model = ctx.spec.agent.model;
            this.onEventDropped?.({
              pool: ctx.pool,
              event: { type: "agent", kind, data },
              ...(model ? { model } : {}),
            });
          }
          break;
        }
        case "heartbeat":
          if (this.cfg.emitHeartbeats) {
            ctx.emit({ type: "agent", kind: "heartbeat", data: { idleMs: msg.idleMs, pid: msg.pid } });
          }
          break;
        case "started":
          ctx.emit({
            type: "agent",
            kind: "shim_started",
            data: {
              pid: msg.pid,
              resumed: msg.resumed,
              ...(msg.sessionId ? { sessionId: msg.sessionId } : {}),
            },
          });
          break;
        case "outcome":
          outcome = msg.outcome;
          break;
      }
    };
    const onStderr = (line: string): void => {
      this.onShimLine?.("stderr", line);
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL) stderrTail.shift();
      log.debug({ line }, "shim stderr");
    };
    const output = (async () => {
      for await (const { stream, line } of proc.lines()) (stream === "stdout" ? onStdout : onStderr)(line);
    })();

    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      // Fenced: nothing this run does can be recorded, and another worker may take over soon.
      if (ctx.signal.reason === "fenced") {
        forceKill("its attempt was fenced");
        return;
      }
      // Asked on its stdin: SIGTERM to its process group would reach Claude Code too, which then
      // dies without the result line that carries the session's cost and id.
      const stdin = proc.stdin;
      const asked = stdin?.writable === true;
      if (asked) stdin.write(`${CANCEL_LINE}\n`);
      log.info({ reason: String(ctx.signal.reason), how: asked ? "stdin" : "SIGTERM" }, "aborting mesh-shim");
      if (!asked) proc.signal("SIGTERM");
      killTimer = setTimeout(() => forceKill("did not stop after SIGTERM"), this.cfg.killAfterMs);
    };
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const watchdog = setInterval(
      () => {
        if (monotonicNow() - lastLineAt > this.cfg.shimSilenceMs) forceKill("stopped responding");
      },
      Math.min(this.cfg.heartbeatMs, 5_000),
    );

    const res = await proc.exited;
    await output;
    clearInterval(watchdog);
    clearTimeout(killTimer);
    ctx.signal.removeEventListener("abort", onAbort);
    // Whatever the shim left behind (a tool's child process) went with it: the guardian kills
    // the whole tree, or spawnChild its process group.
    log.info(
      {
        exitCode: res.exitCode,
        signal: res.signal,
        status: outcome?.status,
        ...(cap.dropped > 0 ? { eventsDropped: cap.dropped } : {}),
      },
      "mesh-shim exited",
    );

    const mapped = this.mapOutcome(ctx, outcome, {
      exitCode: res.exitCode,
      signal: res.signal,
      spawnError: res.spawnError,
      stderrTail,
      killedFor,
    });
    return mapped;
  }

  private mapOutcome(
    ctx: RunContext,
    outcome: ShimOutcome | undefined,
    shim: {
      exitCode: number | null;
      signal: string | null;
      spawnError: string | undefined;
      stderrTail: string[];
      killedFor: string | undefined;
    },
  ): RunOutcome {
    const aborted = ctx.signal.aborted ? `aborted (${String(ctx.signal.reason)})` : undefined;
    if (!outcome) {
      const how = shim.spawnError
        ? `could not start mesh-shim: ${shim.spawnError}`
        : shim.killedFor
          ? `mesh-shim ${shim.killedFor} and was killed`
          : `mesh-shim ${shim.signal ? `was killed by ${shim.signal}` : `exited with code ${shim.exitCode}`} without an outcome`;
      const tail = shim.stderrTail.at(-1);
      return {
        status: "failed",
        reason: aborted
          ? `${aborted}; ${how}`
          : `${how}${tail && !shim.spawnError ? `: ${tail.slice(0, 300)}` : ""}`,
        exitCode: shim.exitCode,
        signal: shim.signal,
      };
    }
    const base: RunOutcome = { status: "failed", exitCode: outcome.exitCode, signal: outcome.signal };
    const result = toResultInfo(outcome);
    if (result) base.result = result;
    if (outcome.status === "succeeded" && outcome.result?.isError === false)
      return { ...base, status: "succeeded" };
    if (outcome.status === "rate_limited") {
      return {
        ...base,
        status: "rate_limited",
        reason: outcome.reason ?? "rate limited",
        retryAfterMs: Math.max(outcome.retryAfterMs ?? 0, this.cfg.rateLimitDelayMs),
        ...(outcome.limit ? { limit: { ...outcome.limit } } : {}),
      };
    }
    if (outcome.status === "cancelled") return { ...base, reason: aborted ?? outcome.reason ?? "cancelled" };
    const reason = outcome.reason ?? "claude session failed";
    // Retrying cannot fix these: the program is missing, or the credentials are refused.
    if (outcome.failure === "claude_not_found") {
      return { ...base, permanent: true, reason: `${reason} (install Claude Code or set claude.command)` };
    }
    if (outcome.failure === "not_authenticated") {
      return {
        ...base,
        permanent: true,
        reason: `Claude Code was not authenticated (${reason}): ${this.noKeyHint().replace(/^no Anthropic API key for Claude Code on this worker \([^)]*\): /, "")}`,
      };
    }
    return { ...base, reason };
  }
}

function toResultInfo(outcome: ShimOutcome): TaskResultInfo | undefined {
  const r = outcome.result;
  if (!r) return undefined;
  const info: TaskResultInfo = {};
  if (r.summary) info.summary = r.summary;
  if (r.costUsd !== undefined) info.costUsd = r.costUsd;
  if (r.tokens) info.tokens = { ...r.tokens };
  if (r.turns !== undefined) info.turns = r.turns;
  if (r.sessionId) info.sessionId = r.sessionId;
  if (r.durationMs !== undefined) info.durationMs = r.durationMs;
  if (r.model) info.model = r.model;
  return info;
}

/** The smaller of two optional limits (undefined: no limit). */
function lowest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}
