import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@duet/engine/tiny';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { exportedSampleNames, metricNames } from './promqlNames.js';

// Validation of deploy/ and k8s/ without a cluster: Dockerfiles, the Helm chart (structure,
// values against values.schema.json, template references), the kustomize base and overlay
// (rendered by kubectl, every object validated against the Kubernetes schemas of
// kubernetes-models, the base held equal to the chart's defaults), Prometheus rules (promtool).
// No helm binary is available here: deploy/helm/render renders the chart with what Helm's engine
// is made of (Go text/template, sprig, Helm's include/toYaml/...; built from Debian packages), and
// the templates are also checked statically.

/** Grafana's datasource variable, as the dashboard writes it. */
const DATASOURCE = ['$', '{datasource}'].join('');
const SERVICES = ['clock', 'tokenizer', 'inference', 'vocoder'] as const;
type Service = (typeof SERVICES)[number];
/** The services with an image: the call loop and the WebRTC SFU (templates/sfu.yaml). */
const IMAGES = [...SERVICES, 'sfu'] as const;
const at = (...p: string[]) => join(repoRoot, ...p);
const read = (...p: string[]) => readFileSync(at(...p), 'utf8');
type Obj = Record<string, unknown>;
type K8s = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Obj;
} & Obj;

/** Every DUET_* variable a service (or the runtime shell) reads, from the zod config schemas. */
function configVariables(): Map<string, Set<string>> {
  const common = new Set(
    [...read('packages/runtime/src/config.ts').matchAll(/^\s+(DUET_[A-Z0-9_]+):/gm)].map((m) => m[1]!),
  );
  const out = new Map<string, Set<string>>();
  // The SIP bridge is opt-in in the chart (templates/sip-bridge.yaml), not among the default images.
  for (const s of [...IMAGES, 'sip-bridge']) {
    const vars = new Set(common);
    for (const f of readdirSync(at('services', s, 'src'))) {
      if (!f.endsWith('.ts') || f.endsWith('.test.ts')) continue;
      for (const m of read('services', s, 'src', f).matchAll(/^\s+(DUET_[A-Z0-9_]+):/gm)) vars.add(m[1]!);
    }
    out.set(s, vars);
  }
  return out;
}

function kustomize(dir: string): K8s[] {
  const text = execFileSync('kubectl', ['kustomize', at(dir)], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJSON() as K8s);
}

const req = createRequire(at('package.json'));
/** The model class of kubernetes-models for an object (e.g. apps/v1 StatefulSet). */
function modelClass(apiVersion: string, kind: string): new (o: unknown) => { validate(): void } {
  const mod = req(`kubernetes-models/${apiVersion}/${kind}`) as Record<
    string,
    new (
      o: unknown,
    ) => { validate(): void }
  >;
  const cls = mod[kind] ?? mod.default;
  if (!cls) throw new Error(`kubernetes-models has no ${apiVersion} ${kind}`);
  return cls;
}

/** ajv 8 (a dependency of kubernetes-models' validator; not a direct dependency of ours). */
function ajv(): { compile(schema: unknown): ((data: unknown) => boolean) & { errors?: unknown } } {
  const k = createRequire(req.resolve('kubernetes-models'));
  const v = createRequire(k.resolve('@kubernetes-models/validate'));
  const mod = v('ajv') as { default?: unknown };
  const Ajv = (mod.default ?? mod) as new (o: unknown) => ReturnType<typeof ajv>;
  return new Ajv({ allErrors: true, strict: false });
}

/** Monitoring CRDs (not in kubernetes-models): the fields the Prometheus Operator requires. */
function validateMonitoring(o: K8s): void {
  expect(o.apiVersion).toBe('monitoring.coreos.com/v1');
  const spec = o.spec as Obj;
  if (o.kind === 'ServiceMonitor') {
    expect(spec.selector).toBeTypeOf('object');
    const endpoints = spec.endpoints as Obj[];
    expect(endpoints.length).toBeGreaterThan(0);
    for (const e of endpoints) {
      expect(e.port).toBe('http');
      expect(e.path).toBe('/metrics');
      expect(String(e.interval)).toMatch(/^\d+[smh]$/);
    }
  } else if (o.kind === 'PrometheusRule') {
    const groups = spec.groups as { name: string; rules: Obj[] }[];
    expect(groups.length).toBeGreaterThan(0);
    for (const g of groups)
      for (const r of g.rules) {
        expect(typeof (r.record ?? r.alert)).toBe('string');
        expect(typeof r.expr).toBe('string');
      }
  } else throw new Error(`unexpected ${o.kind}`);
}

