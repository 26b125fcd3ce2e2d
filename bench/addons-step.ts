// Child process of bench/addons.ts: runs meshdemo's `addons` step (check, then run) through the runner, as
// `up` does, against the kubeconfig given, and prints every event as NDJSON on stdout (the parent timestamps
// them). The release directory in the cache is prepared by the parent (samples/ from the real Istio 1.8.4 YAML).
//
//   node dist/bench/addons-step.js <kubeconfig> <cache-dir>
import { createContext } from '../src/commands/context.js';
import type { MeshEvent } from '../src/core/events.js';
import { createPrompter } from '../src/core/prompt.js';
import { runSteps } from '../src/core/runner.js';
import { addons } from '../src/steps/addons.js';
import { parseUpSettings } from '../src/settings.js';

const [kubeconfig, cacheDir] = process.argv.slice(2);

const controller = new AbortController();
const ctx = createContext({
  // verbose: every API request is a debug event ("GET /api/v1/… 200 12ms"), which the parent counts
  options: { kubeconfig, namespace: 'default', yes: true, json: true, verbose: true, cacheDir, timeoutMs: 300_000 },
  settings: parseUpSettings({ app: false }),
  events: { emit: (e: MeshEvent) => process.stdout.write(`${JSON.stringify(e)}\n`) },
  signal: controller.signal,
  prompt: createPrompter({ json: true, isTTY: false }),
  secrets: new Set(),
});
try {
  const [outcome] = await runSteps([addons], ctx);
  process.stdout.write(`${JSON.stringify({ type: 'result', ok: true, outcome })}\n`);
} catch (err) {
  process.stderr.write(`addons step failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  ctx.dispose();
}
