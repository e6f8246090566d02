// Shape of cases.json (a transcription of the Gateway API conformance tests, see
// README.md §8 beside it) and where it lives.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface GatewayTarget {
  namespace: string;
  name: string;
  listener?: string;
  port: number;
  scheme: 'http' | 'https';
}

export interface CaseRequest {
  host: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  protocol?: string;
  unfollowRedirect?: boolean;
  /** Backend side: the SNI the gateway must send to the backend (never sent by the client). */
  sni?: string;
  /** Backend side: the certificate the gateway must present to the backend (never sent by the client). */
  clientCert?: SecretKeyRef;
}

/** One key of a generated Secret, "namespace/name" and the key (upstream compares its text). */
export interface SecretKeyRef {
  secret: string;
  key: string;
}

export interface ExpectedRequest {
  path?: string;
  host?: string;
  method?: string;
  headers?: Record<string, string>;
  absentHeaders?: string[];
  sni?: string;
  clientCert?: SecretKeyRef;
}

export interface ExpectedResponse {
  statusCodes: number[];
  headers?: Record<string, string>;
  validHeaderValues?: Record<string, string[]>;
  absentHeaders?: string[];
  ignoreWhitespace?: boolean;
}

export interface RedirectExpectation {
  scheme?: string;
  host?: string;
  port?: string;
  path?: string;
}

export interface TrafficCase {
  name: string;
  gateway?: GatewayTarget;
  tls?: { serverName: string; trustedServerCertificateSecret: string; clientCertificateSecret?: string };
  mode?: 'eventuallyConsistent' | 'expectRequestError' | 'expectConsistentFailure';
  phase?: number;
  request: CaseRequest;
  backendSetResponseHeaders?: Record<string, string>;
  expectedRequest?: ExpectedRequest;
  response: ExpectedResponse;
  backend: string;
  namespace: string;
  redirectRequest?: RedirectExpectation;
  mirroredTo?: { name: string; namespace: string; percent?: number }[];
  note?: string;
}

export interface Condition {
  type: string;
  status: string;
  reason?: string;
}

export type StatusCheck = { check: string; precondition?: boolean; [k: string]: unknown };

export interface Phase {
  phase: number;
  action: null | { delete?: { apiVersion: string; kind: string; namespace?: string; name: string } };
  note?: string;
}

export interface TrafficTest {
  name: string;
  description?: string;
  features: string[];
  level: string;
  provisional: boolean;
  manifests: string[];
  gateway: GatewayTarget;
  routesMustBeAccepted?: string[];
  statusChecks?: StatusCheck[];
  kind: string;
  transcription?: string;
  noClusterHarness?: string;
  notes?: string;
  procedural?: { type: string; [k: string]: unknown };
  phases?: Phase[];
  addRequestIdQueryParam?: boolean;
  cases: TrafficCase[];
}

export interface StatusOnlyTest {
  name: string;
  features: string[];
  manifests: string[];
  kind: string;
  statusSummary: string;
  statusChecks?: StatusCheck[];
}

export interface CasesFile {
  source: { repository: string; tag: string; commit: string };
  trafficTests: TrafficTest[];
  statusOnlyTests: StatusOnlyTest[];
  notTranscribed: { name: string; reason: string }[];
}

/**
 * The transcribed suite lives beside the checkout (../shared/conformance, as CI lays it out);
 * VGW_CONFORMANCE_DATA points at another folder with the same layout.
 */
export const DATA_DIR =
  process.env.VGW_CONFORMANCE_DATA ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/conformance');

export function loadCases(dir = DATA_DIR): CasesFile {
  return JSON.parse(readFileSync(path.join(dir, 'cases.json'), 'utf8')) as CasesFile;
}

export function manifestPath(rel: string, dir = DATA_DIR): string {
  return path.join(dir, 'manifests', rel);
}
