// A strict SIP message parser and serializer (RFC 3261 section 7 and 25, the parts a UAS needs).
// Strict means: bounded sizes and header counts, the start line and each header line checked
// against the grammar, the mandatory headers present and well formed, Content-Length honoured.
// Anything else is a SipParseError, which the transport answers with 400 (or drops).

/** Compact header forms (RFC 3261 7.3.3) to their full lower-case names. */
const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
};

/** Headers that may carry several comma-separated values (split when read as a list). */
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'contact', 'allow', 'supported', 'require']);

const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
const REQUEST_LINE = /^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP\/2\.0$/;
const STATUS_LINE = /^SIP\/2\.0 ([1-6]\d\d) ([^\r\n]*)$/;
export const MAX_HEADERS = 100;
const MAX_LINE = 4_096;

export class SipParseError extends Error {
  override readonly name = 'SipParseError';
}

export interface SipHeader {
  /** Lower-case full name (compact forms expanded). */
  readonly name: string;
  readonly value: string;
}

interface SipMessageBase {
  readonly headers: readonly SipHeader[];
  readonly body: Buffer;
}

export interface SipRequest extends SipMessageBase {
  readonly kind: 'request';
  readonly method: string;
  readonly uri: string;
}

export interface SipResponse extends SipMessageBase {
  readonly kind: 'response';
  readonly status: number;
  readonly reason: string;
}

export type SipMessage = SipRequest | SipResponse;

/** The first value of a header (undefined when absent). */
export function header(m: { headers: readonly SipHeader[] }, name: string): string | undefined {
  for (const h of m.headers) if (h.name === name) return h.value;
  return undefined;
}

/** Every value of a header, comma-separated lists split (outside quotes and <>). */
export function headerList(m: { headers: readonly SipHeader[] }, name: string): string[] {
  const out: string[] = [];
  for (const h of m.headers) {
    if (h.name !== name) continue;
    if (LIST_HEADERS.has(name)) out.push(...splitList(h.value));
    else out.push(h.value);
  }
  return out;
}

export function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') depth++;
    else if (c === '>') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out.filter((v) => v.length > 0);
}

/** Where the header section ends (index of the blank line's CRLFCRLF), or -1. */
export function headerEnd(data: Buffer, from = 0): number {
  return data.indexOf('\r\n\r\n', from, 'latin1');
}

/**
 * Parses one message. `datagram`: the buffer is a whole UDP datagram (a body longer than
 * Content-Length is cut; with no Content-Length the rest is the body). Over a stream the caller
 * frames the message first (see frameStream) and passes exactly one.
 */
export function parseMessage(data: Buffer, maxBytes: number): SipMessage {
  if (data.length > maxBytes) throw new SipParseError('message too large');
  const end = headerEnd(data);
  if (end < 0) throw new SipParseError('no end of headers');
  const head = data.toString('latin1', 0, end);
  if (/[^\t\r\n\x20-\x7e\x80-\xff]/.test(head)) throw new SipParseError('control characters in headers');
  const lines = head.split('\r\n');
  const first = lines[0] ?? '';
  if (first.length > MAX_LINE) throw new SipParseError('start line too long');
  const headers: SipHeader[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.length > MAX_LINE) throw new SipParseError('header line too long');
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // Folded continuation of the previous header.
      const prev = headers.pop();
      if (!prev) throw new SipParseError('continuation without a header');
      headers.push({ name: prev.name, value: `${prev.value} ${line.trim()}` });
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new SipParseError('header without a colon');
    const rawName = line.slice(0, colon).trim();
    if (!TOKEN.test(rawName)) throw new SipParseError('bad header name');
    const lower = rawName.toLowerCase();
    headers.push({ name: COMPACT[lower] ?? lower, value: line.slice(colon + 1).trim() });
    if (headers.length > MAX_HEADERS) throw new SipParseError('too many headers');
  }
  const lengths = headers.filter((h) => h.name === 'content-length');
  if (lengths.length > 1) throw new SipParseError('several Content-Length headers');
  const available = data.length - (end + 4);
  let bodyLength = available;
  if (lengths[0]) {
    if (!/^\d{1,6}$/.test(lengths[0].value)) throw new SipParseError('bad Content-Length');
    bodyLength = Number(lengths[0].value);
    if (bodyLength > available) throw new SipParseError('body shorter than Content-Length');
  }
  const body = Buffer.from(data.subarray(end + 4, end + 4 + bodyLength));

  const req = REQUEST_LINE.exec(first);
  let message: SipMessage;
  if (req) {
    const uri = req[2]!;
    if (!/^(sips?|tel):/i.test(uri)) throw new SipParseError('unsupported Request-URI scheme');
    message = { kind: 'request', method: req[1]!, uri, headers, body };
  } else {
    const res = STATUS_LINE.exec(first);
    if (!res) throw new SipParseError('bad start line');
    message = { kind: 'response', status: Number(res[1]), reason: res[2]!, headers, body };
  }
  checkMandatory(message);
  return message;
}

