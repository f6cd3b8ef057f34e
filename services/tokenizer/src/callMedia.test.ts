import { mulawEncode, OPUS_FRAME_SAMPLES, OpusEncoder, serializeRtpPacket } from '@duet/audio';
import { Codec } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { CallMedia } from './callMedia.js';
import { createFrameDecoder, repeatAndFade } from './frameDecoder.js';

const CHUNK = 2560; // 160 ms at 16 kHz
const CUSHION = 320;

function tone(rate: number, n: number, offset: number, hz = 440, amp = 8000): Int16Array {
  return Int16Array.from({ length: n }, (_, i) =>
    Math.round(amp * Math.sin((2 * Math.PI * hz * (offset + i)) / rate)),
  );
}

function pcmuPacket(seq: number, ssrc = 1234, pt = 0): Uint8Array {
  return serializeRtpPacket({
    payloadType: pt,
    sequenceNumber: seq & 0xffff,
    timestamp: (seq * 160) >>> 0,
    ssrc,
    marker: false,
    payload: mulawEncode(tone(8000, 160, seq * 160)),
  });
}

const rms = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / Math.max(1, x.length));

describe('CallMedia (PCMU)', () => {
  it('turns paced packets into full chunks of the tone, no underruns after the start', async () => {
    const media = await CallMedia.create({
      codec: Codec.CODEC_PCMU,
      payloadType: 0,
      jitterMs: 40,
      chunkSamples: CHUNK,
      cushionSamples: CUSHION,
    });
    let underruns = 0;
    let seq = 0;
    for (let tick = 1; tick <= 10; tick++) {
      const tickMs = tick * 160;
      for (; seq * 20 < tickMs; seq++) expect(media.receive(pcmuPacket(seq), seq * 20).result).toBe('ok');
      media.drain(tickMs);
      const cut = media.cut();
      expect(cut.pcm.length).toBe(CHUNK);
      if (tick > 2) {
        expect(rms(cut.pcm)).toBeGreaterThan(0.1);
        if (cut.underrunSamples > 0) underruns++;
      }
    }
    expect(underruns).toBe(0);
    expect(media.counters.packetsOk).toBe(seq);
    expect(media.jitterMs).toBeCloseTo(0, 6);
    media.close();
  });

  it('counts and conceals a lost packet, and sorts bad datagrams', async () => {
    const media = await CallMedia.create({
      codec: Codec.CODEC_PCMU,
      payloadType: 0,
      jitterMs: 40,
      chunkSamples: CHUNK,
      cushionSamples: CUSHION,
    });
    for (let seq = 0; seq < 20; seq++) if (seq !== 5) media.receive(pcmuPacket(seq), seq * 20);
    expect(media.receive(pcmuPacket(3), 400).result).toBe('duplicate');
    expect(media.receive(pcmuPacket(20, 1234, 8), 400).result).toBe('wrong_payload_type');
    expect(media.receive(new Uint8Array([1, 2, 3]), 400).result).toBe('malformed');
    expect(media.receive(new Uint8Array([0x80, 200, 0, 1, 0, 0, 0, 0]), 400).result).toBe('rtcp');
    expect(media.receive(pcmuPacket(20, 999), 400).result).toBe('unknown_ssrc');
    const drained = media.drain(1000);
    expect(drained.lostPackets).toBe(1);
    expect(drained.concealedFrames).toBe(1);
    expect(drained.frames).toBe(19);
    expect(media.counters.packetsLost).toBe(1);
    // A packet that arrives after its slot was given up is late.
    expect(media.receive(pcmuPacket(5), 1000).result).toBe('late');
    // After a second of quiet, a new SSRC takes over the call.
    const takeover = media.receive(pcmuPacket(500, 999), 2500);
    expect(takeover).toEqual({ result: 'ok', ssrcChanged: true });
    expect(media.ssrc).toBe(999);
    media.close();
  });
});

describe('CallMedia (Opus)', () => {
  it('decodes 48 kHz Opus into 16 kHz audio', async () => {
    const media = await CallMedia.create({
      codec: Codec.CODEC_OPUS,
      payloadType: 111,
      jitterMs: 20,
      chunkSamples: CHUNK,
      cushionSamples: CUSHION,
    });
    const encoder = new OpusEncoder();
    for (let seq = 0; seq < 25; seq++) {
      const packet = serializeRtpPacket({
        payloadType: 111,
        sequenceNumber: seq,
        timestamp: seq * OPUS_FRAME_SAMPLES,
        ssrc: 7,
        marker: false,
        payload: encoder.encode(tone(48000, OPUS_FRAME_SAMPLES, seq * OPUS_FRAME_SAMPLES)),
      });
      expect(media.receive(packet, seq * 20).result).toBe('ok');
    }
    const drained = media.drain(10_000);
    expect(drained.frames).toBe(25);
    // 25 x 20 ms = 500 ms = 8000 samples at 16 kHz (give or take the resampler's delay).
    expect(Math.abs(media.cutter.fifo.length - 8000)).toBeLessThan(200);
    const cut = media.cut();
    expect(rms(cut.pcm)).toBeGreaterThan(0.05);
    media.close();
    encoder.close();
  });
});

describe('concealment', () => {
  it('repeats the last G.711 frame fading out over three frames, then silence', () => {
    const last = new Int16Array(4).fill(1000);
    const out = repeatAndFade(last, 5, 3);
    expect(out.length).toBe(20);
    expect(out[0]).toBeGreaterThan(900);
    expect(out[11]).toBe(0);
    expect(out.slice(12).every((x) => x === 0)).toBe(true);
    for (let i = 1; i < 12; i++) expect(out[i]!).toBeLessThanOrEqual(out[i - 1]!);
  });

  it('continues the fade across gap events and gives Opus silence', () => {
    const g711 = createFrameDecoder(Codec.CODEC_PCMU);
    g711.decode(mulawEncode(new Int16Array(160).fill(4000)));
    const a = g711.conceal(2);
    const b = g711.conceal(2);
    expect(Math.abs(a[0]!)).toBeGreaterThan(Math.abs(b[0]!));
    expect(b.slice(160).every((x) => x === 0)).toBe(true);
    const opus = createFrameDecoder(Codec.CODEC_OPUS);
    const s = opus.conceal(2);
    expect(s.length).toBe(2 * 320); // Opus decodes straight to 16 kHz: 320 samples per 20 ms frame
    expect(s.every((x) => x === 0)).toBe(true);
    opus.close();
  });
});
