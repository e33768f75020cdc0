import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Every temp dir a test creates is tracked so one `removeTempDirs()` in afterAll can clean up
// even when the test failed half-way.
const tracked = new Set<string>();
let exitHookInstalled = false;

// A test process that dies before afterAll must not leave stores behind on the CI disk.
function removeAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const dir of tracked) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort: never turn a clean exit into a crash
      }
    }
  });
}

/** Creates a fresh directory under os.tmpdir() and tracks it for `removeTempDirs()`. */
export async function makeTempDir(prefix = "mesh-test-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tracked.add(dir);
  removeAllOnExit();
  return dir;
}

/** Removes one directory (tracked or not) and forgets it. */
export async function removeTempDir(dir: string): Promise<void> {
  tracked.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Removes every tracked directory; failures of one do not stop the others. */
export async function removeTempDirs(): Promise<void> {
  const dirs = [...tracked];
  tracked.clear();
  const results = await Promise.allSettled(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length > 0) {
    throw new AggregateError(
      failed.map((r) => r.reason),
      `failed to remove ${failed.length} temp dir(s)`,
    );
  }
}
