// varnishd's listen sockets, guessed from the Gateways alone while the rest of a large
// directory is still being parsed (ManifestLoaderOptions.onGateways), so that varnishd starts
// meanwhile instead of after the first config is made. A wrong guess costs a restart of that
// varnishd when the first config is applied, as a change of listeners always does.
import { translate } from '../gatewayapi/translator.ts';
import type { ResourceSnapshot } from '../gatewayapi/types.ts';
import { varnishdSockets, type CompiledConfig } from '../pipeline/render.ts';

/** The sockets a config made of `partial` would give varnishd; none when it cannot tell. */
export function earlySockets(partial: ResourceSnapshot, defaultAddress: string): CompiledConfig['sockets'] {
  if (partial.gateways.length === 0) return [];
  try {
    const { ir } = translate(partial, { defaultAddress, now: new Date().toISOString(), perGateway: false });
    return varnishdSockets(ir);
  } catch {
    return [];
  }
}
