/**
 * A STAND-IN for the kind CLI (v0.12.0, the release whose node images include kindest/node:v1.19.16) — not the
 * real one, which needs node containers. `installKindStandin(dir)` writes a `kind` sh script into `dir` (put it
 * first on PATH) that runs this file with Node. It imitates what meshdemo can observe, from kubernetes-sigs/kind
 * at v0.12.0:
 *
 *   kind version                      pkg/cmd/kind/version/version.go: "kind v0.12.0 go1.17.6 linux/amd64" on stdout
 *   kind get clusters                 pkg/cmd/kind/get/clusters/clusters.go: one name per line on stdout
 *   kind load docker-image IMAGE… [--name N] [--nodes n1,n2]
 *                                     pkg/cmd/kind/load/docker-image/docker-image.go: each image must be in the
 *                                     local Docker daemon (`docker image inspect`, else the error
 *                                     `image: "<ref>" not present locally`); the cluster (default "kind") must
 *                                     have nodes (`no nodes found for cluster "<n>"`); per image, on stderr (the
 *                                     logger, pkg/cmd/logger.go), `Image: "<ref>" with ID "<id>" not yet present
 *                                     on node "<n>-control-plane", loading...` or `… found to be already present
 *                                     on all nodes.`
 * Errors: "ERROR: <message>" on stderr and exit 1 (cmd/kind/app/main.go logError, os.Exit(1)).
 *
 * Env: STANDIN_KIND_CLUSTERS (comma-separated existing clusters, default "kind"), STANDIN_KIND_STATE (directory:
 * `calls.log`, one JSON argv per line, and the image ids loaded per node `node-<node>.txt`).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function fail(message: string): number {
  process.stderr.write(`ERROR: ${message}\n`);
  return 1;
}

export function main(argv: string[]): number {
  const state = process.env.STANDIN_KIND_STATE;
  if (state) fs.appendFileSync(path.join(state, 'calls.log'), `${JSON.stringify(argv)}\n`);
  const clusters = (process.env.STANDIN_KIND_CLUSTERS || 'kind').split(',').filter(Boolean);
  const words: string[] = [];
  let name = 'kind';
  let nodesFlag: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--name' || a === '-n') name = argv[++i] ?? '';
    else if (a.startsWith('--name=')) name = a.slice('--name='.length);
    else if (a === '--nodes') nodesFlag = argv[++i];
    else if (a.startsWith('-')) return fail(`unknown flag: ${a}`);
    else words.push(a);
  }
  const [cmd, sub, ...rest] = words;
  if (cmd === 'version') {
    process.stdout.write('kind v0.12.0 go1.17.6 linux/amd64\n');
    return 0;
  }
  if (cmd === 'get' && sub === 'clusters') {
    if (!clusters.length) process.stderr.write('No kind clusters found.\n');
    for (const c of clusters) process.stdout.write(`${c}\n`);
    return 0;
  }
  if (cmd === 'load' && sub === 'docker-image') {
    if (!rest.length) return fail('a list of image names is required');
    const ids: string[] = [];
    for (const image of rest) {
      try {
        ids.push(execFileSync('docker', ['image', 'inspect', '-f', '{{ .Id }}', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      } catch {
        return fail(`image: "${image}" not present locally`);
      }
    }
    if (!clusters.includes(name)) return fail(`no nodes found for cluster "${name}"`);
    const all = [`${name}-control-plane`];
    const nodes = nodesFlag ? nodesFlag.split(',') : all;
    for (const n of nodes) if (!all.includes(n)) return fail(`unknown node: "${n}"`);
    rest.forEach((image, i) => {
      const missing = nodes.filter((n) => !(state && fs.existsSync(path.join(state, `node-${n}.txt`)) && fs.readFileSync(path.join(state, `node-${n}.txt`), 'utf8').split('\n').includes(ids[i])));
      if (!missing.length) {
        process.stderr.write(`Image: "${image}" with ID "${ids[i]}" found to be already present on all nodes.\n`);
        return;
      }
      for (const n of missing) {
        process.stderr.write(`Image: "${image}" with ID "${ids[i]}" not yet present on node "${n}", loading...\n`);
        if (state) fs.appendFileSync(path.join(state, `node-${n}.txt`), `${ids[i]}\n`);
      }
    });
    return 0;
  }
  return fail(`unknown command "${words.join(' ')}" for "kind"`);
}

/** Writes `<dir>/kind`, a sh script running this stand-in with this Node. */
export function installKindStandin(dir: string): string {
  const file = path.join(dir, 'kind');
  fs.writeFileSync(file, `#!/bin/sh\n# meshdemo test stand-in for kind (test/support/kind-standin.ts)\nexec '${process.execPath}' '${fileURLToPath(import.meta.url)}' "$@"\n`, { mode: 0o755 });
  return file;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exit(main(process.argv.slice(2)));
}
