// What a cluster admin may set on varnishd's command line: parameter names and values, extra
// options, the storage size. One set of rules for both places that read them: the
// GatewayClassParameters schema the operator parses (src/operator/parameters.ts) and the flags
// the in-pod agent is started with (`vgw chaperone --varnishd-param/--varnishd-arg/--storage`),
// so the agent refuses anything the operator would have refused even if its Deployment was
// edited by hand.
//
// The rules are allow-lists, not merely types: a setting must not be able to turn on inline C,
// change the C compiler, load VMODs or VCL from elsewhere, or replace the sockets, admin port
// and secret the agent relies on.

/** varnishd parameter names: lower-case words joined by underscores, as varnishd spells them. */
export const VARNISHD_PARAM_NAME = /^[a-z][a-z0-9_]{0,63}$/;
/** Parameter values: one token of letters, digits and `_ . , : + -` (no spaces, quotes, slashes). */
export const VARNISHD_PARAM_VALUE = /^[A-Za-z0-9_.,:+-]{1,256}$/;
export const MAX_VARNISHD_PARAMS = 64;
export const MAX_EXTRA_ARGS = 32;
/** The smallest malloc storage accepted (1 MiB); varnishd itself starts with less but serves badly. */
export const MIN_STORAGE_BYTES = 2 ** 20;
/** The largest accepted: 1 PiB, far above any pod and still an exact integer. */
export const MAX_STORAGE_BYTES = 2 ** 50;

/**
 * Parameters that would let a setting run code or read files in the gateway pod, or undo the
 * agent's own settings: inline C, the C compiler command and its flags, where VCL and VMODs
 * are loaded from.
 */
export const FORBIDDEN_VARNISHD_PARAMS: readonly string[] = [
  'cc_command',
  'cc_warnings',
  'vcc_allow_inline_c',
  'vcc_unsafe_path',
  'vcc_feature',
  'vmod_path',
  'vmod_dir',
  'vcl_path',
  'vcl_dir',
];

/**
 * varnishd options accepted as extra arguments, each followed by one value token. Everything
 * else is refused: `-a -b -f -F -n -T -S -M -P -I -j -C -d -x -V -E` (sockets, VCL, admin
 * interface, secret, pid file, jail, extensions) belong to the agent, `-s` is the storage
 * size, `-r` could make read-only a parameter the agent changes at run time (`cc_command` when
 * it falls back from tcc to gcc), and `-p` values pass the same name and value checks as
 * parameters.
 */
export const ALLOWED_VARNISHD_ARGS: readonly string[] = ['-p', '-t', '-W', '-h', '-i'];

/** The reason a varnishd parameter name is refused, or null. */
export function varnishdParamNameProblem(name: string): string | null {
  if (!VARNISHD_PARAM_NAME.test(name)) return `parameter name must match ${VARNISHD_PARAM_NAME.source}`;
  if (FORBIDDEN_VARNISHD_PARAMS.includes(name)) return `parameter ${name} is not allowed (forbidden: ${FORBIDDEN_VARNISHD_PARAMS.join(', ')})`;
  return null;
}

/** The reason a varnishd parameter value is refused, or null. */
export function varnishdParamValueProblem(value: string): string | null {
  return VARNISHD_PARAM_VALUE.test(value) ? null : `parameter value must match ${VARNISHD_PARAM_VALUE.source}`;
}

/** The reason a `NAME=VALUE` parameter setting is refused, or null. */
export function varnishdParamSettingProblem(setting: string): string | null {
  const eq = setting.indexOf('=');
  if (eq < 1) return 'must be NAME=VALUE';
  return varnishdParamNameProblem(setting.slice(0, eq)) ?? varnishdParamValueProblem(setting.slice(eq + 1));
}

/** The problems of a varnishd extra argument list (option, value, option, value ...), as [index, message]. */
export function varnishdArgsProblems(args: readonly string[]): [number, string][] {
  const out: [number, string][] = [];
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i];
    if (!ALLOWED_VARNISHD_ARGS.includes(flag)) {
      out.push([i, `option ${JSON.stringify(flag)} is not allowed (allowed: ${ALLOWED_VARNISHD_ARGS.join(' ')}, each followed by its value)`]);
      continue;
    }
    const value = args[i + 1];
    if (value === undefined) {
      out.push([i, `option ${flag} needs a value`]);
      continue;
    }
    if (flag === '-p') {
      const problem = varnishdParamSettingProblem(value);
      if (problem) out.push([i + 1, `-p ${problem}`]);
    } else if (!VARNISHD_PARAM_VALUE.test(value)) {
      out.push([i + 1, `value of ${flag} must match ${VARNISHD_PARAM_VALUE.source}`]);
    }
  }
  return out;
}

/** The reason a storage size in bytes is refused, or null. */
export function storageBytesProblem(bytes: number): string | null {
  if (!Number.isSafeInteger(bytes) || bytes < MIN_STORAGE_BYTES || bytes > MAX_STORAGE_BYTES) return `storage must be whole bytes from ${MIN_STORAGE_BYTES} (1Mi) to ${MAX_STORAGE_BYTES}`;
  return null;
}

/**
 * Settings whose parameters and options are already checked, split for varnishd: `-p` pairs
 * from the extra arguments become parameters (so they are merged under the gateway's own ones
 * like any other, instead of following them on the command line and overriding them), the
 * other options stay arguments. Later settings of one name win, as on varnishd's command line.
 */
export function splitVarnishdArgs(params: readonly string[], extraArgs: readonly string[]): { params: Record<string, string>; args: string[] } {
  const out: Record<string, string> = {};
  const set = (setting: string) => {
    const eq = setting.indexOf('=');
    out[setting.slice(0, eq)] = setting.slice(eq + 1);
  };
  for (const p of params) set(p);
  const args: string[] = [];
  for (let i = 0; i < extraArgs.length; i += 2) {
    if (extraArgs[i] === '-p') set(extraArgs[i + 1]);
    else args.push(extraArgs[i], extraArgs[i + 1]);
  }
  return { params: out, args };
}
