/** A fresh empty directory per attempt, for tasks without a repo. */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { TaskSpec } from "../tasks/index.js";
import type { PreparedWorkspace, WorkspaceProvider } from "./workspace.js";

export class DirWorkspaceProvider implements WorkspaceProvider {
  constructor(private readonly root: string) {}

  async prepare(spec: TaskSpec, attempt: number): Promise<PreparedWorkspace> {
    const workdir = join(this.root, spec.id, `a${attempt}`);
    // A directory left by a crashed attempt is replaced, never reused dirty.
    await rm(workdir, { recursive: true, force: true });
    await mkdir(workdir, { recursive: true, mode: 0o700 });
    return { workdir, finish: async () => ({}) };
  }
}
