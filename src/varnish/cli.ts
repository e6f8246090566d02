/**
 * Client for the Varnish CLI protocol spoken on varnishd's `-T` admin socket.
 *
 * Wire format (varnish-cli(7)): every response is a 13-byte header
 * "SSS LLLLLLLL\n" (status, body length in bytes), the body, and one "\n".
 * On connect varnishd sends a banner; status 107 means it wants the `-S`
 * secret, proven with sha256(challenge "\n" secret challenge "\n").
 *
 * One connection carries one command at a time, so calls are queued and run
 * strictly in order. A transport failure (socket closed, timeout) rejects the
 * current and all queued calls with a plain Error and marks the client closed;
 * a non-200 status is only an error for the `expectOk` helpers, which throw
 * VarnishCliError.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { pino, type Logger } from 'pino';

export interface CliResponse {
  status: number;
  body: string;
}

/** Status codes from varnish-cli(7). */
export const CliStatus = {
  SYNTAX: 100,
  UNKNOWN: 101,
  UNIMPL: 102,
  TOOFEW: 104,
  TOOMANY: 105,
  PARAM: 106,
  AUTH: 107,
  OK: 200,
  TRUNCATED: 201,
  CANT: 300,
  COMMS: 400,
  CLOSE: 500,
} as const;

export class VarnishCliError extends Error {
  readonly status: number;
  readonly body: string;
  readonly command: string;

  constructor(command: string, status: number, body: string) {
    super(`varnish CLI "${command}" failed with status ${status}: ${body.trim()}`);
    this.name = 'VarnishCliError';
    this.status = status;
    this.body = body;
    this.command = command;
  }
}

export interface VarnishCliOptions {
  host: string;
  port: number;
  /** Contents of the `-S` secret file (all of it, trailing newline included). */
  secret?: string | Buffer;
  /** Per-command timeout; 0 disables it. A VCL compile can legitimately take long. */
  timeoutMs?: number;
  /** Timeout for TCP connect + banner + auth. */
  connectTimeoutMs?: number;
  logger?: Logger;
}

const HEADER_LEN = 13;

/** sha256 over challenge + "\n" + secret + challenge + "\n", hex encoded. */
export function authResponse(challenge: string, secret: string | Buffer): string {
  const h = createHash('sha256');
  h.update(challenge + '\n');
  h.update(secret);
  h.update(challenge + '\n');
  return h.digest('hex');
}

const BARE_ARG = /^[A-Za-z0-9_.,:/=+@%^~-]+$/;

/**
 * Quote one argument for varnishd's tokenizer (VAV_Parse): plain tokens stay
 * bare, everything else goes in double quotes with backslash escapes, so a
 * value can never split into two arguments or end the command line.
 */
export function quoteCliArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('CLI arguments cannot contain NUL bytes');
  if (BARE_ARG.test(arg) && arg !== '<<') return arg;
  let out = '"';
  for (const ch of arg) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += '\\x' + code.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}

export function formatCommand(args: readonly string[]): string {
  if (args.length === 0) throw new Error('empty CLI command');
  return args.map(quoteCliArg).join(' ');
}

/**
 * varnishd ends a here-document as soon as the token followed by a newline
 * appears anywhere, not only at the start of a line, so the token must not
 * occur in the text at all.
 */
export function heredocToken(text: string): string {
  for (;;) {
    const token = `VGW_EOF_${randomBytes(6).toString('hex')}`;
    if (!text.includes(token)) return token;
  }
}

/** A `<< TOKEN` command: the last argument is the text, sent verbatim. */
export function formatHeredoc(args: readonly string[], text: string): string {
  const token = heredocToken(text);
  return `${formatCommand(args)} << ${token}\n${text}\n${token}`;
}

interface Waiter {
  resolve: (r: CliResponse) => void;
  reject: (e: Error) => void;
}

export class VarnishCli {
  readonly host: string;
  readonly port: number;
  /** The banner varnishd sent after authentication. */
  banner = '';

  private readonly socket: Socket;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private buf: Buffer = Buffer.alloc(0);
  private waiter: Waiter | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closedError: Error | null = null;
  private readonly closeListeners: ((err: Error) => void)[] = [];

