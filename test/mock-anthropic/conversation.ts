/**
 * Reads a Messages API request body the way a scripted test needs it: which conversation
 * (the agent's working directory, else its first user message), which turn, and what the last
 * tool call returned.
 */

export interface ToolResultView {
  toolUseId: string;
  isError: boolean;
  /** The result content flattened to text. */
  text: string;
}

export interface MessagesView {
  model: string;
  stream: boolean;
  maxTokens: number | undefined;
  /** The "Primary working directory: <path>" of Claude Code's prompt, when present. */
  workdir: string | undefined;
  /** The first user message's own text (system reminders left out). */
  firstUserText: string;
  /** The last user message's own text, when it has any. */
  lastUserText: string;
  /** Assistant turns already in the conversation. */
  turn: number;
  lastToolResult: ToolResultView | undefined;
  toolNames: string[];
}

type Block = Record<string, unknown>;

const WORKDIR_RE = /Primary working directory: ([^\n]+)/;

function blocksOf(content: unknown): Block[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  if (Array.isArray(content)) return content.filter((b): b is Block => typeof b === "object" && b !== null);
  return [];
}

function textOf(content: unknown): string {
  return blocksOf(content)
    .map((b) => (b.type === "text" && typeof b.text === "string" ? b.text : ""))
    .join("");
}

/** Text the user typed, without the `<system-reminder>` blocks Claude Code prepends. */
function ownText(content: unknown): string {
  return blocksOf(content)
    .filter((b) => b.type === "text" && typeof b.text === "string" && !b.text.startsWith("<system-reminder>"))
    .map((b) => b.text as string)
    .join("\n")
    .trim();
}

export function viewMessages(body: Record<string, unknown>): MessagesView {
  const messages = (Array.isArray(body.messages) ? body.messages : []).filter(
    (m): m is { role: string; content: unknown } => typeof m === "object" && m !== null && "role" in m,
  );
  const systemText = typeof body.system === "string" ? body.system : textOf(body.system);
  const users = messages.filter((m) => m.role === "user");
  const first = users[0];
  const last = users.at(-1);
  let workdir = WORKDIR_RE.exec(systemText)?.[1];
  if (workdir === undefined && first) workdir = WORKDIR_RE.exec(textOf(first.content))?.[1];

  let lastToolResult: ToolResultView | undefined;
  for (const b of blocksOf(last?.content)) {
    if (b.type !== "tool_result") continue;
    lastToolResult = {
      toolUseId: String(b.tool_use_id ?? ""),
      isError: b.is_error === true,
      text: textOf(b.content),
    };
  }
  const tools = Array.isArray(body.tools) ? body.tools : [];
  return {
    model: typeof body.model === "string" ? body.model : "",
    stream: body.stream === true,
    maxTokens: typeof body.max_tokens === "number" ? body.max_tokens : undefined,
    workdir: workdir?.trim(),
    firstUserText: first ? ownText(first.content) : "",
    lastUserText: last ? ownText(last.content) : "",
    turn: messages.filter((m) => m.role === "assistant").length,
    lastToolResult,
    toolNames: tools.map((t) => (typeof t === "object" && t && "name" in t ? String(t.name) : "")),
  };
}
