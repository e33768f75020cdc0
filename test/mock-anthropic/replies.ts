/**
 * What the mock answers: plain data built by small builders, so a test script reads as a list
 * of turns (`steps(writeFile("a.txt", "hi"), answer("done"))`).
 */

export interface MockUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheCreation: number;
}

export type MockContent =
  | { type: "text"; text: string }
  | { type: "tool_use"; name: string; input: Record<string, unknown>; id?: string };

export type MockReply =
  | {
      kind: "message";
      content: MockContent[];
      /** Defaults to `tool_use` when the content holds a tool call, else `end_turn`. */
      stopReason?: "end_turn" | "tool_use" | "max_tokens" | "stop_sequence";
      usage?: Partial<MockUsage>;
      /** More response headers (rate-limit headers on a successful answer: see limits.ts). */
      headers?: Record<string, string>;
    }
  | {
      kind: "error";
      status: number;
      errorType: string;
      message: string;
      /** Sent as the `retry-after` header (seconds). */
      retryAfterSeconds?: number;
      /** More response headers (rate-limit headers: see limits.ts). */
      headers?: Record<string, string>;
    }
  | {
      kind: "stall";
      /** Send the 200 headers and `message_start` first, then nothing; default: send nothing at all. */
      afterStart?: boolean;
    };

export const DEFAULT_USAGE: MockUsage = { input: 100, output: 20, cacheRead: 0, cacheCreation: 0 };

export function answer(text: string, usage?: Partial<MockUsage>): MockReply {
  return { kind: "message", content: [{ type: "text", text }], ...(usage ? { usage } : {}) };
}

/** A tool call. A relative `file_path` is resolved against the conversation's working directory. */
export function toolUse(
  name: string,
  input: Record<string, unknown>,
  opts: { text?: string } = {},
): MockReply {
  const content: MockContent[] = [];
  if (opts.text !== undefined) content.push({ type: "text", text: opts.text });
  content.push({ type: "tool_use", name, input });
  return { kind: "message", content };
}

export const writeFile = (path: string, content: string): MockReply =>
  toolUse("Write", { file_path: path, content });

/** Claude Code refuses an Edit of a file it has not Read in the same session: read it first. */
export const readFile = (path: string): MockReply => toolUse("Read", { file_path: path });

export const editFile = (path: string, oldString: string, newString: string): MockReply =>
  toolUse("Edit", { file_path: path, old_string: oldString, new_string: newString });

export const bash = (command: string, description = "run a command"): MockReply =>
  toolUse("Bash", { command, description });

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

export function fail(status: number, opts: { retryAfterSeconds?: number; message?: string } = {}): MockReply {
  const errorType = ERROR_TYPES[status] ?? "api_error";
  return {
    kind: "error",
    status,
    errorType,
    message: opts.message ?? `mock ${errorType} (${status})`,
    ...(opts.retryAfterSeconds !== undefined ? { retryAfterSeconds: opts.retryAfterSeconds } : {}),
  };
}

export const rateLimited = (retryAfterSeconds = 1): MockReply => fail(429, { retryAfterSeconds });
export const overloaded = (): MockReply => fail(529);
export const serverError = (): MockReply => fail(500);
export const unauthorized = (): MockReply => fail(401, { message: "invalid x-api-key" });

/** Hold the request open, sending nothing, until the client goes away or the mock closes. */
export const stall = (opts: { afterStart?: boolean } = {}): MockReply => ({ kind: "stall", ...opts });
