// Fuzz-style proof that user strings cannot change the structure of generated VCL: adversarial
// values go through the escaping layer into one VCL, real varnishd compiles it, and real
// requests show each value arrives byte for byte and each regex literal matches literally.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { regexLiteral, vclRegex, vclString, vclStringProblem, VclValueError, headerRef } from '../../src/vcl/escape.ts';
import { Varnishd } from '../../src/varnish/varnishd.ts';
import { prng } from '../support/prng.ts';

// Tokens that break naive quoting, VCL structure, inline C or regex syntax.
const NASTY = [
  '"', '}', '{', '"}', '{"', '"}"}', '\\', '\\"', '$', '(', ')', '[', ']', '.', '*', '+', '?', '^', '|', '#',
  '%', "'", ';', 'C{', '}C', ' ', '\t', '/*', '*/', '//', '-', 'vcl 4.1;', 'sub vcl_recv {', 'return (synth(999));',
  '} sub x {', 'include "/etc/passwd";', 'é', '💥', '\u00a0', 'abc', '\\1', '(?i)', '[^"]', '\\Q', '\\E', '&', '=',
];


function fuzzStrings(count: number, seed: number): string[] {
  const rnd = prng(seed);
  const out = [...NASTY, NASTY.join(''), '"}'.repeat(50), 'x'.repeat(20_000) + '"}' + 'y'.repeat(20_000)];
  for (let i = 0; i < count; i++) {
    const parts = 1 + Math.floor(rnd() * 8);
    let s = '';
    for (let j = 0; j < parts; j++) {
      s += rnd() < 0.7 ? NASTY[Math.floor(rnd() * NASTY.length)] : String.fromCharCode(0x20 + Math.floor(rnd() * 95));
    }
    out.push(s);
  }
  return out;
}

// Header values are trimmed by HTTP parsers and can't carry control characters; the regex
// probe sends values as headers, so it uses the subset that survives the wire intact.
const headerSafe = (s: string) => s === s.trim() && s.length > 0 && s.length < 8000 && /^[\x20-\x7e]*$/.test(s);

interface Got {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('VCL escaping layer', () => {
  const strings = fuzzStrings(300, 0x5eed);
  const probes = strings.filter(headerSafe);
  let varnishd: Varnishd;
  let port = 0;
  let workDir = '';

  before(async () => {
    // One VCL holds every case: /s/<i> answers with string i as its body, /r/<i> answers 200
    // when header x-probe matches regex literal i in full, 404 otherwise.
    const body: string[] = [];
    const regex: string[] = [];
    strings.forEach((s, i) => {
      body.push(`  if (req.url == "/s/${i}") { set resp.body = ${vclString(s)}; }`);
    });
    probes.forEach((s, i) => {
      regex.push(`  if (req.url == "/r/${i}") { if (req.http.x-probe ~ ${vclRegex(`^${regexLiteral(s)}$`)}) { return (synth(200)); } return (synth(404)); }`);
    });
    const vcl = `vcl 4.1;
backend default none;
sub vcl_recv {
${regex.join('\n')}
  return (synth(200));
}
sub vcl_synth {
  set resp.http.content-type = "application/octet-stream";
${body.join('\n')}
  return (deliver);
}
`;
    workDir = await mkdtemp(join(tmpdir(), 'vgw-fuzz-'));
    varnishd = new Varnishd({ listeners: [{ name: 'fuzz', address: '127.0.0.1', port: 0 }], workDir, vcl });
    await varnishd.start();
    port = (await varnishd.listenAddresses())[0].port;
  });

  after(async () => {
    await varnishd?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('every adversarial string compiles and comes back byte for byte', async () => {
    assert.ok(strings.length > 300);
    for (let i = 0; i < strings.length; i++) {
      const got = await get(port, `/s/${i}`);
      assert.equal(got.status, 200);
      assert.equal(got.body, strings[i], `string ${i}: ${JSON.stringify(strings[i].slice(0, 60))}`);
    }
  });

  test('regex literals match exactly their string, nothing more', async () => {
    assert.ok(probes.length > 100, `only ${probes.length} header-safe probes`);
    for (let i = 0; i < probes.length; i++) {
      const s = probes[i];
      assert.equal((await get(port, `/r/${i}`, { 'x-probe': s })).status, 200, `literal ${JSON.stringify(s)} must match itself`);
      assert.equal((await get(port, `/r/${i}`, { 'x-probe': `${s}x` })).status, 404, `literal ${JSON.stringify(s)} must not match a longer value`);
      if (s.length > 1) {
        assert.equal((await get(port, `/r/${i}`, { 'x-probe': s.slice(1) })).status, 404, `literal ${JSON.stringify(s)} must not match a shorter value`);
      }
    }
  });

  test('values VCL cannot carry are refused, never emitted', () => {
    for (const bad of ['a\u0000b', 'line\nbreak', 'cr\r', '\u001b[31m', 'del\u007f']) {
      assert.notEqual(vclStringProblem(bad), null, JSON.stringify(bad));
      assert.throws(() => vclString(bad), VclValueError);
      assert.throws(() => vclRegex(bad), VclValueError);
    }
  });

  test('header names that are not VCL-safe identifiers are refused', () => {
    for (const bad of ['', 'a b', 'a.b', 'x"y', 'x}y', 'a;unset req.http.host', '-lead', 'n\u0000']) {
      assert.throws(() => headerRef('req', bad), VclValueError, JSON.stringify(bad));
    }
    assert.equal(headerRef('req', 'X-Good_Name-1'), 'req.http.X-Good_Name-1');
  });
});
