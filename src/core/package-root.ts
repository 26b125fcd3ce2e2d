import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

/**
 * The installation's root: the folder holding package.json and templates/ (and, in a checkout, node_modules/).
 * Found by walking up from this module's file, because that file sits at different depths: dist/src/core/ (tsc's
 * output, which the unit tests import) and dist/cli/ (the bundle that bin/meshdemo runs).
 */
export function packageRoot(): string {
  if (found) return found;
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'templates'))) return (found = dir);
    if (path.dirname(dir) === dir) throw new Error(`meshdemo's installation is incomplete: no package.json with templates/ beside it above ${start}; reinstall meshdemo`);
  }
}
