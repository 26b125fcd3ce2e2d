/**
 * A STAND-IN for the minikube CLI — not the real one, which needs a VM or a container runtime it could start.
 * `installMinikubeStandin()` writes a `minikube` sh script into a directory (put it first on PATH) that runs this
 * file with Node. It imitates what meshdemo can observe, per version, from kubernetes/minikube at that tag:
 *
 *   minikube version [--short]      cmd/minikube/cmd/version.go: "minikube version: v<V>" (+ "commit: …"), or
 *                                   just "v<V>" with --short; on stdout, exit 0
 *   minikube image load IMAGE       cmd/minikube/cmd/image.go, added in v1.18.0: loads an image of the local
 *                                   Docker daemon (`docker image inspect` must find it) into the profile's node
 *   minikube image ls | list        cmd/minikube/cmd/image.go, added in v1.19.0 (v1.19: "list" alias "ls";
 *                                   v1.25: "ls" alias "list"): one image reference per line
 *   -p, --profile NAME              cmd/minikube/cmd/root.go: global flag, default "minikube"; a profile that does
 *                                   not exist is `exit.Error(reason.Usage, "loading profile", …)`: exit 14
 * Unknown commands (e.g. `image` before v1.18): cobra's "Error: unknown command "image" for "minikube"" and
 * "Run 'minikube --help' for usage." on stderr, exit 14 (root.go Execute: reason.ExProgramUsage,
 * pkg/minikube/reason/exitcodes.go).
 *
 * Env: STANDIN_MINIKUBE_VERSION (e.g. 1.25.0), STANDIN_MINIKUBE_PROFILES (comma-separated existing profiles,
 * default "minikube"), STANDIN_MINIKUBE_STATE (directory: the log `calls.log`, one JSON argv per line, and
 * the images loaded per profile `images-<profile>.txt`).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const EX_PROGRAM_USAGE = 14;
const EX_GUEST_IMAGE_LOAD = 80; // reason.GuestImageLoad: ExGuestError (pkg/minikube/reason/exitcodes.go)

function atLeast(version: string, major: number, minor: number): boolean {
  const [a, b] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

function unknown(command: string, parent: string): number {
  process.stderr.write(`Error: unknown command "${command}" for "${parent}"\nRun '${parent} --help' for usage.\n`);
  return EX_PROGRAM_USAGE;
}

export function main(argv: string[]): number {
  const version = process.env.STANDIN_MINIKUBE_VERSION || '1.25.0';
  const state = process.env.STANDIN_MINIKUBE_STATE;
  if (state) fs.appendFileSync(path.join(state, 'calls.log'), `${JSON.stringify(argv)}\n`);
  const words: string[] = [];
  let profile = 'minikube';
  let short = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-p' || a === '--profile') profile = argv[++i] ?? '';
    else if (a.startsWith('--profile=')) profile = a.slice('--profile='.length);
    else if (a === '--short') short = true;
    else words.push(a);
  }
  const [cmd, sub, ...rest] = words;
  if (cmd === 'version') {
    process.stdout.write(short ? `v${version}\n` : `minikube version: v${version}\ncommit: 0000000000000000000000000000000000000000\n`);
    return 0;
  }
  if (cmd !== 'image') return unknown(cmd ?? '', 'minikube');
  if (!atLeast(version, 1, 18)) return unknown('image', 'minikube');
  const profiles = (process.env.STANDIN_MINIKUBE_PROFILES || 'minikube').split(',');
  const loadProfile = (): boolean => {
    if (profiles.includes(profile)) return true;
    process.stderr.write(`\n❌  Exiting due to MK_USAGE: loading profile: profile "${profile}" not found\n\n`);
    return false;
  };
  const imagesFile = state ? path.join(state, `images-${profile}.txt`) : undefined;
  if (sub === 'load') {
    if (!loadProfile()) return EX_PROGRAM_USAGE;
    const [image] = rest;
    try {
      execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
    } catch {
      process.stderr.write(`\n❌  Exiting due to GUEST_IMAGE_LOAD: Failed to load image: ${image} not found in the local daemon\n\n`);
      return EX_GUEST_IMAGE_LOAD;
    }
    if (imagesFile) fs.appendFileSync(imagesFile, `docker.io/${image}\n`);
    return 0;
  }
  if (atLeast(version, 1, 19) && (sub === 'ls' || sub === 'list')) {
    if (!loadProfile()) return EX_PROGRAM_USAGE;
    if (imagesFile && fs.existsSync(imagesFile)) process.stdout.write(fs.readFileSync(imagesFile, 'utf8'));
    return 0;
  }
  return unknown(sub ?? '', 'minikube image');
}

/** Writes `<dir>/minikube`, a sh script running this stand-in with this Node. */
export function installMinikubeStandin(dir: string): string {
  const file = path.join(dir, 'minikube');
  const js = fileURLToPath(import.meta.url);
  fs.writeFileSync(file, `#!/bin/sh\n# meshdemo test stand-in for minikube (test/support/minikube-standin.ts)\nexec '${process.execPath}' '${js}' "$@"\n`, { mode: 0o755 });
  return file;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exit(main(process.argv.slice(2)));
}
