// What the cache trusts (issue 21): the cache dir's owner and mode, the manifests of verified trees and binaries,
// the download lock, and which kind `down` runs for a cluster in the state file.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PreflightError } from '../../src/core/errors.js';
import { checkCacheDir, manifestMismatch, withFileLock, writeManifest } from '../../src/download/cache-files.js';
import { cachedKindManifest, cachedKindPath, kindForState, trustedKindForState } from '../../src/kind/binary.js';
import { kindBinaryFor, writeState } from '../../src/kind/state.js';
import { createHash } from 'node:crypto';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('the cache dir', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'meshdemo-cache-trust-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const dir = (name: string, mode: number) => {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    chmodSync(d, mode);
    return d;
  };
  const refusal = (cache: string) => {
    try {
      checkCacheDir(cache, false);
    } catch (err) {
      assert.ok(err instanceof PreflightError, String(err));
      assert.equal(err.exitCode, 3);
      assert.match(err.hint ?? '', /--trust-cache-dir/);
      return err.message;
    }
    return undefined;
  };

  it('is used when only its owner can write to it, or when it does not exist yet', () => {
    assert.equal(refusal(dir('mine', 0o755)), undefined);
    assert.equal(refusal(dir('private', 0o700)), undefined);
    assert.equal(refusal(join(root, 'not-yet')), undefined);
  });

  it('is refused when its group or everyone can write to it, unless --trust-cache-dir says so', () => {
    const group = dir('group', 0o775);
    assert.match(refusal(group) ?? '', /the cache dir .*group is writable by its group \(mode 775\): meshdemo runs istioctl and kind from it/);
    const world = dir('world', 0o777);
    assert.match(refusal(world) ?? '', /is writable by everyone \(mode 777\)/);
    checkCacheDir(world, true);
  });

  it('is refused when another user owns it, or a directory above it is writable by others (not sticky)', () => {
    const foreign = dir('foreign', 0o755);
    chownSync(foreign, 65534, 65534);
    assert.match(refusal(foreign) ?? '', /belongs to uid 65534, not to you/);
    const shared = dir('shared', 0o777);
    const inside = dir('shared/cache', 0o700);
    assert.match(refusal(inside) ?? '', /is inside .*shared, which others can write to: they could replace the cache dir/);
    chmodSync(shared, 0o1777); // sticky, like /tmp: others cannot move our directory away
    assert.equal(refusal(inside), undefined);
  });
});

describe('manifests', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'meshdemo-manifest-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('say why a recorded file is not trusted: changed, replaced by a link, missing, another archive, no manifest', async () => {
    mkdirSync(join(root, 'tree', 'bin'), { recursive: true });
    writeFileSync(join(root, 'tree', 'bin', 'tool'), 'tool');
    writeFileSync(join(root, 'tree', 'data'), 'data');
    const manifest = join(root, 'tree.manifest.json');
    assert.match(manifestMismatch(manifest) ?? '', /tree\.manifest\.json is missing or unreadable/);
    await writeManifest(manifest, { source: 'a'.repeat(64), files: { 'tree/bin/tool': sha('tool'), 'tree/data': sha('data') } });
    assert.equal(readFileSync(manifest, 'utf8').includes(sha('tool')), true);
    assert.equal(manifestMismatch(manifest), undefined);
    assert.equal(manifestMismatch(manifest, { only: ['tree/bin/tool'], pinned: 'A'.repeat(64) }), undefined);
    assert.match(manifestMismatch(manifest, { pinned: 'b'.repeat(64) }) ?? '', /unpacked from sha256 a{64}, not the pinned b{64}/);
    assert.match(manifestMismatch(manifest, { only: ['tree/other'] }) ?? '', /tree\/other is not in/);

    writeFileSync(join(root, 'tree', 'data'), 'planted');
    assert.equal(manifestMismatch(manifest, { only: ['tree/bin/tool'] }), undefined, 'only the files asked for are hashed');
    assert.match(manifestMismatch(manifest) ?? '', /tree\/data has changed since it was verified/);
    writeFileSync(join(root, 'tree', 'data'), 'data');

    // a link to a file with the right content is still not the file that was verified
    writeFileSync(join(root, 'elsewhere'), 'tool');
    rmSync(join(root, 'tree', 'bin', 'tool'));
    symlinkSync(join(root, 'elsewhere'), join(root, 'tree', 'bin', 'tool'));
    assert.match(manifestMismatch(manifest) ?? '', /tree\/bin\/tool: ELOOP/);
    rmSync(join(root, 'tree', 'bin', 'tool'));
    assert.match(manifestMismatch(manifest) ?? '', /tree\/bin\/tool: ENOENT/);
  });
});

