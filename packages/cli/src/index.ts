export { CODEC_OF } from './call/callCommand.js';
export { loadCallerWav, synthesiseSpeech } from './call/callerAudio.js';
export { type AgentPacket, RtpCaller, type RtpCallerStats } from './call/rtpCaller.js';
export {
  type LaunchOptions,
  launchSystem,
  type RunningSip,
  type RunningSystem,
  SERVICE_NAMES,
  type ServiceName,
} from './start/launcher.js';
