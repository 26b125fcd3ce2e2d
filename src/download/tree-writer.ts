/**
 * One streaming pass from .tar.gz bytes to a tree on disk: gunzip → tar headers → files, in a private
 * temporary directory beside the target. Every entry is validated (path, type, links, size) from its
 * header, before any byte of it is written; the unpacked size is capped; memory stays bounded (1 MiB of
 * compressed input, one gunzip window and output buffer, one partial header, pax/long-name records of at most
 * 1 MiB) whatever the archive. Files are written as they are inflated, on this thread (src/download/inflate.ts
 * says why), so one file is open at a time.
 * The tree appears at the target only through commit(), a rename, which callers do after verifying
 * the archive's checksum; abort() deletes everything.
 *
 * The tar format handled is what release archives use: POSIX ustar (with its prefix field), pax
 * extended headers (path, linkpath, size) and GNU long names (types L and K), sizes in octal or
 * base-256.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, linkSync, mkdirSync, openSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DownloadError } from '../core/errors.js';
import { createInflater, type Inflater } from './inflate.js';
import { isAlive, makeDirs, writeManifest } from './cache-files.js';

export interface ExtractLimits {
  /** Unpacked bytes of the whole tree, tar headers included. Default 1 GiB. */
  maxTotalBytes?: number;
  /** Unpacked bytes of one entry. Default 1 GiB. */
  maxEntryBytes?: number;
  /** Number of entries. Default 100 000. */
  maxEntries?: number;
}

/** An Istio release unpacks to 100–200 MB in a few thousand entries; these leave room and stop a bomb early. */
export const DEFAULT_LIMITS: Required<ExtractLimits> = {
  maxTotalBytes: 1024 ** 3,
  maxEntryBytes: 1024 ** 3,
  maxEntries: 100_000,
};

const BLOCK = 512;
/** pax and GNU long-name records are buffered whole; real ones are a few hundred bytes. */
const MAX_META_BYTES = 1 << 20;
/**
 * Checked before anything else looks at a path or link target, so that every later check is bounded: Linux's
 * PATH_MAX, and far more segments than any release has (Istio's deepest path has about 10).
 */
export const MAX_PATH_BYTES = 4096;
export const MAX_PATH_SEGMENTS = 128;
/** Zeros tar may pad its last record with after the end-of-archive blocks (any blocking factor up to 2048). */
const MAX_TRAILING_ZEROS = 1 << 20;
/** gunzip input per call: the socket's reads (64 kB) are gathered, so that inflate runs on fewer, larger inputs. */
const GUNZIP_CHUNK = 1 << 20;
const REFUSED_HINT = 'the archive is malformed or malicious; nothing was kept';