function validateAll(objects: K8s[]): void {
  for (const o of objects) {
    if (o.apiVersion.startsWith('monitoring.coreos.com/')) validateMonitoring(o);
    else {
      const Cls = modelClass(o.apiVersion, o.kind);
      expect(() => new Cls(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
  }
}

type Container = {
  name: string;
  image: string;
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  resources: { requests?: Obj; limits?: Obj };
  securityContext: Obj;
  startupProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  volumeMounts: { name: string; mountPath: string }[];
};
type PodSpec = {
  terminationGracePeriodSeconds: number;
  securityContext: Obj;
  containers: Container[];
  nodeSelector?: Record<string, string>;
  tolerations?: Obj[];
};
const podSpec = (o: K8s) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const envOf = (c: Container) =>
  Object.fromEntries(c.env.map((e) => [e.name, e.value ?? `fieldRef:${e.valueFrom?.fieldRef?.fieldPath}`]));

const values = parse(read('deploy/helm/duet/values.yaml')) as Obj & Record<Service, Obj>;
const templates = Object.fromEntries(
  readdirSync(at('deploy/helm/duet/templates')).map((f) => [f, read('deploy/helm/duet/templates', f)]),
);

/**
 * The environment the chart's workloads template gives a service with the default values, read
 * from the template itself: common variables from _helpers.tpl, the service's branch, resolved
 * against values.yaml.
 */
function chartEnv(service: Service): Record<string, string> {
  const resolve = (expr: string): string => {
    const m = /^\s*(\$values|\.values|\$root\.Values|\.root\.Values)\.([\w.]+)\s*\|\s*quote\s*$/.exec(expr);
    if (!m) throw new Error(`cannot resolve {{${expr}}}`);
    const base: unknown = m[1]!.endsWith('alues') && m[1]!.includes('Values') ? values : values[service];
    return String(m[2]!.split('.').reduce<unknown>((o, k) => (o as Obj)?.[k], base));
  };
  const env: Record<string, string> = {};
  const collect = (text: string) => {
    for (const m of text.matchAll(
      /- name: (DUET_\w+)\n\s+(?:value: (?:"([^"]*)"|\{\{(.*?)\}\})|valueFrom:\n\s+fieldRef:\n\s+fieldPath: ([\w.]+))/g,
    )) {
      env[m[1]!] = m[2] ?? (m[3] ? resolve(m[3]) : `fieldRef:${m[4]}`);
    }
  };
  const helpers = templates['_helpers.tpl']!;
  const common = helpers.slice(
    helpers.indexOf('define "duet.commonEnv"'),
    helpers.indexOf('define "duet.volumes"'),
  );
  // DUET_NATS_CREDS only with a credentials Secret (none by default).
  collect(
    common.replace(
      /\{\{- if \.root\.Values\.nats\.credentials\.existingSecret \}\}[\s\S]*?\{\{- end \}\}/,
      '',
    ),
  );
  for (const [k, v] of Object.entries(values.commonEnv as Obj)) env[k] = String(v);
  const all = templates['workloads.yaml']!;
  const w = all.slice(all.indexOf('include "duet.commonEnv"'));
  const branch = new RegExp(`if eq \\$service "${service}" \\}\\}([\\s\\S]*?)\\{\\{- (?:else|end)`).exec(w);
  if (!branch) throw new Error(`workloads.yaml has no env branch for ${service}`);
  collect(branch[1]!);
  return env;
}

describe('Dockerfiles (deploy/docker)', () => {
  const pkg = JSON.parse(read('package.json')) as { packageManager: string; engines: { node: string } };
  for (const s of IMAGES) {
    it(`${s}: multi-stage, pinned bases, non-root, health check, the real entry`, () => {
      const text = read('deploy/docker', `${s}.Dockerfile`);
      expect(existsSync(at('deploy/docker', `${s}.Dockerfile.dockerignore`))).toBe(true);
      expect(text).not.toMatch(/latest/i);
      const stages = new Set<string>();
      const froms = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)];
      expect(froms.length).toBeGreaterThanOrEqual(2);
      for (const [, image, stage] of froms) {
        if (image !== 'scratch' && !stages.has(image!)) {
          // name:version, the version with at least major.minor.patch digits
          expect(image, `FROM ${image} is pinned`).toMatch(/^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$/);
        }
        if (stage) stages.add(stage);
      }
      // The runtime stage is the last: Node >= engines, runs as a non-root user.
      const last = text.slice(text.lastIndexOf('\nFROM '));
      const node = /FROM node:(\d+)\.(\d+)\.\d+/.exec(last);
      expect(node).toBeTruthy();
      expect(Number(node![1])).toBeGreaterThanOrEqual(20);
      const user = [...last.matchAll(/^USER\s+(\S+)/gm)].pop()?.[1];
      expect(user).toBeDefined();
      expect(user!.split(':')[0]).not.toMatch(/^(0|root)$/);
      expect(last).toMatch(/^HEALTHCHECK .*\n?.*\/healthz/m);
      // The service alone (pnpm deploy: its dist and production dependencies) is the image's /app.
      expect(text).toContain(`pnpm exec tsc -b services/${s}`);
      expect(text).toContain(`pnpm --filter @duet/${s} deploy --prod`);
      expect(JSON.parse(read('services', s, 'package.json')).name).toBe(`@duet/${s}`);
      expect(last).toContain('COPY --from=build /out /app');
      expect(last).toContain('ENTRYPOINT ["node", "dist/main.js"]');
      expect(existsSync(at('services', s, 'src/main.ts'))).toBe(true);
      // pnpm as the repository pins it; the CUDA download of onnxruntime-node skipped.
      expect(text).toContain(`pnpm@${pkg.packageManager.split('@')[1]}`);
      expect(text).toContain('ONNXRUNTIME_NODE_INSTALL_CUDA=skip');
      expect(text).toContain('--frozen-lockfile');
      // Every DUET_ variable set in the image is one the service reads.
      const vars = configVariables().get(s)!;
      for (const m of last.matchAll(/\b(DUET_[A-Z0-9_]+)=/g)) expect(vars, m[1]).toContain(m[1]);
      // Models copied from the repository into the runtime image exist; the *_MODEL variable
      // points into the copy (inference copies its model through a stage of its own).
      for (const m of last.matchAll(/^COPY (models\/\S+) (\S+)/gm)) {
        expect(existsSync(at(m[1]!, 'manifest.json'))).toBe(true);
        expect(text).toMatch(new RegExp(`DUET_${s.toUpperCase()}_MODEL=${m[2]}/manifest.json`));
      }
    });
  }

  it('inference bakes in the committed default dialogue model (or exports a given checkpoint)', () => {
    const text = read('deploy/docker/inference.Dockerfile');
    expect(existsSync(join(repoRoot, 'models/default/dialogue/manifest.json'))).toBe(true);
    expect(text).toContain('COPY models/default/dialogue /default-dialogue');
    expect(text).toMatch(/cp -r \/default-dialogue \/models\/dialogue/);
    expect(text).toMatch(/duet-export llama --checkpoint \/checkpoint --out \/models\/dialogue/);
    expect(text).toContain('COPY --from=model /models/dialogue /app/models/dialogue');
    expect(text).toContain('DUET_INFERENCE_MODEL=/app/models/dialogue/manifest.json');
  });

  it('sfu: the mediasoup worker built by the CI script in a stage, only its shared libraries at runtime', () => {
    const text = read('deploy/docker/sfu.Dockerfile');
    const script = read('scripts/build-mediasoup-worker.sh');
    // One mediasoup version: the script's default, services/sfu's pin and the service's config.
    const version = /MEDIASOUP_VERSION=\$\{MEDIASOUP_VERSION:-([\d.]+)\}/.exec(script)?.[1];
    expect(version).toBeDefined();
    expect(JSON.parse(read('services/sfu/package.json')).dependencies.mediasoup).toBe(version);
    expect(read('services/sfu/src/config.ts')).toContain(`MEDIASOUP_VERSION = '${version}'`);
    // The worker stage runs the script with the Debian -dev packages it names.
    const stage = text.slice(text.indexOf(' AS worker'), text.indexOf(' AS build'));
    expect(stage).toContain('RUN scripts/build-mediasoup-worker.sh');
    const hint = /APT_HINT="apt-get install -y ([^"]+)"/.exec(script)?.[1]?.split(/\s+/) ?? [];
    expect(hint.length).toBeGreaterThan(5);
    for (const p of hint) expect(stage, p).toMatch(new RegExp(`\\s${p.replace(/[+.]/g, '\\$&')}\\s`));
    // The runtime stage: no compiler, the worker next to the service, mediasoup and the SFU pointed at it.
    const last = text.slice(text.lastIndexOf('\nFROM '));
    expect(last).not.toMatch(/-dev\b|build-essential/);
    expect(last).toContain('COPY --from=worker /out /app/bin');
    expect(last).toContain('MEDIASOUP_WORKER_BIN=/app/bin/mediasoup-worker');
    expect(last).toContain('DUET_SFU_WORKER_BIN=/app/bin/mediasoup-worker');
    const runtimePkgs = /apt-get install -y --no-install-recommends\s*\\\n\s*([^\n\\]+)/
      .exec(last)?.[1]
      ?.trim()
      .split(/\s+/);
    expect(runtimePkgs).toBeDefined();
    // Where the worker is built here: every library it links against (its NEEDED entries) comes
    // from a runtime package or from the base image's C/C++ runtime.
    const env = process.env;
    const cache = env.DUET_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(env.HOME ?? '', '.cache'), 'duet');
    const bin = join(cache, `mediasoup-worker-${version}`, 'mediasoup-worker');
    if (!existsSync(bin)) return;
    const needed = [
      ...execFileSync('readelf', ['-d', bin], { encoding: 'utf8' }).matchAll(
        /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g,
      ),
    ].map((m) => m[1]!);
    expect(needed.length).toBeGreaterThan(5);
    const resolved = new Map(
      [...execFileSync('ldd', [bin], { encoding: 'utf8' }).matchAll(/^\s*(\S+) => (\S+)/gm)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );
    const base = ['libc6', 'libstdc++6', 'libgcc-s1'];
    // dpkg knows a library by the path its package ships (/lib or /usr/lib on merged /usr): ask
    // for every candidate path in one call (dpkg -S is slow), unknown ones are skipped.
    const candidates = (path: string) => {
      const real = realpathSync(path);
      return [path, real, real.replace(/^\/usr\/lib\//, '/lib/')];
    };
    const paths = needed.flatMap((lib) => (resolved.has(lib) ? candidates(resolved.get(lib)!) : []));
    const owners = new Map<string, string>();
    const listed = spawnSync('dpkg', ['-S', ...new Set(paths)], { encoding: 'utf8' }).stdout;
    for (const m of listed.matchAll(/^([\w.+-]+)(?::\w+)?: (\S+)$/gm)) owners.set(m[2]!, m[1]!);
    for (const lib of needed) {
      const path = resolved.get(lib);
      if (!path) continue; // ld-linux
      const owner = candidates(path)
        .map((c) => owners.get(c))
        .find(Boolean);
      expect([...runtimePkgs!, ...base], `${lib} (${owner})`).toContain(owner);
    }
  });
});

describe('Helm chart (deploy/helm/duet)', () => {
  it('has a v2 Chart.yaml and the templates, files and schema it needs', () => {
    const chart = parse(read('deploy/helm/duet/Chart.yaml')) as Obj;
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe('duet');
    expect(String(chart.version)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart.appVersion).toBeTruthy();
    for (const f of [
      '_helpers.tpl',
      'workloads.yaml',
      'services.yaml',
      'pdb.yaml',
      'hpa.yaml',
      'networkpolicy.yaml',
      'monitoring.yaml',
      'sip-bridge.yaml',
      'sfu.yaml',
      'NOTES.txt',
    ])
      expect(templates[f], f).toBeDefined();
  });

  it('values.yaml satisfies values.schema.json, and the schema refuses bad values', () => {
    const schema = JSON.parse(read('deploy/helm/duet/values.schema.json')) as Obj;
    const validate = ajv().compile(schema);
    expect(validate(values), JSON.stringify(validate.errors)).toBe(true);
    const bad = (patch: (v: Obj & Record<Service, Obj>) => void) => {
      const v = structuredClone(values);
      patch(v);
      return validate(v);
    };
    expect(
      bad((v) => {
        (v.image as Obj).tag = 'latest';
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        (v.media as Obj).mode = 'nodePort';
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        v.clock.chunkMs = 150;
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        v.inference.slots = 0;
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        v.tokenizer.rtpPortMax = 70000;
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        (v.nats as Obj).url = 'http://nats:4222';
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        (v.nats as Obj).url = 'nats://a:4222,nats://b:4222,nats://c:4222';
      }),
    ).toBe(true);
    expect(
      bad((v) => {
        v.vocoder.typo = 1;
      }),
    ).toBe(false);
    expect(
      bad((v) => {
        (v.inference.gpu as Obj).enabled = true;
      }),
    ).toBe(true);
    const sfu = (patch: Obj) => bad((v) => Object.assign(v.sfu as Obj, patch));
    expect(sfu({ workers: 0 })).toBe(false);
    expect(sfu({ rtcPortMax: 70000 })).toBe(false);
    expect(sfu({ announcedIp: 'sfu.example.com' })).toBe(false);
    expect(sfu({ announcedIp: '203.0.113.7' })).toBe(true);
    expect(sfu({ allowedOrigins: ['example.com'] })).toBe(false);
    expect(sfu({ allowedOrigins: ['https://app.example.com', 'http://localhost:3000'] })).toBe(true);
    expect(sfu({ jwt: { key: 'k' } })).toBe(false);
    expect(sfu({ typo: 1 })).toBe(false);
  });

  it('every .Values path the templates use exists in values.yaml', () => {
    const missing: string[] = [];
    for (const [file, text] of Object.entries(templates)) {
      for (const m of text.matchAll(/(?:\$root|\.root|\$)?\.Values\.([\w.]+)/g)) {
        const path = m[1]!.split('.');
        if (path.reduce<unknown>((o, k) => (o as Obj | undefined)?.[k], values) === undefined)
          missing.push(`${file}: .Values.${m[1]}`);
      }
      // $values / .values: the service's own section (all four share the common keys).
      // A key below a map that is empty by default (affinity, env, ...) is the user's to set.
      const resolves = (base: unknown, path: string[]) => {
        let o = base;
        for (const k of path) {
          if (o && typeof o === 'object' && Object.keys(o).length === 0) return true;
          o = (o as Obj | undefined)?.[k];
        }
        return o !== undefined;
      };
      for (const m of text.matchAll(/(?:\$values|\.values)\.([\w.]+)/g)) {
        const path = m[1]!.split('.');
        const found = SERVICES.filter((s) => resolves(values[s], path));
        if (found.length === 0) missing.push(`${file}: $values.${m[1]}`);
      }
    }
    // $sfu: the sfu section (templates/sfu.yaml).
    for (const m of templates['sfu.yaml']!.matchAll(/\$sfu\.([\w.]+)/g)) {
      let o: unknown = values.sfu;
      for (const k of m[1]!.split('.')) {
        if (o && typeof o === 'object' && Object.keys(o).length === 0) break;
        o = (o as Obj | undefined)?.[k];
      }
      // A key the other services share may be optional (podDisruptionBudget.minAvailable).
      const shared = SERVICES.some(
        (s) =>
          m[1]!.split('.').reduce<unknown>((x, k) => (x as Obj | undefined)?.[k], values[s]) !== undefined,
      );
      if (o === undefined && !shared) missing.push(`sfu.yaml: $sfu.${m[1]}`);
    }
    expect(missing).toEqual([]);
    for (const s of IMAGES)
      for (const k of ['enabled', 'replicas', 'drainTimeoutMs', 'resources', 'env', 'podDisruptionBudget'])
        expect(values[s], `${s}.${k}`).toHaveProperty(k);
  });

  it('template actions are balanced and every DUET_ variable is one the services read', () => {
    for (const [file, text] of Object.entries(templates)) {
      const actions = [...text.matchAll(/\{\{-?\s*(\/\*[\s\S]*?\*\/|[\s\S]*?)\s*-?\}\}/g)].map((m) =>
        m[1]!.trim(),
      );
      let depth = 0;
      for (const a of actions) {
        if (a.startsWith('/*')) continue;
        if (/^(if|range|with|define)\b/.test(a)) depth++;
        else if (a === 'end') depth--;
        expect(depth, `${file}: unbalanced {{ end }}`).toBeGreaterThanOrEqual(0);
      }
      expect(depth, `${file}: unclosed blocks`).toBe(0);
      expect((text.match(/\{\{/g) ?? []).length, file).toBe((text.match(/\}\}/g) ?? []).length);
    }
    const all = new Set([...configVariables().values()].flatMap((s) => [...s]));
    for (const [file, text] of Object.entries(templates))
      for (const m of text.matchAll(/\b(DUET_[A-Z0-9_]+)\b/g))
        expect(all, `${file}: ${m[1]}`).toContain(m[1]);
  });

  it('ships the same rules and dashboard as deploy/prometheus and deploy/grafana', () => {
    expect(read('deploy/helm/duet/files/duet.rules.yml')).toBe(
      read('deploy/prometheus/rules/duet.rules.yml'),
    );
    expect(read('deploy/helm/duet/files/duet-dashboard.json')).toBe(
      read('deploy/grafana/duet-dashboard.json'),
    );
    expect(read('k8s/overlays/production/duet-dashboard.json')).toBe(
      read('deploy/grafana/duet-dashboard.json'),
    );
  });

  it('renders the SFU by default (templates/sfu.yaml); the SIP bridge (templates/sip-bridge.yaml) is opt-in', () => {
    expect((values.sfu as Obj).enabled).toBe(true);
    expect(templates['sfu.yaml']).toMatch(/\.Values\.sfu\b/);
    expect((values.sipBridge as Obj).enabled).toBe(false);
    expect(templates['sip-bridge.yaml']).toMatch(/\.Values\.sipBridge\b/);
  });
});

describe('Helm chart rendered (deploy/helm/render: text/template + sprig, as Helm renders)', () => {
  let dir: string;
  let renderer: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'duet-render-'));
    renderer = join(dir, 'render');
    const cache = at('.cache/go-build');
    mkdirSync(cache, { recursive: true });
    execFileSync('go', ['build', '-o', renderer, './deploy/helm/render'], {
      cwd: repoRoot,
      env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: cache, GOFLAGS: '' },
      stdio: 'pipe',
    });
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** helm template duet deploy/helm/duet [-f overrides]: the objects, after the schema check. */
  function render(overrides?: Obj): K8s[] {
    const schema = ajv().compile(JSON.parse(read('deploy/helm/duet/values.schema.json')));
    const merged = structuredClone(values) as Obj;
    const mergeInto = (dst: Obj, src: Obj) => {
      for (const [k, v] of Object.entries(src)) {
        if (v && typeof v === 'object' && !Array.isArray(v) && dst[k] && typeof dst[k] === 'object')
          mergeInto(dst[k] as Obj, v as Obj);
        else dst[k] = v;
      }
    };
    if (overrides) mergeInto(merged, overrides);
    expect(schema(merged), JSON.stringify(schema.errors)).toBe(true);
    const args = [at('deploy/helm/duet'), 'duet'];
    if (overrides) {
      const file = join(dir, `values-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, JSON.stringify(overrides));
      args.push(file);
    }
    const text = execFileSync(renderer, args, { encoding: 'utf8', stdio: 'pipe' });
    expect(text).not.toContain('<no value>');
    return parseAllDocuments(text)
      .map((d) => d.toJSON() as K8s | null)
      .filter((o): o is K8s => o !== null);
  }
  function renderError(overrides: Obj): string {
    const file = join(dir, `values-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(overrides));
    try {
      execFileSync(renderer, [at('deploy/helm/duet'), 'duet', file], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      return String((e as { stderr?: string }).stderr);
    }
    return '';
  }
  const key = (o: K8s) => `${o.kind}/${o.metadata.name}`;

  it('defaults: every object validates, and the chart renders exactly k8s/base', () => {
    const rendered = render();
    validateAll(rendered);
    // The SFU's JWT secret: generated by the chart (random, kept across upgrades); k8s/base
    // expects it to exist (created with kubectl, see k8s/base/sfu.yaml).
    const secret = rendered.find((o) => o.kind === 'Secret' && o.metadata.name === 'duet-sfu-jwt');
    const generated = Buffer.from(String((secret?.data as Record<string, string>)['jwt-secret']), 'base64');
    expect(generated.toString('utf8')).toMatch(/^[A-Za-z0-9]{48}$/);
    const chart = rendered.filter((o) => o !== secret);
    const base = kustomize('k8s/base');
    expect(chart.map(key).sort()).toEqual(base.map(key).sort());
    for (const o of base) {
      const c = chart.find((x) => key(x) === key(o))!;
      // Specs are equal; metadata differs only in the labels Helm and kustomize add.
      expect(c.spec, key(o)).toEqual(o.spec);
      for (const [k, v] of Object.entries(c.metadata as Obj).filter(([k]) => k !== 'labels'))
        expect((o.metadata as Obj)[k], `${key(o)} ${k}`).toEqual(v);
      const labels = (x: K8s) => (x.metadata as { labels?: Record<string, string> }).labels ?? {};
      for (const l of ['name', 'instance', 'component', 'part-of', 'version'])
        expect(labels(o)[`app.kubernetes.io/${l}`], `${key(o)} ${l}`).toBe(
          labels(c)[`app.kubernetes.io/${l}`],
        );
    }
  });

  it('GPU inference, host networking for media, NATS credentials, monitoring, a model volume', () => {
    const chart = render({
      inference: { gpu: { enabled: true } },
      media: { mode: 'hostNetwork' },
      nats: { credentials: { existingSecret: 'duet-nats-creds' } },
      serviceMonitor: { enabled: true },
      prometheusRule: { enabled: true },
      grafanaDashboard: { enabled: true },
      models: { volume: { persistentVolumeClaim: { claimName: 'duet-models' } } },
      vocoder: { autoscaling: { enabled: false } },
    });
    validateAll(chart);
    const get = (kind: string, name: string) =>
      chart.find((o) => o.kind === kind && o.metadata.name === name)!;
    const inference = podSpec(get('StatefulSet', 'duet-inference'));
    expect(inference.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(inference.tolerations).toContainEqual({
      key: 'nvidia.com/gpu',
      operator: 'Exists',
      effect: 'NoSchedule',
    });
    expect(inference.containers[0]!.resources.limits).toHaveProperty(['nvidia.com/gpu'], 1);
    for (const s of ['tokenizer', 'vocoder']) {
      const pod = podSpec(get('StatefulSet', `duet-${s}`)) as PodSpec & {
        hostNetwork?: boolean;
        affinity: Obj;
      };
      expect(pod.hostNetwork, s).toBe(true);
      expect(JSON.stringify(pod.affinity)).toContain('requiredDuringSchedulingIgnoredDuringExecution');
    }
    expect(
      (podSpec(get('StatefulSet', 'duet-inference')) as { hostNetwork?: boolean }).hostNetwork,
    ).toBeUndefined();
    for (const o of chart.filter((x) => x.kind === 'StatefulSet' || x.kind === 'Deployment')) {
      const c = podSpec(o).containers[0]!;
      expect(envOf(c).DUET_NATS_CREDS).toBe('/etc/duet/nats/nats.creds');
      expect(c.volumeMounts.map((m) => m.mountPath)).toEqual(['/tmp', '/etc/duet/nats', '/models/custom']);
    }
    expect((get('StatefulSet', 'duet-vocoder').spec as Obj).replicas).toBe(2);
    expect(
      chart.some((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === 'duet-vocoder'),
    ).toBe(false);
    const rule = get('PrometheusRule', 'duet');
    expect((rule.spec as Obj).groups).toEqual(
      (parse(read('deploy/prometheus/rules/duet.rules.yml')) as Obj).groups,
    );
    expect((get('ConfigMap', 'duet-dashboard').data as Record<string, string>)['duet-dashboard.json']).toBe(
      read('deploy/grafana/duet-dashboard.json').replace(/\n$/, ''),
    );
    const monitor = get('ServiceMonitor', 'duet').spec as {
      selector: { matchExpressions: { values: string[] }[] };
    };
    expect(monitor.selector.matchExpressions[0]!.values).toEqual([...IMAGES]);
  });

  it('refuses what cannot work: a SIP bridge without trunks, port ranges smaller than the calls, a slow takeover', () => {
    expect(renderError({ sfu: { maxCalls: 1000 } })).toContain('fewer than workers + 2 x maxCalls');
    expect(renderError({ sfu: { rtcPortMax: 43000 } })).toContain('sfu.rtcPortMax must be >= sfu.rtcPortMin');
    expect(renderError({ sfu: { ingress: { enabled: true } } })).toContain('sfu.ingress.host is required');
    expect(renderError({ sipBridge: { enabled: true } })).toContain('sipBridge.trunks: give trunks.list');
    expect(
      renderError({
        sipBridge: { enabled: true, trunks: { list: [{ name: 't', allow: ['10.0.0.0/8'] }] }, maxCalls: 600 },
      }),
    ).toContain('fewer even ports than maxCalls');
    expect(renderError({ tokenizer: { rtpPortMax: 40099 } })).toContain('fewer ports than maxCalls');
    expect(renderError({ clock: { takeoverMs: 160 } })).toContain('takeoverMs must be below');
  });

  it('sip-bridge (opt-in): host network, trunks Secret, SIP on UDP and TCP, monitored', () => {
    const trunks = [
      { name: 'carrier', allow: ['203.0.113.0/24'] },
      { name: 'pbx', allow: ['10.0.0.0/8'], username: 'pbx1', password: 'pw' },
    ];
    const objects = render({
      sipBridge: { enabled: true, trunks: { list: trunks } },
      serviceMonitor: { enabled: true },
    });
    validateAll(objects);
    const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'duet-sip-bridge')!;
    const pod = podSpec(d) as PodSpec & { hostNetwork?: boolean };
    const c = pod.containers[0]!;
    const env = envOf(c);
    expect(pod.hostNetwork).toBe(true);
    expect(env.DUET_SIP_MEDIA_IP).toBe('fieldRef:status.podIP');
    expect(env.DUET_SIP_ANNOUNCED_IP).toBe('fieldRef:status.hostIP');
    expect(env.DUET_SIP_INFERENCE_ADDR).toBe('duet-inference:50051');
    expect(env.DUET_SIP_ANSWER_ON).toBe('media');
    expect(c.image).toMatch(/duet-sip-bridge:/);
    const secret = objects.find((o) => o.kind === 'Secret' && o.metadata.name === 'duet-sip-bridge-trunks')!;
    expect(JSON.parse((secret.stringData as Record<string, string>)['trunks.json']!)).toEqual(trunks);
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'duet-sip-bridge')!;
    expect((svc.spec as { ports: { name: string; protocol: string; port: number }[] }).ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'sip-udp', protocol: 'UDP', port: 5060 }),
        expect.objectContaining({ name: 'sip-tcp', protocol: 'TCP', port: 5060 }),
      ]),
    );
    const monitor = objects.find((o) => o.kind === 'ServiceMonitor')!.spec as {
      selector: { matchExpressions: { values: string[] }[] };
    };
    expect(monitor.selector.matchExpressions[0]!.values).toContain('sip-bridge');
    // Off by default: nothing of it in the default render (k8s/base).
    expect(render().some((o) => o.metadata.name.startsWith('duet-sip-bridge'))).toBe(false);
  });

  it('k8s/overlays/sip-bridge is k8s/base plus exactly what the chart adds with sipBridge.enabled', () => {
    const rendered = render({
      sipBridge: { enabled: true, trunks: { existingSecret: 'duet-sip-bridge-trunks' } },
    });
    validateAll(rendered);
    const chart = rendered.filter((o) => !(o.kind === 'Secret' && o.metadata.name === 'duet-sfu-jwt'));
    const overlay = kustomize('k8s/overlays/sip-bridge');
    validateAll(overlay);
    expect(overlay.map(key).sort()).toEqual(chart.map(key).sort());
    for (const o of overlay) {
      const c = chart.find((x) => key(x) === key(o))!;
      expect(c.spec, key(o)).toEqual(o.spec);
    }
  });

  it('sfu: pod network or host network, announced address, own JWT Secret, Ingress with TLS, limits, off', () => {
    type SfuPod = PodSpec & { hostNetwork?: boolean; affinity: Obj };
    const sfuOf = (objects: K8s[]) => {
      const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'duet-sfu')!;
      const pod = podSpec(d) as SfuPod;
      const c = pod.containers[0]!;
      const env = c.env as { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
      return { d, pod, c, env: envOf(c), secret: env.find((e) => e.name === 'DUET_SFU_TOKEN_SECRET')! };
    };
    // Defaults: host network, the node IP announced, one WebRtcServer port per worker declared.
    const defaults = sfuOf(render());
    expect(defaults.pod.hostNetwork).toBe(true);
    expect(JSON.stringify(defaults.pod.affinity)).toContain('requiredDuringSchedulingIgnoredDuringExecution');
    expect(defaults.env.DUET_SFU_LISTEN_IP).toBe('fieldRef:status.podIP');
    expect(defaults.env.DUET_SFU_ANNOUNCED_IP).toBe('fieldRef:status.hostIP');
    expect(defaults.secret.valueFrom?.secretKeyRef).toEqual({ name: 'duet-sfu-jwt', key: 'jwt-secret' });

    const objects = render({
      sfu: {
        hostNetwork: false,
        announcedIp: '203.0.113.7',
        workers: 3,
        jwt: { existingSecret: 'my-sfu-jwt', key: 'secret' },
        allowedOrigins: ['https://app.example.com', 'https://www.example.com'],
        ingress: {
          enabled: true,
          className: 'nginx',
          host: 'call.example.com',
          tlsSecretName: 'call-example-tls',
          annotations: { 'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600' },
        },
        autoscaling: { enabled: false },
      },
    });
    validateAll(objects);
    const { d, pod, c, env, secret } = sfuOf(objects);
    expect(pod.hostNetwork).toBeUndefined();
    expect(JSON.stringify(pod.affinity)).not.toContain('requiredDuringScheduling');
    expect(env.DUET_SFU_ANNOUNCED_IP).toBe('203.0.113.7');
    expect(env.DUET_SFU_WORKERS).toBe('3');
    expect(env.DUET_SFU_ALLOWED_ORIGINS).toBe('https://app.example.com,https://www.example.com');
    expect(c.ports.filter((p) => p.name.startsWith('rtc-')).map((p) => p.containerPort)).toEqual([
      44000, 44001, 44002,
    ]);
    expect(secret.valueFrom?.secretKeyRef).toEqual({ name: 'my-sfu-jwt', key: 'secret' });
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    expect((d.spec as Obj).replicas).toBe(2);
    expect(objects.some((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.name === 'duet-sfu')).toBe(
      false,
    );
    const ingress = objects.find((o) => o.kind === 'Ingress')!;
    expect(ingress.spec).toEqual({
      ingressClassName: 'nginx',
      tls: [{ hosts: ['call.example.com'], secretName: 'call-example-tls' }],
      rules: [
        {
          host: 'call.example.com',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: 'duet-sfu', port: { name: 'signalling' } } },
              },
            ],
          },
        },
      ],
    });
    // Off: nothing of the SFU, the rest unchanged.
    const off = render({ sfu: { enabled: false } });
    expect(
      off.filter((o) => (o.metadata as { labels?: Obj }).labels?.['app.kubernetes.io/component'] === 'sfu'),
    ).toEqual([]);
    expect(off.length).toBeGreaterThan(20);
  });
});

