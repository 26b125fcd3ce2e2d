// `meshdemo download`, run as a user runs it, against a REAL local HTTP server (test/support/release-server.ts)
// serving a release-shaped archive. No cluster: the kubeconfig given does not exist. Also the two archives
// of issue 13 that only a capped, streaming extraction survives: a 48 MB archive whose .sha256 matches,
// with an 8 GiB file of zeros after 40 MB of random bytes, and a small archive inflating to 3 GiB.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { withDemoCluster } from '../support/demo-cluster.js';
import { startReleaseServer } from '../support/release-server.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { rawTar } from '../support/raw-tar.js';
import { kindStandinScript } from '../support/kind-standin.js';
import { createHash } from 'node:crypto';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';
const KIND_ASSET = 'v0.17.0/kind-linux-amd64';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Every file (not directory) under dir, relative. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

let zerosMember: Buffer | undefined;
/** gzip members concatenate: `count` copies of one compressed 64 MiB of zeros inflate to count × 64 MiB. */
function zerosGz(bytes: number): Buffer[] {
  const unit = 64 * MiB;
  assert.equal(bytes % unit, 0);
  const member = (zerosMember ??= gzipSync(Buffer.alloc(unit), { level: 9 }));
  return Array.from({ length: bytes / unit }, () => member);
}

/** A tar header (plus a pax record when the size needs one) for a file of `size` bytes whose data follows. */
function fileHeader(name: string, size: number): Buffer {
  const tooBigForOctal = size > 0o77777777777;
  // a pax record is "<length> size=<n>\n", its length counting its own digits
  const body = ` size=${size}\n`;
  const digits = [1, 2, 3].find((d) => String(d + body.length).length === d)!;
  const record = `${digits + body.length}${body}`;
  const withoutData = rawTar([
    ...(tooBigForOctal ? [{ path: `PaxHeader/${name}`, type: 'ExtendedHeader' as const, body: record }] : []),
    { path: name, size: tooBigForOctal ? 0 : size, mode: 0o644 },
  ]);
  return withoutData.subarray(0, withoutData.length - 1024); // no end-of-archive blocks: the data follows
}

/** Peak resident memory (VmHWM) of a running process, polled until it exits. */
function watchPeakRss(pid: number): { peak: () => number; stop: () => void } {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      /* exited */
    }
  }, 20);
  return { peak: () => peak, stop: () => clearInterval(timer) };
}