const TYPES: Record<string, string> = {
  '0': 'File', '\0': 'OldFile', '7': 'ContiguousFile', '1': 'Link', '2': 'SymbolicLink', '3': 'CharacterDevice',
  '4': 'BlockDevice', '5': 'Directory', '6': 'FIFO', D: 'GNUDumpDir', x: 'ExtendedHeader', g: 'GlobalExtendedHeader',
  L: 'NextFileHasLongPath', K: 'NextFileHasLongLinkpath', S: 'SparseFile', V: 'TapeVolumeHeader', M: 'MultiVolume',
};
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const DIR_TYPES = new Set(['Directory', 'GNUDumpDir']);
const META_TYPES = new Set(['ExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'NextFileHasLongLinkpath']);

interface Header {
  path: string;
  type: string;
  size: number;
  mode: number;
  linkpath: string;
}

type Body =
  | { kind: 'file'; fd: number; rel: string; hash: Hash }
  | { kind: 'meta'; type: string; chunks: Buffer[] }
  | { kind: 'skip' };

/** Where an entry goes: its path (as segments, and its parent directories), its node, and what was written there before. */
interface EntryPlace {
  segments: string[];
  dirs: string[];
  rel: string;
  abs: string;
  id: number;
  existing: 'dir' | 'file' | 'symlink' | undefined;
}

/** Thrown inside the parser; becomes the DownloadError the caller sees. */
class Refusal extends Error {}
class Unreadable extends Error {}

const ROOT = 0;

/**
 * Paths as chains of numbered nodes, one per prefix, so that all the prefixes of a path are looked up in time
 * linear in its length (joining every prefix into a string key made a path of n segments cost n²).
 */
class PathTrie {
  private readonly nodes = new Map<string, number>();
  constructor(private readonly fold: (segment: string) => string = (s) => s) {}

  /** The node of segment under parent; without create, undefined when no path through it was ever added. */
  child(parent: number | undefined, segment: string, create: boolean): number | undefined {
    if (parent === undefined) return undefined;
    const k = `${parent}/${this.fold(segment)}`;
    let id = this.nodes.get(k);
    if (id === undefined && create) this.nodes.set(k, (id = this.nodes.size + 1));
    return id;
  }

  /** The node of each prefix of segments (segments[0], segments[0..1], …). */
  prefixes(segments: string[], create: boolean): (number | undefined)[] {
    const out: (number | undefined)[] = [];
    let at: number | undefined = ROOT;
    for (const s of segments) out.push((at = this.child(at, s, create)));
    return out;
  }
}

// Case-folded so that a case-insensitive filesystem (macOS) cannot alias a symlink.
const foldCase = (segment: string) => segment.normalize('NFC').toLowerCase();

export class TreeWriter {
  readonly tmpDir: string;
  private readonly limits: Required<ExtractLimits>;
  private readonly gunzip: Inflater;
  private failure: Error | undefined;
  private finished = false;
  /**
   * Compressed bytes gathered until GUNZIP_CHUNK of them are fed at once. One buffer, reused (the inflater is done
   * with it when push returns or its promise resolves): a fresh 1 MiB for every feed cost page faults.
   */
  private readonly input = Buffer.allocUnsafe(GUNZIP_CHUNK);
  private inputBytes = 0;
  /** Compressed bytes received in all; the inflater says how many of them were part of the gzip stream. */
  private compressedBytes = 0;

  // parser state
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private zeroBlocks = 0;
  private ended = false;
  private zerosAfterEnd = 0;
  private body: Body | undefined;
  private bodyLeft = 0;
  private padLeft = 0;
  private pax: Record<string, string> = {};
  private longPath: string | undefined;
  private longLink: string | undefined;

  // validation state
  private entries = 0;
  private total = 0;
  /** Case-folded paths: the symbolic links written so far, and the intermediate paths earlier link targets walk through (none may become a symlink). */
  private readonly folded = new PathTrie(foldCase);
  private readonly symlinks = new Set<number>();
  private readonly traversed = new Set<number>();
  /** Exact paths: the type of what is written. */
  private readonly exact = new PathTrie();
  private readonly written = new Map<number, 'dir' | 'file' | 'symlink'>();
  /** sha256 of every regular file written, by relative path (hard links included). */
  private readonly fileHashes = new Map<string, string>();

  private constructor(tmpDir: string, private readonly label: string, limits: ExtractLimits) {
    this.tmpDir = tmpDir;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.gunzip = createInflater((unpacked) => this.parse(unpacked));
  }

  /**
   * A private temporary directory beside targetDir (its parent is created if needed), named with this
   * process's id; temporary directories of processes that no longer run (killed, or a second Ctrl-C) are
   * deleted first.
   */
  static async open(targetDir: string, label: string, limits: ExtractLimits = {}): Promise<TreeWriter> {
    const target = resolve(targetDir);
    await makeDirs(dirname(target));
    await removeStaleSiblings(target);
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    mkdirSync(tmp, { mode: 0o700 });
    return new TreeWriter(tmp, label, limits);
  }

  /**
   * Feeds compressed bytes. Most calls only copy them and return nothing; when gunzip is fed, the promise resolves
   * once more may follow (backpressure). (No promise per call: a download makes hundreds of them.)
   */
  write(chunk: Buffer): Promise<void> | undefined {
    this.throwIfFailed();
    this.compressedBytes += chunk.length;
    this.refuseAfterGzipEnd();
    return this.copyIn(chunk, 0);
  }

  private copyIn(chunk: Buffer, from: number): Promise<void> | undefined {
    const n = chunk.copy(this.input, this.inputBytes, from);
    this.inputBytes += n;
    if (this.inputBytes < GUNZIP_CHUNK) return undefined;
    return this.feed().then(() => this.copyIn(chunk, from + n));
  }

  private async feed(): Promise<void> {
    const data = this.input.subarray(0, this.inputBytes);
    // only finish() feeds less than a whole buffer, and nothing is copied into it after that
    this.inputBytes = 0;
    await this.inflate(() => this.gunzip.push(data));
    this.refuseAfterGzipEnd();
  }

  /** Runs the inflater; its own errors mean the gzip data is unreadable (a failure of the parser comes first). */
  private async inflate(step: () => Promise<void> | undefined): Promise<void> {
    try {
      await step();
    } catch (err) {
      if (!this.failure) this.fail(new Unreadable((err as Error).message));
    }
    this.throwIfFailed();
  }

  /** All bytes are in: waits for the last of them to be written, and checks the archive was complete. */
  async finish(): Promise<{ entries: number; bytes: number }> {
    this.throwIfFailed();
    if (this.inputBytes > 0) await this.feed();
    await this.inflate(() => this.gunzip.finish());
    this.refuseAfterGzipEnd();
    this.closeBody();
    if (!this.ended && (this.headerFill !== 0 || this.bodyLeft !== 0 || this.padLeft !== 0)) {
      this.fail(new Unreadable('the archive is truncated'));
      this.throwIfFailed();
    }
    this.finished = true;
    return { entries: this.entries, bytes: this.total };
  }

  /**
   * Moves the finished tree to targetDir, replacing what was there, and records its manifest beside it
   * (`<targetDir>.manifest.json`: the archive's sha256 and every file's).
   */
  async commit(targetDir: string, archiveSha256: string): Promise<void> {
    if (!this.finished) throw new Error('commit before finish');
    const target = resolve(targetDir);
    const manifest = manifestPath(target);
    await rm(manifest, { force: true });
    await chmod(this.tmpDir, 0o755);
    await replaceDir(this.tmpDir, target);
    const files = Object.fromEntries([...this.fileHashes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([rel, sha]) => [`${basename(target)}/${rel}`, sha]));
    await writeManifest(manifest, { source: archiveSha256, files });
  }

  /** Stops and deletes the temporary tree. Safe to call at any time, more than once. */
  async abort(): Promise<void> {
    if (!this.failure) this.failure = new Error('aborted');
    this.closeBody();
    this.gunzip.destroy();
    await rm(this.tmpDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }

  /** Bytes after the end of the gzip stream are not part of the release: refused, not ignored as gunzip does. */
  private refuseAfterGzipEnd(): void {
    if (this.gunzip.ended && this.compressedBytes > this.gunzip.consumedBytes) {
      this.fail(new Refusal(`${this.compressedBytes - this.gunzip.consumedBytes} or more bytes follow the end of the gzip stream`));
      this.throwIfFailed();
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.closeBody();
    this.gunzip.destroy();
  }

  private throwIfFailed(): void {
    const err = this.failure;
    if (!err) return;
    if (err instanceof Refusal) throw new DownloadError(`refusing to extract ${this.label}: ${err.message}`, { hint: REFUSED_HINT });
    if (err instanceof Unreadable) throw new DownloadError(`${this.label} is not a readable tar.gz archive: ${err.message}`, { hint: REFUSED_HINT });
    if (err.message === 'aborted') throw new DownloadError(`extraction of ${this.label} was stopped`);
    throw new DownloadError(`could not extract ${this.label}: ${err.message}`, { cause: err });
  }

  private closeBody(): void {
    const body = this.body;
    this.body = undefined;
    if (body?.kind === 'file') closeSync(body.fd);
  }

  /** Unpacked bytes from the inflater, valid during the call only. A failure stops parsing (and the inflater). */
  private parse(buf: Buffer): void {
    if (this.failure) return;
    try {
      this.parseBlocks(buf);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private parseBlocks(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      if (this.ended) {
        // only the zeros that pad tar's last record may follow the end-of-archive blocks
        const rest = buf.subarray(off);
        if (rest.some((b) => b !== 0)) throw new Refusal('data follows the end of the tar archive');
        this.zerosAfterEnd += rest.length;
        if (this.zerosAfterEnd > MAX_TRAILING_ZEROS) throw new Refusal(`more than ${MAX_TRAILING_ZEROS} bytes follow the end of the tar archive`);
        return;
      }
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, buf.length - off);
        this.consumeBody(buf.subarray(off, off + n));
        off += n;
        this.bodyLeft -= n;
        if (this.bodyLeft === 0) this.endBody();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, buf.length - off);
        off += n;
        this.padLeft -= n;
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, buf.length - off);
      buf.copy(this.header, this.headerFill, off, off + n);
      this.headerFill += n;
      off += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeaderBlock(this.header);
      }
    }
  }

  private onHeaderBlock(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      // two zero blocks end the archive; only padding may follow
      if (++this.zeroBlocks === 2) this.ended = true;
      return;
    }
    this.zeroBlocks = 0;
    const h = this.decodeHeader(block);
    this.bodyLeft = h.size;
    this.padLeft = (BLOCK - (h.size % BLOCK)) % BLOCK;

    if (META_TYPES.has(h.type)) {
      if (h.size > MAX_META_BYTES) throw new Refusal(`a ${h.type} record of ${h.size} bytes is larger than ${MAX_META_BYTES}`);
      this.body = { kind: 'meta', type: h.type, chunks: [] };
      if (h.size === 0) this.endBody();
      return;
    }
    this.body = this.startEntry(h);
    if (h.size === 0) this.endBody();
  }

  private decodeHeader(block: Buffer): Header {
    const stored = readOctal(block, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
    if (stored !== sum) throw new Unreadable('bad tar header checksum');
    const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
    const prefix = ustar ? cString(block, 345, 155) : '';
    let path = cString(block, 0, 100);
    if (prefix) path = `${prefix}/${path}`;
    let linkpath = cString(block, 157, 100);
    const flag = String.fromCharCode(block[156]);
    let size = readNumber(block, 124, 12);
    const mode = readOctal(block, 100, 8);
    let type = TYPES[flag] ?? `entry of unknown type ${JSON.stringify(flag)}`;
    if (type === 'OldFile' && path.endsWith('/')) type = 'Directory';

    if (!META_TYPES.has(type)) {
      // per-entry overrides from the records before this header
      if (this.longPath !== undefined) path = this.longPath;
      if (this.longLink !== undefined) linkpath = this.longLink;
      if (this.pax.path !== undefined) path = this.pax.path;
      if (this.pax.linkpath !== undefined) linkpath = this.pax.linkpath;
      if (this.pax.size !== undefined) size = Number(this.pax.size);
      this.pax = {};
      this.longPath = undefined;
      this.longLink = undefined;
    }
    if (!META_TYPES.has(type)) {
      checkPathBounds('entry', path);
      checkPathBounds(`the link target of entry ${JSON.stringify(path)}`, linkpath);
    }
    if (!Number.isSafeInteger(size) || size < 0) throw new Unreadable(`entry ${JSON.stringify(path)} has an invalid size`);
    return { path, type, size, mode, linkpath };
  }

  private consumeBody(data: Buffer): void {
    const body = this.body;
    if (body?.kind === 'file') {
      body.hash.update(data);
      for (let at = 0; at < data.length; ) at += writeSync(body.fd, data, at);
    } else if (body?.kind === 'meta') {
      body.chunks.push(Buffer.from(data));
    }
  }

  private endBody(): void {
    const body = this.body;
    this.closeBody();
    if (body?.kind === 'file') this.fileHashes.set(body.rel, body.hash.digest('hex'));
    if (body?.kind !== 'meta') return;
    const data = Buffer.concat(body.chunks);
    if (body.type === 'NextFileHasLongPath') this.longPath = cString(data, 0, data.length);
    else if (body.type === 'NextFileHasLongLinkpath') this.longLink = cString(data, 0, data.length);
    else if (body.type === 'ExtendedHeader') this.pax = parsePax(data);
    // global pax headers carry nothing this extractor uses
  }

  /** Validates an entry from its header, then creates it; returns where its data goes. */
  private startEntry(h: Header): Body {
    const name = JSON.stringify(h.path);
    this.checkTypeAndLimits(h, name);
    const segments = entrySegments(h.path, name);
    if (segments.length === 0) return { kind: 'skip' }; // the archive root itself ("./")
    const place = this.placeEntry(h, name, segments);
    if (DIR_TYPES.has(h.type)) {
      if (place.existing === undefined) makeDir(place.abs);
      this.written.set(place.id, 'dir');
      return { kind: 'skip' };
    }
    if (h.type === 'SymbolicLink' || h.type === 'Link') {
      this.writeLink(h, name, place);
      return { kind: 'skip' };
    }
    return this.openFile(h, place);
  }

  /** Counts the entry and its bytes against the limits; refuses anything but files, directories and links. */
  private checkTypeAndLimits(h: Header, name: string): void {
    if (++this.entries > this.limits.maxEntries) throw new Refusal(`it has more than ${this.limits.maxEntries} entries`);
    if (!FILE_TYPES.has(h.type) && !DIR_TYPES.has(h.type) && h.type !== 'SymbolicLink' && h.type !== 'Link') throw new Refusal(`entry ${name} is a ${h.type}`);
    if (h.size > this.limits.maxEntryBytes) {
      throw new Refusal(`entry ${name} unpacks to ${h.size} bytes, more than the limit of ${this.limits.maxEntryBytes} for one file`);
    }
    this.total += BLOCK + h.size;
    if (this.total > this.limits.maxTotalBytes) {
      throw new Refusal(`it unpacks to more than the limit of ${this.limits.maxTotalBytes} bytes (at entry ${name})`);
    }
  }

  /**
   * Where the entry goes, with its parent directories created: refused if it would be written through a symbolic
   * link, replace an earlier entry of another type, or (as a symbolic link) redirect an earlier link's target.
   */
  private placeEntry(h: Header, name: string, segments: string[]): EntryPlace {
    const dirs = segments.slice(0, -1);
    const foldedIds = this.folded.prefixes(segments, false);
    for (let i = 0; i < dirs.length; i++) {
      if (foldedIds[i] !== undefined && this.symlinks.has(foldedIds[i]!)) throw new Refusal(`entry ${name} would be written through a symbolic link`);
    }
    const rel = segments.join('/');
    const abs = join(this.tmpDir, ...segments);
    const parentIds = this.makeParents(dirs);
    const id = this.exact.child(parentIds.length === 0 ? ROOT : parentIds[parentIds.length - 1], segments[segments.length - 1], true)!;
    const existing = this.written.get(id);
    const isDir = DIR_TYPES.has(h.type);
    const kind = isDir ? 'dir' : FILE_TYPES.has(h.type) || h.type === 'Link' ? 'file' : 'symlink';
    if (existing !== undefined && (existing === 'dir') !== (kind === 'dir')) {
      throw new Refusal(`entry ${name} replaces an earlier entry of another type`);
    }
    const foldedId = foldedIds[segments.length - 1];
    if (kind === 'symlink' && foldedId !== undefined && this.traversed.has(foldedId)) {
      throw new Refusal(`symbolic link ${name} would redirect an earlier link through it`);
    }
    return { segments, dirs, rel, abs, id, existing };
  }

  /** A symbolic or hard link whose target stays inside the target directory, in place of any earlier entry there. */
  private writeLink(h: Header, name: string, place: EntryPlace): void {
    // a symlink target is relative to the link's directory, a hardlink target to the archive root
    const base = h.type === 'SymbolicLink' ? place.dirs : [];
    const walked = this.walkInside(base, h.linkpath, false);
    if (isAbsolute(h.linkpath) || walked === undefined) {
      throw new Refusal(`${h.type === 'Link' ? 'hard' : 'symbolic'} link ${name} points outside the target directory (${JSON.stringify(h.linkpath)})`);
    }
    if (place.existing !== undefined) unlinkSync(place.abs);
    this.fileHashes.delete(place.rel);
    if (h.type === 'SymbolicLink') {
      for (const k of this.walkInside(base, h.linkpath, true)!) this.traversed.add(k!);
      symlinkSync(h.linkpath, place.abs);
      this.symlinks.add(this.folded.prefixes(place.segments, true)[place.segments.length - 1]!);
      this.written.set(place.id, 'symlink');
    } else {
      this.writeHardLink(h, name, place, walked.at);
    }
  }

  /** A hard link to a regular file written earlier in the archive (`at`, from the archive root). */
  private writeHardLink(h: Header, name: string, place: EntryPlace, at: string[]): void {
    const target = at.join('/');
    const targetId = this.exact.prefixes(at, false)[at.length - 1];
    if (targetId === undefined || this.written.get(targetId) !== 'file' || !this.fileHashes.has(target)) {
      throw new Refusal(`hard link ${name} points to ${JSON.stringify(h.linkpath)}, which is not a file earlier in the archive`);
    }
    linkSync(join(this.tmpDir, ...at), place.abs);
    this.written.set(place.id, 'file');
    this.fileHashes.set(place.rel, this.fileHashes.get(target)!);
  }

  /** A regular file, created new (in place of any earlier one): its data follows the header. */
  private openFile(h: Header, place: EntryPlace): Body {
    if (place.existing !== undefined) unlinkSync(place.abs);
    // O_EXCL: never follows a symlink, never appends to something already there
    const fd = openSync(place.abs, 'wx', 0o600);
    // 0755 or 0644 whatever the umask and the archive say: nothing in the cache is writable by others
    fchmodSync(fd, h.mode & 0o111 ? 0o755 : 0o644);
    this.written.set(place.id, 'file');
    return { kind: 'file', fd, rel: place.rel, hash: createHash('sha256') };
  }

  /** Creates the missing directories of dirs (0755); returns the node of each. */
  private makeParents(dirs: string[]): number[] {
    const ids: number[] = [];
    let parent = ROOT;
    for (let i = 0; i < dirs.length; i++) {
      parent = this.exact.child(parent, dirs[i], true)!;
      ids.push(parent);
      const e = this.written.get(parent);
      if (e === 'dir') continue;
      if (e !== undefined) throw new Refusal(`entry ${JSON.stringify(dirs.slice(0, i + 1).join('/'))} is used as a directory but is not one`);
      makeDir(join(this.tmpDir, ...dirs.slice(0, i + 1)));
      this.written.set(parent, 'dir');
    }
    return ids;
  }

  /**
   * Walks `link` from `base`: where it arrives, or undefined if it climbs out or through an archive symlink; with
   * record, the (case-folded) nodes of the paths it passes through instead.
   */
  private walkInside(base: string[], link: string, record: false): { at: string[] } | undefined;
  private walkInside(base: string[], link: string, record: true): (number | undefined)[] | undefined;
  private walkInside(base: string[], link: string, record: boolean): { at: string[] } | (number | undefined)[] | undefined {
    const at = [...base];
    const nodes = this.folded.prefixes(base, record);
    const intermediates: (number | undefined)[] = [];
    const segments = splitPath(link);
    for (const [i, s] of segments.entries()) {
      if (s === '..') {
        if (at.pop() === undefined) return undefined;
        nodes.pop();
        continue;
      }
      at.push(s);
      const node = this.folded.child(nodes.length === 0 ? ROOT : nodes[nodes.length - 1], s, record);
      nodes.push(node);
      if (i < segments.length - 1) {
        if (node !== undefined && this.symlinks.has(node)) return undefined;
        intermediates.push(node);
      }
    }
    return record ? intermediates : { at };
  }
}

/** Refuses a path or link target too long or too deep, before any other check spends time on it. */
function checkPathBounds(what: string, p: string): void {
  const bytes = Buffer.byteLength(p);
  const shown = p.length > 100 ? `${JSON.stringify(p.slice(0, 100))}…` : JSON.stringify(p);
  if (bytes > MAX_PATH_BYTES) throw new Refusal(`${what} ${shown} is ${bytes} bytes long, more than the limit of ${MAX_PATH_BYTES}`);
  let segments = 1;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if ((c === 0x2f || c === 0x5c) && ++segments > MAX_PATH_SEGMENTS) {
      throw new Refusal(`${what} ${shown} has more than ${MAX_PATH_SEGMENTS} path segments`);
    }
  }
}

