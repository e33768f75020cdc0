#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * `mesh-shim <job.json> [--parent-watch stdin|ipc|none]`: runs one Claude Code session for the
 * daemon. stdout carries the line protocol (protocol.ts), stderr the logs. A `cancel` line on
 * stdin (with `--parent-watch stdin`: how the daemon asks), SIGTERM/SIGINT, or the parent going
 * away, cancel gracefully. Exit code: 0 succeeded, 1 failed, 2 bad job,
 * 75 rate limited, 130 cancelled.
 */
import { parseArgs } from "node:util";
import pino from "pino";
import { readShimJob, type ShimJob, ShimJobError } from "./job.js";
import { CANCEL_LINE, SHIM_EXIT, type ShimLine, type ShimOutcome } from "./protocol.js";
import { makeRedactor, secretEnvValues } from "./redact.js";
import { runShim } from "./run-shim.js";

/** After the parent is gone: how long the graceful stop may take before everything is killed. */
const PARENT_GONE_KILL_MS = 3000;

const USAGE =
  "usage: mesh-shim <job.json | -> [--parent-watch stdin|ipc|none]  (- : the job file's path is the first line of stdin)";

type ParentWatch = "stdin" | "ipc" | "none";

/** The parsed command line, or what is wrong with it. */
function parseCli(argv: string[]): { jobPath: string; watch: ParentWatch } | string {
  let parsed: { values: { "parent-watch"?: string | undefined }; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { "parent-watch": { type: "string" } },
      allowPositionals: true,
    });
  } catch (err) {
    return (err as Error).message;
  }
  const [jobPath, ...extra] = parsed.positionals;
  if (!jobPath || extra.length) return "expected exactly one job file";
  const watch = parsed.values["parent-watch"] ?? (process.send ? "ipc" : "none");
  if (watch !== "stdin" && watch !== "ipc" && watch !== "none") return `bad --parent-watch ${watch}`;
  return { jobPath, watch };
}

async function main(argv: string[]): Promise<number> {
  const redact = makeRedactor(secretEnvValues(process.env));
  const write = (line: ShimLine): void => {
    process.stdout.write(`${redact(JSON.stringify(line))}\n`);
  };
  // Every log line passes the redactor too, whatever a message carries.
  const log = pino(
    { base: { component: "mesh-shim", pid: process.pid }, level: process.env.MESH_SHIM_LOG_LEVEL ?? "info" },
    { write: (s: string) => process.stderr.write(redact(s)) },
  );
  const finish = (outcome: ShimOutcome): number => {
    write({ type: "outcome", outcome });
    return SHIM_EXIT[outcome.status];
  };

  const cli = parseCli(argv);
  if (typeof cli === "string") {
    log.error({ problem: cli }, USAGE);
    return SHIM_EXIT.usage;
  }
  let { jobPath } = cli;
  const { watch } = cli;

  let job: ShimJob;
  try {
    // A pre-started ("warm") shim has loaded everything already and waits for its job here.
    if (jobPath === "-") jobPath = await firstStdinLine();
    job = await readShimJob(jobPath);
  } catch (err) {
    const reason = err instanceof ShimJobError ? err.message : `cannot load job: ${String(err)}`;
    log.error({ jobPath }, reason);
    write({ type: "outcome", outcome: { status: "failed", reason, exitCode: null, signal: null } });
    return SHIM_EXIT.usage;
  }
  const jobLog = log.child({ taskId: job.taskId, attempt: job.attempt });

  const controller = new AbortController();
  const cancel = (why: string): void => {
    if (controller.signal.aborted) return;
    jobLog.info({ why }, "cancel requested");
    controller.abort(why);
  };
  const onSignal = (sig: NodeJS.Signals): void => cancel(`cancelled (${sig})`);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // No orphan Claude Code: when the daemon dies, its end of our stdin (or IPC channel) closes.
  // Nobody can record a result any more and another worker will take the task over after the
  // lease, so after a short graceful try the whole process group (us and Claude Code's tree)
  // is killed: the session must be gone long before the lease runs out.
  const parentGone = (): void => {
    cancel("cancelled: the parent process went away");
    setTimeout(() => {
      try {
        process.kill(-process.pid, "SIGKILL");
      } catch {
        process.exit(SHIM_EXIT.failed);
      }
    }, PARENT_GONE_KILL_MS).unref();
  };
  if (watch === "stdin") {
    // A line `cancel` asks for the graceful stop (interrupt, then stdin EOF, TERM, KILL). The
    // parent asks this way, not with SIGTERM: a signal to our process group would reach Claude
    // Code too, which then dies without its result line (the session's cost and id).
    let pending = "";
    process.stdin.on("data", (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        if (line === CANCEL_LINE) cancel("cancelled (requested)");
      }
      if (pending.length > 4096) pending = "";
    });
    process.stdin.on("end", parentGone);
    process.stdin.on("error", parentGone);
    process.stdin.resume();
  } else if (watch === "ipc") {
    process.on("disconnect", parentGone);
  }

  try {
    const outcome = await runShim(job, {
      log: jobLog,
      redact,
      write,
      env: process.env,
      signal: controller.signal,
    });
    return finish(outcome);
  } catch (err) {
    jobLog.error({ err: err instanceof Error ? err.message : String(err) }, "shim error");
    return finish({
      status: "failed",
      reason: `shim error: ${err instanceof Error ? err.message : String(err)}`,
      exitCode: null,
      signal: null,
    });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // stdout/stderr writes to pipes and files are synchronous on Linux: nothing is lost here.
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`mesh-shim: fatal: ${String(err)}\n`);
    process.exit(SHIM_EXIT.failed);
  },
);

/** The first line of stdin; the rest of stdin stays open (its end means the parent is gone). */
function firstStdinLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      cleanup();
      resolve(buf.slice(0, nl).trim());
    };
    const onEnd = (): void => {
      cleanup();
      reject(new ShimJobError("stdin ended before a job path arrived"));
    };
    const cleanup = (): void => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
    };
    process.stdin.on("data", onData);
    process.stdin.on("end", onEnd);
    process.stdin.resume();
  });
}
