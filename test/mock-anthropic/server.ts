/**
 * A local Anthropic Messages API for the real Claude Code CLI (`ANTHROPIC_BASE_URL`). Each
 * `/v1/messages` call of an agent conversation is answered by the test's script; side calls
 * (title generation, quota probes: no working directory and no tools) get a plain text answer
 * so they never consume a scripted turn.
 */
import { EventEmitter } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type MessagesView, type ToolResultView, viewMessages } from "./conversation.js";
import { answer, type MockReply } from "./replies.js";
import { encodeEvent, errorBody, jsonMessage, messageStartEvent, streamEvents } from "./sse.js";

export type MockRequestKind = "probe" | "messages" | "side" | "count_tokens" | "other";

export interface MockRequest {
  seq: number;
  /** When the mock received it (epoch ms): the request log's clock. */
  at: number;
  method: string;
  /** Path without the query, e.g. `/v1/messages`. */
  path: string;
  /** Path with the query, e.g. `/v1/messages?beta=true`. */
  url: string;
  headers: IncomingHttpHeaders;
  kind: MockRequestKind;
  body?: Record<string, unknown>;
  view?: MessagesView;
  /** For `messages`: the conversation key, turn and how many earlier calls asked for this turn. */
  conversation?: string;
  turn?: number;
  attempt?: number;
  /** What the mock answered: the reply kind and the HTTP status. */
  reply?: MockReply["kind"];
  status?: number;
  /** The client closed the connection before the reply was complete. */
  clientClosed: boolean;
}

export interface TurnContext {
  /** The agent's working directory, else its first user message. */
  conversation: string;
  workdir: string | undefined;
  /** Assistant turns so far (0 for the first call). */
  turn: number;
  /** Earlier calls for the same conversation and turn (retries after an error reply). */
  attempt: number;
  lastToolResult: ToolResultView | undefined;
  firstUserText: string;
  lastUserText: string;
  model: string;
  request: MockRequest;
}

export type MockScript = (ctx: TurnContext) => MockReply | Promise<MockReply>;

export interface MockAnthropicOptions {
  script?: MockScript;
  /** The answer to side requests; default a short text, or placeholder JSON when a schema is asked for. */
  side?: (req: MockRequest) => MockReply;
  /** Overrides the side-request heuristic. */
  isSideRequest?: (view: MessagesView) => boolean;
  host?: string;
  port?: number;
}

export interface MockAnthropic {
  /** Base URL for `ANTHROPIC_BASE_URL`. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: MockRequest[];
  /** The scripted (`messages`) requests, optionally of one conversation. */
  messages(conversation?: string): MockRequest[];
  /** Resolves with the first request (past or future) matching `pred`; rejects on timeout. */
  waitForRequest(
    pred: (r: MockRequest) => boolean,
    opts?: { timeoutMs?: number; name?: string },
  ): Promise<MockRequest>;
  setScript(script: MockScript): void;
  close(): Promise<void>;
}

/** Side calls may ask for structured output (title generation does): fill the schema with placeholders. */
function defaultSideReply(r: MockRequest): MockReply {
  const format = (r.body?.output_config as { format?: { type?: string; schema?: unknown } } | undefined)
    ?.format;
  if (format?.type !== "json_schema") return answer("Mock reply");
  const props =
    (format.schema as { properties?: Record<string, { type?: string }> } | undefined)?.properties ?? {};
  const value: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(props)) {
    value[name] =
      p.type === "number" || p.type === "integer" ? 0 : p.type === "boolean" ? false : `Mock ${name}`;
  }
  return answer(JSON.stringify(value));
}

const defaultIsSide = (v: MessagesView): boolean =>
  v.maxTokens === 1 || (v.workdir === undefined && v.toolNames.length === 0);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseJson(raw: string): Record<string, unknown> | undefined {
  if (!raw) return undefined;
  try {
    const v: unknown = JSON.parse(raw);
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "request-id": "req_mock",
    ...headers,
  });
  res.end(text);
}

