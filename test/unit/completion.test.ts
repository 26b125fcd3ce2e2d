// `meshdemo completion bash` loaded into a real bash: completion driven through COMP_WORDS/COMP_CWORD and the
// function `complete -p meshdemo` names, as bash's programmable completion calls it on Tab.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MESHDEMO_BIN, runMeshdemo } from '../support/cli.js';

const exec = promisify(execFile);

/** What bash offers for the line `words` with the cursor at the end of the last word. */
async function complete(words: string[]): Promise<string[]> {
  const script = `
    set -e
    source <("${process.execPath}" "${MESHDEMO_BIN}" completion bash)
    fn=$(complete -p meshdemo | sed -E 's/.*-F ([^ ]+).*/\\1/')
    COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
    COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="\${COMP_WORDS[*]}"
    COMP_POINT=\${#COMP_LINE}
    "$fn" meshdemo "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
    printf '%s\\n' "\${COMPREPLY[@]}"
  `;
  const { stdout } = await exec('bash', ['--norc', '--noprofile', '-c', script], { env: { PATH: process.env.PATH ?? '' } });
  return stdout.split('\n').filter(Boolean).sort();
}

describe('meshdemo completion', { timeout: 60_000 }, () => {
  it('bash: "meshdemo ex" completes to expose, "meshdemo expose k" to kiali', async () => {
    assert.deepEqual(await complete(['meshdemo', 'ex']), ['expose']);
    assert.deepEqual(await complete(['meshdemo', 'expose', 'k']), ['kiali']);
  });

  it('bash: every command, service names for logs, flags of the command at hand, values after global flags', async () => {
    assert.deepEqual(await complete(['meshdemo', '']), ['canary', 'chaos', 'completion', 'down', 'download', 'expose', 'help', 'istioctl', 'logs', 'mtls', 'open', 'plan', 'status', 'traffic', 'up', 'verify']);
    // the scenario commands and open: their arguments' values
    assert.deepEqual(await complete(['meshdemo', 'canary', '']), ['micro-api', 'micro-order']);
    assert.deepEqual(await complete(['meshdemo', 'chaos', '']), ['abort', 'breaker', 'clear', 'delay', 'retries', 'timeout']);
    assert.deepEqual(await complete(['meshdemo', 'mtls', '']), ['clear', 'permissive', 'strict']);
    assert.deepEqual(await complete(['meshdemo', 'open', 'j']), ['jaeger']);
    assert.deepEqual(await complete(['meshdemo', 'logs', 'micro-o']), ['micro-order']);
    assert.deepEqual(await complete(['meshdemo', 'logs', '']), ['gateway', 'micro-api', 'micro-order', 'micro-pay']);
    assert.deepEqual(await complete(['meshdemo', 'expose', '']), ['all', 'grafana', 'kiali', 'prometheus', 'tracing', 'zipkin']);
    // a global option and its value before the command do not count as the command
    assert.deepEqual(await complete(['meshdemo', '--namespace', 'shop', 'expose', 'g']), ['grafana']);
    assert.deepEqual(await complete(['meshdemo', 'logs', '--pr']), ['--proxy']);
    assert.deepEqual(await complete(['meshdemo', 'traffic', '--con']), ['--concurrency', '--context']);
    assert.deepEqual(await complete(['meshdemo', 'completion', '']), ['bash', 'fish', 'zsh']);
    // the value of an option that takes one is not a command or an argument
    assert.deepEqual(await complete(['meshdemo', '--context', '']), []);
    assert.deepEqual(await complete(['meshdemo', 'expose', '--node-port', '31001', 'tr']), ['tracing']);
    // nothing after the last argument
    assert.deepEqual(await complete(['meshdemo', 'expose', 'kiali', '']), []);
  });

  it('zsh and fish scripts come from the same command tree; an unknown shell is one line, exit 2', async () => {
    const zsh = await runMeshdemo(['completion', 'zsh']);
    assert.equal(zsh.code, 0, zsh.stderr);
    assert.match(zsh.stdout, /^#compdef meshdemo$/m);
    assert.match(zsh.stdout, /bashcompinit/);
    assert.match(zsh.stdout, /^complete -F _meshdemo_complete meshdemo$/m);
    const fish = await runMeshdemo(['completion', 'fish']);
    assert.equal(fish.code, 0, fish.stderr);
    for (const cmd of ['up', 'down', 'expose', 'traffic', 'logs', 'completion']) assert.match(fish.stdout, new RegExp(`^complete -c meshdemo -n '__fish_use_subcommand' -a ${cmd} -d `, 'm'));
    assert.match(fish.stdout, /^complete -c meshdemo -n '__fish_seen_subcommand_from expose; and not __fish_seen_subcommand_from kiali grafana prometheus tracing zipkin all' -a 'kiali grafana prometheus tracing zipkin all'$/m);
    assert.match(fish.stdout, /^complete -c meshdemo -n '__fish_seen_subcommand_from logs' -l proxy -d /m);
    assert.match(fish.stdout, /^complete -c meshdemo -l kubeconfig -r -F -d /m);
    const bad = await runMeshdemo(['completion', 'powershell']);
    assert.equal(bad.code, 2);
    assert.deepEqual(bad.stderr.trim().split('\n'), ['error: no completion for shell "powershell" — choose one of bash, zsh, fish']);
  });
});
