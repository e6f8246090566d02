// Quickstart: three echo backends plus `vgw serve` on the manifests beside this file.
// Stops everything on Ctrl-C.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEchoServer } from '../../src/echo/server.ts';

const manifests = fileURLToPath(new URL('./manifests/', import.meta.url));
const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const adminPort = process.env.VGW_ADMIN_PORT ?? '9901';

const backends = await Promise.all([
  startEchoServer({ port: 18081, pod: 'web-7c9d4-x2x1q', namespace: 'shop' }),
  startEchoServer({ port: 18082, pod: 'api-v1-5f6b8-k3j9z', namespace: 'shop' }),
  startEchoServer({ port: 18083, pod: 'api-v2-8d2c1-p0q4w', namespace: 'shop' }),
]);
const serve = spawn(process.execPath, [cli, 'serve', manifests, '--admin-port', adminPort], { stdio: ['ignore', 'inherit', 'inherit'] });

const stop = async () => {
  serve.kill('SIGTERM');
  await Promise.all(backends.map((b) => b.close()));
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
serve.on('exit', (code) => {
  void Promise.all(backends.map((b) => b.close())).then(() => process.exit(code ?? 0));
});

for (let i = 0; i < 300; i++) {
  const ok = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then((r) => r.ok, () => false);
  if (ok) break;
  await new Promise((r) => setTimeout(r, 100));
}
process.stderr.write(`
vgw quickstart is serving on http://127.0.0.1:8080 (admin: http://127.0.0.1:${adminPort}/status)
Try:
  curl -s -H 'Host: www.example.com' http://127.0.0.1:8080/ | grep pod
  curl -s -H 'Host: api.example.com' http://127.0.0.1:8080/api/items | grep pod
  curl -s -H 'Host: api.example.com' -H 'X-Canary: true' http://127.0.0.1:8080/api/items | grep pod
  curl -s -o /dev/null -w '%{http_code}\\n' -H 'Host: nope.example.com' http://127.0.0.1:8080/
Edit a file under ${manifests} and the change is live within milliseconds. Ctrl-C stops.
`);
