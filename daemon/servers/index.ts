/** Public surface of the servers folder: the gRPC server and the HTTP plugin. */
export { GrpcServer } from "./grpc-server.js";
export { httpPlugin } from "./http/plugin.js";
