export { CLAUDE_BIN, FAKE_API_KEY, isolatedClaudeEnv, REPO_ROOT } from "./claude-cli.js";
export type { MessagesView, ToolResultView } from "./conversation.js";
export {
  apiKeyHeaders,
  apiKeyLimited,
  subscriptionRejected,
  subscriptionWarning,
  type UnifiedWindow,
  unifiedHeaders,
  withApiKeyHeaders,
} from "./limits.js";
export {
  answer,
  bash,
  DEFAULT_USAGE,
  editFile,
  fail,
  type MockContent,
  type MockReply,
  type MockUsage,
  overloaded,
  rateLimited,
  readFile,
  serverError,
  stall,
  toolUse,
  unauthorized,
  writeFile,
} from "./replies.js";
export {
  type MockAnthropic,
  type MockAnthropicOptions,
  type MockRequest,
  type MockRequestKind,
  type MockScript,
  startMockAnthropic,
  steps,
  type TurnContext,
} from "./server.js";
export { isAlive, waitFor } from "./wait.js";
