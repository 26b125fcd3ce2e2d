// Child process of bench/download.ts: what meshdemo's istio-download step does with a release URL — fetch the
// `.sha256`, download the archive verifying it while it streams (src/download/download.ts), then validate every
// entry and extract it atomically (src/download/extract.ts). The step's last part, `istioctl version`, is left
// out: it is not part of the download pipeline compared here.
//
//   node dist/bench/download-step.js <url> <cache-dir>
import path from 'node:path';
import { downloadVerified, fetchText, parseSha256File } from '../src/download/download.js';
import { extractArchiveSafely } from '../src/download/extract.js';

const loaded = performance.now(); // ms since this process started: Node start-up and the modules above
const [url, cacheDir] = process.argv.slice(2);
const name = path.posix.basename(new URL(url).pathname);
const expected = parseSha256File(await fetchText(`${url}.sha256`), name);
const dest = path.join(cacheDir, name);
const fetched = performance.now();
const got = await downloadVerified({ url, dest, expectedSha256: expected });
const downloaded = performance.now();
const { entries } = await extractArchiveSafely(dest, path.join(cacheDir, 'tree'));
const extracted = performance.now();
const phases = { startup: loaded, sha256File: fetched - loaded, download: downloaded - fetched, extract: extracted - downloaded };
process.stdout.write(`${JSON.stringify({ bytes: got.bytes, sha256: got.sha256, entries, phases })}\n`);
