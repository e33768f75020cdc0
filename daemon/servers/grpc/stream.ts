/**
 * Pumps an AsyncIterable into a server-streaming call without letting the client set the
 * daemon's pace: the source is read continuously into a bounded backlog that is written only
 * as fast as the client's flow-control window allows ('drain'). A client that falls more
 * than `maxBacklog` messages behind gets RESOURCE_EXHAUSTED and the source is closed, so a
 * slow or vanished client costs bounded memory and never stalls the producer.
 */
import { type ServerWritableStream, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { serviceError, toServiceError } from "./status.js";

export interface PumpOptions {
  maxBacklog: number;
  logger: Logger;
  /** Registers the call so a stopping server can end it; returns the unregister function. */
  track(end: () => void): () => void;
}

type EndReason = "client-gone" | "overflow" | "shutdown";

export async function pumpStream<Req, Res, T>(
  call: ServerWritableStream<Req, Res>,
  source: (signal: AbortSignal) => AsyncIterable<T>,
  map: (item: T) => Res,
  opts: PumpOptions,
): Promise<void> {
  // Aborting tells the source to stop and wakes the loops below.
  const ac = new AbortController();
  let endReason: EndReason | undefined;
  const end = (r: EndReason) => {
    if (endReason) return;
    endReason = r;
    ac.abort(r);
  };
  // Resolves "ended" on abort; the listener is removed per call (a Promise.race against one
  // long-lived promise would retain a reaction per message).
  const untilEnd = <V>(p: Promise<V>): Promise<V | "ended"> =>
    new Promise((resolve, reject) => {
      if (ac.signal.aborted) return resolve("ended");
      const onAbort = () => resolve("ended");
      ac.signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          ac.signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e: unknown) => {
          ac.signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  // 'cancelled' covers a client cancel, an exceeded deadline and a dropped connection.
  call.on("cancelled", () => end("client-gone"));
  const untrack = opts.track(() => end("shutdown"));

  const backlog: Res[] = [];
  let waitingForDrain = false;
  let sourceDone = false;
  let allWritten: () => void = () => {};
  const flush = () => {
    if (waitingForDrain) return;
    while (backlog.length > 0 && !endReason) {
      if (!call.write(backlog.shift() as Res)) {
        waitingForDrain = true;
        call.once("drain", () => {
          waitingForDrain = false;
          flush();
        });
        return;
      }
    }
    if (sourceDone && backlog.length === 0) allWritten();
  };

  let failure: { err: unknown } | undefined;
  const it = source(ac.signal)[Symbol.asyncIterator]();
  try {
    while (!endReason) {
      const next = await untilEnd(it.next());
      if (next === "ended") break;
      if (next.done) {
        sourceDone = true;
        break;
      }
      backlog.push(map(next.value));
      if (backlog.length > opts.maxBacklog) end("overflow");
      else flush();
    }
  } catch (err) {
    failure = { err };
  } finally {
    // Close the source without awaiting it: a misbehaving iterator must not pin this call.
    if (!sourceDone && !failure) void Promise.resolve(it.return?.()).catch(() => {});
  }

  try {
    if (sourceDone && !endReason) {
      // What the source produced still goes out before the OK status, at the client's pace.
      await untilEnd(
        new Promise<void>((resolve) => {
          allWritten = resolve;
          flush();
        }),
      );
      if (!endReason) call.end();
      if (endReason !== "shutdown") return;
    }
    if (endReason === "client-gone") return;
    if (endReason === "overflow") {
      opts.logger.warn(
        { method: call.getPath(), maxBacklog: opts.maxBacklog },
        "stream client too slow; ending its stream",
      );
      call.emit(
        "error",
        serviceError(
          status.RESOURCE_EXHAUSTED,
          `client fell more than ${opts.maxBacklog} messages behind, so the stream was ended; watch again (task watches replay from the start)`,
        ),
      );
      return;
    }
    if (endReason === "shutdown") {
      call.emit(
        "error",
        serviceError(status.UNAVAILABLE, "meshd is shutting down; reconnect when it is back", "UNAVAILABLE"),
      );
      return;
    }
    if (failure) {
      const { error, internal } = toServiceError(failure.err);
      if (internal) opts.logger.error({ err: failure.err, method: call.getPath() }, "stream source failed");
      call.emit("error", error);
    }
  } finally {
    if (!ac.signal.aborted) ac.abort("done");
    untrack();
  }
}
