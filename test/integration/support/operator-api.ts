// The Kubernetes API test server as the operator tests use it: it serves GatewayClassParameters
// (it has no apiextensions API, so the CRD is registered as a kind of its own), and the tests
// create objects through the same client library the operator uses.
import { AppsV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import pino from 'pino';
import { Operator, type OperatorOptions } from '../../../src/operator/operator.ts';
import { PARAMETERS_GROUP, PARAMETERS_KIND, PARAMETERS_PLURAL, PARAMETERS_VERSION } from '../../../src/operator/parameters.ts';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions } from '../../support/kube-api-server.ts';

export interface OperatorApi {
  server: KubeApiServer;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  apps: AppsV1Api;
  rbac: RbacAuthorizationV1Api;
}

/** Starts the API test server (watch bookmarks off unless `opts` says otherwise) with the parameters kind served. */
export async function startOperatorApi(opts: KubeApiServerOptions = {}): Promise<OperatorApi> {
  const server = await startKubeApiServer({ bookmarkIntervalMs: 0, ...opts });
  server.addResource({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, kind: PARAMETERS_KIND, plural: PARAMETERS_PLURAL, namespaced: false, crd: true });
  const kc = server.kubeConfig();
  return {
    server,
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
  };
}

/** An operator on `server` with short lease and retry times, so the tests wait little; `extra` overrides. */
export function testOperator(server: KubeApiServer, extra: Partial<OperatorOptions> = {}): Operator {
  return new Operator({
    kubeConfig: server.kubeConfig(),
    logger: pino({ level: 'silent' }),
    namespace: 'vgw-system',
    leaseName: 'vgw-operator',
    defaultImage: 'vgw:test',
    leaseDurationMs: 2000,
    renewDeadlineMs: 1000,
    retryPeriodMs: 200,
    statusRetryMs: 100,
    ...extra,
  });
}