function checkMandatory(m: SipMessage): void {
  for (const name of ['via', 'from', 'to', 'call-id', 'cseq']) {
    if (header(m, name) === undefined) throw new SipParseError(`missing ${name}`);
  }
  for (const name of ['from', 'to', 'call-id', 'cseq', 'max-forwards', 'content-type']) {
    if (m.headers.filter((h) => h.name === name).length > 1)
      throw new SipParseError(`several ${name} headers`);
  }
  const cseq = parseCSeq(header(m, 'cseq')!);
  if (m.kind === 'request' && cseq.method !== m.method) throw new SipParseError('CSeq method differs');
  parseVia(headerList(m, 'via')[0] ?? '');
  parseNameAddr(header(m, 'from')!);
  parseNameAddr(header(m, 'to')!);
  if (!/^\S{1,256}$/.test(header(m, 'call-id')!)) throw new SipParseError('bad Call-ID');
  const mf = header(m, 'max-forwards');
  if (mf !== undefined && !/^\d{1,3}$/.test(mf)) throw new SipParseError('bad Max-Forwards');
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

export function parseCSeq(value: string): CSeq {
  const m = /^(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)$/.exec(value);
  if (!m) throw new SipParseError('bad CSeq');
  const seq = Number(m[1]);
  if (seq > 2 ** 31 - 1) throw new SipParseError('CSeq out of range');
  return { seq, method: m[2]! };
}

export interface Via {
  readonly transport: string;
  readonly host: string;
  readonly port: number | undefined;
  readonly params: ReadonlyMap<string, string>;
  readonly branch: string | undefined;
}

export function parseVia(value: string): Via {
  const m = /^SIP\s*\/\s*2\.0\s*\/\s*([A-Za-z]+)\s+([^;\s]+)\s*(;.*)?$/.exec(value);
  if (!m) throw new SipParseError('bad Via');
  const sentBy = m[2]!;
  const hp = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(sentBy);
  if (!hp) throw new SipParseError('bad Via sent-by');
  const port = hp[2] === undefined ? undefined : Number(hp[2]);
  if (port !== undefined && port > 65535) throw new SipParseError('bad Via port');
  const params = parseParams(m[3] ?? '');
  return { transport: m[1]!.toUpperCase(), host: hp[1]!, port, params, branch: params.get('branch') };
}

function parseParams(s: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const part of s.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    const name = (eq < 0 ? p : p.slice(0, eq)).trim().toLowerCase();
    if (!TOKEN.test(name)) throw new SipParseError('bad parameter');
    params.set(name, eq < 0 ? '' : p.slice(eq + 1).trim());
  }
  return params;
}

export interface NameAddr {
  readonly display: string;
  readonly uri: string;
  /** Header parameters (after the URI), e.g. tag. */
  readonly params: ReadonlyMap<string, string>;
  readonly tag: string | undefined;
}