describe('k8s manifests (kustomize)', () => {
  it('base: renders, validates against the Kubernetes schemas, and equals the chart defaults', () => {
    const objects = kustomize('k8s/base');
    validateAll(objects);
    const vars = configVariables();
    const byKind = (kind: string, name: string) =>
      objects.find((o) => o.kind === kind && o.metadata.name === name);
    for (const s of SERVICES) {
      const v = values[s] as Obj & { drainTimeoutMs: number; replicas: number; autoscaling?: Obj };
      const w = byKind(s === 'clock' ? 'Deployment' : 'StatefulSet', `duet-${s}`);
      expect(w, `workload of ${s}`).toBeDefined();
      const pod = podSpec(w!);
      const c = pod.containers[0]!;
      // Termination grace longer than the drain timeout.
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(v.drainTimeoutMs);
      expect(envOf(c).DUET_DRAIN_TIMEOUT_MS).toBe(String(v.drainTimeoutMs));
      // The same environment as the chart's template with default values.
      expect(envOf(c)).toEqual(chartEnv(s));
      for (const name of Object.keys(envOf(c))) expect(vars.get(s), `${s}: ${name}`).toContain(name);
      expect(c.image).toMatch(new RegExp(`^ghcr\\.io/duet-voice/duet-${s}:\\d+\\.\\d+\\.\\d+$`));
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(c.startupProbe.httpGet.path).toBe('/healthz');
      expect(c.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c.ports.map((p) => [p.name, p.containerPort])).toEqual([
        ['http', (values.ports as Obj).http],
        ['grpc', (values.ports as Obj).grpc],
      ]);
      expect(c.resources).toEqual(v.resources);
      const autoscaled = s !== 'clock' && (v.autoscaling as Obj).enabled === true;
      expect((w!.spec as Obj).replicas).toBe(autoscaled ? undefined : v.replicas);
      expect(byKind('Service', `duet-${s}`)).toBeDefined();
      expect(byKind('PodDisruptionBudget', `duet-${s}`)).toBeDefined();
      expect(byKind('NetworkPolicy', `duet-${s}`)).toBeDefined();
      if (autoscaled) {
        const hpa = byKind('HorizontalPodAutoscaler', `duet-${s}`)!;
        const spec = hpa.spec as {
          minReplicas: number;
          maxReplicas: number;
          metrics: { pods?: { metric: { name: string } } }[];
        };
        expect(spec.minReplicas).toBe((v.autoscaling as Obj).minReplicas);
        expect(spec.maxReplicas).toBe((v.autoscaling as Obj).maxReplicas);
        expect(spec.metrics.map((m) => m.pods?.metric.name).filter(Boolean)).toContain(
          `duet_${s}_active_calls`,
        );
        expect(byKind('Service', `duet-${s}-headless`)).toBeDefined();
      }
    }
    // Tokenizer RTP: bound on all interfaces, the pod IP advertised; UDP range open in the policy.
    const tokenizer = byKind('StatefulSet', 'duet-tokenizer');
    if (!tokenizer) throw new Error('no tokenizer StatefulSet');
    const tok = envOf(podSpec(tokenizer).containers[0]!);
    expect(tok.DUET_TOKENIZER_RTP_ADVERTISE_HOST).toBe('fieldRef:status.podIP');
    const np = byKind('NetworkPolicy', 'duet-tokenizer')!.spec as { ingress: { ports: Obj[] }[] };
    expect(np.ingress.flatMap((i) => i.ports)).toContainEqual({
      port: (values.tokenizer as Obj).rtpPortMin,
      endPort: (values.tokenizer as Obj).rtpPortMax,
      protocol: 'UDP',
    });
    // The SFU: host network, one replica per node, the node IP announced, every variable one the
    // SFU reads, the JWT from the Secret duet-sfu-jwt, ports and UDP range as in values.yaml.
    const sfuValues = values.sfu as Obj & {
      drainTimeoutMs: number;
      rtcPortMin: number;
      rtcPortMax: number;
      workers: number;
      ports: Record<string, number>;
      resources: Obj;
      autoscaling: Obj;
    };
    const sfu = byKind('Deployment', 'duet-sfu');
    if (!sfu) throw new Error('no SFU Deployment');
    const sfuPod = podSpec(sfu) as PodSpec & { hostNetwork?: boolean; dnsPolicy?: string };
    const sfuC = sfuPod.containers[0]!;
    const sfuEnv = envOf(sfuC);
    expect(sfuPod.hostNetwork).toBe(true);
    expect(sfuPod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(sfuPod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(sfuValues.drainTimeoutMs);
    expect(sfuEnv.DUET_DRAIN_TIMEOUT_MS).toBe(String(sfuValues.drainTimeoutMs));
    for (const name of Object.keys(sfuEnv)) expect(vars.get('sfu'), `sfu: ${name}`).toContain(name);
    expect(sfuEnv).toMatchObject({
      DUET_HTTP_PORT: String(sfuValues.ports.http),
      DUET_GRPC_PORT: String(sfuValues.ports.grpc),
      DUET_SFU_PORT: String(sfuValues.ports.signalling),
      DUET_SFU_LISTEN_IP: 'fieldRef:status.podIP',
      DUET_SFU_ANNOUNCED_IP: 'fieldRef:status.hostIP',
      DUET_SFU_RTC_PORT_MIN: String(sfuValues.rtcPortMin),
      DUET_SFU_RTC_PORT_MAX: String(sfuValues.rtcPortMax),
      DUET_SFU_INFERENCE_ADDR: `duet-inference:${(values.ports as Obj).grpc}`,
      DUET_SFU_TOKENIZER_ADDR: `duet-tokenizer:${(values.ports as Obj).grpc}`,
      DUET_SFU_VOCODER_ADDR: `duet-vocoder:${(values.ports as Obj).grpc}`,
    });
    const jwt = (sfuC.env as { name: string; valueFrom?: { secretKeyRef?: Obj } }[]).find(
      (e) => e.name === 'DUET_SFU_TOKEN_SECRET',
    );
    expect(jwt?.valueFrom?.secretKeyRef).toEqual({ name: 'duet-sfu-jwt', key: 'jwt-secret' });
    expect(sfuC.image).toMatch(/^ghcr\.io\/duet-voice\/duet-sfu:\d+\.\d+\.\d+$/);
    expect(sfuC.readinessProbe.httpGet.path).toBe('/readyz');
    expect(sfuC.resources).toEqual(sfuValues.resources);
    expect(sfuC.ports.map((p) => [p.name, p.containerPort])).toEqual([
      ['http', sfuValues.ports.http],
      ['grpc', sfuValues.ports.grpc],
      ['signalling', sfuValues.ports.signalling],
      ...Array.from({ length: sfuValues.workers }, (_, i) => [`rtc-${i}`, sfuValues.rtcPortMin + i]),
    ]);
    const sfuService = byKind('Service', 'duet-sfu')!.spec as { ports: { name: string }[] };
    expect(sfuService.ports.map((p) => p.name)).toEqual(['signalling', 'http']);
    expect(byKind('PodDisruptionBudget', 'duet-sfu')).toBeDefined();
    const sfuHpa = byKind('HorizontalPodAutoscaler', 'duet-sfu')!.spec as {
      scaleTargetRef: Obj;
      metrics: { pods?: { metric: { name: string } } }[];
    };
    expect(sfuHpa.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'duet-sfu' });
    expect(sfuHpa.metrics.map((m) => m.pods?.metric.name).filter(Boolean)).toEqual(['duet_sfu_active_calls']);
    const sfuNp = byKind('NetworkPolicy', 'duet-sfu')!.spec as { ingress: { ports: Obj[] }[]; egress: Obj[] };
    expect(sfuNp.ingress.flatMap((i) => i.ports)).toContainEqual({
      port: sfuValues.rtcPortMin,
      endPort: sfuValues.rtcPortMax,
      protocol: 'UDP',
    });
    expect(JSON.stringify(sfuNp.egress)).toContain('"values":["inference","tokenizer","vocoder"]');
    // The SFU calls gRPC control and sends RTP: its egress is allowed by the call services' policies.
    const kinds = objects.map((o) => o.kind).sort();
    expect(kinds.filter((k) => k === 'HorizontalPodAutoscaler')).toHaveLength(4);
    expect(kinds).not.toContain('Secret');
  });

  it('production overlay: renders, validates, GPU inference, NATS credentials, monitoring', () => {
    const objects = kustomize('k8s/overlays/production');
    validateAll(objects);
    for (const o of objects) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe('duet');
    const inference = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'duet-inference')!;
    const pod = podSpec(inference);
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.containers[0]!.resources.limits).toHaveProperty(['nvidia.com/gpu'], 1);
    for (const o of objects.filter((x) => x.kind === 'StatefulSet' || x.kind === 'Deployment')) {
      const c = podSpec(o).containers[0]!;
      expect(envOf(c).DUET_NATS_CREDS).toBe('/etc/duet/nats/nats.creds');
      expect(c.volumeMounts.map((m) => m.mountPath)).toContain('/etc/duet/nats');
    }
    const rule = objects.find((o) => o.kind === 'PrometheusRule')!;
    const rules = parse(read('deploy/prometheus/rules/duet.rules.yml')) as Obj;
    expect((rule.spec as Obj).groups).toEqual(rules.groups);
    expect(objects.some((o) => o.kind === 'ServiceMonitor')).toBe(true);
    const dashboard = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'duet-dashboard')!;
    expect((dashboard.data as Record<string, string>)['duet-dashboard.json']).toBe(
      read('deploy/grafana/duet-dashboard.json'),
    );
  });
});

