/** The `noop` runner: succeeds at once. For checking a mesh end to end and for benchmarks. */
import type { Runner, RunOutcome } from "./runner.js";

export class NoopRunner implements Runner {
  readonly kind = "noop";
  async run(): Promise<RunOutcome> {
    return { status: "succeeded", exitCode: 0, signal: null };
  }
}
