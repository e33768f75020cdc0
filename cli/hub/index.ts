/** Public surface of the hub folder: making and running a hub, inviting and joining machines. */
export { colonHex } from "./certs.js";
export { hubInit, hubInvite, hubRevoke, hubStart, writeReadme } from "./hub-ops.js";
export { clientUrls, hubDirOf, leafUrls, readHubState } from "./hub-state.js";
export { joinHub } from "./join.js";
export { decodeJoinString, encodeJoinString, JOIN_PREFIX, type JoinToken } from "./join-string.js";
