// Kernel-timestamped forwarding latency of the SFU itself: tcpdump captures loopback during the
// benchmark's window, and the packets are matched across the SFU here. Classic pcap only (what
// `tcpdump -w` writes): a 24-byte global header, then a 16-byte header per record.

/** One UDP datagram of a capture: kernel time (ms since the epoch), ports, UDP payload. */
export interface UdpPacket {
  t: number;
  srcPort: number;
  dstPort: number;
  data: Buffer;
}

export const LINKTYPE = { NULL: 0, EN10MB: 1, RAW: 101, LINUX_SLL: 113, LINUX_SLL2: 276 } as const;

/** Offset of the IP header in a frame of the link type, and whether the frame holds IP at all. */
function ipOffset(linkType: number, frame: Buffer, littleEndian: boolean): number | undefined {
  switch (linkType) {
    case LINKTYPE.NULL: {
      if (frame.length < 4) return undefined;
      const family = littleEndian ? frame.readUInt32LE(0) : frame.readUInt32BE(0);
      return family === 2 || family === 24 || family === 28 || family === 30 ? 4 : undefined;
    }
    case LINKTYPE.EN10MB: {
      if (frame.length < 14) return undefined;
      const type = frame.readUInt16BE(12);
      return type === 0x0800 || type === 0x86dd ? 14 : undefined;
    }
    case LINKTYPE.RAW:
    case 12:
      return 0;
    case LINKTYPE.LINUX_SLL: {
      if (frame.length < 16) return undefined;
      const type = frame.readUInt16BE(14);
      return type === 0x0800 || type === 0x86dd ? 16 : undefined;
    }
    case LINKTYPE.LINUX_SLL2: {
      if (frame.length < 20) return undefined;
      const type = frame.readUInt16BE(0);
      return type === 0x0800 || type === 0x86dd ? 20 : undefined;
    }
    default:
      return undefined;
  }
}

/** The UDP datagrams (IPv4 or IPv6) of a classic pcap file; other records are skipped. */
export function parsePcap(buf: Buffer): { linkType: number; packets: UdpPacket[] } {
  if (buf.length < 24) throw new Error('not a pcap file: shorter than its header');
  const magicLE = buf.readUInt32LE(0);
  let le: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    le = true;
    nano = magicLE === 0xa1b23c4d;
  } else if (buf.readUInt32BE(0) === 0xa1b2c3d4 || buf.readUInt32BE(0) === 0xa1b23c4d) {
    le = false;
    nano = buf.readUInt32BE(0) === 0xa1b23c4d;
  } else if (magicLE === 0x0a0d0d0a) {
    throw new Error('pcapng is not supported: capture with tcpdump -w (classic pcap)');
  } else {
    throw new Error(`not a pcap file (magic 0x${magicLE.toString(16)})`);
  }
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20) & 0x0fffffff;
  const packets: UdpPacket[] = [];
  for (let o = 24; o + 16 <= buf.length; ) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const caplen = u32(o + 8);
    const frame = buf.subarray(o + 16, Math.min(buf.length, o + 16 + caplen));
    o += 16 + caplen;
    const t = sec * 1000 + (nano ? frac / 1e6 : frac / 1e3);
    const ip = ipOffset(linkType, frame, le);
    if (ip === undefined || frame.length < ip + 1) continue;
    let udp: number;
    const version = frame[ip]! >> 4;
    if (version === 4) {
      if (frame.length < ip + 20 || frame[ip + 9] !== 17) continue;
      if ((frame.readUInt16BE(ip + 6) & 0x1fff) !== 0) continue; // a later fragment
      udp = ip + 4 * (frame[ip]! & 0x0f);
    } else if (version === 6) {
      if (frame.length < ip + 40 || frame[ip + 6] !== 17) continue;
      udp = ip + 40;
    } else continue;
    if (frame.length < udp + 8) continue;
    packets.push({
      t,
      srcPort: frame.readUInt16BE(udp),
      dstPort: frame.readUInt16BE(udp + 2),
      data: frame.subarray(udp + 8),
    });
  }
  return { linkType, packets };
}

/** `ssrc:seq` of an RTP or SRTP packet (the header is in the clear); undefined for RTCP, STUN, DTLS. */
export function rtpKey(d: Buffer): string | undefined {
  if (d.length < 12 || d[0]! >> 6 !== 2) return undefined;
  const pt = d[1]! & 0x7f;
  if (pt >= 72 && pt <= 76) return undefined; // RTCP (rtcp-mux)
  return `${d.readUInt32BE(8)}:${d.readUInt16BE(2)}`;
}

/** The p-th percentile (nearest rank, as the rest of the bench), NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export interface Direction {
  /** Latencies (ms) of the matched probes. */
  latencies: number[];
  /** Probes that entered the SFU in the window and were seen leaving it. */
  matched: number;
  /** Probes seen entering the SFU in the window. */
  total: number;
}

export interface MatchInput {
  packets: readonly UdpPacket[];
  /** The SFU's WebRTC (ICE) ports: the callers' side. */
  sfuPorts: ReadonlySet<number>;
  /** The "tokenizer" sinks' ports (where the SFU sends the callers' audio as plain RTP). */
  tokenizerPorts: ReadonlySet<number>;
  /** The "vocoder" sources' ports (which send plain RTP into the SFU). */
  vocoderPorts: ReadonlySet<number>;
  /** Callers' sends: `ssrc:seq` of the SRTP packet -> probe id. */
  upSent: ReadonlyMap<string, string>;
  /** Callers' receives (after decryption): `ssrc:seq` -> probe id. */
  downReceived: ReadonlyMap<string, string>;
  /** The probe id in a plain RTP datagram, if it carries one. */
  probeOf: (rtp: Buffer) => string | undefined;
  /** Whether a probe belongs to the measured window. */
  inWindow: (probe: string) => boolean;
}

