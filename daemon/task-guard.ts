/**
 * The claiming worker's own defence around every attempt: its ceilings are checked again before
 * anything is prepared (a spec may have been submitted through a daemon with wider ceilings, or
 * written to the bus directly), and the daemon's secret values are masked in whatever a runner
 * reports (output lines, agent events, reasons, summaries) before it reaches the bus or a record.
 */
import type { Redactor } from "../agent-shim/index.js";
import type { RunContext, Runner, RunOutcome } from "./claim/index.js";
import { isMeshError } from "./errors.js";
import {
  checkStoredSpec,
  checkTaskPolicy,
  type RunnerEvent,
  type TaskPolicy,
  type TaskSpec,
} from "./tasks/index.js";
import type { PreparedWorkspace, WorkspaceProvider } from "./workspace/index.js";

/** Why this worker refuses the spec (fields named), or undefined. */
export function policyRefusal(spec: TaskSpec, policy: TaskPolicy): string | undefined {
  const why = (check: () => void, what: string): string | undefined => {
    try {
      check();
      return undefined;
    } catch (err) {
      if (isMeshError(err)) return `${what}: ${err.message}`;
      throw err;
    }
  };
  // The spec as stored may not be one a submit accepts (written to the bus some other way).
  return (
    why(() => checkStoredSpec(spec), "refused by this worker: not a valid task spec") ??
    why(() => checkTaskPolicy(spec, policy), "refused by this worker's ceilings")
  );
}

function redactEvent(e: RunnerEvent, redact: Redactor): RunnerEvent {
  if (e.type === "log") return { ...e, line: redact(e.line) };
  const text = JSON.stringify(e.data);
  const clean = redact(text);
  if (clean === text) return e;
  try {
    return { ...e, data: JSON.parse(clean) as Record<string, unknown> };
  } catch {
    // A secret that spanned JSON syntax: keep the masked text rather than the structure.
    return { ...e, data: { redacted: clean } };
  }
}

function redactOutcome(o: RunOutcome, redact: Redactor): RunOutcome {
  const out = { ...o };
  if (out.reason !== undefined) out.reason = redact(out.reason);
  if (out.result?.summary !== undefined) out.result = { ...out.result, summary: redact(out.result.summary) };
  return out;
}

/** The runner, refusing specs above this worker's ceilings and masking secrets in what it reports. */
export function guardRunner(inner: Runner, policy: TaskPolicy, redact: Redactor): Runner {
  const guarded: Runner = {
    kind: inner.kind,
    async run(ctx: RunContext): Promise<RunOutcome> {
      const refused = policyRefusal(ctx.spec, policy);
      if (refused) {
        return { status: "failed", permanent: true, reason: refused };
      }
      const emit = (e: RunnerEvent): void => ctx.emit(redactEvent(e, redact));
      return redactOutcome(await inner.run({ ...ctx, emit }), redact);
    },
  };
  if (inner.needsWorkspace !== undefined) Object.assign(guarded, { needsWorkspace: inner.needsWorkspace });
  return guarded;
}

/** A spec this worker refuses gets no clone and no worktree; its runner then fails it (above). */
const REFUSED: PreparedWorkspace = { workdir: "", finish: async () => ({}) };

export function guardWorkspaces(inner: WorkspaceProvider, policy: TaskPolicy): WorkspaceProvider {
  return {
    prepare: (spec, attempt, signal, carry) =>
      policyRefusal(spec, policy) ? Promise.resolve(REFUSED) : inner.prepare(spec, attempt, signal, carry),
    ...(inner.sweep ? { sweep: () => inner.sweep?.() ?? Promise.resolve() } : {}),
    ...(inner.close ? { close: () => inner.close?.() ?? Promise.resolve() } : {}),
  };
}