describe('Prometheus rules and config (promtool)', () => {
  const promtool = (...args: string[]) =>
    execFileSync('promtool', args, { cwd: at('deploy/prometheus'), encoding: 'utf8', stdio: 'pipe' });

  it('check rules, check config', () => {
    expect(promtool('check', 'rules', 'rules/duet.rules.yml')).toMatch(/SUCCESS: \d+ rules found/);
    expect(promtool('check', 'config', 'prometheus.yml')).toMatch(/SUCCESS/);
  });

  it('test rules: the unit tests of the recording and alerting rules pass', () => {
    expect(promtool('test', 'rules', 'tests/duet.rules.test.yml')).toContain('SUCCESS');
  });

  it('every alert has a severity and a summary; adapter rules expose what the HPAs use', () => {
    const rules = parse(read('deploy/prometheus/rules/duet.rules.yml')) as { groups: { rules: Obj[] }[] };
    for (const r of rules.groups.flatMap((g) => g.rules).filter((x) => x.alert)) {
      expect((r.labels as Obj).severity, String(r.alert)).toMatch(/^(info|warning|critical)$/);
      expect((r.annotations as Obj).summary, String(r.alert)).toBeTruthy();
    }
    const adapter = parse(read('deploy/prometheus/adapter-rules.yaml')) as {
      rules: { custom: { name: { as: string }; seriesQuery: string }[] };
    };
    const exposed = new Set<string>();
    for (const r of adapter.rules.custom) {
      if (r.name.as === `$${'{1}'}`) {
        const m = /__name__=~"duet_\(([\w|]+)\)_active_calls"/.exec(r.seriesQuery);
        for (const s of m?.[1]?.split('|') ?? []) exposed.add(`duet_${s}_active_calls`);
      } else exposed.add(r.name.as);
    }
    const hpa = templates['hpa.yaml']!;
    expect(hpa).toContain('duet_%s_active_calls');
    for (const s of ['tokenizer', 'inference', 'vocoder', 'sfu'])
      expect(exposed).toContain(`duet_${s}_active_calls`);
    for (const m of `${hpa}${templates['sfu.yaml']}`.matchAll(/name: (duet_\w+)/g))
      expect(exposed).toContain(m[1]);
  });
});

