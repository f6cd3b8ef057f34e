import {
  type Codec,
  InferenceControlClient,
  type OpenInferenceCallResponse,
  type RtpEndpoint,
  TokenizerControlClient,
  VocoderControlClient,
} from '@duet/protocol';
import { type CallOptions, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';

/** gRPC addresses (host:port) of the three call services, as an edge knows them. */
export interface DuetControlAddresses {
  readonly inference: string;
  readonly tokenizer: string;
  readonly vocoder: string;
}

export interface OpenDuetCallOptions {
  readonly callId: string;
  readonly codec: Codec;
  readonly payloadType: number;
  /** Where the agent's RTP must go (the edge's receiving socket). */
  readonly destination: RtpEndpoint;
  readonly ssrc?: number;
  readonly seed?: number;
  /** Deadline of each control RPC (default 5 s). */
  readonly timeoutMs?: number;
}

export interface DuetCall {
  readonly callId: string;
  readonly placement: OpenInferenceCallResponse;
  /** Send the caller's RTP here. */
  readonly tokenizerRtp: RtpEndpoint;
  /** The agent's RTP comes from here, with this SSRC. */
  readonly vocoderSource: RtpEndpoint;
  readonly agentSsrc: number;
}

/** Thrown when a call cannot be opened; `code` is the gRPC status (RESOURCE_EXHAUSTED = no capacity). */
export class CallSetupError extends Error {
  override readonly name = 'CallSetupError';
  constructor(
    message: string,
    readonly stage: 'inference' | 'tokenizer' | 'vocoder',
    readonly code: number | undefined,
  ) {
    super(message);
  }
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => unknown;

/** A unary call with a deadline, as a promise. */
function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  client: object,
  request: Req,
  timeoutMs: number,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(
      client,
      request,
      new Metadata(),
      { deadline: new Date(Date.now() + timeoutMs) },
      (error, response) => (error ? reject(error) : resolve(response)),
    );
  });
}

/**
 * Opens and closes calls across inference, tokenizer and vocoder in the order the control API
 * prescribes (proto/duet/v1/control.proto), rolling back what was opened when a later stage
 * fails. The SFU, the SIP bridge and the CLI caller all open calls through this.
 */
export class DuetControl {
  readonly inference: InferenceControlClient;
  readonly tokenizer: TokenizerControlClient;
  readonly vocoder: VocoderControlClient;

  constructor(addresses: DuetControlAddresses) {
    const insecure = credentials.createInsecure();
    this.inference = new InferenceControlClient(addresses.inference, insecure);
    this.tokenizer = new TokenizerControlClient(addresses.tokenizer, insecure);
    this.vocoder = new VocoderControlClient(addresses.vocoder, insecure);
  }

  async openCall(options: OpenDuetCallOptions): Promise<DuetCall> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const { callId } = options;
    const format = { codec: options.codec, payloadType: options.payloadType };
    let placement: OpenInferenceCallResponse;
    try {
      placement = await unary(
        this.inference.openCall,
        this.inference,
        { callId, seed: options.seed ?? 0 },
        timeoutMs,
      );
    } catch (error) {
      throw setupError('inference', error);
    }
    // Tokenizer and vocoder need only the placement, not each other: opened together, a call's
    // setup costs inference + the slower of the two rather than all three in a row.
    const [t, v] = await Promise.allSettled([
      unary(
        this.tokenizer.openCall,
        this.tokenizer,
        { callId, firstTick: placement.firstTick, format },
        timeoutMs,
      ),
      unary(
        this.vocoder.openCall,
        this.vocoder,
        {
          callId,
          firstTick: placement.firstTick,
          destination: options.destination,
          format,
          ssrc: options.ssrc ?? 0,
        },
        timeoutMs,
      ),
    ]);
    const failed =
      t.status === 'rejected'
        ? setupError('tokenizer', t.reason)
        : !t.value.rtp
          ? setupError('tokenizer', new Error('tokenizer returned no RTP endpoint'))
          : v.status === 'rejected'
            ? setupError('vocoder', v.reason)
            : !v.value.source
              ? setupError('vocoder', new Error('vocoder returned no source endpoint'))
              : undefined;
    if (failed || t.status !== 'fulfilled' || v.status !== 'fulfilled') {
      await this.closeCall(callId, 'call setup failed').catch(() => undefined);
      throw failed;
    }
    return {
      callId,
      placement,
      tokenizerRtp: t.value.rtp!,
      vocoderSource: v.value.source!,
      agentSsrc: v.value.ssrc,
    };
  }

  /** Closes the call everywhere (idempotent); resolves once every service answered or failed. */
  async closeCall(callId: string, reason: string, timeoutMs = 5_000): Promise<void> {
    const req = { callId, reason };
    await Promise.allSettled([
      unary(this.vocoder.closeCall, this.vocoder, req, timeoutMs),
      unary(this.tokenizer.closeCall, this.tokenizer, req, timeoutMs),
      unary(this.inference.closeCall, this.inference, req, timeoutMs),
    ]);
  }

  close(): void {
    this.inference.close();
    this.tokenizer.close();
    this.vocoder.close();
  }
}

function setupError(stage: CallSetupError['stage'], error: unknown): CallSetupError {
  const e = error as Partial<ServiceError>;
  return new CallSetupError(`${stage}: ${e.details ?? e.message ?? String(error)}`, stage, e.code);
}
