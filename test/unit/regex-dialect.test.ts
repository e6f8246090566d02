// The regex dialect accepted in HTTPRoute matches (docs/regex.md): an allow-list tokenizer that
// refuses every construct PCRE2 rejects or reads differently from ECMAScript, and every
// construct that could escape the `^(?:PATTERN)$` group the compiler wraps patterns in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pcreProblem, routeRegexes } from '../../src/gatewayapi/regex.ts';
import { MAX_REGEX_LENGTH } from '../../src/ir/limits.ts';
import { regexProblem } from '../../src/ir/regex-dialect.ts';
import type { HTTPRoute } from '../../src/gatewayapi/types.ts';
import { VALID_REGEXES } from './fixtures/regex-cases.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { regex, route, rule, prefix, listener, simpleWorld, routeAccepted } from './fixtures/builders.ts';

describe('regex dialect: accepted patterns', () => {
  for (const p of VALID_REGEXES) {
    test(JSON.stringify(p), () => assert.equal(regexProblem(p), null));
  }
});

describe('regex dialect: refused constructs name themselves and their position', () => {
  const invalid: [pattern: string, construct: string, reason: RegExp][] = [
    // JavaScript accepts these; PCRE2 rejects them or reads them differently.
    ['[\\w-.]+', '-', /must be first, last or written \\-/],
    ['\\u00e9', '\\u', /PCRE2 does not support/],
    ['\\p{Foo}', '\\p', /Unicode property/],
    ['\\P{L}', '\\P', /Unicode property/],
    ['a\\g', '\\g', /backreferences/],
    ['a\\g{1}', '\\g', /backreferences/],
    ['a\\c', '\\c', /control escapes/],
    ['[[:foo:]]', '[:foo:]', /unknown POSIX class/],
    ['[[.a.]]', '[.', /POSIX class syntax/],
    ['[[=a=]]', '[=', /POSIX class syntax/],
    ['(?<n>a)(?<n>b)', '(?<n>', /used twice/],
    ['x\\o', '\\o', /octal/],
    ['x\\o{101}', '\\o', /octal/],
    ['\\L', '\\L', /PCRE2 does not support/],
    ['\\l', '\\l', /PCRE2 does not support/],
    ['\\U', '\\U', /PCRE2 does not support/],
    ['\\N{U+41}', '\\N', /PCRE2 does not support/],
    // Constructs that hide parentheses from a naive scan and could escape the wrapping group.
    ['\\Q)\\E|.*', '\\Q', /quoting/],
    ['a\\c)|b(', '\\c', /control escapes/],
    // Groups other than (...), (?:...) and named.
    ['(*UTF)a', '(*', /verbs/],
    ['(*ACCEPT)', '(*', /verbs/],
    ['(?C1)a', '(?C', /callouts/],
    ['(?#x)a', '(?#', /comments/],
    ['(?|a)', '(?|', /only \(\.\.\.\)/],
    ['(?>a)', '(?>', /only \(\.\.\.\)/],
    ['(?(1)a|b)', '(?(', /only \(\.\.\.\)/],
    ['(?R)', '(?R', /recursion/],
    ['(?1)', '(?1', /recursion/],
    ['(?&n)', '(?&', /recursion/],
    ['(?P=n)', '(?P', /recursion/],
    ['(?i)a', '(?i', /inline flags/],
    ['(?i:a)', '(?i', /inline flags/],
    ['(?=a)', '(?=', /lookahead/],
    ['(?!a)', '(?!', /lookahead/],
    ['(?<=a)b', '(?<=', /lookbehind/],
    ['(?<!a)b', '(?<!', /lookbehind/],
    ["(?'n'a)", "(?'", /only \(\.\.\.\)/],
    ['(?<1a>x)', '(?<1a>', /group names/],
    // Backreferences and other escapes.
    ['(a)\\1', '\\1', /backreferences/],
    ['\\k<n>', '\\k', /backreferences/],
    ['\\0', '\\0', /octal/],
    ['\\x4', '\\x4', /two hex digits/],
    ['\\x{41}', '\\x{4', /two hex digits/],
    ['\\v', '\\v', /PCRE2-only/],
    ['\\h', '\\h', /PCRE2-only/],
    ['\\R', '\\R', /PCRE2-only/],
    ['a\\K', '\\K', /PCRE2-only/],
    ['\\A', '\\A', /PCRE2-only/],
    ['a\\z', '\\z', /PCRE2-only/],
    ['\\e', '\\e', /PCRE2-only/],
    ['\\i', '\\i', /unknown escape/],
    ['a\\', '\\', /end with a backslash/],
    ['\\\u00e9', '\\\u00e9', /ASCII/],
    // Balance.
    ['(a', '(', /unclosed group/],
    ['a)', ')', /unmatched/],
    ['([a-z', '[', /unterminated/],
    ['a)(', ')', /unmatched/],
    // Classes PCRE2 and ECMAScript read differently.
    ['[]a]', ']', /\\]/],
    ['[^]', ']', /\\]/],
    ['[a[b]', '[', /\\\[/],
    ['[z-a]', 'z-a', /out of order/],
    ['[\\x7a-a]', '\\x7a-a', /out of order/],
    ['[\\d-z]', '-', /must be first, last/],
    ['[a-\\d]', '-', /range cannot end/],
    ['[a-z-0]', '-', /must be first, last/],
    ['[\u00e9]', '\u00e9', /non-ASCII/],
    ['[\\b]', '\\b', /backspace/],
    // Quantifiers.
    ['*a', '*', /nothing to repeat/],
    ['a|+', '+', /nothing to repeat/],
    ['^*', '*', /nothing to repeat/],
    ['\\b+', '+', /nothing to repeat/],
    ['a**', '*', /cannot be repeated/],
    ['a++', '+', /possessive/],
    ['a{2}{3}', '{3}', /cannot be repeated/],
    ['a{,3}', '{', /literal "\{"/],
    ['x{', '{', /literal "\{"/],
    ['a{3,2}', '{3,2}', /out of order/],
    ['a{70000}', '{70000}', /limited to 65535/],
    ['\u00e9+', '+', /last byte/],
  ];
  for (const [pattern, construct, reason] of invalid) {
    test(JSON.stringify(pattern), () => {
      const problem = regexProblem(pattern);
      assert.ok(problem, `${JSON.stringify(pattern)} must be refused`);
      assert.ok(problem.startsWith(`"${construct}" at character `), `${problem} names ${construct}`);
      assert.match(problem, reason);
    });
  }

  test('the position is 1-based and points at the construct', () => {
    assert.equal(regexProblem('/abc\\Q'), '"\\Q" at character 5: \\Q...\\E quoting is not supported (escape each character)');
  });

  test('length cap and empty pattern', () => {
    assert.equal(regexProblem(''), 'must not be empty');
    assert.equal(regexProblem('a'.repeat(MAX_REGEX_LENGTH)), null);
    assert.match(regexProblem('a'.repeat(MAX_REGEX_LENGTH + 1)) ?? '', /longer than 1024/);
  });
});

