// Counts the docker, kind and minikube commands meshdemo starts, from outside: a wrapper of each tool first on
// PATH logs its arguments and runs the real one. (meshdemo finds these tools on PATH, as a user's shell would.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ToolCounts {
  build: number;
  tag: number;
  push: number;
  kindLoad: number;
  minikubeLoad: number;
}

export interface ToolCalls {
  counts(): ToolCounts;
  reset(): void;
  /** Puts PATH back and removes the wrappers. */
  restore(): void;
}

function which(tool: string, pathList: string): string | undefined {
  for (const dir of pathList.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, tool);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Installs the wrappers in front of this process's PATH (meshdemo's steps, run in this process, inherit it). */
export function recordToolCalls(): ToolCalls {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-tools-'));
  const log = path.join(dir, 'calls.log');
  fs.writeFileSync(log, '');
  const savedPath = process.env.PATH ?? '';
  for (const tool of ['docker', 'kind', 'minikube']) {
    const real = which(tool, savedPath);
    const run = real ? `exec ${JSON.stringify(real)} "$@"` : `echo "${tool}: command not found" >&2; exit 127`;
    fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\nprintf '%s\\n' "${tool} $*" >> ${JSON.stringify(log)}\n${run}\n`, { mode: 0o755 });
  }
  process.env.PATH = `${dir}${path.delimiter}${savedPath}`;
  return {
    counts() {
      const lines = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
      const count = (re: RegExp) => lines.filter((l) => re.test(l)).length;
      return {
        build: count(/^docker build /),
        tag: count(/^docker tag /),
        push: count(/^docker push /),
        kindLoad: count(/^kind load /),
        minikubeLoad: count(/^minikube image load /),
      };
    },
    reset() {
      fs.writeFileSync(log, '');
    },
    restore() {
      process.env.PATH = savedPath;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
