// What the cluster-images step pre-loads into kind nodes: the images named by Istio's demo profile and the real
// Istio 1.8.4 addon manifests (../shared/fixtures), and how a node's runtime names them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { istioImages, normalizeReference, uniqueImages, workloadImages } from '../../src/images/cluster-images.js';
import { readManifests } from '../../src/kube/manifests.js';

const addons = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../shared/fixtures/istio-1.8.4/samples/addons');

describe('cluster images', () => {
  it('Istio: pilot and proxyv2 from docker.io/istio at the release version, or the --istio-set hub and tag', () => {
    assert.deepEqual(istioImages('1.8.4', []).map((i) => i.ref), ['docker.io/istio/pilot:1.8.4', 'docker.io/istio/proxyv2:1.8.4']);
    assert.deepEqual(istioImages('1.8.4', ['hub=127.0.0.1:5000/istio', 'values.global.tag=1.8.4-distroless']).map((i) => i.ref), ['127.0.0.1:5000/istio/pilot:1.8.4-distroless', '127.0.0.1:5000/istio/proxyv2:1.8.4-distroless']);
  });

  it('the 1.8.4 addons: every container image, Kiali marked pull-always (its imagePullPolicy)', () => {
    const images = uniqueImages(['prometheus', 'grafana', 'jaeger', 'kiali'].flatMap((a) => workloadImages(readManifests(path.join(addons, `${a}.yaml`)), `addon ${a}`)));
    assert.deepEqual(images.map((i) => `${i.ref}${i.pullAlways ? ' (always)' : ''}`).sort(), [
      'docker.io/jaegertracing/all-in-one:1.20',
      'grafana/grafana:7.2.1',
      'jimmidyson/configmap-reload:v0.4.0',
      'prom/prometheus:v2.21.0',
      'quay.io/kiali/kiali:v1.26 (always)',
    ]);
  });

  it('untagged and :latest images default to pulling always; a digest does not', () => {
    const pod = (image: string, imagePullPolicy?: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image, imagePullPolicy }] } });
    const always = (image: string, policy?: string) => workloadImages([pod(image, policy) as any], 'x')[0].pullAlways;
    assert.equal(always('busybox'), true);
    assert.equal(always('busybox:latest'), true);
    assert.equal(always('busybox:1.36'), false);
    assert.equal(always('busybox:1.36', 'Always'), true);
    assert.equal(always(`busybox@sha256:${'a'.repeat(64)}`), false);
    assert.equal(always('127.0.0.1:5000/x'), true, 'a registry port is no tag');
  });

  it('names as a node lists them (docker.io, library/, :latest)', () => {
    assert.equal(normalizeReference('grafana/grafana:7.2.1'), 'docker.io/grafana/grafana:7.2.1');
    assert.equal(normalizeReference('busybox'), 'docker.io/library/busybox:latest');
    assert.equal(normalizeReference('docker.io/istio/pilot:1.8.4'), 'docker.io/istio/pilot:1.8.4');
    assert.equal(normalizeReference('127.0.0.1:5000/micro-api'), '127.0.0.1:5000/micro-api:latest');
    assert.equal(normalizeReference(`quay.io/kiali/kiali@sha256:${'b'.repeat(64)}`), `quay.io/kiali/kiali@sha256:${'b'.repeat(64)}`);
  });
});
