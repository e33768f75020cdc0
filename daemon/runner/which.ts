/** Finds an executable the way a shell would (PATH search for bare names), without a shell. */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The path `cmd` would run as, or undefined when there is no such executable. */
export function resolveExecutable(
  cmd: string,
  cwd: string,
  pathEnv = process.env.PATH ?? "",
): string | undefined {
  if (cmd.includes("/")) {
    const p = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return executable(p) ? p : undefined;
  }
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    if (executable(p)) return p;
  }
  return undefined;
}
