/** Defaults of the `limits` config section that other parts (the CLI) need without the config module. */

/** The largest submit document a daemon accepts by default (`limits.submitMaxBytes`). */
export const DEFAULT_SUBMIT_MAX_BYTES = 4 * 1024 * 1024;