describe('meshdemo download', () => {
  // kind's release assets as GitHub serves them (the binary is the kind stand-in, test/support/kind-standin.ts)
  const kind = Buffer.from(kindStandinScript());
  const kindSum = `${createHash('sha256').update(kind).digest('hex')}  kind-linux-amd64\n`;
  // no cluster: meshdemo gets a kubeconfig that does not exist
  const demo = withDemoCluster({ name: 'download', controlPlane: false, release: 'server', assets: { [KIND_ASSET]: kind, [`${KIND_ASSET}.sha256sum`]: Buffer.from(kindSum) } });
  const download = (cache: string, args: string[] = [], mirror = demo.server.url) =>
    demo.meshdemo(['download', '--istio-mirror', mirror, ...args], { cacheDir: cache, env: { KUBECONFIG: path.join(demo.tmp, 'nope') } });
  /**
   * meshdemo download (with `args`) into `<tmp>/<cacheName>` from the release server, as run with no cluster
   * configured at all: no --kubeconfig, no KUBECONFIG, and a HOME of its own without ~/.kube.
   */
  const withoutKubeconfig = (cacheName: string, args: string[]) => {
    const home = fs.mkdtempSync(path.join(demo.tmp, 'home-'));
    const run = () =>
      runMeshdemo(['--cache-dir', path.join(demo.tmp, cacheName), 'download', ...args, '--istio-mirror', demo.server.url, '--kind-mirror', demo.server.url], {
        env: { HOME: home, KUBECONFIG: undefined, MESHDEMO_KUBECONFIG: undefined, MESHDEMO_CONTEXT: undefined },
      });
    return { home, run };
  };
  /** meshdemo download of `archive`, served alone, into `<tmp>/<cacheName>`, its peak RSS watched (and shown). */
  const downloadWatchingRss = async (t: TestContext, archive: Buffer, cacheName: string) => {
    const archiveServer = await startReleaseServer({ [ASSET]: archive });
    try {
      const cache = path.join(demo.tmp, cacheName);
      let watch: ReturnType<typeof watchPeakRss> | undefined;
      const r = await demo.meshdemo(['download', '--istio-mirror', archiveServer.url], { cacheDir: cache, onSpawn: (child) => (watch = watchPeakRss(child.pid!)) });
      watch?.stop();
      const peak = watch!.peak();
      t.diagnostic(`peak RSS of meshdemo download: ${(peak / MiB).toFixed(0)} MiB`);
      return { r, cache, peak };
    } finally {
      await archiveServer.close();
    }
  };

  it('downloads and verifies once, without a cluster; a second run downloads nothing', async () => {
    const cache = path.join(demo.tmp, 'cache-once');
    demo.server.requests.length = 0;
    const first = await download(cache, ['--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(demo.server.requests.map((r) => r.path), [`/${ASSET}.sha256`, `/${ASSET}`]);
    const result = first.events().find((e) => e.type === 'result');
    const istioctl = path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4', 'bin', 'istioctl');
    assert.deepEqual(result, { type: 'result', ok: true, istioVersion: '1.8.4', istioctl, downloaded: true });
    assert.ok(fs.statSync(istioctl).mode & 0o100, 'istioctl is executable');
    assert.ok(fs.existsSync(path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4', 'samples', 'addons', 'kiali.yaml')));
    // the cache holds the archive, the tree and its manifest, and no temporary leftovers (no .part, no lock)
    assert.deepEqual(fs.readdirSync(path.join(cache, 'istio', '1.8.4')).sort(), ['istio-1.8.4-linux-amd64.tar.gz', 'tree', 'tree.manifest.json']);

    demo.server.requests.length = 0;
    const second = await download(cache);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(demo.server.requests, [], 'second run sends no request');
    assert.match(second.stdout, /istioctl 1\.8\.4: .*bin\/istioctl/);
  });

  it('with no cluster configured (no kubeconfig at all), fetches kind too, as up would need it; a second run downloads nothing', async () => {
    const { home, run } = withoutKubeconfig('cache-kind', ['--json']);
    const cache = path.join(demo.tmp, 'cache-kind');
    demo.server.requests.length = 0;
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(demo.server.requests.map((r) => r.path).sort(), [`/${ASSET}`, `/${ASSET}.sha256`, `/${KIND_ASSET}`, `/${KIND_ASSET}.sha256sum`].sort());
    const kind = path.join(cache, 'kind', 'v0.17.0', 'kind');
    const result = first.events().find((e) => e.type === 'result');
    assert.equal(result.kind, kind);
    assert.equal(result.kindDownloaded, true);
    assert.ok(fs.statSync(kind).mode & 0o100, 'kind is executable');
    assert.ok(!fs.existsSync(path.join(home, '.kube')), 'no kubeconfig is written: no cluster is created');

    demo.server.requests.length = 0;
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(demo.server.requests, [], 'second run sends no request');
    assert.equal(second.events().find((e) => e.type === 'result').kindDownloaded, false);
  });

  it('--kind with a wrong --kind-sha256: exit 5, kind is neither kept nor run', async () => {
    const cache = path.join(demo.tmp, 'cache-kind-bad');
    const r = await download(cache, ['--kind', '--kind-mirror', demo.server.url, '--kind-sha256', 'e'.repeat(64)]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(errorLines(r.stderr).length, 1, r.stderr);
    assert.ok(!fs.existsSync(path.join(cache, 'kind', 'v0.17.0', 'kind')));
  });

  it("kind's download is capped at 128 MiB: a larger Content-Length is refused before its body, exit 5, nothing kept", async () => {
    // a mirror announcing a kind of 128 MiB + 1 byte (the Istio release comes from the ordinary release server)
    let bodyBytesSent = 0;
    const mirror = http.createServer((req, res) => {
      if (req.url?.endsWith('.sha256sum')) return void res.end(`${'c'.repeat(64)}  kind-linux-amd64\n`);
      res.writeHead(200, { 'content-length': String(128 * 1024 ** 2 + 1) });
      const chunk = Buffer.alloc(64 * 1024);
      const pump = () => {
        while (!res.destroyed && bodyBytesSent < 128 * 1024 ** 2 && res.write(chunk)) bodyBytesSent += chunk.length;
      };
      res.on('drain', pump);
      pump();
    });
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    try {
      const cache = path.join(demo.tmp, 'cache-kind-large');
      const r = await download(cache, ['--kind', '--kind-mirror', `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`]);
      assert.equal(r.code, 5, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /kind-linux-amd64.*134217728 bytes.*the server announces 134217729/);
      assert.deepEqual(fs.readdirSync(path.join(cache, 'kind', 'v0.17.0')), [], 'nothing kept');
    } finally {
      mirror.closeAllConnections();
      await new Promise((resolve) => mirror.close(resolve));
    }
  });

  it('refuses a wrong checksum: exit 5, one error line, nothing kept', async () => {
    const cache = path.join(demo.tmp, 'cache-bad');
    demo.server.setMode({ wrongChecksum: true });
    try {
      const r = await download(cache);
      assert.equal(r.code, 5, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /sha256 .* but 0{64} was expected/);
      assert.deepEqual(filesUnder(cache), []);
    } finally {
      demo.server.setMode({ wrongChecksum: false });
    }
  });

  it('a local --istio-archive is verified against --istio-sha256 in the same pass', async () => {
    const cache = path.join(demo.tmp, 'cache-local');
    const wrong = await download(cache, ['--istio-archive', demo.archive.path, '--istio-sha256', 'f'.repeat(64)]);
    assert.equal(wrong.code, 5, wrong.stderr);
    assert.match(errorLines(wrong.stderr)[0], /has sha256 [0-9a-f]{64}, expected f{64}/);
    assert.deepEqual(filesUnder(cache), []);
    const ok = await download(cache, ['--istio-archive', demo.archive.path, '--istio-sha256', demo.archive.sha256]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(fs.existsSync(path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4', 'bin', 'istioctl')));
  });

  it('refuses an archive whose .sha256 matches but that holds an 8 GiB file after 40 MB: exit 5, nothing left in the cache', async (t) => {
    const random = randomBytes(40 * MiB);
    const parts = [
      gzipSync(Buffer.concat([fileHeader('istio-1.8.4/bin/istioctl', random.length), random]), { level: 1 }),
      gzipSync(fileHeader('istio-1.8.4/zeros.bin', 8 * GiB)),
      ...zerosGz(8 * GiB),
      gzipSync(Buffer.alloc(1024)),
    ];
    const bomb = Buffer.concat(parts);
    t.diagnostic(`archive: ${(bomb.length / MiB).toFixed(1)} MiB, inflating to ${((40 * MiB + 8 * GiB) / GiB).toFixed(2)} GiB`);
    const { r, cache } = await downloadWatchingRss(t, bomb, 'cache-8g');
    assert.equal(r.code, 5, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /refusing to extract .*"istio-1\.8\.4\/zeros\.bin" unpacks to 8589934592 bytes, more than the limit of 1073741824/);
    assert.deepEqual(filesUnder(cache), [], 'no archive, no partial tree');
  });

  it('refuses a small archive inflating to 3 GiB at the 1 GiB cap, in bounded memory', async (t) => {
    // 12 files of 256 MiB of zeros: each under the per-file cap, together 3 GiB
    const parts: Buffer[] = [];
    for (let i = 0; i < 12; i++) parts.push(gzipSync(fileHeader(`istio-1.8.4/zeros-${i}.bin`, 256 * MiB)), ...zerosGz(256 * MiB));
    parts.push(gzipSync(Buffer.alloc(1024)));
    const bomb = Buffer.concat(parts);
    t.diagnostic(`archive: ${(bomb.length / MiB).toFixed(1)} MiB, inflating to 3 GiB`);
    const { r, cache, peak } = await downloadWatchingRss(t, bomb, 'cache-3g');
    assert.equal(r.code, 5, r.stderr);
    assert.match(errorLines(r.stderr)[0], /refusing to extract .*unpacks to more than the limit of 1073741824 bytes \(at entry "istio-1\.8\.4\/zeros-3\.bin"\)/);
    assert.deepEqual(filesUnder(cache), [], 'no archive, no partial tree');
    // a hard bound far above normal (~100 MiB), far below what buffering the inflated data would take
    assert.ok(peak > 0 && peak < 512 * MiB, `peak RSS ${peak}`);
  });
  describe('the review of issue 21', () => {
    const versionDir = (cache: string) => path.join(cache, 'istio', '1.8.4');
    /** Everything under dir, directories too, relative. */
    const allUnder = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).map(String).sort() : []);

    it('refuses the 241-byte archive whose pax path is "a/" × 40 000: exit 5, nothing left (no tree.tmp-*, no .part)', async (t) => {
      const body = ` path=${'a/'.repeat(40_000)}\n`;
      const record = `${body.length + 5}${body}`; // the length counts its own 5 digits
      const tiny = gzipSync(rawTar([{ path: 'PaxHeader/a', type: 'ExtendedHeader', body: record }, { path: 'a', body: 'x' }]), { level: 9 });
      t.diagnostic(`archive: ${tiny.length} bytes`);
      const tinyServer = await startReleaseServer({ [ASSET]: tiny });
      try {
        const cache = path.join(demo.tmp, 'cache-241');
        const r = await download(cache, [], tinyServer.url);
        assert.equal(r.code, 5, r.stderr);
        const lines = errorLines(r.stderr);
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0], /refusing to extract .*: entry "(a\/){50}"… is 80000 bytes long, more than the limit of 4096/);
        assert.deepEqual(allUnder(versionDir(cache)).filter((f) => !fs.statSync(path.join(versionDir(cache), f)).isDirectory() || /tmp/.test(f)), [], 'no .part, no tree.tmp-*');
      } finally {
        await tinyServer.close();
      }
    });

    it('a tree.tmp-* left by a killed download (SIGKILL) is removed by the next run', async () => {
      const cache = path.join(demo.tmp, 'cache-killed');
      demo.server.setMode({ stallAfterBytes: 4096 });
      try {
        let poll: NodeJS.Timeout | undefined;
        const r = await demo.meshdemo(['download', '--istio-mirror', demo.server.url], {
          cacheDir: cache,
          env: { KUBECONFIG: path.join(demo.tmp, 'nope') },
          onSpawn: (child) => {
            poll = setInterval(() => {
              const names = fs.existsSync(versionDir(cache)) ? fs.readdirSync(versionDir(cache)) : [];
              if (names.some((n) => n.startsWith('tree.tmp-')) && names.some((n) => n.endsWith('.part'))) {
                clearInterval(poll);
                child.kill('SIGKILL');
              }
            }, 20);
          },
        });
        clearInterval(poll);
        assert.notEqual(r.code, 0);
        const left = fs.readdirSync(versionDir(cache));
        assert.ok(left.some((n) => /^tree\.tmp-\d+-[0-9a-f]{12}$/.test(n)), `a temporary tree is left: ${left}`);
      } finally {
        demo.server.setMode({ stallAfterBytes: undefined });
      }
      const again = await download(cache);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(fs.readdirSync(versionDir(cache)).sort(), ['istio-1.8.4-linux-amd64.tar.gz', 'tree', 'tree.manifest.json']);
    });

    it('refuses a cache dir its group can write to (exit 3, nothing fetched) unless --trust-cache-dir', async () => {
      const cache = path.join(demo.tmp, 'cache-shared');
      fs.mkdirSync(cache);
      fs.chmodSync(cache, 0o775);
      demo.server.requests.length = 0;
      const r = await download(cache);
      assert.equal(r.code, 3, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /the cache dir .*cache-shared is writable by its group \(mode 775\).* — chmod go-w .*--trust-cache-dir/);
      assert.deepEqual(demo.server.requests, []);
      const trusted = await demo.meshdemo(['--trust-cache-dir', 'download', '--istio-mirror', demo.server.url], { cacheDir: cache, env: { KUBECONFIG: path.join(demo.tmp, 'nope') } });
      assert.equal(trusted.code, 0, trusted.stderr);
    });

    it('never runs a planted istioctl: `meshdemo istioctl` refuses it (exit 3), download verifies and unpacks again, pinned or not', async () => {
      const cache = path.join(demo.tmp, 'cache-planted');
      assert.equal((await download(cache)).code, 0);
      const istioctl = path.join(versionDir(cache), 'tree', 'istio-1.8.4', 'bin', 'istioctl');
      const genuine = fs.readFileSync(istioctl);
      const marker = path.join(demo.tmp, 'planted-istioctl-ran');
      const plant = () => fs.writeFileSync(istioctl, `#!/bin/sh\ntouch '${marker}'\necho 1.8.4\n`);

      plant();
      const run = await demo.meshdemo(['istioctl', '--', 'version', '--remote=false'], { cacheDir: cache, env: { KUBECONFIG: path.join(demo.tmp, 'nope') } });
      assert.equal(run.code, 3, run.stderr);
      assert.match(errorLines(run.stderr)[0], /the cached istioctl 1\.8\.4 is not the one meshdemo verified \(tree\/istio-1\.8\.4\/bin\/istioctl has changed since it was verified\); not running it — run meshdemo download/);
      assert.equal(fs.existsSync(marker), false, 'the planted istioctl did not run');

      for (const pin of [[], ['--istio-sha256', demo.archive.sha256]]) {
        plant();
        const again = await download(cache, pin);
        assert.equal(again.code, 0, again.stderr);
        assert.deepEqual(fs.readFileSync(istioctl), genuine, 'unpacked again from the verified archive');
        assert.equal(fs.existsSync(marker), false, 'the planted istioctl did not run');
      }

      // with a pin, every file of the tree is checked, not only istioctl
      const kiali = path.join(versionDir(cache), 'tree', 'istio-1.8.4', 'samples', 'addons', 'kiali.yaml');
      const kialiYaml = fs.readFileSync(kiali);
      fs.appendFileSync(kiali, '\n# planted\n');
      demo.server.requests.length = 0;
      const pinned = await download(cache, ['--istio-sha256', demo.archive.sha256]);
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.deepEqual(fs.readFileSync(kiali), kialiYaml);
      assert.deepEqual(demo.server.requests, [], 'from the cached archive, checked against the pin: no request');
    });

    it('a cached kind that changed since it was verified is downloaded again, not run', async () => {
      const { run } = withoutKubeconfig('cache-kind-planted', ['--kind']);
      const cache = path.join(demo.tmp, 'cache-kind-planted');
      assert.equal((await run()).code, 0);
      const kind = path.join(cache, 'kind', 'v0.17.0', 'kind');
      const genuine = fs.readFileSync(kind);
      const marker = path.join(demo.tmp, 'planted-kind-ran');
      fs.writeFileSync(kind, `#!/bin/sh\ntouch '${marker}'\necho 'kind v0.17.0 go1.19.2 linux/amd64'\n`);
      demo.server.requests.length = 0;
      const again = await run();
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /--kind-mirror uses plain http and no --kind-sha256 is pinned: the checksum comes from the same unauthenticated server as kind/);
      assert.deepEqual(demo.server.requests.map((r) => r.path).filter((p) => p.includes('kind')), [`/${KIND_ASSET}.sha256sum`, `/${KIND_ASSET}`]);
      assert.deepEqual(fs.readFileSync(kind), genuine);
      assert.equal(fs.existsSync(marker), false);
    });

    it('warns that an http:// mirror without a pinned sha256 cannot detect tampering; not with the pin', async () => {
      const warning = /--istio-mirror uses plain http and no --istio-sha256 is pinned: the checksum comes from the same unauthenticated server/;
      const unpinned = await download(path.join(demo.tmp, 'cache-http-1'));
      assert.equal(unpinned.code, 0, unpinned.stderr);
      assert.match(unpinned.stderr, warning);
      const pinned = await download(path.join(demo.tmp, 'cache-http-2'), ['--istio-sha256', demo.archive.sha256]);
      assert.equal(pinned.code, 0, pinned.stderr);
      assert.doesNotMatch(pinned.stderr, /plain http/);
    });
  });
});
