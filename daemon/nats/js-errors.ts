/**
 * NATS errors told apart by their codes, never by their text: a JetStream API error carries
 * the server's `err_code` (nats.js `JetStreamApiError.code`), a connection failure is one of
 * nats-core's typed errors, a TLS failure carries Node's error code in its cause chain.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { AuthorizationError, UserAuthenticationExpiredError } from "@nats-io/transport-node";

/**
 * The JetStream API error codes meshd acts on (nats-server's errors.json). nats.js names a
 * few (`JetStreamApiCodes`); the rest are the server's.
 */
export const JS_ERR = {
  ...JetStreamApiCodes,
  /** JSConsumerNameExistErr: "consumer name already in use". */
  ConsumerNameExists: 10013,
  /** JSInsufficientResourcesErr: "insufficient resources". */
  InsufficientResources: 10023,
  /** JSMemoryResourcesExceededErr: "insufficient memory resources available". */
  MemoryResourcesExceeded: 10028,
  /** JSStorageResourcesExceededErr: "insufficient storage resources available". */
  StorageResourcesExceeded: 10047,
  /** JSStreamNameExistErr: "stream name already in use with a different configuration". */
  StreamNameExists: 10058,
  /** JSStreamStoreFailedF: a write the store refused, e.g. "maximum bytes exceeded" (discard new). */
  StreamStoreFailed: 10077,
  /** JSClusterNoPeersErr: "no suitable peers for placement" (a cluster still forming). */
  ClusterNoPeers: 10005,
  /** JSClusterNotAvailErr: "JetStream system temporarily unavailable" (no meta leader yet). */
  ClusterNotAvailable: 10008,
  /** JSConsumerAlreadyExists: "consumer already exists" (with a different configuration). */
  ConsumerAlreadyExists: 10148,
} as const;

/** The JetStream API `err_code` of `err`, or undefined when it is no JetStream API error. */
export function jsApiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

function hasCode(err: unknown, ...codes: number[]): boolean {
  const c = jsApiCode(err);
  return c !== undefined && codes.includes(c);
}

/** The compare in a compare-and-set failed: the subject is not at the expected sequence. */
export function isWrongLastSequence(err: unknown): boolean {
  return hasCode(err, JS_ERR.StreamWrongLastSequence, JS_ERR.StreamWrongLastSequenceUnknown);
}

/** A stream (a bucket with discard "new") refused a write: it is at its byte limit. */
export function isStoreFull(err: unknown): boolean {
  return hasCode(err, JS_ERR.StreamStoreFailed);
}

export function isStreamNotFound(err: unknown): boolean {
  return hasCode(err, JS_ERR.StreamNotFound);
}

export function isConsumerNotFound(err: unknown): boolean {
  return hasCode(err, JS_ERR.ConsumerNotFound);
}

export function isNoMessageFound(err: unknown): boolean {
  return hasCode(err, JS_ERR.NoMessageFound);
}

/** A stream or consumer of that name exists already (a concurrent create won, or its config differs). */
export function isAlreadyExists(err: unknown): boolean {
  return hasCode(err, JS_ERR.StreamNameExists, JS_ERR.ConsumerNameExists, JS_ERR.ConsumerAlreadyExists);
}

/** JetStream cannot reserve the storage (or memory) a stream's byte limit asks for. */
export function isInsufficientResources(err: unknown): boolean {
  return hasCode(
    err,
    JS_ERR.InsufficientResources,
    JS_ERR.StorageResourcesExceeded,
    JS_ERR.MemoryResourcesExceeded,
  );
}

function* causes(err: unknown): Generator<unknown> {
  const seen = new Set<unknown>();
  for (let e = err; e !== undefined && e !== null && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    yield e;
  }
}

/** The server refused the credentials (or they expired, or authentication timed out). */
export function isAuthError(err: unknown): boolean {
  for (const e of causes(err))
    if (e instanceof AuthorizationError || e instanceof UserAuthenticationExpiredError) return true;
  return false;
}

/** Node's TLS / OpenSSL certificate error codes (tls.TLSSocket#authorizationError, ERR_TLS_*, ERR_SSL_*). */
const TLS_CODE =
  /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/;

/** The TLS handshake failed: a certificate that does not verify, or no TLS on the other side. */
export function isTlsError(err: unknown): boolean {
  for (const e of causes(err)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && TLS_CODE.test(code)) return true;
  }
  return false;
}

/**
 * JetStream is not there yet: nobody answers its API (nats.js `JetStreamNotEnabled`: a server
 * starting, a leaf whose hub link is not up, a cluster without a meta leader), or the cluster
 * says it is temporarily unavailable or has no peers to place on. Worth waiting for at start.
 */
export function isJetStreamUnavailable(err: unknown): boolean {
  // nats.js does not export the class; its name is its type's stable identifier.
  const notEnabled = err instanceof Error && err.name === "JetStreamNotEnabled";
  return notEnabled || hasCode(err, JS_ERR.ClusterNotAvailable, JS_ERR.ClusterNoPeers);
}
