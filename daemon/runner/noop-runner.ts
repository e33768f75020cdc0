/**
 * The `noop` runner: succeeds at once. For checking a mesh end to end and for benchmarks. It
 * touches no files, so its attempts get no workspace (a task's repo is not even fetched).
 */
import type { Runner, RunOutcome } from "../claim/index.js";

export class NoopRunner implements Runner {
  readonly kind = "noop";
  readonly needsWorkspace = false;
  async run(): Promise<RunOutcome> {
    return { status: "succeeded", exitCode: 0, signal: null };
  }
}
