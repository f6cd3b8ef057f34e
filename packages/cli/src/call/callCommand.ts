import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { encodeWav, type FrameCodecName } from '@duet/audio';
import { Codec } from '@duet/protocol';
import { DuetControl } from '@duet/runtime';
import { loadCallerWav, synthesiseSpeech } from './callerAudio.js';
import { RtpCaller } from './rtpCaller.js';

export interface CallCommandOptions {
  readonly wav?: string;
  readonly say?: string;
  readonly out: string;
  readonly codec: FrameCodecName;
  /** Seconds to keep listening after the caller's audio ends. */
  readonly tail: number;
  readonly inference: string;
  readonly tokenizer: string;
  readonly vocoder: string;
  readonly callId?: string;
}

export const CODEC_OF: Record<FrameCodecName, Codec> = {
  pcmu: Codec.CODEC_PCMU,
  pcma: Codec.CODEC_PCMA,
  opus: Codec.CODEC_OPUS,
};

/** `duet call`: one call through the running system from a WAV (or espeak-ng text); records the agent. */
export async function runCallCommand(options: CallCommandOptions): Promise<void> {
  if (!options.wav && !options.say) throw new Error('give --wav <file> or --say <text>');
  const said = options.say ? synthesiseSpeech(options.say) : undefined;
  const caller = await RtpCaller.open({ codec: options.codec });
  const control = new DuetControl(options);
  const callId = options.callId ?? `cli-${randomUUID().slice(0, 8)}`;
  try {
    const input = await loadCallerWav(options.wav ?? said!.path, caller.codec.sampleRate);
    const tail = new Int16Array(Math.round(options.tail * caller.codec.sampleRate));
    const audio = new Int16Array(input.length + tail.length);
    audio.set(input);
    const t0 = performance.now();
    const call = await control.openCall({
      callId,
      codec: CODEC_OF[options.codec],
      payloadType: caller.payloadType,
      destination: caller.localEndpoint,
    });
    const setupMs = performance.now() - t0;
    console.error(
      `call ${callId}: placed on ${call.placement.workerId} at tick ${call.placement.firstTick} (${setupMs.toFixed(1)} ms); sending ${(audio.length / caller.codec.sampleRate).toFixed(1)} s of ${options.codec} to ${call.tokenizerRtp.host}:${call.tokenizerRtp.port}`,
    );
    await caller.play(audio, call.tokenizerRtp);
    await control.closeCall(callId, 'caller hung up');
    const agent = caller.agentAudio();
    const pcm = Float32Array.from(agent, (s) => s / 32768);
    writeFileSync(options.out, encodeWav({ sampleRate: caller.codec.sampleRate, channels: [pcm] }));
    const stats = caller.stats();
    console.log(
      JSON.stringify({
        callId,
        worker: call.placement.workerId,
        setupMs: Number(setupMs.toFixed(1)),
        sentFrames: stats.framesSent,
        agentPackets: stats.packetsReceived,
        agentPacketsLost: stats.packetsLost,
        agentJitterMs: Number(stats.jitterMs.toFixed(2)),
        agentSeconds: Number((agent.length / caller.codec.sampleRate).toFixed(2)),
        out: options.out,
      }),
    );
  } finally {
    caller.close();
    control.close();
    said?.cleanup();
  }
}
