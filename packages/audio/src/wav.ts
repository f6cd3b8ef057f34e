// WAV (RIFF/WAVE) reading and writing: PCM 16-bit and IEEE float 32-bit, mono or stereo.
// A small parser rather than a library: it rejects truncated and inconsistent files instead
// of returning fewer samples (see README.md).

import { InvalidArgumentError, WavFormatError } from './errors.js';

/** Audio as one Float32Array per channel, samples nominally in [-1, 1]. */
export interface WavAudio {
  readonly sampleRate: number;
  readonly channels: readonly Float32Array[];
}

export type WavEncoding = 'pcm16' | 'float32';

export interface DecodedWav extends WavAudio {
  /** The sample encoding the file used. */
  readonly encoding: WavEncoding;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
const RIFF_HEADER_BYTES = 12;
const CHUNK_HEADER_BYTES = 8;

function fourcc(view: DataView, offset: number): string {
  return String.fromCharCode(
    view.getUint8(offset),
    view.getUint8(offset + 1),
    view.getUint8(offset + 2),
    view.getUint8(offset + 3),
  );
}

interface FmtChunk {
  encoding: WavEncoding;
  channelCount: number;
  sampleRate: number;
}

function parseFmt(view: DataView, offset: number, size: number): FmtChunk {
  if (size < 16) throw new WavFormatError(`WAV fmt chunk is ${size} bytes, needs at least 16`);
  let formatTag = view.getUint16(offset, true);
  const channelCount = view.getUint16(offset + 2, true);
  const sampleRate = view.getUint32(offset + 4, true);
  const byteRate = view.getUint32(offset + 8, true);
  const blockAlign = view.getUint16(offset + 12, true);
  const bitsPerSample = view.getUint16(offset + 14, true);
  if (formatTag === WAVE_FORMAT_EXTENSIBLE) {
    // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16): the GUID's first two bytes are the tag.
    if (size < 40)
      throw new WavFormatError(`WAV WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, needs 40`);
    formatTag = view.getUint16(offset + 24, true);
  }
  let encoding: WavEncoding;
  if (formatTag === WAVE_FORMAT_PCM && bitsPerSample === 16) encoding = 'pcm16';
  else if (formatTag === WAVE_FORMAT_IEEE_FLOAT && bitsPerSample === 32) encoding = 'float32';
  else {
    throw new WavFormatError(
      `unsupported WAV encoding: format tag 0x${formatTag.toString(16)} with ${bitsPerSample} bits per sample ` +
        '(supported: PCM 16-bit, IEEE float 32-bit)',
    );
  }
  if (channelCount !== 1 && channelCount !== 2) {
    throw new WavFormatError(`unsupported WAV channel count ${channelCount} (supported: 1 or 2)`);
  }
  if (sampleRate === 0) throw new WavFormatError('WAV sample rate is 0');
  const bytesPerFrame = channelCount * (bitsPerSample / 8);
  if (blockAlign !== bytesPerFrame) {
    throw new WavFormatError(
      `WAV block align ${blockAlign} does not match ${channelCount} x ${bitsPerSample} bits`,
    );
  }
  if (byteRate !== sampleRate * bytesPerFrame) {
    throw new WavFormatError(
      `WAV byte rate ${byteRate} does not match ${sampleRate} Hz x ${bytesPerFrame} bytes`,
    );
  }
  return { encoding, channelCount, sampleRate };
}

/**
 * Parses a WAV file. Chunks other than `fmt ` and `data` are skipped. Throws WavFormatError on
 * anything malformed: wrong magic, truncation (a chunk running past the end), a missing chunk,
 * an encoding other than PCM16 / float32, more than two channels.
 */
export function decodeWav(bytes: Uint8Array): DecodedWav {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < RIFF_HEADER_BYTES) {
    throw new WavFormatError(`WAV file truncated: ${bytes.byteLength} bytes, a RIFF header needs 12`);
  }
  if (fourcc(view, 0) !== 'RIFF' || fourcc(view, 8) !== 'WAVE') {
    throw new WavFormatError('not a WAV file: expected "RIFF" .... "WAVE" at the start');
  }
  const riffEnd = RIFF_HEADER_BYTES - 4 + view.getUint32(4, true);
  if (riffEnd > bytes.byteLength) {
    throw new WavFormatError(
      `WAV file truncated: RIFF header announces ${riffEnd} bytes, got ${bytes.byteLength}`,
    );
  }
  let fmt: FmtChunk | undefined;
  let data: { offset: number; size: number } | undefined;
  let offset = RIFF_HEADER_BYTES;
  while (offset + CHUNK_HEADER_BYTES <= riffEnd) {
    const id = fourcc(view, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + CHUNK_HEADER_BYTES;
    if (body + size > riffEnd) {
      throw new WavFormatError(
        `WAV file truncated: chunk "${id}" announces ${size} bytes, ${riffEnd - body} remain`,
      );
    }
    if (id === 'fmt ') fmt = parseFmt(view, body, size);
    else if (id === 'data') data = { offset: body, size };
    offset = body + size + (size % 2); // chunks are word aligned
  }
  if (fmt === undefined) throw new WavFormatError('WAV file has no "fmt " chunk');
  if (data === undefined) throw new WavFormatError('WAV file has no "data" chunk');
  const bytesPerSample = fmt.encoding === 'pcm16' ? 2 : 4;
  const frameBytes = bytesPerSample * fmt.channelCount;
  if (data.size % frameBytes !== 0) {
    throw new WavFormatError(
      `WAV data chunk of ${data.size} bytes is not a whole number of ${frameBytes}-byte frames`,
    );
  }
  const frames = data.size / frameBytes;
  const channels = Array.from({ length: fmt.channelCount }, () => new Float32Array(frames));
  for (let c = 0; c < fmt.channelCount; c++) {
    const out = channels[c]!;
    let pos = data.offset + c * bytesPerSample;
    if (fmt.encoding === 'pcm16') {
      for (let i = 0; i < frames; i++, pos += frameBytes) out[i] = view.getInt16(pos, true) / 32768;
    } else {
      for (let i = 0; i < frames; i++, pos += frameBytes) out[i] = view.getFloat32(pos, true);
    }
  }
  return { sampleRate: fmt.sampleRate, channels, encoding: fmt.encoding };
}

/** Float sample to PCM16 with rounding and clipping (1.0 -> 32767, -1.0 -> -32768). */
export function floatToPcm16(sample: number): number {
  const scaled = Math.round(sample * 32768);
  return scaled > 32767 ? 32767 : scaled < -32768 ? -32768 : scaled;
}

/**
 * Writes a canonical 44-byte-header WAV file. PCM16 rounds and clips; float32 stores the samples
 * as they are. Throws InvalidArgumentError on 0 or >2 channels, channels of different lengths, or a
 * sample rate that is not a positive integer.
 */
export function encodeWav(audio: WavAudio, encoding: WavEncoding = 'pcm16'): Uint8Array {
  const { sampleRate, channels } = audio;
  const channelCount = channels.length;
  if (channelCount !== 1 && channelCount !== 2) {
    throw new InvalidArgumentError(`encodeWav() takes 1 or 2 channels, got ${channelCount}`);
  }
  if (!Number.isInteger(sampleRate) || sampleRate <= 0 || sampleRate * 8 > 0xffffffff) {
    throw new InvalidArgumentError(`encodeWav() needs a positive integer sample rate, got ${sampleRate}`);
  }
  const frames = channels[0]!.length;
  if (channels.some((ch) => ch.length !== frames)) {
    throw new InvalidArgumentError('encodeWav() needs channels of equal length');
  }
  const bytesPerSample = encoding === 'pcm16' ? 2 : 4;
  const frameBytes = bytesPerSample * channelCount;
  const dataBytes = frames * frameBytes;
  const out = new Uint8Array(44 + dataBytes);
  const view = new DataView(out.buffer);
  const writeTag = (offset: number, tag: string) => {
    for (let i = 0; i < 4; i++) view.setUint8(offset + i, tag.charCodeAt(i));
  };
  writeTag(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true);
  writeTag(8, 'WAVE');
  writeTag(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, encoding === 'pcm16' ? WAVE_FORMAT_PCM : WAVE_FORMAT_IEEE_FLOAT, true);
  view.setUint16(22, channelCount, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * frameBytes, true);
  view.setUint16(32, frameBytes, true);
  view.setUint16(34, bytesPerSample * 8, true);
  writeTag(36, 'data');
  view.setUint32(40, dataBytes, true);
  let pos = 44;
  for (let i = 0; i < frames; i++) {
    for (const channel of channels) {
      const sample = channel[i] ?? 0;
      if (encoding === 'pcm16') view.setInt16(pos, floatToPcm16(sample), true);
      else view.setFloat32(pos, sample, true);
      pos += bytesPerSample;
    }
  }
  return out;
}