describe('withFileLock', () => {
  it('takes over the lock of a process that no longer runs', async () => {
    const root = mkdtempSync(join(tmpdir(), 'meshdemo-lock-'));
    try {
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      const lock = join(root, 'f.lock');
      writeFileSync(lock, `${dead.stdout}\n`);
      const waited: number[] = [];
      const got = await withFileLock(lock, { onWait: (pid) => waited.push(pid) }, async () => readFileSync(lock, 'utf8'));
      assert.equal(got, `${process.pid}\n`);
      assert.deepEqual(waited, []);
      assert.throws(() => readFileSync(lock), /ENOENT/, 'released');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('kindForState: the kind down and status run for a cluster in the state file', () => {
  let root: string;
  let savedPath: string | undefined;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'meshdemo-kind-trust-'));
    savedPath = process.env.PATH;
    process.env.PATH = join(root, 'empty-path');
  });
  after(() => {
    process.env.PATH = savedPath;
    rmSync(root, { recursive: true, force: true });
  });

  const executable = (file: string, content: string) => {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content, { mode: 0o755 });
  };

  it('runs a kind in the cache dir only if it is the cached kind as verified, wherever the state file points', async () => {
    const cache = join(root, 'cache');
    const cached = cachedKindPath(cache);
    executable(cached, '#!/bin/sh\necho kind\n');
    assert.equal(kindForState(cache, { kind: cached }), undefined, 'a cached kind without a manifest is not one meshdemo verified');
    await writeManifest(cachedKindManifest(cache), { source: sha('#!/bin/sh\necho kind\n'), files: { kind: sha('#!/bin/sh\necho kind\n') } });
    assert.equal(kindForState(cache, { kind: cached }), cached);

    const planted = join(cache, 'local-clusters', 'kind');
    executable(planted, '#!/bin/sh\necho planted\n');
    assert.equal(kindForState(cache, { kind: planted }), cached, 'another file in the cache dir is never run');

    writeFileSync(cached, '#!/bin/sh\necho tampered\n');
    assert.equal(kindForState(cache, { kind: cached }), undefined, 'changed since it was verified');
    const onPath = join(root, 'empty-path', 'kind');
    executable(onPath, '#!/bin/sh\necho path\n');
    assert.equal(kindForState(cache, { kind: cached }), onPath, "then PATH's");

    // a kind outside the cache that created the cluster (PATH's at the time) is still the one asked
    const elsewhere = join(root, 'opt', 'kind');
    executable(elsewhere, '#!/bin/sh\necho opt\n');
    assert.equal(kindForState(cache, { kind: elsewhere }), elsewhere);
  });

  it('runs a kind outside the cache only while it is the file that created the cluster (by the sha256 recorded then)', async () => {
    const cache = join(root, 'cache-sha');
    const bin = join(root, 'sha-bin');
    const real = join(bin, 'kind-v0.17.0');
    executable(real, '#!/bin/sh\necho v0.17.0\n');
    const onPath = join(root, 'empty-path', 'kind');
    rmSync(onPath, { force: true });
    symlinkSync(real, onPath); // PATH's kind, a link as package managers install it: hashed through the link
    const state = { name: 'meshdemo', kind: onPath, kindSha256: sha('#!/bin/sh\necho v0.17.0\n') };
    const passedOver: string[] = [];
    assert.equal(kindForState(cache, state, (why) => passedOver.push(why)), onPath);
    assert.equal(passedOver.length, 0, 'the kind that created the cluster, unchanged');

    writeFileSync(real, '#!/bin/sh\necho planted\n');
    assert.equal(kindForState(cache, state, (why) => passedOver.push(why)), undefined, "not even as PATH's kind: it is the same file");
    assert.deepEqual(passedOver, [`${onPath} is no longer the kind that created the cluster (sha256 ${sha('#!/bin/sh\necho planted\n')}, recorded ${state.kindSha256})`]);
    assert.throws(
      () => trustedKindForState(cache, state),
      (e: unknown) => e instanceof PreflightError && e.message === `no kind binary meshdemo may run for kind cluster "meshdemo": ${passedOver[0]}, and there is no verified kind in the cache` && /meshdemo download --kind/.test(e.hint ?? ''),
    );
    // loading images into that cluster (src/kind/state.ts kindBinaryFor) refuses it the same way
    writeState(cache, { version: 1, context: 'kind-meshdemo', createdAt: '2026-12-01T00:00:00.000Z', kindVersion: '0.17.0', nodeImage: 'kindest/node:v1.19.16', kubeconfig: join(root, 'kubeconfig'), configFile: join(root, 'kind.yaml'), mappings: [], ...state });
    assert.throws(() => kindBinaryFor(cache, 'meshdemo'), PreflightError);

    const cached = cachedKindPath(cache);
    executable(cached, '#!/bin/sh\necho kind\n');
    await writeManifest(cachedKindManifest(cache), { source: sha('#!/bin/sh\necho kind\n'), files: { kind: sha('#!/bin/sh\necho kind\n') } });
    assert.equal(kindForState(cache, state), cached, "then meshdemo's verified kind");

    const other = join(root, 'other-bin', 'kind');
    executable(other, '#!/bin/sh\necho other\n');
    rmSync(cached);
    assert.equal(kindForState(cache, { ...state, kind: join(root, 'gone', 'kind') }), onPath, "a kind that is gone: PATH's, another file");
    assert.equal(kindForState(cache, { ...state, kind: other, kindSha256: undefined }), other, 'a record written before the sha256 was kept: the file it names');
  });
});
