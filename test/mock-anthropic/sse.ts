/**
 * Turns a scripted message into the Messages API wire format: the SSE event sequence Claude
 * Code's SDK parses when `stream: true`, or one JSON message otherwise.
 */
import { isAbsolute, resolve } from "node:path";
import { DEFAULT_USAGE, type MockContent, type MockReply, type MockUsage } from "./replies.js";

type MessageReply = Extract<MockReply, { kind: "message" }>;

export interface WireEvent {
  event: string;
  data: Record<string, unknown>;
}

let seq = 0;
const nextId = (prefix: string): string => `${prefix}_mock${(++seq).toString().padStart(6, "0")}`;

function usageOf(u: Partial<MockUsage> | undefined): MockUsage {
  return { ...DEFAULT_USAGE, ...u };
}

/** Resolves a relative `file_path` against the agent's working directory. */
function resolveContent(content: MockContent[], workdir: string | undefined): MockContent[] {
  return content.map((c) => {
    if (c.type !== "tool_use") return c;
    const p = c.input.file_path;
    const id = c.id ?? nextId("toolu");
    if (typeof p === "string" && workdir && !isAbsolute(p)) {
      return { ...c, id, input: { ...c.input, file_path: resolve(workdir, p) } };
    }
    return { ...c, id };
  });
}

function stopReasonOf(reply: MessageReply): string {
  return reply.stopReason ?? (reply.content.some((c) => c.type === "tool_use") ? "tool_use" : "end_turn");
}

export function messageStartEvent(model: string, usage: MockUsage, id = nextId("msg")): WireEvent {
  return {
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: usage.input,
          output_tokens: 1,
          cache_creation_input_tokens: usage.cacheCreation,
          cache_read_input_tokens: usage.cacheRead,
        },
      },
    },
  };
}

/** Splits a string in two so deltas really arrive in pieces, as the real API sends them. */
function halves(s: string): string[] {
  if (s.length < 2) return [s];
  const mid = Math.ceil(s.length / 2);
  return [s.slice(0, mid), s.slice(mid)];
}

export function streamEvents(reply: MessageReply, model: string, workdir: string | undefined): WireEvent[] {
  const usage = usageOf(reply.usage);
  const events: WireEvent[] = [messageStartEvent(model, usage)];
  resolveContent(reply.content, workdir).forEach((c, index) => {
    if (c.type === "text") {
      events.push({
        event: "content_block_start",
        data: { type: "content_block_start", index, content_block: { type: "text", text: "" } },
      });
      for (const text of halves(c.text)) {
        events.push({
          event: "content_block_delta",
          data: { type: "content_block_delta", index, delta: { type: "text_delta", text } },
        });
      }
    } else {
      events.push({
        event: "content_block_start",
        data: {
          type: "content_block_start",
          index,
          content_block: { type: "tool_use", id: c.id, name: c.name, input: {} },
        },
      });
      for (const partial_json of halves(JSON.stringify(c.input))) {
        events.push({
          event: "content_block_delta",
          data: { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json } },
        });
      }
    }
    events.push({ event: "content_block_stop", data: { type: "content_block_stop", index } });
  });
  events.push({
    event: "message_delta",
    data: {
      type: "message_delta",
      delta: { stop_reason: stopReasonOf(reply), stop_sequence: null },
      usage: {
        input_tokens: usage.input,
        output_tokens: usage.output,
        cache_creation_input_tokens: usage.cacheCreation,
        cache_read_input_tokens: usage.cacheRead,
      },
    },
  });
  events.push({ event: "message_stop", data: { type: "message_stop" } });
  return events;
}

export function encodeEvent(e: WireEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/** The non-streaming form (`stream` absent or false). */
export function jsonMessage(
  reply: MessageReply,
  model: string,
  workdir: string | undefined,
): Record<string, unknown> {
  const usage = usageOf(reply.usage);
  return {
    id: nextId("msg"),
    type: "message",
    role: "assistant",
    model,
    content: resolveContent(reply.content, workdir).map((c) =>
      c.type === "text" ? c : { type: "tool_use", id: c.id, name: c.name, input: c.input },
    ),
    stop_reason: stopReasonOf(reply),
    stop_sequence: null,
    usage: {
      input_tokens: usage.input,
      output_tokens: usage.output,
      cache_creation_input_tokens: usage.cacheCreation,
      cache_read_input_tokens: usage.cacheRead,
    },
  };
}

export function errorBody(reply: Extract<MockReply, { kind: "error" }>): Record<string, unknown> {
  return { type: "error", error: { type: reply.errorType, message: reply.message } };
}
