/** The harness's condition waits, with defaults for the mock's callers. */
import { waitFor as harnessWaitFor } from "../harness/index.js";

export { isAlive } from "../harness/index.js";

export function waitFor<T>(
  cond: () => T | undefined | false | Promise<T | undefined | false>,
  {
    timeoutMs = 30_000,
    intervalMs = 25,
    name = "condition",
  }: { timeoutMs?: number; intervalMs?: number; name?: string } = {},
): Promise<T> {
  return harnessWaitFor(cond, { timeoutMs, intervalMs, name });
}
