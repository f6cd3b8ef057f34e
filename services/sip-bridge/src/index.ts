// What other code may reuse: the config schema and the SIP message codec (tests, the bench).

export { type SipConfig, sipConfig, type TrunkConfig } from './config.js';
export { type Negotiated, negotiate, SdpError } from './sdp.js';
export {
  frameStream,
  header,
  headerList,
  parseMessage,
  parseNameAddr,
  type SipMessage,
  SipParseError,
  type SipRequest,
  type SipResponse,
  serialize,
} from './sipMessage.js';
