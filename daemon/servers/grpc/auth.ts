/**
 * Bearer-token check for the TCP listener, as a server interceptor so it covers every
 * service. The Health service stays open so load balancers and probes need no secret.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { type Metadata, ServerInterceptingCall, type ServerInterceptor, status } from "@grpc/grpc-js";

const OPEN_PREFIXES = ["/grpc.health.v1.Health/"];

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Constant-time: compares fixed-length digests, so neither content nor length leaks. */
export function tokenMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

function presentedToken(md: Metadata): string | undefined {
  const v = md.get("authorization")[0];
  if (typeof v !== "string") return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(v.trim());
  return m?.[1];
}

export function bearerTokenInterceptor(expected: string): ServerInterceptor {
  return (method, call) => {
    if (OPEN_PREFIXES.some((p) => method.path.startsWith(p))) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, mdNext) => {
            const token = presentedToken(md);
            if (token === undefined) {
              call.sendStatus({
                code: status.UNAUTHENTICATED,
                details:
                  "missing bearer token: send metadata `authorization: Bearer <token>` (mesh --token-file / MESH_TOKEN)",
              });
              return;
            }
            if (!tokenMatches(token, expected)) {
              call.sendStatus({
                code: status.UNAUTHENTICATED,
                details:
                  "wrong bearer token: use the token meshd was started with (mesh --token-file / MESH_TOKEN)",
              });
              return;
            }
            mdNext(md);
          },
        });
      },
    });
  };
}
