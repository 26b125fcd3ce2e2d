/**
 * A `docker` first on PATH that stands in for the Docker 27/28 daemon's NETWORKS only — not the real thing: a real
 * bridge network takes a private-range address on this machine, which no test may do. Every other command goes to
 * the real docker CLI (the tests' dockerd through DOCKER_HOST) unchanged, by the sh script before Node even starts.
 * The networks live in `<dir>/networks.json`; each `docker network …` call is logged (JSON argv) to
 * `<dir>/docker-network.log`. Behaviour as the docker CLI v28.2.2 prints it (github.com/docker/cli at v28.2.2) and
 * as the daemon answers (github.com/moby/moby):
 *
 *   network ls [-f/--filter K=V] [--format T] [-q] [--no-trunc]   sorted by name (cli/command/network/list.go runList);
 *       IDs cut to 12 characters unless --no-trunc (formatter.go networkContext.ID); filters name/id/driver match as
 *       regular expressions, as the daemon's filters.Args.Match does; the default table "NETWORK ID  NAME  DRIVER  SCOPE"
 *   network inspect NET... [-f T]   an indented JSON array (cli/command/inspect/inspector.go NewIndentedInspector, 4
 *       spaces), or T per network; one not found: "Error response from daemon: network N not found" on stderr
 *       (libnetwork ErrNoSuchNetwork), exit 1 (inspector.go: StatusError 1), "[]" on stdout when none was found
 *   network create [-d/--driver D] [-o/--opt K=V]... [--ipv6] [--subnet S]... [--label K=V]... NAME
 *       prints the new 64-hex ID (cli/command/network/create.go runCreate); a taken name: "Error response from daemon:
 *       network with name N already exists" (libnetwork NetworkNameError), exit 1. `--ipv6` on a host without
 *       ip6tables NAT (the default here; `ip6tablesNat: true` for one with it) fails as Docker 27/28 fails there —
 *       the daemon's message as kubernetes-sigs/kind#3748 and #3677 quote it, exit 1.
 * Templates: `{{.Field}}`, `{{json .Field}}`, `{{json .}}` and `{{ index .Options "key" }}` (what kind and meshdemo
 * use); any other is refused loudly (exit 2, "docker network shim: …") as a test-setup error, never guessed.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface ShimNetwork {
  Name: string;
  Id: string;
  Driver: string;
  Scope: string;
  EnableIPv6: boolean;
  Internal: boolean;
  IPAM: { Driver: string; Options: Record<string, string>; Config: Array<{ Subnet: string }> };
  Options: Record<string, string>;
  Labels: Record<string, string>;
  Containers: Record<string, unknown>;
}

export interface DockerNetworkShim {
  /** The directory to put first on PATH. */
  bin: string;
  /** base env with the shim first on PATH (and STANDIN_DOCKER_NETWORK_SHIM naming it, for the kind stand-in). */
  env(base: Record<string, string | undefined>): Record<string, string | undefined>;
  /** Every `docker network …` call so far (argv after `docker`), whoever made it (meshdemo, the kind stand-in). */
  calls(): string[][];
  networks(): ShimNetwork[];
}

const SHIM_JS = fileURLToPath(import.meta.url);
/** In the written script: how the kind stand-in knows the `docker` on PATH is this stand-in (and may create networks). */
export const NETWORK_SHIM_MARKER = "docker network stand-in written by meshdemo's tests";
/** The daemon's answer to `--ipv6` on a Docker 27/28 host without ip6tables NAT (kubernetes-sigs/kind#3748). */
const IP6TABLES_NAT_MISSING = (subnet: string, id: string) =>
  `Error response from daemon: Failed to Setup IP tables: Unable to enable NAT rule:  (iptables failed: ip6tables --wait -t nat -I POSTROUTING -s ${subnet} ! -o br-${id.slice(0, 12)} -j MASQUERADE: ip6tables v1.8.7 (legacy): can't initialize ip6tables table \`nat': Table does not exist (do you need to insmod?)\nPerhaps ip6tables or your kernel needs to be upgraded.\n (exit status 3))`;

function networkOf(name: string, driver: string, extra: Partial<ShimNetwork> = {}): ShimNetwork {
  return {
    Name: name,
    Id: createHash('sha256').update(`network:${name}:${Math.random()}`).digest('hex'),
    Driver: driver,
    Scope: 'local',
    EnableIPv6: false,
    Internal: false,
    IPAM: { Driver: 'default', Options: {}, Config: [] },
    Options: {},
    Labels: {},
    Containers: {},
    ...extra,
  };
}

/** What a fresh Docker 27/28 daemon lists: bridge (MTU 1500), host, none. */
function defaultNetworks(): ShimNetwork[] {
  return [
    networkOf('bridge', 'bridge', {
      Options: {
        'com.docker.network.bridge.default_bridge': 'true',
        'com.docker.network.bridge.enable_icc': 'true',
        'com.docker.network.bridge.enable_ip_masquerade': 'true',
        'com.docker.network.bridge.name': 'docker0',
        'com.docker.network.driver.mtu': '1500',
      },
    }),
    networkOf('host', 'host'),
    networkOf('none', 'null'),
  ];
}

