// The rules that hold the shape of src/ (README, "Layout"): which room may import which, no floating promises,
// and a limit on how complex one function may be.
import tseslint from 'typescript-eslint';

/** What each room of src/ may import of the project (besides itself). Everything else of src/ is forbidden. */
const mayImport = {
  core: [],
  ui: ['core'],
  exec: ['core'],
  download: ['core'],
  kube: ['core'],
  images: ['core', 'kube'],
  record: ['core', 'kube'],
  kind: ['core', 'download', 'kube', 'settings'],
  settings: ['core', 'kind', 'images'],
  demo: ['core', 'exec', 'download', 'kube', 'record', 'kind', 'images', 'settings'],
  down: ['core', 'exec', 'kube', 'record', 'kind', 'demo', 'settings'],
  steps: ['core', 'exec', 'download', 'kube', 'record', 'kind', 'images', 'settings', 'demo', 'down'],
  commands: ['core', 'ui', 'exec', 'download', 'kube', 'record', 'kind', 'images', 'settings', 'demo', 'down', 'steps'],
  cli: ['core', 'commands'],
};
const rooms = Object.keys(mayImport);
/** Rooms that are one file at the top of src/ rather than a directory. */
const fileRooms = new Set(['settings', 'cli']);

function layerRule(room) {
  const forbidden = rooms.filter((other) => other !== room && !mayImport[room].includes(other));
  const up = fileRooms.has(room) ? '\\./' : '\\.\\./';
  return forbidden.map((other) => ({
    regex: `^${up}${other}(/|\\.js$)`,
    message: `src/${room} may import only ${mayImport[room].join(', ') || 'nothing of the project'} (README, "Layout").`,
  }));
}

const layerConfigs = rooms.map((room) => ({
  files: [fileRooms.has(room) ? `src/${room}.ts` : `src/${room}/**/*.ts`],
  rules: { 'no-restricted-imports': ['error', { patterns: layerRule(room) }] },
}));

/** A step never imports another step; the two lists of steps (up's and down's) are the exception. */
const stepsApart = {
  files: ['src/steps/*.ts'],
  ignores: ['src/steps/index.ts', 'src/steps/down.ts'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [...layerRule('steps'), { regex: '^\\./', message: 'A step never imports another step: move what both need to src/demo or src/down.' }],
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'templates/**', 'test/run.mjs', 'eslint.config.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['it', 'describe', 'test', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      complexity: ['error', 20],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  ...layerConfigs,
  stepsApart,
);
