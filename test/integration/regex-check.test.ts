// PCRE2's verdict on user regexes through `varnishd -C` (src/varnish/regex-check.ts): every
// pattern the dialect accepts compiles, patterns PCRE2 refuses get its message, one VCC run
// covers a batch, and verdicts are cached.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { regexProblem } from '../../src/ir/regex-dialect.ts';
import { RegexChecker } from '../../src/varnish/regex-check.ts';
import { VALID_REGEXES } from '../unit/fixtures/regex-cases.ts';

// Accepted by ECMAScript, refused by PCRE2 (the tokenizer refuses them too; the checker is
// asked directly here to show PCRE2 is the authority).
const PCRE2_REFUSES: [string, RegExp][] = [
  ['[\\w-.]+', /invalid range in character class/],
  ['[[:foo:]]', /unknown POSIX class name/],
  ['(?<n>a)(?<n>b)', /two named subpatterns have the same name/],
  ['x\\o', /missing opening brace after \\o/],
  ['\\L', /PCRE2 does not support/],
  ['[z-a]', /range out of order/],
  ['\\u00e9', /PCRE2 does not support/],
];

describe('RegexChecker with varnishd -C', () => {
  test('every pattern the dialect accepts compiles with PCRE2, in one run', async () => {
    for (const p of VALID_REGEXES) assert.equal(regexProblem(p), null, p);
    const checker = new RegexChecker();
    const { verdicts, runs, unavailable } = await checker.check(VALID_REGEXES);
    assert.equal(unavailable, undefined);
    for (const p of VALID_REGEXES) assert.equal(verdicts(p), null, p);
    assert.equal(runs, 1);
  });

  test("patterns PCRE2 refuses get PCRE2's message; the others in the batch are valid", async () => {
    const checker = new RegexChecker();
    const good = ['/a+', '[0-9]{2}', 'x"}y'];
    const asked = [good[0], ...PCRE2_REFUSES.map(([p]) => p), ...good.slice(1)];
    const first = await checker.check(asked);
    for (const [p, message] of PCRE2_REFUSES) assert.match(first.verdicts(p) ?? 'accepted', message, p);
    for (const p of good) assert.equal(first.verdicts(p), null, p);
    assert.equal(first.runs, PCRE2_REFUSES.length + 1, 'one run per refused pattern, plus the one that passes');
    const again = await checker.check(asked);
    assert.equal(again.runs, 0, 'verdicts are cached');
    for (const [p, message] of PCRE2_REFUSES) assert.match(again.verdicts(p) ?? 'accepted', message, p);
  });

  test('patterns are batched: a batch size of 2 splits 5 patterns into 3 runs', async () => {
    const checker = new RegexChecker({ batchSize: 2 });
    const { runs } = await checker.check(['a', 'b', 'c', 'd', 'e']);
    assert.equal(runs, 3);
  });

  test('the cache is a bounded LRU', async () => {
    const checker = new RegexChecker({ cacheSize: 2 });
    await checker.check(['a1', 'a2']);
    await checker.check(['a1']); // a1 is now most recently used
    await checker.check(['a3']); // evicts a2
    assert.equal(checker.size, 2);
    assert.equal((await checker.check(['a1', 'a3'])).runs, 0);
    assert.equal((await checker.check(['a2'])).runs, 1);
  });

  test('without varnishd, the check reports itself unavailable and decides nothing', async () => {
    const checker = new RegexChecker({ varnishdPath: '/nonexistent/varnishd' });
    const r = await checker.check(['[\\w-.]+']);
    assert.match(r.unavailable ?? '', /cannot run/);
    assert.equal(r.verdicts('[\\w-.]+'), null);
    assert.equal(checker.size, 0, 'nothing is cached from a check that did not run');
  });
});