describe('metric names in PromQL (used by the live cross-check in scaleout.test.ts)', () => {
  it('finds the metrics of an expression and nothing else', () => {
    expect(
      metricNames(
        'sum by (le, instance) (rate(duet_a_bucket{result="x",le!="1"}[5m])) / on(instance) group_left ' +
          'clamp_min(sum without (pod) (duet_b_total offset 5m), 1e-9) > 0 or vector(0) < duet:c:ratio',
      ).sort(),
    ).toEqual(['duet:c:ratio', 'duet_a_bucket', 'duet_b_total']);
    expect(metricNames('rate(duet_x_sum{<<.LabelMatchers>>}[$__rate_interval])')).toEqual(['duet_x_sum']);
    const names = exportedSampleNames(
      '# HELP a x\n# TYPE duet_h histogram\nduet_h_bucket{le="1"} 0\n# TYPE duet_c_total counter\n',
    );
    expect([...names].sort()).toEqual([
      'duet_c_total',
      'duet_h',
      'duet_h_bucket',
      'duet_h_count',
      'duet_h_sum',
    ]);
  });
});

describe('Grafana dashboard (deploy/grafana)', () => {
  it('is a valid dashboard: unique panel ids, every target has a query on the datasource variable', () => {
    const d = JSON.parse(read('deploy/grafana/duet-dashboard.json')) as {
      uid: string;
      panels: { id: number; type: string; targets?: { expr: string; datasource: { uid: string } }[] }[];
      templating: { list: { name: string; type: string }[] };
    };
    expect(d.uid).toBe('duet-overview');
    expect(d.templating.list.find((t) => t.name === 'datasource')?.type).toBe('datasource');
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of d.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, `panel ${p.id}`).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr).toMatch(/duet_/);
        expect(t.datasource.uid).toBe(DATASOURCE);
      }
    }
  });
});