  private constructor(socket: Socket, opts: VarnishCliOptions) {
    this.socket = socket;
    this.host = opts.host;
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 0;
    this.log = opts.logger ?? pino({ level: 'silent' });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('varnish CLI connection closed')));
  }

  static async connect(opts: VarnishCliOptions): Promise<VarnishCli> {
    const socket = await openSocket(opts.host, opts.port, opts.connectTimeoutMs ?? 5000);
    const cli = new VarnishCli(socket, opts);
    const guard = setTimeout(
      () => cli.fail(new Error(`varnish CLI ${opts.host}:${opts.port}: no banner/auth reply in time`)),
      opts.connectTimeoutMs ?? 5000,
    );
    try {
      let hello = await cli.readResponse();
      if (hello.status === CliStatus.AUTH) {
        if (opts.secret === undefined) {
          throw new VarnishCliError('auth', hello.status, 'varnishd requires a secret (-S) but none was given');
        }
        const challenge = hello.body.split('\n', 1)[0];
        if (challenge.length !== 32) {
          throw new VarnishCliError('auth', hello.status, `unexpected challenge: ${hello.body}`);
        }
        hello = await cli.roundTrip(`auth ${authResponse(challenge, opts.secret)}`);
      }
      // A wrong secret gets 500 (close) with an empty body.
      if (hello.status !== CliStatus.OK) {
        throw new VarnishCliError('auth', hello.status, hello.body || 'authentication failed');
      }
      cli.banner = hello.body;
      cli.log.debug({ host: opts.host, port: opts.port }, 'varnish CLI connected');
      return cli;
    } catch (err) {
      cli.destroy();
      throw err;
    } finally {
      clearTimeout(guard);
    }
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Called once when the connection goes away for any reason. */
  onClose(listener: (err: Error) => void): void {
    if (this.closedError) listener(this.closedError);
    else this.closeListeners.push(listener);
  }

  /** Sends one raw command line (no trailing newline) and returns whatever status came back. */
  command(line: string): Promise<CliResponse> {
    const p = this.queue.then(() => this.roundTrip(line));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Like command(), with each argument quoted. */
  commandArgs(args: readonly string[]): Promise<CliResponse> {
    return this.command(formatCommand(args));
  }

  /** Runs a command (a raw line, or arguments to quote) and returns the body; throws VarnishCliError unless 200. */
  async expectOk(cmd: string | readonly string[]): Promise<string> {
    const line = typeof cmd === 'string' ? cmd : formatCommand(cmd);
    const r = await this.command(line);
    if (r.status !== CliStatus.OK) throw new VarnishCliError(commandName(line), r.status, r.body);
    return r.body;
  }

  /**
   * `vcl.inline <name> << TOKEN` with the VCL as a here-document; 106 carries the VCC error.
   * varnishd puts the here-document in the slot of "<<", so it must be the last argument:
   * the optional state argument of vcl.inline cannot be combined with it.
   */
  vclInline(name: string, vcl: string): Promise<CliResponse> {
    return this.command(formatHeredoc(['vcl.inline', name], vcl));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 1000).unref();
    });
  }

  /** Drops the connection immediately. */
  destroy(): void {
    this.socket.destroy();
    this.fail(new Error('varnish CLI connection destroyed'));
  }

  private async roundTrip(line: string): Promise<CliResponse> {
    if (this.closedError) throw this.closedError;
    if (line.includes('\0')) throw new Error('CLI command contains a NUL byte');
    const started = performance.now();
    const response = this.readResponse();
    this.socket.write(line + '\n');
    let timer: NodeJS.Timeout | undefined;
    if (this.timeoutMs > 0) {
      timer = setTimeout(() => {
        // The reply may still arrive later and would be paired with the next command.
        this.fail(new Error(`varnish CLI "${commandName(line)}" timed out after ${this.timeoutMs} ms`));
        this.socket.destroy();
      }, this.timeoutMs);
    }
    try {
      const r = await response;
      this.log.trace(
        { cmd: commandName(line), status: r.status, ms: Math.round(performance.now() - started) },
        'varnish CLI command',
      );
      return r;
    } finally {
      clearTimeout(timer);
    }
  }

  private readResponse(): Promise<CliResponse> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<CliResponse>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.tryParse();
    });
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.tryParse();
  }

  private tryParse(): void {
    if (!this.waiter || this.buf.length < HEADER_LEN) return;
    const header = this.buf.subarray(0, HEADER_LEN).toString('latin1');
    const m = /^(\d{3}) +(\d+) *\n$/.exec(header);
    if (!m) {
      this.fail(new Error(`malformed varnish CLI header: ${JSON.stringify(header)}`));
      this.socket.destroy();
      return;
    }
    const len = Number(m[2]);
    if (this.buf.length < HEADER_LEN + len + 1) return;
    const body = this.buf.subarray(HEADER_LEN, HEADER_LEN + len).toString('utf8');
    this.buf = this.buf.subarray(HEADER_LEN + len + 1);
    const w = this.waiter;
    this.waiter = null;
    w.resolve({ status: Number(m[1]), body });
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
    for (const l of this.closeListeners.splice(0)) l(err);
  }
}

function commandName(line: string): string {
  return line.split(/\s/, 1)[0];
}

function openSocket(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`varnish CLI connect to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
