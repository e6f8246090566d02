// The process's own memory, read at scrape time: RSS and the V8 heap, under the names Prometheus
// client libraries use, so existing Node.js dashboards read them. prom-client's default metrics
// would do more, but each call starts its own event-loop and GC observers, which a process that
// builds several registries (tests, standalone plus its status) would never stop.
import { Gauge, type Registry } from 'prom-client';

export function registerProcessMetrics(registry: Registry): void {
  const gauge = (name: string, help: string, read: (m: NodeJS.MemoryUsage) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(process.memoryUsage()));
      },
    });
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (m) => m.rss);
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', (m) => m.heapTotal);
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (m) => m.heapUsed);
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', (m) => m.external);
}
