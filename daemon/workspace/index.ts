/** Public surface of the workspace folder: where attempts run (git worktrees or plain folders). */
export { keepBranchWhileTaskLives, type TaskRecordView } from "./branch-retention.js";
export { DirWorkspaceProvider } from "./dir-workspace.js";
export type { KeepBranch } from "./evict.js";
export { Git, GitCommandError, type GitRepo, HARDENING_CONFIG, redactUrlCredentials } from "./git-cmd.js";
export {
  DEFAULT_AUTHOR,
  DEFAULT_CACHE_RETENTION_MS,
  type GitWorkspaceOptions,
  GitWorkspaceProvider,
  taskBranch,
} from "./git-workspace.js";
export {
  changedPaths,
  isAncestor,
  type MergeStart,
  mergeHeads,
  mergeTree,
  NeedsConflictError,
} from "./merge.js";
export { MeshWorkspaces, type MeshWorkspacesOptions } from "./mesh-workspaces.js";
export { cacheDirFor, parseRepo, type RepoSource, validateRef } from "./repo-cache.js";
export type { RepoTransfer } from "./transfer-port.js";
export type {
  BranchCompare,
  BranchConflict,
  NeedResult,
  PrepareCarry,
  PreparedWorkspace,
  WorkspaceProvider,
} from "./workspace.js";
