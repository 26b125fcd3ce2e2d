import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExternalCommandError, InterruptedError, PreflightError } from '../../src/core/errors.js';
import { runCommand, runProbe } from '../../src/exec/run.js';

// runProbe (node's execFile, for version probes) must fail exactly as runCommand (execa) does.
const runners = {
  runCommand: (file: string, args: string[], o: { signal?: AbortSignal; timeoutMs: number }) => runCommand(file, args, o),
  runProbe,
};

for (const [name, run] of Object.entries(runners)) {
  describe(name, () => {
    it('returns what the command printed', async () => {
      const r = await run('/bin/sh', ['-c', 'echo "kind v0.17.0 go1.19.2 linux/amd64"; echo note >&2'], { timeoutMs: 10_000 });
      assert.equal(r.stdout.trim(), 'kind v0.17.0 go1.19.2 linux/amd64');
      assert.equal(r.stderr.trim(), 'note');
    });

    it('a missing program is a PreflightError naming it', async () => {
      await assert.rejects(run('/nonexistent/istioctl', ['version'], { timeoutMs: 10_000 }), (e: unknown) => e instanceof PreflightError && e.message === '/nonexistent/istioctl is not installed or not on PATH');
    });

    it('a non-zero exit is an ExternalCommandError with the exit code and the last lines', async () => {
      await assert.rejects(run('/bin/sh', ['-c', 'echo first; echo last >&2; exit 3'], { timeoutMs: 10_000 }), (e: unknown) => {
        assert.ok(e instanceof ExternalCommandError);
        assert.equal(e.message, 'sh -c echo first; echo last >&2; exit 3 failed with exit code 3');
        assert.deepEqual(e.details?.slice().sort(), ['first', 'last']);
        return true;
      });
    });

    it('a command past its timeout is killed and reported', async () => {
      await assert.rejects(run('/bin/sh', ['-c', 'exec sleep 30'], { timeoutMs: 300 }), (e: unknown) => e instanceof ExternalCommandError && /did not finish within 0\.3s/.test(e.message));
    });

    it('cancellation is an InterruptedError', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 200);
      await assert.rejects(run('/bin/sh', ['-c', 'exec sleep 30'], { signal: controller.signal, timeoutMs: 60_000 }), InterruptedError);
    });
  });
}
