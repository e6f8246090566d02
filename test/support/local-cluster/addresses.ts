// Loopback address pools: pod IPs, load-balancer and cluster IPs. Each address is handed to one
// owner (a pod or a Service, by uid) and the same owner asking again gets the same address, so a
// controller that re-runs after its own write never moves an object. Released addresses go to the
// back of the queue: a stale EndpointSlice or a lingering connection does not reach a newcomer.

/** Parses `a.b.c.d/n` into its usable host addresses (network and broadcast left out). */
export function hostsOf(cidr: string): string[] {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`address pool: ${cidr} is not an IPv4 CIDR`);
  const bits = Number(m[5]);
  if (bits < 16 || bits > 30) throw new Error(`address pool: ${cidr}: prefix length must be within 16..30`);
  const base = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
  const size = 2 ** (32 - bits);
  const network = base - (base % size);
  const out: string[] = [];
  for (let i = 1; i < size - 1; i++) {
    const a = network + i;
    out.push([a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.'));
  }
  return out;
}

export class AddressPool {
  private readonly free: string[];
  private readonly byOwner = new Map<string, string>();
  private readonly name: string;

  constructor(name: string, cidr: string) {
    this.name = name;
    this.free = hostsOf(cidr);
  }

  allocate(owner: string): string {
    const held = this.byOwner.get(owner);
    if (held) return held;
    const addr = this.free.shift();
    if (!addr) throw new Error(`${this.name} address pool exhausted (${this.byOwner.size} in use)`);
    this.byOwner.set(owner, addr);
    return addr;
  }

  get(owner: string): string | undefined {
    return this.byOwner.get(owner);
  }

  release(owner: string): void {
    const addr = this.byOwner.get(owner);
    if (!addr) return;
    this.byOwner.delete(owner);
    this.free.push(addr);
  }

  owners(): string[] {
    return [...this.byOwner.keys()];
  }
}
