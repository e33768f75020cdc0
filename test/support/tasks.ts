/** Task specs for tests: `command` tasks that run node with a small script. */
import { type TaskSpec, validateTaskSpec } from "../../daemon/index.js";

let n = 0;
export function uniqueId(prefix = "t"): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${(n++).toString(36)}`;
}

/** A command task running `node -e <script>`. */
export function nodeTask(script: string, extra: Record<string, unknown> = {}): TaskSpec {
  return validateTaskSpec({
    id: uniqueId(),
    prompt: "test task",
    runner: "command",
    command: [process.execPath, "-e", script],
    maxAttempts: 3,
    ...extra,
  });
}
