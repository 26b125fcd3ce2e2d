// The kind stand-in itself (test/support/kind-standin.ts): the CLI surface meshdemo relies on, as kind v0.17.0
// behaves (the parts that need no control plane; creation and deletion are exercised in local-cluster.test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testenvBinDir } from '../support/control-plane.js';
import { kindStandinScript, runningClusters, stopStandinClusters } from '../support/kind-standin.js';
import { skipUnless } from '../support/requirements.js';

describe('kind stand-in: CLI surface of kind v0.17.0', () => {
  let tmp: string;
  let bin: string;
  const kind = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, STANDIN_KIND_STATE: path.join(tmp, 'state'), HOME: tmp, KUBECONFIG: '', ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kind-standin-'));
    bin = path.join(tmp, 'kind');
    fs.writeFileSync(bin, kindStandinScript(), { mode: 0o755 });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('version: "kind v0.17.0 go1.19.2 linux/amd64" on stdout', () => {
    assert.deepEqual(kind(['version']), { code: 0, stdout: 'kind v0.17.0 go1.19.2 linux/amd64\n', stderr: '' });
  });

  it('get clusters with none: "No kind clusters found." on stderr, nothing on stdout, exit 0', () => {
    assert.deepEqual(kind(['get', 'clusters']), { code: 0, stdout: '', stderr: 'No kind clusters found.\n' });
  });

  it('errors are "ERROR: …" on stderr with exit 1', () => {
    assert.deepEqual(kind(['create', 'cluster', '--bogus']), { code: 1, stdout: '', stderr: 'ERROR: unknown flag: --bogus\n' });
    const bad = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(bad, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n');
    assert.deepEqual(kind(['create', 'cluster', '--config', bad]), { code: 1, stdout: '', stderr: 'ERROR: unknown apiVersion: kind.x-k8s.io/v1alpha3\n'.replace('ERROR: ', 'ERROR: failed to create cluster: ') });
    assert.deepEqual(kind(['create', 'cluster', '--name', 'Bad_Name']).stderr, "ERROR: failed to create cluster: 'Bad_Name' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`\n");
    assert.deepEqual(kind(['load', 'docker-image']), { code: 1, stdout: '', stderr: 'ERROR: a list of image names is required\n' });
  });

  it('delete cluster of a cluster that does not exist: "Deleting cluster …", exit 0, and kind-<name> leaves the kubeconfig', () => {
    const kc = path.join(tmp, 'kc');
    fs.writeFileSync(kc, 'apiVersion: v1\nkind: Config\ncurrent-context: kind-x\ncontexts:\n- name: kind-x\n  context: {cluster: kind-x, user: kind-x}\n- name: other\n  context: {cluster: o, user: o}\n');
    assert.deepEqual(kind(['delete', 'cluster', '--name', 'x'], { KUBECONFIG: kc }), { code: 0, stdout: '', stderr: 'Deleting cluster "x" ...\n' });
    const text = fs.readFileSync(kc, 'utf8');
    assert.match(text, /current-context: ''/);
    assert.doesNotMatch(text, /kind-x/);
    assert.match(text, /name: other/);
  });

  it('delete cluster with the kubeconfig locked by someone else: logs it, still exit 0 (delete.go, lock.go)', () => {
    const kc = path.join(tmp, 'locked');
    fs.writeFileSync(kc, 'apiVersion: v1\nkind: Config\ncurrent-context: kind-y\n');
    fs.writeFileSync(`${kc}.lock`, '');
    assert.deepEqual(kind(['delete', 'cluster', '--name', 'y', '--kubeconfig', kc]), {
      code: 0,
      stdout: '',
      stderr: `Deleting cluster "y" ...\nfailed to update kubeconfig: failed to lock config file: open ${kc}.lock: file exists\n`,
    });
    assert.match(fs.readFileSync(kc, 'utf8'), /current-context: kind-y/, 'left as it was');
    assert.ok(fs.existsSync(`${kc}.lock`), "someone else's lock is not removed");
  });

  it('version -q prints only the semver (version.go); global flags -v/-q are accepted by every command (root.go)', () => {
    assert.deepEqual(kind(['version', '-q']), { code: 0, stdout: '0.17.0\n', stderr: '' });
    assert.deepEqual(kind(['-v', '1', 'get', 'clusters']), { code: 0, stdout: '', stderr: 'No kind clusters found.\n' });
    assert.deepEqual(kind(['get', 'clusters', '-q']), { code: 0, stdout: '', stderr: '' });
    assert.deepEqual(kind(['create', 'cluster', '--bogus', '-q']), { code: 1, stdout: '', stderr: '' }, 'quiet silences errors too (main.go checkQuiet)');
  });

  it('--wait is a Go duration: a number without unit is refused (pflag DurationVar)', () => {
    assert.deepEqual(kind(['create', 'cluster', '--wait', '300']), { code: 1, stdout: '', stderr: 'ERROR: invalid argument "300" for "--wait" flag: time: missing unit in duration "300"\n' });
    assert.equal(kind(['create', 'cluster', '--wait', 'soon']).stderr, 'ERROR: invalid argument "soon" for "--wait" flag: time: invalid duration "soon"\n');
  });

  it('the config is decoded strictly: unknown fields and mistyped ports are refused (encoding/load.go yamlUnmarshalStrict)', () => {
    const file = path.join(tmp, 'unknown.yaml');
    fs.writeFileSync(file, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 31001\n    hostPort: 31001\n    listenAdress: 127.0.0.1\n');
    assert.deepEqual(kind(['create', 'cluster', '--config', file]), {
      code: 1,
      stdout: '',
      stderr: 'ERROR: failed to create cluster: unable to decode config: yaml: unmarshal errors:\n  line 8: field listenAdress not found in type v1alpha4.PortMapping\n',
    });
    fs.writeFileSync(file, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: "31001"\n');
    assert.match(kind(['create', 'cluster', '--config', file]).stderr, /^ERROR: failed to create cluster: unable to decode config: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `31001` into int32\n$/);
    fs.writeFileSync(file, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 31001\n    hostPort: 70000\n');
    assert.equal(kind(['create', 'cluster', '--config', file]).stderr, 'ERROR: failed to create cluster: invalid configuration for node 0: invalid hostPort: invalid port number: 70000\n');
  });

  it('a port mapping protocol other than TCP/UDP/SCTP fails while preparing the nodes (provision.go generatePortMappings)', () => {
    const file = path.join(tmp, 'proto.yaml');
    fs.writeFileSync(file, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 31001\n    hostPort: 31001\n    protocol: tcp\n');
    const r = kind(['create', 'cluster', '--name', 'p', '--config', file, '--image', 'kindest/node:v1.19.16']);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'Creating cluster "p" ...\n\n • Ensuring node image (kindest/node:v1.19.16) 🖼  ...\n ✓ Ensuring node image (kindest/node:v1.19.16) 🖼\n • Preparing nodes 📦   ...\n ✗ Preparing nodes 📦 \nERROR: failed to create cluster: unknown port mapping protocol: tcp\n',
    );
    assert.equal(kind(['get', 'clusters']).stdout, '', 'nothing left behind');
  });

  describe('clusters whose node is stopped, and load docker-image', () => {
    const state = () => path.join(tmp, 'state');
    const fakeCluster = (name: string, pid: number) => {
      fs.mkdirSync(path.join(state(), name), { recursive: true });
      fs.writeFileSync(path.join(state(), name, 'pid'), String(pid));
    };
    let dockerBin: string;
    before(() => {
      // a docker CLI double that knows two tags of one image (kind asks `docker image inspect -f {{ .Id }} IMAGE` first,
      // then saves what it loads with `docker save -o FILE IMAGE...`: here a legacy archive of that image, no layers)
      dockerBin = path.join(tmp, 'docker-bin');
      fs.mkdirSync(dockerBin);
      fs.writeFileSync(
        path.join(dockerBin, 'docker'),
        [
          '#!/bin/sh',
          'if [ "$1 $2 $3 $4" = "image inspect -f {{ .Id }}" ]; then case "$5" in meshdemo/x:1|meshdemo/x:2) echo sha256:aaaa; exit 0;; esac; fi',
          'if [ "$1 $2" = "save -o" ]; then out="$3"; shift 3; d=$(mktemp -d); echo "{}" > "$d/aaaa.json"',
          '  tags=""; for t in "$@"; do tags="$tags${tags:+,}\\"$t\\""; done',
          '  echo "[{\\"Config\\":\\"aaaa.json\\",\\"RepoTags\\":[$tags],\\"Layers\\":[]}]" > "$d/manifest.json"',
          '  tar -cf "$out" -C "$d" manifest.json aaaa.json; rm -rf "$d"; exit 0; fi',
          'echo "Error: No such image: $5" >&2',
          'exit 1',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      fakeCluster('up', process.pid); // a running node: this process is alive
      fakeCluster('stopped', spawnSync('true').pid!); // a node whose process has exited
    });
    after(() => fs.rmSync(state(), { recursive: true, force: true }));
    const withDocker = () => ({ PATH: `${dockerBin}${path.delimiter}${process.env.PATH}` });

    it('get clusters lists a stopped cluster too, and create refuses its name (docker ps -a; create.go alreadyExists)', () => {
      assert.deepEqual(kind(['get', 'clusters']), { code: 0, stdout: 'stopped\nup\n', stderr: '' });
      assert.deepEqual(kind(['create', 'cluster', '--name', 'stopped']), { code: 1, stdout: '', stderr: 'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "stopped"\n' });
      assert.deepEqual(kind(['create', 'cluster'], { KIND_CLUSTER_NAME: 'up' }).stderr, 'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "up"\n');
    });

    it('load docker-image: an image not present locally is refused first, before the cluster is even looked at', () => {
      assert.deepEqual(kind(['load', 'docker-image', 'meshdemo/missing:1', '--name', 'nosuch'], withDocker()), { code: 1, stdout: '', stderr: 'ERROR: image: "meshdemo/missing:1" not present locally\n' });
      assert.deepEqual(kind(['load', 'docker-image', 'meshdemo/x:1', '--name', 'nosuch'], withDocker()), { code: 1, stdout: '', stderr: 'ERROR: no nodes found for cluster "nosuch"\n' });
      assert.equal(kind(['load', 'docker-image', 'meshdemo/x:1', '--name', 'up', '--nodes', 'other-node'], withDocker()).stderr, 'ERROR: unknown node: "other-node"\n');
    });

    it('load docker-image: loads once, then finds it present; the same image ID under a new tag is re-tagged', () => {
      const load = (ref: string) => kind(['load', 'docker-image', ref, ref, '--name', 'up'], withDocker());
      assert.deepEqual(load('meshdemo/x:1'), { code: 0, stdout: '', stderr: 'Image: "meshdemo/x:1" with ID "sha256:aaaa" not yet present on node "up-control-plane", loading...\n' });
      assert.deepEqual(load('meshdemo/x:1'), { code: 0, stdout: '', stderr: 'Image: "meshdemo/x:1" with ID "sha256:aaaa" found to be already present on all nodes.\n' });
      assert.deepEqual(load('meshdemo/x:2'), {
        code: 0,
        stdout: '',
        stderr: 'Image with ID: sha256:aaaa already present on the node up-control-plane but is missing the tag docker.io/meshdemo/x:2. re-tagging...\n',
      });
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(state(), 'up', 'images.json'), 'utf8')), { 'meshdemo/x:1': 'sha256:aaaa', 'meshdemo/x:2': 'sha256:aaaa' });
    });

    it('a stopped node: load and export kubeconfig fail with kind\'s docker exec error', () => {
      const r = kind(['load', 'docker-image', 'meshdemo/x:1', '--name', 'stopped'], withDocker());
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\nERROR: failed to detect containerd snapshotter: command "docker exec --privileged stopped-control-plane containerd config dump" failed with error: exit status 1\n\nCommand Output: Error response from daemon: Container stopped-control-plane is not running\n$/);
      assert.match(kind(['export', 'kubeconfig', '--name', 'stopped']).stderr, /^ERROR: failed to get cluster internal kubeconfig: command "docker exec --privileged stopped-control-plane cat \/etc\/kubernetes\/admin.conf" failed/);
      assert.equal(kind(['export', 'kubeconfig', '--name', 'nosuch']).stderr, "ERROR: could not locate any control plane nodes for cluster named 'nosuch'. Use the --name option to select a different cluster\n");
    });
  });

  it(
    'create cluster whose kubeconfig cannot be written (a held lock): exit 1, and the cluster stays (create.go exports after the actions)',
    { skip: skipUnless('control-plane'), timeout: 180_000 },
    async () => {
      const state = path.join(tmp, 'lock-state');
      const kc = path.join(tmp, 'lock-kubeconfig');
      fs.writeFileSync(`${kc}.lock`, '');
      try {
        // no --config: no port mappings, so no fixed host port is bound
        const r = kind(['create', 'cluster', '--name', 'locked', '--image', 'kindest/node:v1.19.16', '--kubeconfig', kc], {
          STANDIN_KIND_STATE: state,
          STANDIN_KIND_OWNER_PID: String(process.pid),
          MESHDEMO_TESTENV_BIN: testenvBinDir(),
        });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /\n • Installing StorageClass 💾  \.\.\.\n ✓ Installing StorageClass 💾\nERROR: failed to create cluster: failed to lock config file: open .*lock-kubeconfig\.lock: file exists\n$/);
        assert.deepEqual(runningClusters(state), ['locked'], 'not deleted');
        assert.ok(!fs.existsSync(kc), 'nothing written');
      } finally {
        await stopStandinClusters(state);
        fs.rmSync(`${kc}.lock`, { force: true });
      }
    },
  );
});
