/**
 * The `command` runner: the task's argv (never a shell) in the attempt's working directory,
 * with MESH_TASK_ID, MESH_ATTEMPT, MESH_WORKER_ID and MESH_PROMPT_FILE, in a clean environment
 * (child-env.ts: a small base, the operator's `passEnv`, the task's allowed env). Exit 0 =
 * succeeded. On abort: SIGTERM to the process group, then the whole tree is killed after
 * `killGraceMs` (at once when the attempt was fenced: another worker may take the task over soon).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawnChild } from "../../lib/index.js";
import type { RunContext, Runner, RunOutcome } from "../claim/index.js";
import { childEnv } from "./child-env.js";
import { resolveExecutable } from "./which.js";

export interface CommandRunnerOptions {
  killGraceMs?: number;
  /** Variables of the daemon's environment passed on beyond the base (PATH, HOME, LANG ...). */
  passEnv?: readonly string[];
  /** Masks secret values in output lines before they become events. */
  redact?: (text: string) => string;
  /** At most this many output lines per attempt are published as events. */
  maxLogLines?: number;
}

/** The most of one output line the runner holds (what is shown is cut to 4096 after masking). */
const MAX_HELD_LINE = 64 * 1024;

export class CommandRunner implements Runner {
  readonly kind = "command";
  private readonly killGraceMs: number;
  private readonly passEnv: readonly string[];
  private readonly redact: (text: string) => string;
  private readonly maxLogLines: number;

  constructor(opts: CommandRunnerOptions = {}) {
    this.killGraceMs = opts.killGraceMs ?? 5000;
    this.passEnv = opts.passEnv ?? [];
    this.redact = opts.redact ?? ((t) => t);
    this.maxLogLines = opts.maxLogLines ?? 1000;
  }

  async run(ctx: RunContext): Promise<RunOutcome> {
    const argv = ctx.spec.command;
    if (!argv || argv.length === 0)
      return { status: "failed", reason: "task has no command", permanent: true };
    const promptFile = join(ctx.scratchDir, "prompt.txt");
    const env = childEnv({
      from: process.env,
      passEnv: this.passEnv,
      task: ctx.spec.env,
      own: {
        MESH_TASK_ID: ctx.spec.id,
        MESH_ATTEMPT: String(ctx.attempt),
        MESH_WORKER_ID: ctx.workerId,
        MESH_PROMPT_FILE: promptFile,
      },
    });
    if (!resolveExecutable(argv[0]!, ctx.workdir, env.PATH)) {
      return {
        status: "failed",
        reason: `command not found: ${argv[0]} (not an executable on this worker's PATH)`,
        permanent: true,
        exitCode: null,
        signal: null,
      };
    }
    await writeFile(promptFile, ctx.spec.prompt, { mode: 0o600 });
    const child = spawnChild(argv, {
      cwd: ctx.workdir,
      env,
      signal: ctx.signal,
      // Fenced: another worker may take the task over soon, so nothing waits for a grace.
      killNowOn: (reason) => reason === "fenced",
      killGraceMs: this.killGraceMs,
      maxLineChars: MAX_HELD_LINE,
    });
    let lines = 0;
    // At most 64 KiB of a line is held; masked before the cut to 4 KiB, so a secret split at the
    // cut is not half shown.
    for await (const { stream, line } of child.lines()) {
      if (lines++ < this.maxLogLines)
        ctx.emit({ type: "log", stream, line: this.redact(line).slice(0, 4096) });
    }
    const res = await child.exited;
    if (res.spawnError) {
      return {
        status: "failed",
        reason: `could not start ${argv[0]}: ${res.spawnError}`,
        exitCode: null,
        signal: null,
      };
    }
    const { exitCode, signal } = res;
    if (exitCode === 0 && !ctx.signal.aborted) return { status: "succeeded", exitCode, signal };
    const reason = signal ? `killed by ${signal}` : `exit code ${exitCode}`;
    return { status: "failed", reason, exitCode, signal };
  }
}
