// Where text sits in generated VCL: inside a string literal ("..." or {"..."}), inside a
// comment (#, //, /* */), or in code. User text may only ever sit in the first two.

export interface Misplaced {
  offset: number;
  line: number;
  excerpt: string;
  why: string;
}

/** Every occurrence of `marker` in code, every inline C block, every unterminated literal. */
export function markerOutsideLiterals(vcl: string, marker: string): Misplaced[] {
  const out: Misplaced[] = [];
  const report = (offset: number, why: string) => {
    const line = vcl.slice(0, offset).split('\n').length;
    out.push({ offset, line, why, excerpt: vcl.slice(Math.max(0, offset - 60), offset + 60) });
  };
  let i = 0;
  while (i < vcl.length) {
    if (vcl.startsWith('{"', i)) {
      const end = vcl.indexOf('"}', i + 2);
      if (end < 0) {
        report(i, 'unterminated long string');
        break;
      }
      i = end + 2;
    } else if (vcl[i] === '"') {
      const end = vcl.indexOf('"', i + 1);
      const newline = vcl.indexOf('\n', i + 1);
      if (end < 0 || (newline >= 0 && newline < end)) {
        report(i, 'unterminated string');
        i = newline < 0 ? vcl.length : newline;
      } else {
        i = end + 1;
      }
    } else if (vcl[i] === '#' || vcl.startsWith('//', i)) {
      const newline = vcl.indexOf('\n', i);
      i = newline < 0 ? vcl.length : newline;
    } else if (vcl.startsWith('/*', i)) {
      const end = vcl.indexOf('*/', i + 2);
      i = end < 0 ? vcl.length : end + 2;
    } else if (vcl.startsWith('C{', i)) {
      report(i, 'inline C');
      i += 2;
    } else if (vcl.startsWith(marker, i)) {
      report(i, 'user text in code');
      i += marker.length;
    } else {
      i++;
    }
  }
  return out;
}
