// Runs wrk and parses its report (with --latency, wrk prints the 50/75/90/99 % percentiles).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationS: number;
  headers?: Record<string, string>;
}

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Milliseconds. */
  latency: { avg: number; stdev: number; max: number; p50: number; p75: number; p90: number; p99: number };
  non2xx3xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  transferPerSec: string;
  raw: string;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.durationS}s`, '--latency', '--timeout', '5s'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(o.url);
  const { stdout } = await execFileP('wrk', args, { timeout: (o.durationS + 30) * 1000, maxBuffer: 1 << 20 });
  return parseWrk(stdout);
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) throw new Error(`wrk: cannot parse duration ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[m[2]];
}

export function parseWrk(out: string): WrkResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(out);
    if (!m) throw new Error(`wrk output has no ${what}:\n${out}`);
    return m;
  };
  const lat = need(/^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m, 'latency line');
  const pct = (p: string) => toMs(need(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm'), `${p}% percentile`)[1]);
  const total = need(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)/m, 'request total');
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    durationS: toMs(`${total[2]}${total[3]}`) / 1000,
    rps: Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]),
    latency: { avg: toMs(lat[1]), stdev: toMs(lat[2]), max: toMs(lat[3]), p50: pct('50'), p75: pct('75'), p90: pct('90'), p99: pct('99') },
    non2xx3xx: non ? Number(non[1]) : 0,
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    transferPerSec: /^Transfer\/sec:\s+(\S+)/m.exec(out)?.[1] ?? '',
    raw: out,
  };
}

export function wrkErrors(r: WrkResult): number {
  const s = r.socketErrors;
  return r.non2xx3xx + s.connect + s.read + s.write + s.timeout;
}