/** From, To, Contact: `"Name" <uri>;params` or `uri;params`. */
export function parseNameAddr(value: string): NameAddr {
  const v = value.trim();
  let display = '';
  let uri: string;
  let rest: string;
  const lt = v.indexOf('<');
  if (lt >= 0) {
    const gt = v.indexOf('>', lt);
    if (gt < 0) throw new SipParseError('unclosed <');
    display = v.slice(0, lt).trim().replace(/^"|"$/g, '');
    uri = v.slice(lt + 1, gt).trim();
    rest = v.slice(gt + 1);
  } else {
    const semi = v.indexOf(';');
    uri = semi < 0 ? v : v.slice(0, semi);
    rest = semi < 0 ? '' : v.slice(semi);
  }
  if (!/^(sips?|tel):\S+$/i.test(uri) && uri !== '*') throw new SipParseError('bad URI');
  if (rest.trim() && !rest.trim().startsWith(';')) throw new SipParseError('junk after URI');
  const params = parseParams(rest);
  return { display, uri, params, tag: params.get('tag') };
}

export interface SipUri {
  readonly user: string | undefined;
  readonly host: string;
  readonly port: number | undefined;
  readonly transport: string | undefined;
}

/** sip:user@host:port;params (enough to route a request to a Contact). */
export function parseSipUri(uri: string): SipUri {
  const m =
    /^sips?:(?:([^@;?]+)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?((?:;[^?]*)?)(\?.*)?$/i.exec(
      uri,
    );
  if (!m) throw new SipParseError('bad SIP URI');
  const params = parseParams(m[4] ?? '');
  return {
    user: m[1],
    host: m[2]!.replace(/^\[|\]$/g, ''),
    port: m[3] === undefined ? undefined : Number(m[3]),
    transport: params.get('transport')?.toLowerCase(),
  };
}

export interface OutgoingMessage {
  /** "INVITE sip:x SIP/2.0" or "SIP/2.0 200 OK". */
  readonly startLine: string;
  /** [name, value] in order; Content-Length is added. */
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: Buffer | string;
}

export function serialize(m: OutgoingMessage): Buffer {
  const body = typeof m.body === 'string' ? Buffer.from(m.body, 'utf8') : (m.body ?? Buffer.alloc(0));
  let head = `${m.startLine}\r\n`;
  for (const [name, value] of m.headers) head += `${name}: ${value}\r\n`;
  head += `Content-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Canonical header names for what a UAS copies into responses. */
export const HEADER_NAMES: Record<string, string> = {
  via: 'Via',
  from: 'From',
  to: 'To',
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'record-route': 'Record-Route',
};

/**
 * Cuts a TCP byte stream into messages: returns each complete message (header section plus
 * Content-Length bytes; a stream message must carry Content-Length) and the unconsumed rest.
 * Leading CRLFs (keep-alive pings) are skipped. Throws SipParseError when a message cannot fit.
 */
export function frameStream(buffer: Buffer, maxBytes: number): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let b = buffer;
  for (;;) {
    let skip = 0;
    while (skip + 1 < b.length && b[skip] === 0x0d && b[skip + 1] === 0x0a) skip += 2;
    if (skip) b = b.subarray(skip);
    const end = headerEnd(b);
    if (end < 0) {
      if (b.length > maxBytes) throw new SipParseError('header section too large');
      return { messages, rest: b };
    }
    if (end + 4 > maxBytes) throw new SipParseError('header section too large');
    const head = b.toString('latin1', 0, end);
    const m = /\r\n(?:content-length|l)[ \t]*:[ \t]*(\d{1,6})[ \t]*(?:\r\n|$)/i.exec(head);
    if (!m) throw new SipParseError('a stream message needs Content-Length');
    const total = end + 4 + Number(m[1]);
    if (total > maxBytes) throw new SipParseError('message too large');
    if (b.length < total) return { messages, rest: b };
    messages.push(b.subarray(0, total));
    b = b.subarray(total);
  }
}