/**
 * Writes `<dir>/docker`: `docker network …` answered from `<dir>/networks.json`, everything else exec'd to the real
 * CLI. `existing`: networks there already (e.g. a `kind` network kind made earlier, with IPv6).
 */
export function installDockerNetworkShim(dir: string, opts: { ip6tablesNat?: boolean; existing?: Array<{ name: string; ipv6Subnet?: string }> } = {}): DockerNetworkShim {
  fs.mkdirSync(dir, { recursive: true });
  const real = execFileSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).trim();
  const state = path.join(dir, 'networks.json');
  const log = path.join(dir, 'docker-network.log');
  const networks = defaultNetworks();
  for (const e of opts.existing ?? []) {
    networks.push(
      networkOf(e.name, 'bridge', {
        EnableIPv6: Boolean(e.ipv6Subnet),
        IPAM: { Driver: 'default', Options: {}, Config: e.ipv6Subnet ? [{ Subnet: e.ipv6Subnet }] : [] },
        Options: { 'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.driver.mtu': '1500' },
      }),
    );
  }
  fs.writeFileSync(state, JSON.stringify(networks, null, 2));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    path.join(dir, 'docker'),
    [
      '#!/bin/sh',
      `# ${NETWORK_SHIM_MARKER} (test/support/docker-network-shim.ts); the rest is the real CLI`,
      `if [ "$1" != network ]; then exec ${q(real)} "$@"; fi`,
      `STANDIN_DOCKER_NETWORKS=${q(state)} STANDIN_DOCKER_NETWORK_LOG=${q(log)} STANDIN_IP6TABLES_NAT=${opts.ip6tablesNat ? '1' : '0'} exec ${q(process.execPath)} ${q(SHIM_JS)} "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const read = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  return {
    bin: dir,
    env: (base) => ({ ...base, STANDIN_DOCKER_NETWORK_SHIM: dir, PATH: `${dir}${path.delimiter}${base.PATH ?? process.env.PATH}` }),
    calls: () => read(log).split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]),
    networks: () => JSON.parse(read(state)) as ShimNetwork[],
  };
}

// ------------------------------------------------------------------------------------------------ the shim itself

class DockerError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

function unsupported(what: string): DockerError {
  return new DockerError(`docker network shim: ${what} is not supported by the test stand-in`, 2);
}

/** Flags as cobra/pflag take them: `--k v`, `--k=v`, `-k v`, `-k=v`; values of repeatable ones collected. */
function parse(argv: string[], value: Record<string, string>, bool: Record<string, string>): { flags: Map<string, string[]>; args: string[] } {
  const flags = new Map<string, string[]>();
  const args: string[] = [];
  const add = (k: string, v: string) => flags.set(k, [...(flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-') || a === '-') {
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const name = value[key] ?? bool[key];
    if (!name) throw new DockerError(`unknown flag: ${key}\nSee 'docker network --help'.`, 125);
    if (value[key]) add(name, eq > 0 ? a.slice(eq + 1) : argv[++i]);
    else add(name, eq > 0 ? a.slice(eq + 1) : 'true');
  }
  return { flags, args };
}

function render(template: string, n: ShimNetwork): string {
  const t = template.trim();
  let m: RegExpExecArray | null;
  if ((m = /^\{\{\s*index \.Options "([^"]+)"\s*\}\}$/.exec(t))) return n.Options[m[1]] ?? '';
  if (/^\{\{\s*json \.\s*\}\}$/.test(t)) return JSON.stringify(n);
  if ((m = /^\{\{\s*json \.(\w+)\s*\}\}$/.exec(t))) return JSON.stringify((n as unknown as Record<string, unknown>)[m[1]] ?? null);
  if ((m = /^\{\{\s*\.(\w+)\s*\}\}$/.exec(t))) {
    const v = (n as unknown as Record<string, unknown>)[m[1] === 'ID' ? 'Id' : m[1]];
    if (v === undefined) throw new DockerError(`template: :1:2: executing "" at <.${m[1]}>: can't evaluate field ${m[1]} in type network.Inspect`);
    return typeof v === 'object' ? `map[${Object.entries(v as object).map(([k, x]) => `${k}:${x}`).join(' ')}]` : String(v);
  }
  throw unsupported(`the template ${JSON.stringify(template)}`);
}

function load(): ShimNetwork[] {
  return JSON.parse(fs.readFileSync(process.env.STANDIN_DOCKER_NETWORKS!, 'utf8')) as ShimNetwork[];
}

function save(networks: ShimNetwork[]): void {
  fs.writeFileSync(process.env.STANDIN_DOCKER_NETWORKS!, JSON.stringify(networks, null, 2));
}

