#!/usr/bin/env node
/**
 * `mesh-task`: the agent's one way to hand work on (issue 14 §5). The shim puts it on the
 * agent's PATH for tasks of a plan; it asks the daemon, through the attempt's per-task port,
 * to add a task to the agent's own plan. The daemon decides (depth, fan-out, owns inside the
 * parent's, no overlap with tasks that may run at once, needs inside the plan); a refusal is
 * printed on stderr with exit 3, so the agent reads why in its tool result.
 *
 *   mesh-task add --name <name> --prompt <text> --owns <glob>... [--needs <name>...] [--title <t>] [--json]
 */
import { randomUUID } from "node:crypto";
import { askPort } from "./task-port-client.js";
import { TASK_PORT_ENV, TASK_PORT_PROTOCOL_VERSION, TASK_PORT_TOKEN_ENV } from "./task-port-protocol.js";

const MESH_TASK_EXIT = { OK: 0, USAGE: 2, REFUSED: 3, UNREACHABLE: 4 } as const;
const TIMEOUT_MS = 30_000;

const USAGE = `usage: mesh-task add --name <name> --prompt <text> --owns <glob> [--owns <glob>...]
                     [--needs <name>...] [--title <text>] [--json]
Adds a task to this task's plan; it runs on any machine of the mesh as task <plan>-<name>.
  --owns   the paths it may change: globs inside this task's own owns (repeat, or several after one --owns)
  --needs  names of tasks of the plan it waits for (it starts from their results)`;

interface AddArgs {
  name?: string;
  prompt?: string;
  title?: string;
  owns: string[];
  needs: string[];
  json: boolean;
}

class UsageError extends Error {}

function parseAddArgs(argv: readonly string[]): AddArgs {
  const out: AddArgs = { owns: [], needs: [], json: false };
  let list: "owns" | "needs" | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--name":
      case "--id":
        out.name = value();
        list = undefined;
        break;
      case "--prompt":
        out.prompt = value();
        list = undefined;
        break;
      case "--title":
        out.title = value();
        list = undefined;
        break;
      case "--owns":
      case "--needs":
        list = flag === "--owns" ? "owns" : "needs";
        out[list].push(value());
        break;
      case "--json":
        out.json = true;
        list = undefined;
        break;
      default:
        if (a.startsWith("-") || !list) throw new UsageError(`unknown argument "${a}"`);
        out[list].push(a);
    }
  }
  if (!out.name) throw new UsageError("--name is required (the task's name inside the plan)");
  if (!out.prompt) throw new UsageError("--prompt is required (what the task should do)");
  if (out.owns.length === 0) throw new UsageError("--owns is required (the paths the task may change)");
  return out;
}

async function main(argv: string[]): Promise<number> {
  const err = (s: string) => process.stderr.write(`mesh-task: ${s}\n`);
  const [cmd, ...rest] = argv;
  if (cmd === "--help" || cmd === "-h" || cmd === "help") {
    process.stdout.write(`${USAGE}\n`);
    return MESH_TASK_EXIT.OK;
  }
  if (cmd !== "add") {
    err(cmd ? `unknown command "${cmd}"` : "no command given");
    process.stderr.write(`${USAGE}\n`);
    return MESH_TASK_EXIT.USAGE;
  }
  let args: AddArgs;
  try {
    args = parseAddArgs(rest);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(e.message);
    process.stderr.write(`${USAGE}\n`);
    return MESH_TASK_EXIT.USAGE;
  }
  const socket = process.env[TASK_PORT_ENV];
  const token = process.env[TASK_PORT_TOKEN_ENV];
  if (!socket || !token) {
    err(`no task port (${TASK_PORT_ENV} is not set): mesh-task works only inside a task of a plan`);
    return MESH_TASK_EXIT.UNREACHABLE;
  }
  const id = randomUUID();
  const request = {
    v: TASK_PORT_PROTOCOL_VERSION,
    id,
    token,
    kind: "add-task",
    name: args.name,
    prompt: args.prompt,
    owns: args.owns,
    needs: args.needs,
    ...(args.title ? { title: args.title } : {}),
  };
  let res: Awaited<ReturnType<typeof askPort>>;
  try {
    res = await askPort(socket, request, TIMEOUT_MS);
  } catch (e) {
    err((e as Error).message);
    return MESH_TASK_EXIT.UNREACHABLE;
  }
  if (!res.ok) {
    if (args.json) process.stdout.write(`${JSON.stringify({ ok: false, error: res.error })}\n`);
    err(`refused (${res.error.code}): ${res.error.message}`);
    return MESH_TASK_EXIT.REFUSED;
  }
  if (res.kind !== "add-task" || res.id !== id) {
    err("the task port answered another request");
    return MESH_TASK_EXIT.UNREACHABLE;
  }
  const { taskId, created, state, depth } = res;
  if (args.json) process.stdout.write(`${JSON.stringify({ ok: true, taskId, created, state, depth })}\n`);
  else
    process.stdout.write(
      `${created ? "added" : "already added"} task ${taskId} (${state}, depth ${depth}); it runs on its own: do not do its work here\n`,
    );
  return MESH_TASK_EXIT.OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`mesh-task: ${(e as Error)?.message ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
