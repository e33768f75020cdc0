/** Unix-socket housekeeping: private parent dir, stale-socket removal, 0600 after bind. */
import { lstat, mkdir, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { MeshError } from "../../errors.js";

/** sun_path is 108 bytes on Linux (104 on macOS), including the NUL. */
const MAX_SOCKET_PATH_BYTES = 103;

function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (live: boolean) => {
      s.destroy();
      resolve(live);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    // A unix connect answers at once; silence means something holds it, so do not steal it.
    s.setTimeout(2000, () => done(true));
  });
}

/** Makes `path` bindable: creates its parent (0700) and removes a stale socket left by a crash. */
export async function prepareSocketPath(path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `socket path ${path} is ${Buffer.byteLength(path)} bytes; Unix sockets allow ${MAX_SOCKET_PATH_BYTES}: use a shorter state dir`,
      { field: "socketPath" },
    );
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    throw err;
  }
  if (!isSocket) {
    throw new MeshError(
      "FAILED_PRECONDITION",
      `${path} exists and is not a socket; move it away or use another state dir`,
      {
        field: "socketPath",
      },
    );
  }
  if (await socketIsLive(path)) {
    throw new MeshError(
      "ALREADY_EXISTS",
      `another process is serving on ${path} (is a meshd already running with this state dir?); stop it or use another state dir`,
      { field: "socketPath" },
    );
  }
  await unlink(path);
}

/** Removes our socket after shutdown; a missing file is fine. */
export async function removeSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
}
