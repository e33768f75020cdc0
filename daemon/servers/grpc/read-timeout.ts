/**
 * Ends a call whose request message has not fully arrived within `timeoutMs` of the call's
 * start: a client that trickles bytes, or opens a stream and never sends, must not hold a
 * stream (and the buffer of its partial message) forever. Every MeshService call carries one
 * request message, so the clock stops at the first message; streams then run for as long as
 * the client keeps them.
 */
import { Metadata, ServerInterceptingCall, type ServerInterceptor, status } from "@grpc/grpc-js";
import { ERROR_CODE_KEY } from "./status.js";

export function requestReadTimeoutInterceptor(timeoutMs: number, field: string): ServerInterceptor {
  return (_method, call) => {
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      const metadata = new Metadata();
      metadata.set(ERROR_CODE_KEY, "RESOURCE_EXHAUSTED");
      call.sendStatus({
        code: status.RESOURCE_EXHAUSTED,
        details: `the request did not arrive within ${Math.round(timeoutMs / 100) / 10}s (${field}); the call was ended`,
        metadata,
      });
    }, timeoutMs);
    timer.unref();
    const clear = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (msg, msgNext) => {
            clear();
            msgNext(msg);
          },
          onCancel: clear,
        }),
      sendStatus: (s, statusNext) => {
        clear();
        statusNext(s);
      },
    });
  };
}
