/** Public surface of the workspace folder: where attempts run (git worktrees or plain folders). */
export { DirWorkspaceProvider } from "./dir-workspace.js";
export { GitCommandError, redactUrlCredentials } from "./git-cmd.js";
export {
  DEFAULT_AUTHOR,
  type GitWorkspaceOptions,
  GitWorkspaceProvider,
  parseWorktreeList,
  taskBranch,
} from "./git-workspace.js";
export { MeshWorkspaces, type MeshWorkspacesOptions } from "./mesh-workspaces.js";
export { cacheDirFor, parseRepo, type RepoSource, validateRef } from "./repo-cache.js";
export type { PreparedWorkspace, WorkspaceProvider } from "./workspace.js";