describe('regexes of a route and PCRE2 verdicts', () => {
  const r = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'ns' },
    spec: {
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/' } }, { path: { type: 'RegularExpression', value: '/a+' }, headers: [{ type: 'RegularExpression', name: 'x', value: 'h.*' }, { name: 'y', value: 'exact' }] }] },
        { matches: [{ queryParams: [{ type: 'RegularExpression', name: 'q', value: '[0-9]+' }] }] },
      ],
    },
  } as HTTPRoute;

  test('path, header and query regexes are found with their fields', () => {
    assert.deepEqual(routeRegexes(r), [
      { field: 'spec.rules[0].matches[1].path.value', pattern: '/a+' },
      { field: 'spec.rules[0].matches[1].headers[0].value', pattern: 'h.*' },
      { field: 'spec.rules[1].matches[0].queryParams[0].value', pattern: '[0-9]+' },
    ]);
  });

  test("PCRE2's refusal names the field", () => {
    assert.equal(pcreProblem(r, (p) => (p === 'h.*' ? 'some PCRE2 error' : null)), 'spec.rules[0].matches[1].headers[0].value: invalid regular expression: PCRE2: some PCRE2 error');
    assert.equal(pcreProblem(r, () => null), null);
  });

  test('the translator rejects a route PCRE2 refused, and only that route', () => {
    const bad = route('bad', { rules: [rule({ matches: [regex('/x[a-z]+')] })] });
    const good = route('good', { rules: [rule({ matches: [prefix('/')] })] });
    const world = simpleWorld([listener('http')], [good, bad]);
    const verdicts = (p: string) => (p === '/x[a-z]+' ? 'pretend PCRE2 refused it' : null);
    const r2 = translate(world, { defaultAddress: '127.0.0.1', now: '2024-01-01T00:00:00Z', regexVerdicts: verdicts });
    assert.equal(routeAccepted(r2, 'good'), 'True/Accepted');
    assert.equal(routeAccepted(r2, 'bad'), 'False/UnsupportedValue');
    assert.ok(r2.problems.some((p) => p.object.endsWith('/bad') && p.message.includes('spec.rules[0].matches[0].path.value: invalid regular expression: PCRE2: pretend PCRE2 refused it')));
  });
});
