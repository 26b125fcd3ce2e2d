import { gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';

/** Tar entries written header by header, so that nothing sanitises the bad ones (for malicious-archive tests). */
export type RawEntry = HeaderData & { body?: string | Buffer };

export function rawTar(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { body = '', ...h } of entries) {
    const data = Buffer.from(body);
    const block = Buffer.alloc(512);
    new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: data.length, ...h }).encode(block, 0);
    blocks.push(block, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export const rawTarGz = (entries: RawEntry[]): Buffer => gzipSync(rawTar(entries));