export async function startMockAnthropic(opts: MockAnthropicOptions = {}): Promise<MockAnthropic> {
  let script: MockScript = opts.script ?? (() => answer("ok"));
  const side = opts.side ?? defaultSideReply;
  const isSide = opts.isSideRequest ?? defaultIsSide;
  const requests: MockRequest[] = [];
  const changes = new EventEmitter();
  changes.setMaxListeners(0);

  const record = (r: MockRequest): void => {
    requests.push(r);
    changes.emit("change");
  };
  const update = (r: MockRequest, patch: Partial<MockRequest>): void => {
    Object.assign(r, patch);
    changes.emit("change");
  };

  async function reply(
    r: MockRequest,
    res: ServerResponse,
    rep: MockReply,
    view: MessagesView,
  ): Promise<void> {
    update(r, { reply: rep.kind });
    if (rep.kind === "error") {
      const headers: Record<string, string> = { ...rep.headers };
      if (rep.retryAfterSeconds !== undefined) headers["retry-after"] = String(rep.retryAfterSeconds);
      update(r, { status: rep.status });
      sendJson(res, rep.status, errorBody(rep), headers);
      return;
    }
    if (rep.kind === "stall") {
      update(r, { status: rep.afterStart ? 200 : 0 });
      if (rep.afterStart) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write(
          encodeEvent(messageStartEvent(view.model, { input: 1, output: 1, cacheRead: 0, cacheCreation: 0 })),
        );
      }
      return; // held until the client leaves or close() drops every connection
    }
    update(r, { status: 200 });
    if (!view.stream) {
      sendJson(res, 200, jsonMessage(rep, view.model, view.workdir), rep.headers);
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "request-id": "req_mock",
      ...rep.headers,
    });
    for (const e of streamEvents(rep, view.model, view.workdir)) res.write(encodeEvent(e));
    res.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    const raw = await readBody(req);
    const body = parseJson(raw);
    const r: MockRequest = {
      seq: requests.length,
      at: Date.now(),
      method: req.method ?? "GET",
      path,
      url,
      headers: req.headers,
      kind: "other",
      clientClosed: false,
      ...(body ? { body } : {}),
    };
    res.on("close", () => {
      if (!res.writableFinished) update(r, { clientClosed: true });
    });

    if (req.method === "HEAD" || (req.method === "GET" && path === "/")) {
      update(r, { kind: "probe" });
      record(r);
      res.writeHead(200, { "content-length": 0 });
      res.end();
      return;
    }
    if (req.method === "POST" && path === "/v1/messages/count_tokens") {
      r.kind = "count_tokens";
      record(r);
      sendJson(res, 200, { input_tokens: Math.max(1, Math.ceil(raw.length / 4)) });
      return;
    }
    if (req.method === "POST" && path === "/v1/messages" && body) {
      const view = viewMessages(body);
      r.view = view;
      if (isSide(view)) {
        r.kind = "side";
        record(r);
        await reply(r, res, side(r), view);
        return;
      }
      const conversation = view.workdir ?? view.firstUserText;
      const attempt = requests.filter(
        (p) => p.kind === "messages" && p.conversation === conversation && p.turn === view.turn,
      ).length;
      Object.assign(r, { kind: "messages", conversation, turn: view.turn, attempt });
      record(r);
      let rep: MockReply;
      try {
        rep = await script({
          conversation,
          workdir: view.workdir,
          turn: view.turn,
          attempt,
          lastToolResult: view.lastToolResult,
          firstUserText: view.firstUserText,
          lastUserText: view.lastUserText,
          model: view.model,
          request: r,
        });
      } catch (err) {
        process.stderr.write(`mock-anthropic: script threw: ${String(err)}\n`);
        rep = {
          kind: "error",
          status: 500,
          errorType: "api_error",
          message: `mock script threw: ${String(err)}`,
        };
      }
      await reply(r, res, rep, view);
      return;
    }
    record(r);
    update(r, { status: 404 });
    sendJson(res, 404, {
      type: "error",
      error: { type: "not_found_error", message: `mock: no route ${path}` },
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.stderr.write(`mock-anthropic: ${String(err)}\n`);
      if (!res.headersSent)
        sendJson(res, 500, { type: "error", error: { type: "api_error", message: "mock" } });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address}:${addr.port}`;

  let closing: Promise<void> | undefined;
  const mock: MockAnthropic = {
    url,
    requests,
    messages: (conversation) =>
      requests.filter(
        (r) => r.kind === "messages" && (conversation === undefined || r.conversation === conversation),
      ),
    waitForRequest(pred, { timeoutMs = 30_000, name = "request" } = {}) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const hit = requests.find(pred);
          if (!hit) return false;
          cleanup();
          resolve(hit);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`mock-anthropic: timed out after ${timeoutMs} ms waiting for ${name}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          changes.off("change", check);
        };
        if (!check()) changes.on("change", check);
      });
    },
    setScript(s) {
      script = s;
    },
    close() {
      if (closing) return closing;
      closing = new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
  return mock;
}

/** A script that plays `replies` by turn index and answers "done" after the last one. */
export function steps(...replies: MockReply[]): MockScript {
  return ({ turn }) => replies[turn] ?? answer("done");
}
