/** Glue between commander actions and commands: builds the Ctx and owns Ctrl-C for them. */
import type { Command } from "commander";
import { type Ctx, makeContext } from "./context.js";

let controller: AbortController | undefined;

/** Aborted on the first SIGINT/SIGTERM (streams end, commands wrap up); a second one exits at once. */
function interruptSignal(): AbortSignal {
  if (!controller) {
    const ac = new AbortController();
    controller = ac;
    const onSignal = () => {
      if (ac.signal.aborted) process.exit(130);
      ac.abort();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  return controller.signal;
}

/** Wraps a command body as a commander action: `(…args, options, command)`. */
export function run<A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const ctx = makeContext(cmd, interruptSignal());
    try {
      await fn(ctx, ...(args.slice(0, -1) as A));
    } finally {
      ctx.close();
    }
  };
}
