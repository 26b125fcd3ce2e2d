import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { create, list } from 'tar';
import { DownloadError, InterruptedError, UsageError } from '../../src/core/errors.js';
import { extractArchiveSafely } from '../../src/download/extract.js';
import { rawTar, rawTarGz, type RawEntry } from '../support/raw-tar.js';


async function entriesOf(archive: string): Promise<Array<{ path: string; type: string; linkpath?: string }>> {
  const out: Array<{ path: string; type: string; linkpath?: string }> = [];
  await list({ file: archive, onReadEntry: (e) => out.push({ path: e.path, type: e.type, ...(e.linkpath ? { linkpath: e.linkpath } : {}) }) });
  return out;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(p)));
  }
  return out.sort();
}

describe('extractArchiveSafely', () => {
  // sandbox/archive.tar.gz, sandbox/a/b/target: a `..` escape from target or its temp sibling stays in the sandbox.
  let sandbox: string;
  let archive: string;
  let target: string;
  beforeEach(async () => {
    sandbox = await mkdtemp(join(tmpdir(), 'meshdemo-x-'));
    archive = join(sandbox, 'archive.tar.gz');
    target = join(sandbox, 'a', 'b', 'target');
  });
  afterEach(async () => {
    await rm(sandbox, { recursive: true, force: true });
  });

  it('extracts a normal tree, keeping modes', async () => {
    const src = join(sandbox, 'src');
    await mkdir(join(src, 'istio-1.8.4', 'bin'), { recursive: true });
    await mkdir(join(src, 'istio-1.8.4', 'samples', 'bookinfo'), { recursive: true });
    await writeFile(join(src, 'istio-1.8.4', 'bin', 'istioctl'), '#!/bin/sh\necho istioctl\n');
    await chmod(join(src, 'istio-1.8.4', 'bin', 'istioctl'), 0o755);
    await writeFile(join(src, 'istio-1.8.4', 'samples', 'bookinfo', 'app.yaml'), 'kind: Service\n');
    await create({ gzip: true, file: archive, cwd: src }, ['istio-1.8.4']);

    const res = await extractArchiveSafely(archive, target);
    assert.equal(res.entries, 6);
    const istioctl = join(target, 'istio-1.8.4', 'bin', 'istioctl');
    assert.equal((await lstat(istioctl)).mode & 0o777, 0o755);
    assert.equal(await readFile(join(target, 'istio-1.8.4', 'samples', 'bookinfo', 'app.yaml'), 'utf8'), 'kind: Service\n');
    assert.deepEqual((await readdir(join(sandbox, 'a', 'b'))).sort(), ['target', 'target.manifest.json']);
    // the manifest beside the tree: the archive's sha256 and every file's, by path relative to the manifest
    const manifest = JSON.parse(await readFile(join(sandbox, 'a', 'b', 'target.manifest.json'), 'utf8'));
    assert.equal(manifest.source, res.sha256);
    assert.deepEqual(Object.keys(manifest.files), ['target/istio-1.8.4/bin/istioctl', 'target/istio-1.8.4/samples/bookinfo/app.yaml']);
    assert.equal(manifest.files['target/istio-1.8.4/bin/istioctl'], createHash('sha256').update('#!/bin/sh\necho istioctl\n').digest('hex'));
  });

  it('keeps symlinks and hardlinks that stay inside', async () => {
    await writeFile(
      archive,
      rawTarGz([
        { path: 'pkg/', type: 'Directory', mode: 0o755 },
        { path: 'pkg/tool', body: 'bin', mode: 0o755 },
        { path: 'pkg/bin/', type: 'Directory', mode: 0o755 },
        { path: 'pkg/bin/tool', type: 'SymbolicLink', linkpath: '../tool' },
        { path: 'pkg/tool-copy', type: 'Link', linkpath: 'pkg/tool' },
      ]),
    );
    await extractArchiveSafely(archive, target);
    assert.equal(await readlink(join(target, 'pkg', 'bin', 'tool')), '../tool');
    assert.equal(await readFile(join(target, 'pkg', 'tool-copy'), 'utf8'), 'bin');
  });

  it('replaces an existing targetDir', async () => {
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'old.txt'), 'old');
    await writeFile(archive, rawTarGz([{ path: 'new.txt', body: 'new' }]));
    await extractArchiveSafely(archive, target);
    assert.deepEqual(await readdir(target), ['new.txt']);
    assert.deepEqual((await readdir(join(sandbox, 'a', 'b'))).sort(), ['target', 'target.manifest.json']);
  });

  const malicious: Array<{ name: string; entries: RawEntry[]; bad: string; message: RegExp }> = [
    { name: '../ path', entries: [{ path: 'ok.txt', body: 'ok' }, { path: '../evil', body: 'evil' }], bad: '../evil', message: /"\.\.\/evil" contains a '\.\.'/ },
    { name: 'nested ..', entries: [{ path: 'x/../../../evil', body: 'evil' }], bad: 'x/../../../evil', message: /'\.\.'/ },
    { name: 'absolute path', entries: [{ path: '/abs/evil', body: 'evil' }], bad: '/abs/evil', message: /"\/abs\/evil" has an absolute path/ },
    {
      name: 'symlink to /etc, then a file through it',
      entries: [
        { path: 'etc', type: 'SymbolicLink', linkpath: '/etc' },
        { path: 'etc/meshdemo-evil', body: 'evil' },
      ],
      bad: 'etc',
      message: /symbolic link "etc" points outside/,
    },
    {
      name: 'relative symlink escaping',
      entries: [
        { path: 'up', type: 'SymbolicLink', linkpath: '../../..' },
        { path: 'up/evil', body: 'evil' },
      ],
      bad: 'up',
      message: /symbolic link "up" points outside/,
    },
    {
      // Lexically x/x/x/../../.. is inside, but with x -> . it is three levels above the root.
      name: 'symlink chain that only escapes through another symlink',
      entries: [
        { path: 'x', type: 'SymbolicLink', linkpath: '.' },
        { path: 'esc', type: 'SymbolicLink', linkpath: 'x/x/x/../../..' },
      ],
      bad: 'esc',
      message: /symbolic link "esc" points outside/,
    },
    {
      name: 'file written through an in-archive symlink',
      entries: [
        { path: 'sub/', type: 'Directory', mode: 0o755 },
        { path: 'link', type: 'SymbolicLink', linkpath: 'sub' },
        { path: 'LINK/file', body: 'x' },
      ],
      bad: 'LINK/file',
      message: /"LINK\/file" would be written through a symbolic link/,
    },
    { name: 'hardlink to an absolute path', entries: [{ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }], bad: 'passwd', message: /hard link "passwd" points outside/ },
    { name: 'hardlink climbing out', entries: [{ path: 'h', type: 'Link', linkpath: 'a/../../outside' }], bad: 'h', message: /hard link "h" points outside/ },
    { name: 'character device', entries: [{ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 }], bad: 'null', message: /"null" is a CharacterDevice/ },
    { name: 'fifo', entries: [{ path: 'pipe', type: 'FIFO' }], bad: 'pipe', message: /"pipe" is a FIFO/ },
  ];

  for (const c of malicious) {
    it(`refuses ${c.name} and writes nothing`, async () => {
      await writeFile(archive, rawTarGz(c.entries));
      assert.ok((await entriesOf(archive)).some((e) => e.path === c.bad), 'the archive really holds the bad entry');

      const err = await extractArchiveSafely(archive, target).then(
        () => assert.fail('should refuse'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DownloadError, String(err));
      assert.equal(err.exitCode, 5);
      assert.match(err.message, c.message);
      assert.deepEqual(await walk(sandbox), [archive]);
      assert.equal(existsSync('/abs/evil'), false);
      assert.equal(existsSync('/etc/meshdemo-evil'), false);
    });
  }

  it('leaves an existing targetDir alone when refusing', async () => {
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'old.txt'), 'old');
    await writeFile(archive, rawTarGz([{ path: '../evil', body: 'evil' }]));
    await assert.rejects(extractArchiveSafely(archive, target), DownloadError);
    assert.deepEqual(await walk(join(sandbox, 'a')), [join(sandbox, 'a', 'b'), target, join(target, 'old.txt')]);
  });

  it('reports a corrupt archive as DownloadError', async () => {
    await writeFile(archive, gzipSync(randomBytes(2048)));
    await assert.rejects(extractArchiveSafely(archive, target), DownloadError);
    assert.equal(existsSync(target), false);
  });

  it('refuses zip archives with UsageError', async () => {
    await assert.rejects(extractArchiveSafely(join(sandbox, 'istio-1.8.4-win.zip'), target), (e: unknown) => e instanceof UsageError && /zip archives/.test(e.message));
  });

  it('leaves no targetDir and no temp dir when interrupted', async () => {
    // Enough files that extraction is still running when the abort arrives.
    const entries: RawEntry[] = Array.from({ length: 3000 }, (_, i) => ({ path: `pkg/${i % 30}/file-${i}`, body: `file ${i}\n` }));
    await writeFile(archive, rawTarGz(entries));
    const parent = join(sandbox, 'a', 'b');
    const ac = new AbortController();
    const pending = extractArchiveSafely(archive, target, { signal: ac.signal });
    // Abort as soon as the temporary sibling appears, i.e. mid-extraction.
    while (!(existsSync(parent) && (await readdir(parent)).some((n) => n.startsWith('target.tmp-')))) {
      await new Promise((r) => setTimeout(r, 1));
    }
    ac.abort();
    await assert.rejects(pending, InterruptedError);
    assert.deepEqual(await readdir(parent), []);
    // Writes already in flight when the abort arrived must not resurrect the temp dir.
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await readdir(parent), []);
  });

  it('refuses a symlink that would redirect an earlier link through it (streaming order)', async () => {
    // esc is inside when written (x is a plain path then); making x a link to . afterwards would let it escape
    await writeFile(archive, rawTarGz([
      { path: 'esc', type: 'SymbolicLink', linkpath: 'x/x/x/../../..' },
      { path: 'x', type: 'SymbolicLink', linkpath: '.' },
    ]));
    const err = await extractArchiveSafely(archive, target).then(() => assert.fail('should refuse'), (e: unknown) => e);
    assert.ok(err instanceof DownloadError && err.exitCode === 5, String(err));
    assert.match(err.message, /symbolic link "x" would redirect an earlier link/);
    assert.deepEqual(await walk(sandbox), [archive]);
  });

  it('refuses a hard link to something not written before it', async () => {
    await writeFile(archive, rawTarGz([{ path: 'h', type: 'Link', linkpath: 'later' }, { path: 'later', body: 'x' }]));
    await assert.rejects(extractArchiveSafely(archive, target), /hard link "h" points to "later", which is not a file earlier/);
  });

  it('refuses a file that replaces a directory', async () => {
    await writeFile(archive, rawTarGz([{ path: 'd/f', body: 'x' }, { path: 'd', body: 'y' }]));
    await assert.rejects(extractArchiveSafely(archive, target), /entry "d" replaces an earlier entry of another type/);
  });

  it('reads pax and GNU long names', async () => {
    const long = `istio-1.8.4/${'deep/'.repeat(30)}file.yaml`;
    const pax = ` path=${long}\n`;
    const digits = [1, 2, 3].find((d) => String(d + pax.length).length === d)!;
    await writeFile(archive, rawTarGz([
      { path: 'PaxHeader/x', type: 'ExtendedHeader', body: `${digits + pax.length}${pax}` },
      { path: 'truncated-name', body: 'pax' },
      { path: '././@LongLink', type: 'NextFileHasLongPath', body: `${long}.gnu\0` },
      { path: 'truncated-too', body: 'gnu' },
    ]));
    await extractArchiveSafely(archive, target);
    assert.equal(await readFile(join(target, long), 'utf8'), 'pax');
    assert.equal(await readFile(join(target, `${long}.gnu`), 'utf8'), 'gnu');
  });

  it('refuses past the per-entry, total and entry-count caps before writing the entry that crosses them', async () => {
    const entries: RawEntry[] = [{ path: 'a', body: Buffer.alloc(4000) }, { path: 'b', body: Buffer.alloc(4000) }];
    await writeFile(archive, rawTarGz(entries));
    await assert.rejects(extractArchiveSafely(archive, target, { limits: { maxEntryBytes: 3999 } }), /entry "a" unpacks to 4000 bytes, more than the limit of 3999 for one file/);
    await assert.rejects(extractArchiveSafely(archive, target, { limits: { maxTotalBytes: 6000 } }), /unpacks to more than the limit of 6000 bytes \(at entry "b"\)/);
    await assert.rejects(extractArchiveSafely(archive, target, { limits: { maxEntries: 1 } }), /more than 1 entries/);
    assert.deepEqual(await walk(sandbox), [archive]);
    await extractArchiveSafely(archive, target, { limits: { maxTotalBytes: 9024 } });
    assert.deepEqual(await readdir(target), ['a', 'b']);
  });

  it('keeps the tree only when the sha256 matches', async () => {
    await writeFile(archive, rawTarGz([{ path: 'f', body: 'x' }]));
    await assert.rejects(extractArchiveSafely(archive, target, { expectedSha256: '0'.repeat(64) }), (e: unknown) => e instanceof DownloadError && /has sha256 [0-9a-f]{64}, expected 0{64}/.test(e.message));
    assert.deepEqual(await walk(sandbox), [archive]);
    const { sha256 } = await extractArchiveSafely(archive, target);
    await extractArchiveSafely(archive, target, { expectedSha256: sha256.toUpperCase() });
    assert.equal(await readFile(join(target, 'f'), 'utf8'), 'x');
  });

  it('reports a truncated archive', async () => {
    const tar = rawTar([{ path: 'f', body: Buffer.alloc(5000) }]);
    await writeFile(archive, gzipSync(tar.subarray(0, 2048)));
    await assert.rejects(extractArchiveSafely(archive, target), /not a readable tar\.gz archive: the archive is truncated/);
    assert.deepEqual(await walk(sandbox), [archive]);
  });

  it('writes every byte of large files in order, past the 1 MiB gunzip chunks and the 8 MiB of writes in flight', async () => {
    // random bodies do not compress: each crosses many gunzip chunks, the largest the write backlog
    const entries: RawEntry[] = [
      { path: 'big/one', body: randomBytes(20 * 2 ** 20 + 17) },
      { path: 'big/small', body: 'between the large ones\n' },
      { path: 'big/two', body: randomBytes(3 * 2 ** 20 + 511) },
      { path: 'big/zeros', body: Buffer.alloc(12 * 2 ** 20) },
    ];
    await writeFile(archive, rawTarGz(entries));
    const res = await extractArchiveSafely(archive, target);
    assert.equal(res.entries, 4);
    for (const e of entries) assert.ok((await readFile(join(target, e.path!))).equals(typeof e.body === 'string' ? Buffer.from(e.body) : e.body!), `${e.path} differs`);
  });

  describe('bounds from the review of issue 21', () => {
    /** A pax extended header whose record sets `key` to `value` (the length counts its own digits). */
    const pax = (key: string, value: string): RawEntry => {
      const body = ` ${key}=${value}\n`;
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len++;
      return { path: 'PaxHeader/x', type: 'ExtendedHeader', body: `${len}${body}` };
    };
    const leftovers = async () => (existsSync(join(sandbox, 'a')) ? await walk(join(sandbox, 'a')) : []);

    it('refuses a pax path of "a/" × 40 000 (a 241-byte-class archive) by its length, before any other check', async () => {
      await writeFile(archive, rawTarGz([pax('path', 'a/'.repeat(40_000)), { path: 'placeholder', body: 'x' }]));
      const err = await extractArchiveSafely(archive, target).then(() => assert.fail('should refuse'), (e: unknown) => e);
      assert.ok(err instanceof DownloadError && err.exitCode === 5, String(err));
      assert.match(err.message, /refusing to extract .*: entry "(a\/){50}"… is 80000 bytes long, more than the limit of 4096/);
      assert.deepEqual(await leftovers(), [], 'no tree, no temporary tree');
    });

    it('refuses a path of more than 128 segments, and a link target of more than 4096 bytes', async () => {
      await writeFile(archive, rawTarGz([pax('path', `${'d/'.repeat(200)}f`), { path: 'placeholder', body: 'x' }]));
      await assert.rejects(extractArchiveSafely(archive, target), /entry "(d\/){50}"… has more than 128 path segments/);
      await writeFile(archive, rawTarGz([pax('linkpath', `${'x/../'.repeat(1000)}f`), { path: 'link', type: 'SymbolicLink', linkpath: 'f' }]));
      await assert.rejects(extractArchiveSafely(archive, target), /the link target of entry "link" .* is 5001 bytes long, more than the limit of 4096/);
      assert.deepEqual(await leftovers(), []);
    });

    it('still checks every prefix of deep paths and link walks (127 segments)', async () => {
      const deep = Array.from({ length: 126 }, (_, i) => `s${i}`).join('/');
      // long names go in pax records, as tar writes them
      const deepFile = [pax('path', `${deep}/file`), { path: 'placeholder', body: 'deep' }];
      await writeFile(archive, rawTarGz([
        ...deepFile,
        pax('linkpath', `../${deep}`),
        { path: 'top/link', type: 'SymbolicLink', linkpath: 'placeholder' },
        { path: 'top/link/evil', body: 'through the link' },
      ]));
      await assert.rejects(extractArchiveSafely(archive, target), /entry "top\/link\/evil" would be written through a symbolic link/);
      await writeFile(archive, rawTarGz([
        ...deepFile,
        pax('linkpath', `${deep}/file`),
        { path: 'hard', type: 'Link', linkpath: 'placeholder' },
        pax('linkpath', `${deep.replace('s5', 'S5')}/file`),
        { path: 'symlink-to-dir-is-fine', type: 'SymbolicLink', linkpath: 'placeholder' },
      ]));
      await extractArchiveSafely(archive, target);
      assert.equal(await readFile(join(target, 'hard'), 'utf8'), 'deep');
      assert.equal(await readFile(join(target, ...deep.split('/'), 'file'), 'utf8'), 'deep');
    });

    it('refuses data after the end-of-archive blocks, and bytes after the end of the gzip stream; accepts tar\'s zero padding', async () => {
      const tar = rawTar([{ path: 'f', body: 'x' }]);
      await writeFile(archive, gzipSync(Buffer.concat([tar, Buffer.from('appended after the end')])));
      await assert.rejects(extractArchiveSafely(archive, target), /refusing to extract .*: data follows the end of the tar archive/);
      await writeFile(archive, gzipSync(Buffer.concat([tar, Buffer.alloc(2 << 20)])));
      await assert.rejects(extractArchiveSafely(archive, target), /more than 1048576 bytes follow the end of the tar archive/);
      // gunzip itself ignores zeros after its stream: a server could append them for ever
      await writeFile(archive, Buffer.concat([gzipSync(tar), Buffer.alloc(100_000)]));
      await assert.rejects(extractArchiveSafely(archive, target), /refusing to extract .*: \d+ or more bytes follow the end of the gzip stream/);
      assert.deepEqual(await leftovers(), []);
      // GNU tar pads the last record to 10 240 bytes with zeros
      await writeFile(archive, gzipSync(Buffer.concat([tar, Buffer.alloc(10_240 - (tar.length % 10_240))])));
      await extractArchiveSafely(archive, target);
      assert.equal(await readFile(join(target, 'f'), 'utf8'), 'x');
    });

    for (const umask of [0o000, 0o077]) {
      it(`creates files 0644/0755 and directories 0755 whatever the archive and a umask of ${umask.toString(8).padStart(3, '0')} say`, async () => {
        await writeFile(archive, rawTarGz([
          { path: 'open/', type: 'Directory', mode: 0o777 },
          { path: 'open/tool', body: '#!/bin/sh\n', mode: 0o777 },
          { path: 'open/data', body: 'd', mode: 0o666 },
          { path: 'implicit/dir/file', body: 'f', mode: 0o600 },
        ]));
        const saved = process.umask(umask);
        try {
          await extractArchiveSafely(archive, target);
        } finally {
          process.umask(saved);
        }
        const mode = async (p: string) => (await lstat(join(target, p))).mode & 0o7777;
        assert.deepEqual(
          { root: await mode('.'), open: await mode('open'), tool: await mode('open/tool'), data: await mode('open/data'), implicit: await mode('implicit'), dir: await mode('implicit/dir'), file: await mode('implicit/dir/file') },
          { root: 0o755, open: 0o755, tool: 0o755, data: 0o644, implicit: 0o755, dir: 0o755, file: 0o644 },
        );
        assert.equal((await lstat(join(sandbox, 'a'))).mode & 0o777, 0o755, 'the parent directories made for the tree too');
      });
    }

    it('unpacks 20 000 small files with `ulimit -n 1024` (open files are bounded)', async () => {
      const entries: RawEntry[] = Array.from({ length: 20_000 }, (_, i) => ({ path: `many/${i % 50}/f${i}`, body: `${i}\n` }));
      await writeFile(archive, rawTarGz(entries));
      const extractJs = new URL('../../src/download/extract.js', import.meta.url).href;
      const script = `import(${JSON.stringify(extractJs)}).then((m) => m.extractArchiveSafely(process.argv[1], process.argv[2])).then((r) => console.log(r.entries), (e) => { console.error(e.message); process.exit(5); })`;
      const r = spawnSync('bash', ['-c', 'ulimit -n 1024 && exec "$0" --input-type=module -e "$1" "$2" "$3"', process.execPath, script, archive, target], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), '20000');
      assert.equal(await readFile(join(target, 'many', '49', 'f19999'), 'utf8'), '19999\n');
      assert.equal((await readdir(join(target, 'many', '0'))).length, 400);
    });
  });

  it('refuses to start when already aborted', async () => {
    await writeFile(archive, rawTarGz([{ path: 'f', body: 'x' }]));
    await assert.rejects(extractArchiveSafely(archive, target, { signal: AbortSignal.abort() }), InterruptedError);
    assert.equal(existsSync(target), false);
  });
});
