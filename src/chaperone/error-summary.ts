// What an error may say outside the pod's logs. A VCC error quotes the VCL around the fault, and
// VCL carries every route, header value and (later) key material of the config; the agent's
// HTTP endpoints show only a summary: the compiler's first message line and its position.

const MAX_SUMMARY = 300;

/** One line, no VCL source: the VCC message and "line L pos P" when there is one. */
export function summarizeError(message: string): string {
  const lines = message.split('\n').map((l) => l.trim());
  const vcc = lines.findIndex((l) => /Message from VCC-compiler:?$/i.test(l));
  let summary: string;
  if (vcc >= 0) {
    const prefix = message.slice(0, message.indexOf('Message from')).trim();
    const what = lines.slice(vcc + 1).find((l) => l !== '') ?? 'VCL compile failed';
    const at = /Line (\d+) Pos (\d+)/.exec(message);
    summary = `${prefix ? `${prefix} ` : ''}${what}${at ? ` (VCL line ${at[1]} pos ${at[2]})` : ''}`;
  } else {
    summary = lines[0] ?? '';
  }
  // Whatever the source, only printable characters, bounded.
  summary = summary.replace(/[^\x20-\x7e]/g, '?');
  return summary.length > MAX_SUMMARY ? `${summary.slice(0, MAX_SUMMARY - 3)}...` : summary;
}
