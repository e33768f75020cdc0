/**
 * The Object Store client (@nats-io/obj) hashes every chunk it puts or gets with js-sha256, pure
 * JavaScript: about 12 ms per MiB here, 0.6 s of the event loop for a 51 MB bundle on each side
 * (bench/transfer.ts). Node's own SHA-256 computes the same digest about 20x faster, so the
 * client's `sha256.create` is pointed at it (only @nats-io/obj uses js-sha256; the digests it
 * writes and checks stay exactly the same SHA-256 bytes).
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";

interface Sha256Module {
  sha256: { create(): { update(b: Uint8Array | string): unknown; digest(): ArrayLike<number> } };
}

let done = false;

export function useNativeSha256(): void {
  if (done) return;
  done = true;
  // Resolved from the Object Store client's own folder: the module instance it requires.
  const fromObj = createRequire(createRequire(import.meta.url).resolve("@nats-io/obj"));
  const mod = fromObj("js-sha256") as Sha256Module;
  mod.sha256.create = () => {
    const h = createHash("sha256");
    const api = {
      update(b: Uint8Array | string) {
        h.update(b);
        return api;
      },
      digest: () => h.digest(),
    };
    return api;
  };
}
