/**
 * Webhook signatures: `X-Mesh-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw request body
 * under the webhook's secret. The body carries `sentAt` (also in `X-Mesh-Timestamp`), so the
 * time is signed too and a receiver can refuse old replays.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SIGNATURE_HEADER = "x-mesh-signature";
export const TIMESTAMP_HEADER = "x-mesh-timestamp";
export const DELIVERY_HEADER = "x-mesh-delivery";

export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** What a receiver does: recompute and compare in constant time. */
export function verifySignature(secret: string, body: string, header: string | undefined): boolean {
  if (!header) return false;
  const want = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header);
  return want.length === got.length && timingSafeEqual(want, got);
}