/**
 * Forwarding latency across the SFU from kernel timestamps. Up: caller's SRTP into a WebRTC port
 * (`ssrc:seq` -> probe) to the plain RTP out to the tokenizer (probe in the clear). Down: the
 * vocoder's plain RTP in (probe in the clear) to the SRTP out of a WebRTC port (`ssrc:seq` -> probe).
 * The first sighting of each packet counts.
 */
export function matchForwarding(m: MatchInput): { up: Direction; down: Direction } {
  const upIn = new Map<string, number>();
  const upOut = new Map<string, number>();
  const downIn = new Map<string, number>();
  const downOut = new Map<string, number>();
  const first = (map: Map<string, number>, k: string | undefined, t: number) => {
    if (k !== undefined && !map.has(k)) map.set(k, t);
  };
  for (const p of m.packets) {
    if (m.sfuPorts.has(p.dstPort) && !m.vocoderPorts.has(p.srcPort)) {
      const k = rtpKey(p.data);
      if (k !== undefined) first(upIn, m.upSent.get(k), p.t);
    }
    if (m.sfuPorts.has(p.srcPort) && !m.tokenizerPorts.has(p.dstPort)) {
      const k = rtpKey(p.data);
      if (k !== undefined) first(downOut, m.downReceived.get(k), p.t);
    }
    if (m.tokenizerPorts.has(p.dstPort)) first(upOut, m.probeOf(p.data), p.t);
    if (m.vocoderPorts.has(p.srcPort)) first(downIn, m.probeOf(p.data), p.t);
  }
  const pair = (ins: Map<string, number>, outs: Map<string, number>): Direction => {
    const d: Direction = { latencies: [], matched: 0, total: 0 };
    for (const [probe, t] of ins) {
      if (!m.inWindow(probe)) continue;
      d.total++;
      const out = outs.get(probe);
      if (out === undefined) continue;
      d.matched++;
      d.latencies.push(out - t);
    }
    return d;
  };
  return { up: pair(upIn, upOut), down: pair(downIn, downOut) };
}

/** A classic pcap file (little-endian, microseconds) of the given records, for tests. */
export function buildPcap(linkType: number, records: { t: number; frame: Buffer }[], nano = false): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(262144, 16);
  h.writeUInt32LE(linkType, 20);
  const parts: Buffer[] = [h];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    const sec = Math.floor(r.t / 1000);
    rh.writeUInt32LE(sec, 0);
    rh.writeUInt32LE(Math.round((r.t - sec * 1000) * (nano ? 1e6 : 1e3)), 4);
    rh.writeUInt32LE(r.frame.length, 8);
    rh.writeUInt32LE(r.frame.length, 12);
    parts.push(rh, r.frame);
  }
  return Buffer.concat(parts);
}

/** An IPv4/UDP packet on 127.0.0.1 (checksums left zero), for tests. */
export function udp4(srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(28 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  ip.writeUInt32BE(0x7f000001, 12);
  ip.writeUInt32BE(0x7f000001, 16);
  const u = Buffer.alloc(8);
  u.writeUInt16BE(srcPort, 0);
  u.writeUInt16BE(dstPort, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, u, payload]);
}

/** A running `tcpdump -i lo` writing a pcap file; stop() returns its packets and kernel drops. */
export interface Capture {
  stop(): Promise<{ packets: UdpPacket[]; linkType: number; dropped: number }>;
}

/** Why kernel-timestamped figures can't be had here, or undefined when tcpdump can run. */
export async function captureUnavailable(): Promise<string | undefined> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  if (r.error)
    return `tcpdump not found (${(r.error as NodeJS.ErrnoException).code}; scripts/setup.sh installs it)`;
  if (process.getuid?.() !== 0) {
    // Not root: try opening lo (a capability may allow it); a refusal comes at once.
    const d = spawnSync('tcpdump', ['-i', 'lo', '-c', '1', '-w', '/dev/null', 'udp port 9'], {
      encoding: 'utf8',
      timeout: 2_000,
    });
    if (/permission|not permitted/i.test(d.stderr ?? ''))
      return 'tcpdump may not capture here (needs root or CAP_NET_RAW)';
  }
  return undefined;
}

/** Starts tcpdump on loopback (UDP only) and resolves once it is listening. */
export async function startCapture(file: string): Promise<Capture> {
  const { spawn } = await import('node:child_process');
  const { readFile, rm } = await import('node:fs/promises');
  // --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets over in blocks, and the
  // last block's packets are lost on SIGINT. -s 256 keeps the RTP header and the probe.
  const args = '-i lo -n -U --immediate-mode -s 256 -B 32768 --time-stamp-precision=nano'.split(' ');
  args.push('-w', file, 'udp');
  const child = spawn('tcpdump', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      stderr += String(d);
      if (/listening on/.test(stderr)) resolve();
    });
    child.once('error', reject);
    void exited.then((code) => reject(new Error(`tcpdump exited ${code}: ${stderr.trim()}`)));
  });
  return {
    async stop() {
      child.kill('SIGINT');
      await exited;
      const { packets, linkType } = parsePcap(await readFile(file));
      await rm(file, { force: true });
      const dropped = Number(/(\d+) packets? dropped by kernel/.exec(stderr)?.[1] ?? 0);
      return { packets, linkType, dropped };
    },
  };
}
