// A service's build context as a directory, for what needs one outside docker: the service tests run it in
// place, the images bench builds it with a plain `docker build <dir>`. It is exactly what meshdemo sends to
// `docker build -` (src/images/context.ts contextArchive), unpacked.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { x as extract } from 'tar';
import { contextArchive } from '../../src/images/context.js';
import type { ServiceName } from '../../src/settings.js';

export async function contextDir(service: ServiceName, baseImage: string, tmpRoot = os.tmpdir()): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const { tar } = await contextArchive(service, baseImage);
  const dir = await fsp.mkdtemp(path.join(tmpRoot, `meshdemo-${service}-`));
  await pipeline(Readable.from([tar]), extract({ cwd: dir }));
  return { dir, cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
}
