// dashboard.test.mjs: the dashboard end to end, in Debian's chromium driven
// by playwright-core, against the real convnetd binary on 127.0.0.1:0 with
// a temporary state directory and Fashion-MNIST.
//
// Environment (ctest sets the first two, see CMakeLists.txt):
//   CONVNETD_BIN            the convnetd executable (required)
//   CONVNETD_WEB_ARTIFACTS  where screenshots and the daemon's log go
//   CONVNETD_DATA_DIR       data sets (default /usr/share/datasets)
//   CHROMIUM                the browser (default /usr/bin/chromium)
//   CONVNETD_WEB_SERVE_FROM a web/ directory to serve / and /web/* from
//                           instead of the daemon (for working on the page;
//                           the "serves the dashboard" test still asks the
//                           daemon itself)
// The tests run in order and share one daemon, one browser page and one job.
// An endpoint the daemon does not have yet makes its test fail, naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { encodePng, pngSize } from './png.mjs';

const BIN = process.env.CONVNETD_BIN;
const ARTIFACTS = process.env.CONVNETD_WEB_ARTIFACTS || path.join(os.tmpdir(), 'convnetd-web-artifacts');
const DATA_DIR = process.env.CONVNETD_DATA_DIR || '/usr/share/datasets';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SERVE_FROM = process.env.CONVNETD_WEB_SERVE_FROM || '';
const WAIT = 45_000;

// The tiny job the form submits: two short epochs on 600 images.
const TINY_SPEC = {
  name: 'web-test-tiny',
  dataset: { name: 'fashion-mnist', val_fraction: 0.2, limit: 600 },
  model: { preset: 'three_layer_convnet', num_filters: 4, hidden_dim: 16, weight_scale: 1e-2, reg: 1e-3 },
  solver: { update_rule: 'adam', learning_rate: 2e-3, batch_size: 32, epochs: 2, seed: 0 },
  device: 'cpu',
};

let daemon, daemonLog = '', base, stateDir, profileDir, browser, page;
const pageErrors = [];
let jobId = null, classNames = [];
let served = false;   // the page can be opened (set by the first test)

fs.mkdirSync(ARTIFACTS, { recursive: true });
// Killed from outside (ctest's timeout, Ctrl-C): take the daemon along.
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (daemon && daemon.exitCode == null) daemon.kill('SIGKILL');
    process.exit(130);
  });
}

/* ---- helpers ---- */

