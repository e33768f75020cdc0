/**
 * Claude Code's `--output-format stream-json` lines turned into typed agent events. Only
 * `result` carries trustworthy totals; the per-message usage of assistant lines is partial.
 */
import { rateLimitInfo } from "./limits.js";

export interface TokenCounts {
  input: number;
  output: number;
  cacheRead: number;
  cacheCreation: number;
}

export type AgentEvent =
  | {
      kind: "session_started";
      sessionId: string;
      model?: string;
      cwd?: string;
      permissionMode?: string;
      claudeVersion?: string;
    }
  | { kind: "assistant_text"; text: string; truncated?: boolean }
  | { kind: "tool_use"; tool: string; toolUseId: string; filePath?: string; command?: string }
  | { kind: "tool_result"; toolUseId: string; tool?: string; isError: boolean }
  | { kind: "tool_denied"; tool: string; toolUseId?: string; filePath?: string }
  | {
      kind: "api_retry";
      status: number | null;
      attempt: number;
      maxRetries?: number;
      retryDelayMs?: number;
      error?: string;
    }
  | {
      kind: "result";
      subtype: string;
      isError: boolean;
      apiErrorStatus: number | null;
      costUsd: number;
      tokens: TokenCounts;
      turns: number;
      durationMs: number;
      durationApiMs?: number;
      sessionId: string;
      model?: string;
      terminalReason?: string;
      permissionDenials: number;
      /** The final text (or error message), shortened. */
      summary: string;
    }
  | {
      /** Claude Code's `rate_limit_event` (subscription logins); `resetsAt` in epoch ms. */
      kind: "rate_limit";
      status: "allowed" | "allowed_warning" | "rejected";
      resetsAt?: number;
      window?: string;
      utilization?: number;
    }
  | { kind: "control_response"; requestId: string; subtype: string }
  /** The ownership hook refused a tool call; `reason` names the path and its owner or holder. */
  | { kind: "hook_denied"; tool: string; reason: string }
  /** The ownership hook let a call through it could not fully judge (a Bash command). */
  | { kind: "hook_note"; tool: string; note: string }
  /** Emitted by the shim (not Claude Code): a resume was asked for but is not possible here. */
  | { kind: "resume_skipped"; sessionId: string; reason: string };

export type AgentEventKind = AgentEvent["kind"];
export type ResultEvent = Extract<AgentEvent, { kind: "result" }>;

export const MAX_TEXT = 4000;
const MAX_COMMAND = 500;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

export function clip(s: string, max: number): { text: string; truncated: boolean } {
  return s.length <= max ? { text: s, truncated: false } : { text: `${s.slice(0, max)}…`, truncated: true };
}

function filePathOf(input: Obj): string | undefined {
  return str(input.file_path) ?? str(input.notebook_path) ?? str(input.path);
}

function tokensOf(usage: unknown): TokenCounts {
  const u = isObj(usage) ? usage : {};
  return {
    input: num(u.input_tokens) ?? 0,
    output: num(u.output_tokens) ?? 0,
    cacheRead: num(u.cache_read_input_tokens) ?? 0,
    cacheCreation: num(u.cache_creation_input_tokens) ?? 0,
  };
}

/** The model that cost the most in `modelUsage` (sub-agents may add cheaper ones). */
function mainModel(modelUsage: unknown): string | undefined {
  if (!isObj(modelUsage)) return undefined;
  let best: string | undefined;
  let bestCost = -1;
  for (const [name, u] of Object.entries(modelUsage)) {
    const cost = isObj(u) ? (num(u.costUSD) ?? 0) : 0;
    if (cost > bestCost) {
      best = name;
      bestCost = cost;
    }
  }
  return best;
}

/** Stateful: remembers tool names by id so results and denials can name their tool. */
export class StreamParser {
  private readonly tools = new Map<string, string>();
  private initModel: string | undefined;
  sessionId: string | undefined;

  /** Parses one stdout line; a line that is not JSON, or of no interest, yields nothing. */
  parseLine(line: string): AgentEvent[] {
    const trimmed = line.trim();
    if (!trimmed.startsWith("{")) return [];
    let msg: unknown;
    try {
      msg = JSON.parse(trimmed);
    } catch {
      return [];
    }
    return isObj(msg) ? this.parse(msg) : [];
  }

  parse(msg: Obj): AgentEvent[] {
    switch (msg.type) {
      case "system":
        return this.system(msg);
      case "assistant":
        return this.assistant(msg);
      case "user":
        return this.user(msg);
      case "result":
        return this.result(msg);
      case "rate_limit_event": {
        const info = rateLimitInfo(msg);
        return info ? [{ kind: "rate_limit", ...info }] : [];
      }
      case "control_response": {
        const r = isObj(msg.response) ? msg.response : {};
        return [
          { kind: "control_response", requestId: str(r.request_id) ?? "", subtype: str(r.subtype) ?? "" },
        ];
      }
      default:
        return [];
    }
  }

