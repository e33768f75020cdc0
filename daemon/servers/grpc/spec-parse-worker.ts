/**
 * Worker thread of SpecParser: parses and validates submit documents off the daemon's event
 * loop, so a large or pathological document cannot stall heartbeats of running tasks.
 */
import { parentPort } from "node:worker_threads";
import { isMeshError } from "../../errors.js";
import { parseTaskSpecs } from "../../tasks/spec.js";
import type { ParseReply, ParseRequest } from "./spec-parser.js";

parentPort?.on("message", (req: ParseRequest) => {
  let reply: ParseReply;
  try {
    reply = { id: req.id, ok: true, specs: parseTaskSpecs(req.text, req.source) };
  } catch (err) {
    reply = isMeshError(err)
      ? {
          id: req.id,
          ok: false,
          error: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) },
        }
      : {
          id: req.id,
          ok: false,
          // e.g. a stack overflow on deep nesting that the YAML parser did not catch
          error: {
            code: "INVALID_ARGUMENT",
            message: `${req.source}: cannot be parsed (${err instanceof Error ? err.message : String(err)})`,
            field: "document",
          },
        };
  }
  parentPort?.postMessage(reply);
});