function list(argv: string[]): string {
  const { flags, args } = parse(argv, { '--filter': 'filter', '-f': 'filter', '--format': 'format' }, { '-q': 'quiet', '--quiet': 'quiet', '--no-trunc': 'no-trunc' });
  if (args.length) throw new DockerError(`"docker network ls" accepts no arguments.\nSee 'docker network ls --help'.`);
  let networks = load().sort((a, b) => a.Name.localeCompare(b.Name));
  for (const f of flags.get('filter') ?? []) {
    const [key, ...rest] = f.split('=');
    const field = ({ name: 'Name', id: 'Id', driver: 'Driver' } as Record<string, keyof ShimNetwork>)[key];
    if (!field) throw new DockerError(`Error response from daemon: invalid filter '${key}'`);
    const re = new RegExp(rest.join('='));
    networks = networks.filter((n) => re.test(String(n[field])));
  }
  const trunc = !flags.has('no-trunc');
  const view = (n: ShimNetwork) => ({ ...n, Id: trunc ? n.Id.slice(0, 12) : n.Id });
  const format = flags.get('format')?.at(-1);
  if (flags.has('quiet') && !format) return networks.map((n) => `${view(n).Id}\n`).join('');
  if (format) return networks.map((n) => `${render(format, view(n))}\n`).join('');
  const rows = [['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], ...networks.map((n) => [view(n).Id, n.Name, n.Driver, n.Scope])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => `${r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] + 3) : c)).join('')}\n`).join('');
}

function find(networks: ShimNetwork[], ref: string): ShimNetwork | undefined {
  return networks.find((n) => n.Name === ref || n.Id === ref) ?? networks.find((n) => ref.length >= 1 && n.Id.startsWith(ref));
}

function inspect(argv: string[]): { stdout: string; errors: string[] } {
  const { flags, args } = parse(argv, { '--format': 'format', '-f': 'format' }, { '-v': 'verbose', '--verbose': 'verbose' });
  if (!args.length) throw new DockerError(`"docker network inspect" requires at least 1 argument.\nSee 'docker network inspect --help'.`);
  const networks = load();
  const found: ShimNetwork[] = [];
  const errors: string[] = [];
  for (const ref of args) {
    const n = find(networks, ref);
    if (n) found.push(n);
    else errors.push(`Error response from daemon: network ${ref} not found`);
  }
  const format = flags.get('format')?.at(-1);
  if (format) return { stdout: found.map((n) => `${render(format, n)}\n`).join(''), errors };
  return { stdout: found.length ? `${JSON.stringify(found, null, 4)}\n` : '[]\n', errors };
}

function create(argv: string[]): string {
  const { flags, args } = parse(
    argv,
    { '-d': 'driver', '--driver': 'driver', '-o': 'opt', '--opt': 'opt', '--subnet': 'subnet', '--label': 'label' },
    { '--ipv6': 'ipv6' },
  );
  if (args.length !== 1) throw new DockerError(`"docker network create" requires exactly 1 argument.\nSee 'docker network create --help'.`);
  const [name] = args;
  const networks = load();
  if (networks.some((n) => n.Name === name)) throw new DockerError(`Error response from daemon: network with name ${name} already exists`);
  const pairs = (k: string) => Object.fromEntries((flags.get(k) ?? []).map((o) => [o.split('=')[0], o.split('=').slice(1).join('=')]));
  const ipv6 = flags.get('ipv6')?.at(-1) === 'true';
  const subnets = flags.get('subnet') ?? [];
  const n = networkOf(name, flags.get('driver')?.at(-1) ?? 'bridge', {
    EnableIPv6: ipv6,
    IPAM: { Driver: 'default', Options: {}, Config: subnets.map((Subnet) => ({ Subnet })) },
    Options: pairs('opt'),
    Labels: pairs('label'),
  });
  if (ipv6 && process.env.STANDIN_IP6TABLES_NAT !== '1') throw new DockerError(IP6TABLES_NAT_MISSING(subnets[0] ?? 'fd00::/64', n.Id));
  save([...networks, n]);
  return `${n.Id}\n`;
}

export function main(argv: string[]): number {
  fs.appendFileSync(process.env.STANDIN_DOCKER_NETWORK_LOG!, JSON.stringify(argv) + '\n');
  const [, sub, ...rest] = argv;
  try {
    if (sub === 'ls' || sub === 'list') process.stdout.write(list(rest));
    else if (sub === 'inspect') {
      const r = inspect(rest);
      process.stdout.write(r.stdout);
      if (r.errors.length) throw new DockerError(r.errors.join('\n'));
    } else if (sub === 'create') process.stdout.write(create(rest));
    else throw unsupported(`docker network ${sub ?? ''}`);
    return 0;
  } catch (e) {
    if (!(e instanceof DockerError)) throw e;
    process.stderr.write(`${e.message}\n`);
    return e.code;
  }
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) process.exitCode = main(process.argv.slice(2));
