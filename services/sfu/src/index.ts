// What other code may reuse: config, the signalling protocol and tokens.

export { defaultWorkerBin, MEDIASOUP_VERSION, type SfuConfig, sfuConfig } from './config.js';
export { CLOSE, type CloseKind, parseRequest } from './signallingProtocol.js';
export { type CallGrant, mintCallToken, TokenError, verifyCallToken } from './token.js';
