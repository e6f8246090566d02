// vgw: the command-line entry point. Each subcommand lives in its own module, loaded when it
// is the one run.
import { enableCompileCache } from 'node:module';
import { tuneHeap } from './heap-tuning.ts';

// Before anything else: a long-running command may start itself again with its heap settings
// (heap-tuning.ts).
tuneHeap(process.argv[2]);

// Node keeps the compiled code of every module it loads (a few hundred, ours type-stripped
// first) in a cache under the temp dir, so later starts skip most of that work; without a
// usable cache directory nothing changes. The modules are loaded after this call, on demand.
enableCompileCache();

const USAGE = `usage: vgw <command> [options]

commands:
  serve DIR [--address A] [--admin-port N] [--admin-address A] [--work-dir D] [--shards K]
            [--path-normalization on|off] [--http2]
              serve the Gateway API manifests in DIR through varnishd; DIR is watched;
              request paths are normalised before routing unless off (docs/requests.md);
              --http2 offers HTTP/2 on HTTPS listeners. WARNING: varnishd 7.1.1 lacks the
              HTTP/2 Rapid Reset fix (VSV00013, CVE-2023-44487): off unless you accept that
  check DIR   print the computed status of every GatewayClass, Gateway and HTTPRoute (YAML)
              exit 0: all accepted, 1: something is not accepted, 2: input unreadable
  vcl DIR     print the VCL generated for DIR
  explain DIR --host H --path P [--method M] [--header K:V]... [--listener NAME | --port N]
          [--json]   (or --kubeconfig FILE --gateway NS/NAME instead of DIR)
              what happens to this request: listener, routes in precedence order and why one
              wins, filters, backends; checked against the generated VCL in a throwaway
              varnishd (exit 3 when the two disagree)
  echo --port N [--address A] [--pod NAME] [--namespace NS] [--h2c-port N]
       [--tls-cert FILE --tls-key FILE [--https-port N] [--tls-client-ca FILE]]
              run an echo backend (the Gateway API conformance echo contract);
              --pod and --namespace default to $POD_NAME and $NAMESPACE; with a
              certificate it also serves HTTPS (port 8443 unless given; the files default
              to $TLS_SERVER_CERT, $TLS_SERVER_PRIVKEY, $TLS_CLIENT_CACERTS) and reports the
              TLS handshake; client certificates are then verified if given
  chaperone --gateway NAMESPACE/NAME [--probe-port N] [--probe-address A] [--metrics-port N]
            [--metrics-address A] [--work-dir D] [--kubeconfig FILE] [--pod NAME] [--http2]
              the in-pod agent: serve the routing config published for one Gateway
              (defaults from GATEWAY_NAMESPACE, GATEWAY_NAME, POD_NAME; in-cluster credentials)
  operator [--kubeconfig FILE] [--probe-port N] [--probe-address A] [--metrics-port N]
           [--metrics-address A] [--namespace NS] [--lease-name NAME]
              the in-cluster control plane: status, routing configs and per-Gateway
              Deployments/Services (lease in NS, default POD_NAMESPACE or vgw-system)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // `vgw <command> --help`: the usage of every command (before any flag is parsed or started).
  if (command !== undefined && (rest.includes('--help') || rest[0] === '-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  switch (command) {
    case 'serve': {
      const { runServe } = await import('./serve.ts');
      return runServe(rest);
    }
    case 'check': {
      const { runCheck } = await import('./check.ts');
      return runCheck(rest);
    }
    case 'vcl': {
      const { runVcl } = await import('./vcl.ts');
      return runVcl(rest);
    }
    case 'chaperone': {
      // Loaded on demand: the Kubernetes client is not needed by the other commands.
      const { runChaperone } = await import('./chaperone.ts');
      return runChaperone(rest);
    }
    case 'operator': {
      const { runOperator } = await import('./operator.ts');
      return runOperator(rest);
    }
    case 'explain': {
      const { runExplain } = await import('./explain.ts');
      const code = await runExplain(rest);
      // A one-shot command: the Kubernetes client's pooled connections must not keep it alive.
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      process.exit(code);
    }
    case 'echo': {
      const { runEchoCommand } = await import('../echo/server.ts');
      await runEchoCommand(rest);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`vgw: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`vgw: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
