/**
 * The paragraph appended to the system prompt of a task that may delegate: what it owns and
 * how to hand work on (`mesh-task add`, the command the shim puts on its PATH).
 */
import type { TaskSpec } from "../tasks/index.js";

export function delegationPrompt(spec: TaskSpec): string {
  const owns = spec.owns?.length ? spec.owns.join(", ") : undefined;
  const where = `You are task ${spec.id} of plan ${spec.plan} (delegation depth ${spec.depth ?? 0}).`;
  const mine = owns
    ? `You own ${owns}: change only files there.`
    : "You own no paths (writes take first-come file leases), so you cannot hand work on.";
  return [
    where,
    mine,
    "To hand part of your work to another agent of the mesh, run (with Bash)",
    '`mesh-task add --name <name> --prompt "<what it must do>" --owns <glob inside yours> [--needs <task name>...]`:',
    "it becomes its own task of the plan and runs on its own, so do not do its work yourself;",
    "`--needs` makes it wait for (and start from) tasks of the plan.",
    "The mesh refuses, with the reason on stderr, owns outside yours or overlapping another task's,",
    "and more depth or more sub-tasks than it allows.",
  ].join(" ");
}
