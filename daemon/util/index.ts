/** Public surface of the util folder: small helpers with no project imports. */
export { pause } from "./abort.js";
export { formatBytes, parseBytes } from "./bytes.js";
export { Channel } from "./channel.js";
export { monotonicNow } from "./clock.js";
export { parseDuration } from "./duration.js";
export { parseLabels, parseList, parseWholeNumber } from "./flags.js";
export { Slots } from "./slots.js";
export { yaml } from "./yaml.js";
