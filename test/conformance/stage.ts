// What the runner needs from the product under test, whichever way it runs: `vgw serve` on a
// folder (standalone-stage.ts) or the operator and its gateway pods on the local cluster
// (cluster-stage.ts). The runner plays the test; a stage puts objects in place, reports status
// and says where each Gateway answers.
import type { Target } from './client.ts';
import type { RequestLog } from './cases.ts';
import type { GatewayTarget, StatusCheck } from './data.ts';
import type { K8sObject, Pod, World } from './world.ts';

/** A row of a test's table (runner.ts Row without the case-specific fields). */
export interface StageRow {
  kind: 'status' | 'setup';
  name: string;
  ok: boolean;
  attempts: number;
  detail?: string;
}

export interface ObjectKeyParts {
  kind: string;
  namespace?: string;
  name: string;
}

export interface Stage {
  readonly mode: 'standalone' | 'cluster';
  /** Base and test manifests as this stage runs them. */
  compose(manifests: K8sObject[]): World;
  /**
   * Puts the test's objects in place; with `serve`, also starts what serves traffic and waits
   * until it answers. Rows only for what went wrong.
   */
  begin(test: string, world: World, opts: { serve: boolean }): Promise<StageRow[]>;
  /** One row per check, evaluated against the status the product reports. */
  status(checks: StatusCheck[], world: World, prefix: string): Promise<StageRow[]>;
  /** Creates or replaces one object; resolves with the generation it now has. */
  put(obj: K8sObject): Promise<number | undefined>;
  /** Deletes one object of the test; false when it was not there. */
  remove(ref: ObjectKeyParts): Promise<boolean>;
  /** Where a Gateway's listener answers. */
  target(gw: GatewayTarget, world: World): Promise<Target>;
  /** The running pods of a Deployment, with their addresses. */
  podsOf(world: World, namespace: string, deployment: string): Promise<Pod[]>;
  /** Requests the backends echoed, for mirror checks. */
  readonly requests: RequestLog;
  /** Ends the test: stops or removes what `begin` started; on failure, where its logs are. */
  end(ok: boolean): Promise<{ logFile?: string; logTail?: string }>;
}
