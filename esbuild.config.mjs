// Bundles the CLI that bin/meshdemo runs into dist/cli/, from tsc's output in dist/src/ (`npm run bundle`, part of
// `npm run build`). Node 20 loads an ES module graph one file at a time (resolve, read, compile, link), and a no-op
// `up` loaded about 70 of meshdemo's files: about 40 ms of its 330 ms on the bench machine (bench/RESULTS.md).
//
// So that `--help` stays as light as the lazy boundaries of src/cli.ts and src/commands/ made it:
//   meshdemo.js     src/cli.ts and every command's definition (arguments, options, help text)
//   <name>.run.js   each command's body (src/commands/<name>.run.ts) with all it imports, in one file: what the
//                   definition's lazyAction(() => import('./<name>.run.js')) loads
// The packages stay in node_modules: they load as before (commander at start, the others lazily where imported).
// The few modules both meshdemo.js and a body hold (core/errors, core/names, core/options, core/secrets) have no
// state that a definition and a body share: a body's errors are caught and reported by its own action()
// (commands/action.ts).
import fs from 'node:fs';
import { build } from 'esbuild';

const OUT = 'dist/cli';
const BODY = /^\.\/([a-z-]+)\.run\.js$/;

const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', sourcemap: true, logLevel: 'warning' };
const bodies = fs
  .readdirSync('dist/src/commands')
  .map((file) => BODY.exec(`./${file}`)?.[1])
  .filter(Boolean)
  .sort();

fs.rmSync(OUT, { recursive: true, force: true });

await build({
  ...common,
  entryPoints: ['dist/src/cli.js'],
  outfile: `${OUT}/meshdemo.js`,
  plugins: [
    {
      name: 'command-bodies-outside',
      setup(b) {
        b.onResolve({ filter: BODY }, (args) => ({ path: args.path, external: true }));
      },
    },
  ],
});

// each body on its own, with everything it imports (no code split between them): a command loads one file
await build({ ...common, entryPoints: bodies.map((c) => `dist/src/commands/${c}.run.js`), outdir: OUT });