function splitPath(p: string): string[] {
  return p.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
}

/** The entry's path as segments (none for the archive root): refused if absolute or if any segment is '..'. */
function entrySegments(path: string, name: string): string[] {
  if (isAbsolute(path)) throw new Refusal(`entry ${name} has an absolute path`);
  const segments = splitPath(path);
  if (segments.includes('..')) throw new Refusal(`entry ${name} contains a '..' path segment`);
  return segments;
}

/** Where the manifest of a tree unpacked to dir is kept. */
export function manifestPath(dir: string): string {
  return `${resolve(dir)}.manifest.json`;
}

/** A directory of the tree: 0755 whatever the umask. */
function makeDir(abs: string): void {
  mkdirSync(abs, { recursive: true, mode: 0o755 });
  chmodSync(abs, 0o755);
}

/** Deletes `<target>.tmp-*` and `<target>.old-*` left by processes that no longer run (and by older versions, which did not name theirs). */
async function removeStaleSiblings(target: string): Promise<void> {
  const prefix = basename(target);
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(?:tmp|old)-(?:(\\d+)-)?[0-9a-f]{12}$`);
  for (const name of await readdir(dirname(target))) {
    const m = pattern.exec(name);
    if (!m || (m[1] !== undefined && isAlive(Number(m[1])))) continue;
    await rm(join(dirname(target), name), { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }
}

function isAbsolute(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p);
}

function cString(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

function readOctal(buf: Buffer, off: number, len: number): number {
  const s = buf.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Unreadable('bad number in a tar header');
  return parseInt(s, 8);
}

/** Octal, or GNU base-256 (first byte 0x80) for sizes of 8 GiB and more. */
function readNumber(buf: Buffer, off: number, len: number): number {
  if (buf[off] === 0x80) {
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + buf[i];
    return n;
  }
  if (buf[off] & 0x80) throw new Unreadable('negative number in a tar header');
  return readOctal(buf, off, len);
}

/** pax records: "<length> <key>=<value>\n". */
function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    if (space === -1) break;
    const len = Number(data.toString('latin1', off, space));
    if (!Number.isSafeInteger(len) || len <= space - off || off + len > data.length) throw new Unreadable('malformed pax header');
    const record = data.toString('utf8', space + 1, off + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    off += len;
  }
  return out;
}

async function replaceDir(fresh: string, target: string): Promise<void> {
  const old = `${target}.old-${process.pid}-${randomBytes(6).toString('hex')}`;
  let moved = false;
  try {
    await rename(target, old);
    moved = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    await rename(fresh, target);
  } catch (err) {
    if (moved) await rename(old, target).catch(() => {});
    throw err;
  }
  if (moved) await rm(old, { recursive: true, force: true });
}