async function shot(name) {
  const file = path.join(ARTIFACTS, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// An endpoint the daemon has not got answers 404 {"error":{"message":"no such path: ..."}}.
async function probe(method, urlPath, init = {}) {
  const r = await fetch(base + urlPath, { method, ...init });
  const buf = Buffer.from(await r.arrayBuffer());
  if (r.status === 404 && /no such path/.test(buf.toString())) {
    assert.fail(`convnetd has no ${method} ${urlPath.replace(/\?.*/, '')} yet (404 "no such path"); ` +
                'the dashboard needs this endpoint');
  }
  return { status: r.status, headers: r.headers, body: buf };
}

// Tests that use the browser fail at once, with the reason, when the page
// cannot be opened, instead of each waiting for its timeout.
function needPage() {
  assert.ok(served, 'the dashboard is not served at / (see the first test\'s failure)');
}

// The trained job of the form test; when that test could not make one, the
// same spec is submitted through the API so that the model endpoints are
// still checked.
async function ensureJob() {
  if (!jobId) {
    const c = await apiJson('POST', '/v1/jobs', TINY_SPEC);
    assert.equal(c.status, 201, 'POST /v1/jobs: ' + JSON.stringify(c.json));
    jobId = c.json.id;
  }
  await waitJob(jobId, (j) => j.status === 'succeeded', 'succeeding');
  return jobId;
}

async function showJob(id) {
  needPage();
  if ((await page.evaluate(() => location.hash)) !== '#job=' + id) await page.goto(`${base}/#job=${id}`);
  await page.locator('#job-title').filter({ hasText: '#' + id + ' ' }).waitFor();
}

function startDaemon() {
  return new Promise((resolve, reject) => {
    daemon = spawn(BIN, ['--listen', '127.0.0.1:0', '--state-dir', stateDir, '--data-dir', DATA_DIR,
                         '--threads', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const timer = setTimeout(() => reject(new Error('convnetd did not print its listening line in 30 s:\n' + daemonLog)), 30_000);
    daemon.stderr.setEncoding('utf8');
    daemon.stderr.on('data', (s) => {
      daemonLog += s;
      const m = /convnetd: listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(daemonLog);
      if (m && !base) {
        base = m[1];
        clearTimeout(timer);
        resolve();
      }
    });
    daemon.on('exit', (code, sig) => {
      if (!base) {
        clearTimeout(timer);
        reject(new Error(`convnetd exited (${code ?? sig}) before listening:\n${daemonLog}`));
      }
    });
    daemon.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

function stopDaemon() {
  return new Promise((resolve) => {
    if (!daemon || daemon.exitCode != null || daemon.signalCode != null) return resolve();
    const kill = setTimeout(() => daemon.kill('SIGKILL'), 15_000);
    daemon.on('exit', () => { clearTimeout(kill); resolve(); });
    daemon.kill('SIGTERM');
  });
}

async function apiJson(method, urlPath, body) {
  const r = await fetch(base + urlPath, {
    method, headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json() };
}

async function waitJob(id, pred, what, ms = WAIT) {
  const t0 = Date.now();
  let j;
  while (Date.now() - t0 < ms) {
    j = (await apiJson('GET', '/v1/jobs/' + id)).json;
    if (pred(j)) return j;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`job ${id}: ${what} did not happen in ${ms / 1000} s; last: ${JSON.stringify(j)}`);
}

/* ---- set-up ---- */

before(async () => {
  assert.ok(BIN, 'set CONVNETD_BIN to the convnetd executable (ctest does)');
  assert.ok(fs.existsSync(BIN), `CONVNETD_BIN=${BIN} does not exist`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh (Debian package chromium)`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    assert.fail('playwright-core is not installed in tests/web/node_modules: run scripts/deps.sh (' + e.message + ')');
  }
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'convnetd-web-state-'));
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'convnetd-web-chromium-'));
  await startDaemon();

  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
    colorScheme: 'light',
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // Nothing may leave 127.0.0.1: no CDN, no web font.
  await page.route((url) => url.hostname !== '127.0.0.1' && url.protocol !== 'data:' && url.protocol !== 'blob:',
                   (route) => { pageErrors.push('external request: ' + route.request().url()); return route.abort(); });
  if (SERVE_FROM) {
    const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
    await page.route((url) => url.origin === base && (url.pathname === '/' || url.pathname.startsWith('/web/')),
      (route) => {
        const p = new URL(route.request().url()).pathname;
        const file = path.join(SERVE_FROM, p === '/' ? 'index.html' : p.slice('/web/'.length));
        if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
        return route.fulfill({ status: 200, contentType: types[path.extname(file)] || 'application/octet-stream',
                               body: fs.readFileSync(file) });
      });
  }
  const ds = (await apiJson('GET', '/v1/datasets')).json;
  classNames = (ds.datasets.find((d) => d.name === 'fashion-mnist') || {}).class_names || [];
  assert.equal(classNames.length, 10, 'fashion-mnist must be installed (dataset-fashion-mnist): ' + JSON.stringify(ds));
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopDaemon();
  fs.writeFileSync(path.join(ARTIFACTS, 'convnetd.log'), daemonLog);
  for (const d of [stateDir, profileDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/* ---- tests ---- */

test('convnetd serves the dashboard at / with its script, styles and chart library', async () => {
  // With CONVNETD_WEB_SERVE_FROM the page comes from there; this test
  // still asks the daemon.
  served = Boolean(SERVE_FROM) || (await fetch(base + '/')).status === 200;
  for (const [p, type] of [['/', 'text/html'], ['/web/app.js', 'javascript'], ['/web/style.css', 'text/css'],
                           ['/web/vendor/uplot/uPlot.iife.min.js', 'javascript'],
                           ['/web/vendor/uplot/uPlot.min.css', 'text/css']]) {
    const r = await fetch(base + p);
    assert.equal(r.status, 200, `GET ${p} from convnetd answered ${r.status}` +
      (p === '/' ? ' (the daemon needs a static route serving web/index.html at / and web/* at /web/*)' : '') +
      (p.includes('vendor') ? ' (scripts/deps.sh copies uPlot into web/vendor/)' : ''));
    assert.match(r.headers.get('content-type') || '', new RegExp(type), `GET ${p}: Content-Type`);
  }
  // fetch() would normalise the dots away; http.get sends the path as is.
  for (const p of ['/web/../migrations/0001_init.sql', '/web/%2e%2e/migrations/0001_init.sql',
                   '/web/vendor/../../migrations/0001_init.sql', '/web/.gitignore']) {
    const status = await new Promise((resolve, reject) => {
      http.get(base + '/', { path: p }, (res) => { res.resume(); resolve(res.statusCode); }).on('error', reject);
    });
    assert.equal(status, 404, `GET ${p}: a path outside web/ (or a dot file) must be 404, got ${status}`);
  }
});

test('the page loads: health, jobs list, form prefilled with a valid spec, charts library', async () => {
  needPage();
  await page.goto(base + '/');
  await page.waitForFunction(() => document.getElementById('health').textContent.startsWith('v'));
  assert.equal(await page.evaluate(() => typeof window.uPlot), 'function', 'uPlot did not load');
  const spec = JSON.parse(await page.inputValue('#spec'));
  assert.equal(spec.model.preset, 'three_layer_convnet');
  await page.selectOption('#preset', 'deep_convnet');
  assert.equal(JSON.parse(await page.inputValue('#spec')).model.preset, 'deep_convnet');
  await page.selectOption('#preset', 'three_layer_convnet');
  assert.deepEqual(pageErrors, []);
});

test('a rejected spec shows the API error (message and field) inline', async () => {
  needPage();
  const bad = structuredClone(TINY_SPEC);
  bad.solver.learning_rate = -1;
  await page.fill('#spec', JSON.stringify(bad, null, 2));
  await page.click('#submit');
  const err = page.locator('#spec-error');
  await err.waitFor({ state: 'visible' });
  const text = await err.textContent();
  assert.match(text, /invalid_argument/);
  assert.match(text, /learning_rate/);
  assert.match(text, /field: solver\.learning_rate/);
  await shot('dashboard-rejected-spec');

  await page.fill('#spec', '{"dataset": ');
  await page.click('#submit');
  await page.waitForFunction(() => /not valid JSON/.test(document.getElementById('spec-error').textContent));
});

test('a job submitted through the form trains and its curves fill in live', async () => {
  needPage();
  await page.fill('#spec', JSON.stringify(TINY_SPEC, null, 2));
  await page.click('#submit');
  await page.waitForFunction(() => /^#job=\d+$/.test(location.hash));
  jobId = Number((await page.evaluate(() => location.hash)).slice(5));
  assert.ok(jobId > 0);
  assert.equal(await page.locator('#spec-error').isVisible(), false, 'no error after a valid spec');
  await page.locator(`#jobs-body tr[data-id="${jobId}"]`).waitFor();

  // The loss curve gains points while the job runs (or all at once if it
  // was quick), and ends with one per iteration.
  await page.waitForFunction(() => Number(document.getElementById('loss-chart').dataset.points) > 0);
  await page.locator('#job-status.st-succeeded').waitFor();
  const job = (await apiJson('GET', '/v1/jobs/' + jobId)).json;
  assert.equal(job.status, 'succeeded', JSON.stringify(job));
  await page.waitForFunction((n) => Number(document.getElementById('loss-chart').dataset.points) === n,
                             job.progress.num_iterations);
  // Accuracy: the check before training plus one per epoch.
  await page.waitForFunction(() => Number(document.getElementById('acc-chart').dataset.points) >= 2);
  assert.ok(await page.locator('#loss-chart canvas').count() > 0, 'the loss chart has a canvas');
  // The smoothing slider redraws without losing points.
  await page.locator('#smoothing').fill('0.9');
  assert.equal(await page.inputValue('#smoothing'), '0.9');
  assert.equal(await page.locator('#smoothing-out').textContent(), '0.90');
  assert.equal(Number(await page.locator('#loss-chart').getAttribute('data-points')), job.progress.num_iterations);
  await shot('dashboard-trained');
  assert.deepEqual(pageErrors, []);
});

test('the first-layer filters load at the PNG\'s own size', async () => {
  await ensureJob();
  const r = await probe('GET', `/v1/jobs/${jobId}/filters.png`);
  assert.equal(r.status, 200, `GET /v1/jobs/${jobId}/filters.png: ${r.status} ${r.body.toString().slice(0, 200)}`);
  assert.match(r.headers.get('content-type') || '', /image\/png/);
  const size = pngSize(r.body);
  await showJob(jobId);
  const img = page.locator('#filters');
  await img.waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const i = document.getElementById('filters');
    return i.complete && i.naturalWidth > 0 && i.dataset.loaded;
  });
  const nat = await img.evaluate((i) => ({ width: i.naturalWidth, height: i.naturalHeight }));
  assert.deepEqual(nat, size, 'the <img> shows the PNG the API serves');
});

test('the evaluation shows test accuracy and a 10x10 confusion matrix', async () => {
  await ensureJob();
  // The worker may still be computing it (202): ask until it is there.
  let r;
  for (const t0 = Date.now(); ; await new Promise((res) => setTimeout(res, 500))) {
    r = await probe('GET', `/v1/models/${jobId}/evaluation`);
    if (r.status !== 202 || Date.now() - t0 > WAIT) break;
  }
  assert.equal(r.status, 200, `GET /v1/models/${jobId}/evaluation: ${r.status} ${r.body.toString().slice(0, 300)}`);
  await showJob(jobId);
  await page.locator('#confusion').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#confusion tbody tr').count(), 10);
  assert.equal(await page.locator('#confusion tbody tr').first().locator('td').count(), 11, '10 cells + accuracy');
  assert.match(await page.locator('#eval-summary').textContent(), /(Test|Validation) accuracy \d+(\.\d)?%/);
  assert.equal(await page.locator('#eval-error').isVisible(), false,
               'evaluation error: ' + await page.locator('#eval-error').textContent());
});

test('an uploaded PNG is classified: top-k bars with class names', async () => {
  // A 28x28 "trouser": two dark-grey legs on black.
  const px = new Uint8Array(28 * 28);
  for (let y = 3; y < 26; y++) for (let x = 8; x < 20; x++) if (y < 9 || x < 13 || x > 14) px[y * 28 + x] = 170;
  const png = encodePng(28, 28, px);
  fs.writeFileSync(path.join(ARTIFACTS, 'upload-28x28.png'), png);
  await ensureJob();

  const r = await probe('POST', `/v1/models/${jobId}/classify?top_k=3`,
                        { body: png, headers: { 'Content-Type': 'image/png' } });
  assert.equal(r.status, 200, `POST /v1/models/${jobId}/classify (image/png): ${r.status} ${r.body.toString().slice(0, 300)}`);
  await showJob(jobId);

  await page.fill('#topk', '3');
  await page.setInputFiles('#file', { name: 'trouser.png', mimeType: 'image/png', buffer: png });
  await page.waitForFunction(() => document.querySelectorAll('#predictions li .cls').length > 0 ||
                                   !document.getElementById('classify-error').hidden);
  assert.equal(await page.locator('#classify-error').isVisible(), false,
               'classify error in the page: ' + await page.locator('#classify-error').textContent());
  const rows = await page.locator('#predictions li').evaluateAll((lis) => lis.map((li) => ({
    cls: li.querySelector('.cls').textContent, prob: li.querySelector('.prob').textContent,
    p: Number(getComputedStyle(li.querySelector('.bar')).getPropertyValue('--p')),
  })));
  assert.equal(rows.length, 3, 'top_k=3 gives three bars: ' + JSON.stringify(rows));
  for (const row of rows) {
    assert.ok(classNames.includes(row.cls), `"${row.cls}" is a Fashion-MNIST class name`);
    assert.match(row.prob, /^\d+(\.\d)?%$/);
    assert.ok(row.p >= 0 && row.p <= 1);
  }
  assert.ok(rows[0].p >= rows[1].p && rows[1].p >= rows[2].p, 'bars sorted by probability');
  await page.locator('#drop').scrollIntoViewIfNeeded();
  await shot('dashboard-model');
});

test('the checkpoint download link serves the model file', async () => {
  await ensureJob();
  const href = `/v1/models/${jobId}/checkpoint`;
  const r = await probe('GET', href);
  assert.equal(r.status, 200, `GET ${href}: ${r.status} ${r.body.toString().slice(0, 200)}`);
  assert.ok(r.body.length > 1000, `checkpoint is only ${r.body.length} bytes`);
  await showJob(jobId);
  assert.equal(await page.getAttribute('#download', 'href'), href);
});

test('pause, resume and cancel buttons drive a running job', async () => {
  needPage();
  const long = structuredClone(TINY_SPEC);
  long.name = 'web-test-long';
  long.solver.epochs = 500;
  const c = await apiJson('POST', '/v1/jobs', long);
  assert.equal(c.status, 201, JSON.stringify(c.json));
  const id = c.json.id;
  await page.goto(`${base}/#job=${id}`);
  await waitJob(id, (j) => j.status === 'running' && j.progress.iteration > 0, 'starting');
  await page.locator('#job-status.st-running').waitFor();
  await page.waitForFunction(() => Number(document.getElementById('loss-chart').dataset.points) > 0);
  // Live: the curve grows while the job runs, without a reload.
  const p0 = Number(await page.locator('#loss-chart').getAttribute('data-points'));
  await page.waitForFunction((n) => Number(document.getElementById('loss-chart').dataset.points) > n + 20, p0);
  assert.equal(await page.locator('#job-status').textContent(), 'running');

  await page.click('#btn-pause');
  await page.locator('#job-status.st-paused').waitFor();
  assert.equal((await apiJson('GET', '/v1/jobs/' + id)).json.status, 'paused');
  assert.ok(await page.isEnabled('#btn-resume'));
  assert.ok(await page.isDisabled('#btn-pause'));

  await page.click('#btn-resume');
  await waitJob(id, (j) => j.status === 'running' || j.status === 'queued', 'resuming');
  await page.locator('#job-status.st-running, #job-status.st-queued').waitFor();

  await page.click('#btn-cancel');
  await page.locator('#job-status.st-cancelled').waitFor();
  assert.equal((await apiJson('GET', '/v1/jobs/' + id)).json.status, 'cancelled');
  assert.ok(await page.isDisabled('#btn-cancel'));
  await page.locator(`#jobs-body tr[data-id="${id}"] .badge.st-cancelled`).waitFor();
  await shot('dashboard-cancelled');
  assert.deepEqual(pageErrors, []);
});
