import { homedir } from "node:os";
import { join } from "node:path";

/** Where a daemon keeps its socket, worktrees and keys unless told otherwise. */
export const defaultStateDir = (): string => process.env.MESH_STATE_DIR ?? join(homedir(), ".agent-mesh");
