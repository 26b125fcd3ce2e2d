import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../../src/core/errors.js';
import { defaultSourceDirs } from '../../src/images/context.js';
import { parseUpSettings } from '../../src/settings.js';

describe('up --services-dir', () => {
  it('builds from the given copy of templates/services, with dependencies from this installation', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-services-'));
    try {
      const { sources } = parseUpSettings({ servicesDir: path.relative(process.cwd(), copy) });
      assert.deepEqual(sources, { servicesDir: copy, projectRoot: defaultSourceDirs().projectRoot });
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('without it: the installed templates/services', () => {
    assert.deepEqual(parseUpSettings({}).sources, defaultSourceDirs());
  });

  it('a path that is not a directory is bad usage naming the flag and the fix', () => {
    assert.throws(
      () => parseUpSettings({ servicesDir: path.join(os.tmpdir(), 'meshdemo-no-such-services') }),
      (err: unknown) =>
        err instanceof UsageError && /^--services-dir .* is not a directory$/.test(err.message) && /cp -r .*templates\/services/.test(err.hint ?? ''),
    );
  });
});