  private system(msg: Obj): AgentEvent[] {
    if (msg.subtype === "init") {
      const sessionId = str(msg.session_id) ?? "";
      this.sessionId = sessionId || this.sessionId;
      this.initModel = str(msg.model);
      const e: AgentEvent = { kind: "session_started", sessionId };
      if (this.initModel) e.model = this.initModel;
      const cwd = str(msg.cwd);
      if (cwd) e.cwd = cwd;
      const mode = str(msg.permissionMode);
      if (mode) e.permissionMode = mode;
      const version = str(msg.claude_code_version);
      if (version) e.claudeVersion = version;
      return [e];
    }
    if (msg.subtype === "hook_response") return this.hookResponse(msg);
    if (msg.subtype === "api_retry") {
      const e: AgentEvent = {
        kind: "api_retry",
        status: num(msg.error_status) ?? null,
        attempt: num(msg.attempt) ?? 0,
      };
      const max = num(msg.max_retries);
      if (max !== undefined) e.maxRetries = max;
      const delay = num(msg.retry_delay_ms);
      if (delay !== undefined) e.retryDelayMs = Math.round(delay);
      const error = str(msg.error);
      if (error) e.error = error;
      return [e];
    }
    return [];
  }

  /** A PreToolUse hook's answer (`--include-hook-events`): a refusal, or the mesh hook's note. */
  private hookResponse(msg: Obj): AgentEvent[] {
    const name = str(msg.hook_name) ?? "";
    if (str(msg.hook_event) !== "PreToolUse" && !name.startsWith("PreToolUse")) return [];
    const tool = name.includes(":") ? name.slice(name.indexOf(":") + 1) : "unknown";
    let out: Obj = {};
    try {
      const v: unknown = JSON.parse(str(msg.stdout)?.trim() || "{}");
      if (isObj(v)) out = v;
    } catch {
      // Not JSON: a plain hook; only its exit code says anything.
    }
    const specific = isObj(out.hookSpecificOutput) ? out.hookSpecificOutput : {};
    if (specific.permissionDecision === "deny" || msg.exit_code === 2) {
      const reason = str(specific.permissionDecisionReason) ?? str(msg.stderr) ?? "";
      return [{ kind: "hook_denied", tool, reason: clip(reason.trim(), MAX_TEXT).text }];
    }
    const note = str(out.systemMessage);
    if (note?.startsWith("mesh:")) return [{ kind: "hook_note", tool, note: clip(note, MAX_TEXT).text }];
    return [];
  }

  private assistant(msg: Obj): AgentEvent[] {
    const message = isObj(msg.message) ? msg.message : {};
    const content = Array.isArray(message.content) ? message.content : [];
    const out: AgentEvent[] = [];
    for (const block of content) {
      if (!isObj(block)) continue;
      if (block.type === "text" && typeof block.text === "string" && block.text.trim()) {
        const { text, truncated } = clip(block.text, MAX_TEXT);
        out.push(truncated ? { kind: "assistant_text", text, truncated } : { kind: "assistant_text", text });
      } else if (block.type === "tool_use") {
        const tool = str(block.name) ?? "unknown";
        const toolUseId = str(block.id) ?? "";
        this.tools.set(toolUseId, tool);
        const input = isObj(block.input) ? block.input : {};
        const e: AgentEvent = { kind: "tool_use", tool, toolUseId };
        const filePath = filePathOf(input);
        if (filePath) e.filePath = filePath;
        const command = str(input.command);
        if (command) e.command = clip(command, MAX_COMMAND).text;
        out.push(e);
      }
    }
    return out;
  }

  private user(msg: Obj): AgentEvent[] {
    const message = isObj(msg.message) ? msg.message : {};
    const content = Array.isArray(message.content) ? message.content : [];
    const out: AgentEvent[] = [];
    for (const block of content) {
      if (!isObj(block) || block.type !== "tool_result") continue;
      const toolUseId = str(block.tool_use_id) ?? "";
      const e: AgentEvent = { kind: "tool_result", toolUseId, isError: block.is_error === true };
      const tool = this.tools.get(toolUseId);
      if (tool) e.tool = tool;
      out.push(e);
    }
    return out;
  }

  private result(msg: Obj): AgentEvent[] {
    const out: AgentEvent[] = [];
    const denials = Array.isArray(msg.permission_denials) ? msg.permission_denials : [];
    for (const d of denials) {
      if (!isObj(d)) continue;
      const toolUseId = str(d.tool_use_id);
      const tool = str(d.tool_name) ?? (toolUseId ? this.tools.get(toolUseId) : undefined) ?? "unknown";
      const e: AgentEvent = { kind: "tool_denied", tool };
      if (toolUseId) e.toolUseId = toolUseId;
      const filePath = isObj(d.tool_input) ? filePathOf(d.tool_input) : undefined;
      if (filePath) e.filePath = filePath;
      out.push(e);
    }
    const sessionId = str(msg.session_id) ?? this.sessionId ?? "";
    this.sessionId = sessionId || this.sessionId;
    const e: ResultEvent = {
      kind: "result",
      subtype: str(msg.subtype) ?? "unknown",
      // Anything but an explicit false is a failure: an exhausted API error still says "success".
      isError: msg.is_error !== false,
      apiErrorStatus: num(msg.api_error_status) ?? null,
      costUsd: num(msg.total_cost_usd) ?? 0,
      tokens: tokensOf(msg.usage),
      turns: num(msg.num_turns) ?? 0,
      durationMs: num(msg.duration_ms) ?? 0,
      sessionId,
      permissionDenials: denials.length,
      summary: clip(str(msg.result) ?? (Array.isArray(msg.errors) ? msg.errors.join("; ") : ""), MAX_TEXT)
        .text,
    };
    const api = num(msg.duration_api_ms);
    if (api !== undefined) e.durationApiMs = api;
    const model = mainModel(msg.modelUsage) ?? this.initModel;
    if (model) e.model = model;
    const terminal = str(msg.terminal_reason);
    if (terminal) e.terminalReason = terminal;
    out.push(e);
    return out;
  }
}
