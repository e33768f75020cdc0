/**
 * meshd's exit codes, the one table every exit of meshd uses (and `meshd --help` and the
 * README show). A start-up failure maps on its MeshError code, never on its text.
 */
import type { MeshErrorCode } from "./errors.js";

export const MESHD_EXIT = {
  /** Stopped cleanly (a signal, also a second one that handed running tasks back; `--help`, `--version`). */
  OK: 0,
  /** Any other failure: while starting, or a stop that failed. */
  FAILED: 1,
  /** Bad usage or configuration (a flag, a config field, a file that cannot be read). */
  USAGE: 2,
  /** NATS cannot be reached (or refused the credentials). */
  UNAVAILABLE: 3,
  /** It stopped itself: a part it cannot run without died (the NATS connection, the cancel subscription). */
  LOST: 4,
  /** Gave up at once: a second stop signal while still starting, or a third one while stopping. */
  INTERRUPTED: 130,
} as const;

export type MeshdExitCode = (typeof MESHD_EXIT)[keyof typeof MESHD_EXIT];

/** The exit code of a failure to start, from its MeshError code. */
export function exitCodeFor(code: MeshErrorCode | undefined): MeshdExitCode {
  if (code === "INVALID_ARGUMENT") return MESHD_EXIT.USAGE;
  if (code === "UNAVAILABLE") return MESHD_EXIT.UNAVAILABLE;
  return MESHD_EXIT.FAILED;
}

/** The table as `meshd --help` prints it. */
export function exitCodesHelp(): string {
  return [
    "Exit codes:",
    `  ${MESHD_EXIT.OK}    stopped cleanly (or --help, --version)`,
    `  ${MESHD_EXIT.FAILED}    failed to start, or the stop failed`,
    `  ${MESHD_EXIT.USAGE}    bad usage or configuration (flag, config field, unreadable file)`,
    `  ${MESHD_EXIT.UNAVAILABLE}    NATS cannot be reached or refused the credentials`,
    `  ${MESHD_EXIT.LOST}    stopped itself: the NATS connection closed for good or the cancel subscription ended`,
    `  ${MESHD_EXIT.INTERRUPTED}  a second signal while still starting, or a third while stopping`,
  ].join("\n");
}
