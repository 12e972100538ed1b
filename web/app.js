/* app.js: convnetd's dashboard. Plain browser JavaScript, no build step.
 *
 * Talks to the daemon only through its public HTTP API (/v1/..., see
 * GET /v1/openapi.json): the jobs list is polled every 2 s; the selected
 * job's metrics are read once with GET /v1/jobs/{id}/metrics and then
 * followed with Server-Sent Events (GET /v1/jobs/{id}/events, resumed after
 * the last row read), falling back to polling ?since= when EventSource is
 * unavailable or the stream fails. Charts are uPlot (web/vendor/uplot,
 * copied there by scripts/deps.sh). It deliberately keeps no state on the
 * server and none in the browser beyond the optional API token. */
'use strict';

(function () {
  const POLL_JOBS_MS = 2000;
  const POLL_METRICS_MS = 2000;
  const METRICS_PAGE = 100000;
  const ACTIVE = new Set(['queued', 'running', 'paused']);
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

  /* Presets the form offers; the model part replaces the spec's "model". */
  const PRESETS = {
    three_layer_convnet: {
      name: 'fmnist-3layer',
      model: { preset: 'three_layer_convnet', hidden_dim: 500, weight_scale: 1e-3, reg: 1e-3 },
      solver: { update_rule: 'adam', learning_rate: 2e-3, batch_size: 64, epochs: 1, seed: 0 },
    },
    deep_convnet: {
      name: 'fmnist-deep',
      model: { preset: 'deep_convnet', num_filters: [16, 32, 64], max_pools: [0, 1, 2],
               batchnorm: true, weight_initializer: 'kaiming', reg: 1e-4 },
      solver: { update_rule: 'adam', learning_rate: 1e-3, batch_size: 64, epochs: 2, seed: 0 },
    },
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    if (props) Object.assign(e, props);
    for (const k of kids) e.append(k);
    return e;
  };

  /* ---- the API ---- */

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  function token() {
    try { return sessionStorage.getItem('convnetd.token') || ''; } catch (_) { return ''; }
  }

  /* fetch() with the API's conventions: JSON in and out, errors as
   * ApiError carrying the daemon's {error:{code,message,field}}. With
   * opts.response the Response itself is returned (for images). */
  async function api(method, path, opts = {}) {
    const headers = Object.assign({}, opts.headers);
    let body = opts.body;
    if (method !== 'GET' && token()) headers.Authorization = 'Bearer ' + token();
    if (body !== undefined && typeof body === 'object' &&
        !(body instanceof FormData) && !(body instanceof Blob)) {
      body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    let r;
    try {
      r = await fetch(path, { method, headers, body, cache: opts.cache || 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', 'cannot reach convnetd (' + e.message + ')');
    }
    if (r.ok && opts.response) return r;
    const ct = r.headers.get('Content-Type') || '';
    const data = ct.includes('json') ? await r.json().catch(() => null) : null;
    if (!r.ok) {
      const err = data && data.error;
      if (err && typeof err === 'object')
        throw new ApiError(r.status, err.code, err.message || ('HTTP ' + r.status), err.field);
      throw new ApiError(r.status, 'http', 'HTTP ' + r.status + ' ' + r.statusText + ' from ' + path);
    }
    return data;
  }

  function showError(node, err) {
    if (!err) {
      node.hidden = true;
      node.textContent = '';
      return;
    }
    node.textContent = '';
    node.append(el('strong', { textContent: err.code && err.code !== 'http' ? err.code + ': ' : 'Error: ' }),
                err.message);
    if (err.field) node.append(el('span', { className: 'field', textContent: 'field: ' + err.field }));
    node.hidden = false;
  }

  /* ---- formatting ---- */

  const pct = (v) => (v == null || !isFinite(v) ? '–' : (100 * v).toFixed(1) + '%');
  const num = (v, d = 4) => (v == null || !isFinite(v) ? '–' : Number(v).toPrecision(d));
  function dur(s) {
    if (s == null || !isFinite(s)) return '–';
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60), h = Math.floor(m / 60);
    return h > 0 ? h + ' h ' + (m % 60) + ' min' : m + ' min ' + Math.round(s % 60) + ' s';
  }
  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  /* ---- state ---- */

  const S = {
    jobs: new Map(),     /* id -> job document from the list */
    sel: null,           /* selected job id */
    gen: 0,              /* bumped on every selection: stale answers are dropped */
    job: null,           /* selected job's latest document */
    lastId: 0,           /* last metric row id applied */
    es: null,            /* EventSource */
    pollTimer: 0,
    loss: { x: [], y: [] },
    acc: new Map(),      /* step -> {train, val, epoch} */
    filtersKey: '',
    filtersEpoch: null,  /* the epoch picked with the slider; null = latest */
    evalFor: 0,
    charts: { loss: null, acc: null },
    drawPending: false,
  };

  /* ---- health and data sets ---- */

  async function loadHealth() {
    try {
      const h = await api('GET', '/v1/health');
      const devs = (h.devices || []).map((d) => d.name).join(', ');
      $('health').textContent = 'v' + h.version + ' · devices: ' + (devs || 'none');
    } catch (e) {
      $('health').textContent = 'daemon unreachable: ' + e.message;
    }
    try {
      const d = await api('GET', '/v1/datasets');
      const sel = $('dataset');
      sel.textContent = '';
      for (const ds of d.datasets || []) {
        const shape = (ds.shape || []).join('×');
        sel.append(el('option', { value: ds.name, textContent: ds.name + (shape ? ' (' + shape + ')' : '') }));
      }
      const cur = parseSpec();
      if (cur && cur.dataset && cur.dataset.name) sel.value = cur.dataset.name;
    } catch (_) { /* the form still works with a typed name */ }
  }

  /* ---- the jobs list ---- */

  async function pollJobs() {
    /* A background tab asks nothing; it catches up when shown again. */
    if (document.hidden) {
      setTimeout(pollJobs, POLL_JOBS_MS);
      return;
    }
    try {
      const d = await api('GET', '/v1/jobs?limit=50');
      hideBanner('jobs');
      renderJobs(d.jobs || []);
      /* Opened without a job in the address: show the newest. */
      if (S.sel == null && !location.hash && d.jobs && d.jobs.length > 0) {
        history.replaceState(null, '', '#job=' + d.jobs[0].id);
        selectFromHash();
      }
    } catch (e) {
      banner('jobs', 'Cannot list jobs: ' + e.message);
    }
    setTimeout(pollJobs, POLL_JOBS_MS);
  }

  function renderJobs(list) {
    const body = $('jobs-body');
    const seen = new Set();
    S.jobs.clear();
    list.forEach((j, i) => {
      S.jobs.set(j.id, j);
      seen.add(String(j.id));
      let tr = body.querySelector('tr[data-id="' + j.id + '"]');
      if (!tr) {
        tr = el('tr');
        tr.dataset.id = j.id;
        tr.append(el('td', { className: 'num' }),
                  el('td', {}, el('a', { href: '#job=' + j.id })),
                  el('td', {}, el('span', { className: 'badge' })),
                  el('td', {}, el('progress', { max: 1, value: 0 }), el('span', { className: 'small muted' })));
        tr.addEventListener('click', (ev) => {
          if (ev.target.tagName !== 'A') location.hash = 'job=' + j.id;
        });
      }
      if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
      fillRow(tr, j);
      if (j.id === S.sel) tr.setAttribute('aria-current', 'true');
      else tr.removeAttribute('aria-current');
    });
    for (const tr of [...body.children])
      if (!seen.has(tr.dataset.id)) tr.remove();
    $('jobs-empty').hidden = list.length > 0;

    /* The list may know of a status change the stream has not carried (a
     * stream that ended, or a job resumed elsewhere): follow it. */
    const j = S.sel != null ? S.jobs.get(S.sel) : null;
    if (j && S.job && j.status !== S.job.status && !S.es && !S.pollTimer) refreshJob();
  }

  function fillRow(tr, j) {
    const p = j.progress || {};
    const frac = p.num_iterations > 0 ? Math.min(1, p.iteration / p.num_iterations) : 0;
    tr.cells[0].textContent = j.id;
    tr.cells[1].firstChild.textContent = j.name;
    setBadge(tr.cells[2].firstChild, j.status);
    const bar = tr.cells[3].firstChild;
    bar.value = frac;
    bar.setAttribute('aria-label', 'job ' + j.id + ' progress ' + Math.round(100 * frac) + '%');
    tr.cells[3].lastChild.textContent = ' ' + Math.round(100 * frac) + '%';
  }

  function setBadge(node, status) {
    node.textContent = status;
    node.className = 'badge st-' + status;
  }

  /* ---- the new-job form ---- */

  function defaultSpec(preset, dataset) {
    const p = PRESETS[preset];
    return {
      name: p.name,
      dataset: { name: dataset || 'fashion-mnist', val_fraction: 0.2, limit: 2000 },
      model: structuredClone(p.model),
      solver: structuredClone(p.solver),
      device: 'auto',
    };
  }

  function parseSpec() {
    try { return JSON.parse($('spec').value); } catch (_) { return null; }
  }

  function writeSpec(spec) {
    $('spec').value = JSON.stringify(spec, null, 2);
  }

  function onPresetChange() {
    const preset = $('preset').value;
    const cur = parseSpec();
    if (cur && typeof cur === 'object') {
      cur.model = structuredClone(PRESETS[preset].model);
      cur.solver = Object.assign({}, PRESETS[preset].solver, cur.solver || {});
      if (!cur.name || Object.values(PRESETS).some((p) => p.name === cur.name)) cur.name = PRESETS[preset].name;
      writeSpec(cur);
    } else {
      writeSpec(defaultSpec(preset, $('dataset').value));
    }
  }

  function onDatasetChange() {
    const cur = parseSpec();
    if (!cur) return;
    cur.dataset = Object.assign({}, cur.dataset, { name: $('dataset').value });
    writeSpec(cur);
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const errNode = $('spec-error');
    const ta = $('spec');
    try {
      JSON.parse(ta.value);
    } catch (e) {
      ta.setAttribute('aria-invalid', 'true');
      showError(errNode, { code: 'invalid_json', message: 'the spec is not valid JSON: ' + e.message });
      return;
    }
    $('submit').disabled = true;
    try {
      /* The text goes as typed, so the daemon judges exactly what was written. */
      const job = await api('POST', '/v1/jobs', { body: ta.value, headers: { 'Content-Type': 'application/json' } });
      ta.removeAttribute('aria-invalid');
      showError(errNode, null);
      location.hash = 'job=' + job.id;
      pollJobsOnce();
    } catch (e) {
      ta.setAttribute('aria-invalid', 'true');
      showError(errNode, e);
    } finally {
      $('submit').disabled = false;
    }
  }

  async function pollJobsOnce() {
    try { renderJobs((await api('GET', '/v1/jobs?limit=50')).jobs || []); } catch (_) { /* next poll */ }
  }

  /* ---- the selected job ---- */

  function selectFromHash() {
    const m = /^#job=(\d+)$/.exec(location.hash);
    const id = m ? Number(m[1]) : null;
    if (id === S.sel) return;
    select(id);
  }

  function select(id) {
    stopFollowing();
    S.gen++;
    S.sel = id;
    S.job = null;
    S.lastId = 0;
    S.loss = { x: [], y: [] };
    S.acc = new Map();
    S.filtersKey = '';
    S.filtersEpoch = null;
    S.evalFor = 0;
    for (const tr of $('jobs-body').children)
      if (Number(tr.dataset.id) === id) tr.setAttribute('aria-current', 'true');
      else tr.removeAttribute('aria-current');
    $('job-none').hidden = id != null;
    $('job-detail').hidden = id == null;
    if (id == null) return;
    resetModelPanel();
    ensureCharts();
    draw();
    follow(S.gen);
  }

  /* Reads the job and every metric row so far, then follows the stream. */
  async function follow(gen) {
    try {
      const job = await api('GET', '/v1/jobs/' + S.sel);
      if (gen !== S.gen) return;
      applyJob(job);
      await catchUpMetrics(gen);
      if (gen !== S.gen) return;
      if (TERMINAL.has(S.job.status)) return;   /* all there is */
      openStream(gen);
    } catch (e) {
      if (gen !== S.gen) return;
      showError($('action-error'), e);
    }
  }

  async function catchUpMetrics(gen) {
    for (;;) {
      const d = await api('GET', '/v1/jobs/' + S.sel + '/metrics?since=' + S.lastId + '&limit=' + METRICS_PAGE);
      if (gen !== S.gen) return;
      applyRows(d.metrics || []);
      if (d.next_since != null) S.lastId = Math.max(S.lastId, d.next_since);
      if (!d.metrics || d.metrics.length < METRICS_PAGE) return;
    }
  }

  function openStream(gen) {
    if (typeof EventSource === 'undefined') {
      startPolling(gen);
      return;
    }
    const es = new EventSource('/v1/jobs/' + S.sel + '/events?last_event_id=' + S.lastId);
    S.es = es;
    let opened = false;
    es.addEventListener('open', () => { opened = true; });
    es.addEventListener('metrics', (ev) => {
      if (gen !== S.gen) return;
      applyRows(JSON.parse(ev.data));
    });
    es.addEventListener('progress', (ev) => {
      if (gen !== S.gen) return;
      applyJob(JSON.parse(ev.data));
    });
    es.addEventListener('end', () => {
      if (gen !== S.gen) return;
      es.close();
      S.es = null;
      refreshJob();
    });
    es.addEventListener('error', () => {
      /* CONNECTING: the browser retries by itself with Last-Event-ID. CLOSED
       * (or a stream that never opened): fall back to polling. */
      if (gen !== S.gen) return;
      if (es.readyState === EventSource.CLOSED || !opened) {
        es.close();
        S.es = null;
        startPolling(gen);
      }
    });
  }

  function startPolling(gen) {
    const tick = async () => {
      S.pollTimer = 0;
      if (gen !== S.gen) return;
      try {
        const job = await api('GET', '/v1/jobs/' + S.sel);
        if (gen !== S.gen) return;
        await catchUpMetrics(gen);
        if (gen !== S.gen) return;
        applyJob(job);
        if (TERMINAL.has(job.status)) return;
      } catch (_) { /* try again */ }
      if (gen === S.gen) S.pollTimer = setTimeout(tick, POLL_METRICS_MS);
    };
    S.pollTimer = setTimeout(tick, 0);
  }

  function stopFollowing() {
    if (S.es) S.es.close();
    S.es = null;
    clearTimeout(S.pollTimer);
    S.pollTimer = 0;
  }

  /* Re-reads the selected job, e.g. after the stream ended or an action;
   * follows it again when it is active and nothing follows it. */
  async function refreshJob() {
    const gen = S.gen;
    try {
      const job = await api('GET', '/v1/jobs/' + S.sel);
      if (gen !== S.gen) return;
      applyJob(job);
      await catchUpMetrics(gen);
      if (gen === S.gen && ACTIVE.has(job.status) && !S.es && !S.pollTimer) openStream(gen);
    } catch (_) { /* the next list poll tries again */ }
  }

  function applyJob(job) {
    const prev = S.job;
    S.job = Object.assign({}, prev, job);
    const j = S.job, p = j.progress || {};
    $('job-title').textContent = '#' + j.id + ' ' + j.name;
    setBadge($('job-status'), j.status);
    $('btn-pause').disabled = !(j.status === 'queued' || j.status === 'running');
    $('btn-resume').disabled = j.status !== 'paused';
    $('btn-cancel').disabled = !ACTIVE.has(j.status);
    const errP = $('job-error');
    errP.hidden = !j.error;
    errP.textContent = j.error ? 'Error: ' + j.error : '';

    const stats = [
      ['Epoch', (p.epoch ?? 0) + ' / ' + (p.num_epochs ?? '?')],
      ['Iteration', (p.iteration ?? 0) + ' / ' + (p.num_iterations ?? '?')],
      ['Loss', num(p.loss)],
      ['Train acc', pct(p.train_acc)],
      ['Val acc', pct(p.val_acc) + (p.best_val_acc != null ? ' (best ' + pct(p.best_val_acc) + ')' : '')],
      ['Images/s', p.images_per_s ? Math.round(p.images_per_s).toLocaleString('en') : '–'],
      ['Elapsed', dur(p.elapsed_s)],
      ['ETA', j.status === 'running' ? dur(p.eta_s) : '–'],
      ['Device', j.device || '–'],
    ];
    const dl = $('job-stats');
    dl.textContent = '';
    for (const [k, v] of stats) dl.append(el('div', {}, el('dt', { textContent: k }), el('dd', { textContent: v })));
    /* The stream is fresher than the 2 s list poll: keep the row in step. */
    const row = $('jobs-body').querySelector('tr[data-id="' + j.id + '"]');
    if (row) fillRow(row, j);
    const bar = $('job-progress');
    bar.value = p.num_iterations > 0 ? Math.min(1, p.iteration / p.num_iterations) : 0;

    /* A checkpoint is written at every epoch end (and on pause/cancel):
     * refresh the filters then. */
    const key = j.id + ':' + (p.epoch || 0) + ':' + (TERMINAL.has(j.status) || j.status === 'paused' ? j.status : '');
    if (key !== S.filtersKey && ((p.epoch || 0) > 0 || TERMINAL.has(j.status) || j.status === 'paused')) {
      S.filtersKey = key;
      const slider = $('filters-epoch');
      slider.max = Math.max(1, p.epoch || 0);
      if (S.filtersEpoch == null) slider.value = slider.max;
      $('filters-epochs').hidden = !((p.epoch || 0) >= 2);
      if (S.filtersEpoch == null) loadFilters();
    }
    $('download').href = '/v1/models/' + j.id + '/checkpoint';
    $('download').setAttribute('download', 'convnetd-job-' + j.id + '.ckpt');
    if (j.status === 'succeeded' && S.evalFor !== j.id) {
      S.evalFor = j.id;
      loadEvaluation();
    }
  }

  /* Metric rows, MLflow-shaped {id,key,value,step,timestamp}, in id order. */
  function applyRows(rows) {
    let changed = false;
    for (const r of rows) {
      if (r.id != null && r.id <= S.lastId) continue;   /* already applied */
      if (r.id != null) S.lastId = r.id;
      if (r.key === 'loss') {
        S.loss.x.push(r.step);
        S.loss.y.push(r.value);
        changed = true;
      } else if (r.key === 'train_acc' || r.key === 'val_acc' || r.key === 'epoch') {
        const a = S.acc.get(r.step) || {};
        a[r.key === 'train_acc' ? 'train' : r.key === 'val_acc' ? 'val' : 'epoch'] = r.value;
        S.acc.set(r.step, a);
        changed = true;
      }
    }
    if (changed) scheduleDraw();
  }

  /* ---- charts ---- */

  function ensureCharts() {
    if (typeof uPlot === 'undefined') {
      banner('uplot', 'The chart library is missing (/web/vendor/uplot): run scripts/deps.sh. Curves are not drawn.');
      return;
    }
    if (S.charts.loss) return;
    const fg = cssVar('--fg-muted'), grid = cssVar('--grid');
    const axis = (label, values) => ({ label, stroke: fg, grid: { stroke: grid, width: 1 },
                                       ticks: { stroke: grid, width: 1 }, values });
    const lossBox = $('loss-chart'), accBox = $('acc-chart');
    S.charts.loss = new uPlot({
      width: lossBox.clientWidth || 480, height: 260,
      scales: {
        /* The data's own range: a long job's first iterations stay
         * readable. One point still gets some width. */
        x: { time: false, range: (u, min, max) => [min ?? 0, Math.max(max ?? 1, (min ?? 0) + 1)] },
        y: { auto: true },
      },
      series: [
        { label: 'iteration' },
        { label: 'loss', stroke: cssVar('--raw'), width: 1 },
        { label: 'smoothed', stroke: cssVar('--accent'), width: 2 },
      ],
      axes: [axis('iteration'), axis('loss')],
      legend: { show: true, live: false },
    }, [[], [], []], lossBox);
    S.charts.acc = new uPlot({
      width: accBox.clientWidth || 480, height: 260,
      scales: {
        x: { time: false, range: (u, min, max) => [0, Math.max(max ?? 1, 1)] },
        y: { range: [0, 1] },
      },
      series: [
        { label: 'epoch' },
        { label: 'train', stroke: cssVar('--accent'), width: 2, points: { show: true, size: 7 } },
        { label: 'val', stroke: cssVar('--accent2'), width: 2, points: { show: true, size: 7 } },
      ],
      axes: [axis('epoch', (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : ''))),
             axis('accuracy', (u, vals) => vals.map((v) => Math.round(v * 100) + '%'))],
      legend: { show: true, live: false },
    }, [[], [], []], accBox);
    const ro = new ResizeObserver(() => {
      for (const [u, box] of [[S.charts.loss, lossBox], [S.charts.acc, accBox]])
        if (box.clientWidth > 0) u.setSize({ width: box.clientWidth, height: 260 });
    });
    ro.observe(lossBox);
    ro.observe(accBox);
  }

  /* TensorBoard's debiased exponential moving average: the first points are
   * not dragged towards zero. */
  function smooth(ys, w) {
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (!isFinite(y)) { out[i] = null; continue; }
      last = last * w + (1 - w) * y;
      n++;
      out[i] = w === 0 ? y : last / (1 - Math.pow(w, n));
    }
    return out;
  }

  function scheduleDraw() {
    if (S.drawPending) return;
    S.drawPending = true;
    requestAnimationFrame(() => { S.drawPending = false; draw(); });
  }

  function draw() {
    const w = Number($('smoothing').value);
    const n = S.loss.x.length;
    $('loss-chart').dataset.points = n;
    $('loss-count').textContent = n === 0 ? 'No loss values yet.'
      : n + ' iterations; last loss ' + num(S.loss.y[n - 1]) + ', smoothed ' + num(smooth(S.loss.y, w)[n - 1]);
    const steps = [...S.acc.keys()].sort((a, b) => a - b)
      .filter((s) => S.acc.get(s).train != null || S.acc.get(s).val != null);
    const ipe = itersPerEpoch();
    const ex = steps.map((s) => (S.acc.get(s).epoch != null ? S.acc.get(s).epoch : (ipe ? s / ipe : s)));
    const tr = steps.map((s) => S.acc.get(s).train ?? null);
    const va = steps.map((s) => S.acc.get(s).val ?? null);
    $('acc-chart').dataset.points = steps.length;
    $('acc-summary').textContent = steps.length === 0 ? 'No accuracy checks yet.'
      : 'epoch ' + ex[ex.length - 1] + ': train ' + pct(tr[tr.length - 1]) + ', val ' + pct(va[va.length - 1]);
    if (!S.charts.loss) return;
    S.charts.loss.setData([S.loss.x, S.loss.y, smooth(S.loss.y, w)]);
    S.charts.acc.setData([ex, tr, va]);
  }

  function itersPerEpoch() {
    const p = S.job && S.job.progress;
    return p && p.num_epochs > 0 && p.num_iterations > 0 ? p.num_iterations / p.num_epochs : 0;
  }

  /* ---- filters ---- */

  /* The latest checkpoint's filters, or with the slider those kept at the
   * end of an earlier epoch (?epoch=). */
  async function loadFilters() {
    const gen = S.gen, id = S.sel, epoch = S.filtersEpoch;
    const img = $('filters'), msg = $('filters-msg');
    $('filters-epoch-out').value = epoch == null ? 'latest' : String(epoch);
    try {
      /* no-cache: the browser revalidates with the daemon's ETag, so a
       * new checkpoint's picture is fetched and an unchanged one is not. */
      const r = await api('GET', '/v1/jobs/' + id + '/filters.png' + (epoch == null ? '' : '?epoch=' + epoch),
                          { response: true, cache: 'no-cache' });
      const blob = await r.blob();
      if (gen !== S.gen) return;
      const url = URL.createObjectURL(blob);
      img.onload = () => {
        const shown = epoch == null ? 'latest, epoch ' + ((S.job.progress || {}).epoch || 0) : 'epoch ' + epoch;
        $('filters-info').textContent = '(' + img.naturalWidth + '×' + img.naturalHeight + ' px, ' + shown + ')';
        if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
        img.dataset.url = url;
        img.dataset.loaded = String(Date.now());
      };
      img.src = url;
      img.hidden = false;
      msg.hidden = true;
    } catch (e) {
      if (gen !== S.gen) return;
      img.hidden = true;
      msg.hidden = false;
      msg.textContent = e.status === 404 && e.code === 'not_found' && /no such path/.test(e.message)
        ? 'This daemon does not serve filter images yet (' + e.message + ').'
        : 'No filters: ' + e.message;
    }
  }

  /* ---- evaluation ---- */

  async function loadEvaluation() {
    const gen = S.gen, id = S.sel;
    const errNode = $('eval-error');
    $('btn-eval').disabled = true;
    $('eval-summary').textContent = 'Evaluating on the test set…';
    try {
      /* 202: the worker is still evaluating; ask again (Retry-After). */
      for (let tries = 0; ; tries++) {
        const r = await api('GET', '/v1/models/' + id + '/evaluation', { response: true });
        if (gen !== S.gen) return;
        const ev = await r.json().catch(() => null);
        if (r.status !== 202 && ev) {
          showError(errNode, null);
          renderEvaluation(ev);
          break;
        }
        if (tries >= 300) throw new ApiError(r.status, 'timeout', 'the evaluation did not finish; press Evaluate to ask again');
        const after = Math.min(10, Math.max(0.5, Number(r.headers.get('Retry-After')) || 1));
        await new Promise((res) => setTimeout(res, after * 1000));
        if (gen !== S.gen) return;
      }
    } catch (e) {
      if (gen !== S.gen) return;
      $('eval-summary').textContent = '';
      showError(errNode, e);
    } finally {
      if (gen === S.gen) $('btn-eval').disabled = false;
    }
  }

  /* Accepts {accuracy|test_accuracy, split, num_samples, epoch, class_names,
   * per_class_accuracy, confusion_matrix}; rows of the matrix are true
   * classes, columns predicted ones. */
  function renderEvaluation(ev) {
    const cm = ev.confusion_matrix || ev.confusion || [];
    const names = ev.class_names || ev.classes || cm.map((_, i) => String(i));
    const acc = ev.test_accuracy ?? ev.accuracy;
    const split = ev.split === 'validation' ? 'Validation' : 'Test';
    const n = ev.num_samples ?? ev.test_size ?? cm.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
    const perClass = ev.per_class_accuracy ||
      cm.map((row, i) => { const t = row.reduce((a, b) => a + b, 0); return t ? row[i] / t : null; });
    $('eval-summary').textContent = split + ' accuracy ' + pct(acc) +
      (n ? ' on ' + n.toLocaleString('en') + ' images' : '') +
      (ev.epoch != null ? ' (checkpoint of epoch ' + ev.epoch + ')' : '') +
      '. Rows: true class; columns: predicted class; shade: share of the row.';
    const t = $('confusion');
    t.textContent = '';
    t.append(el('caption', { className: 'sr-only', textContent: 'Confusion matrix, test set' }));
    const head = el('tr', {}, el('th', { scope: 'col', className: 'corner', textContent: 'true \\ predicted' }));
    names.forEach((nm) => head.append(el('th', { scope: 'col', className: 'colh', title: nm }, el('span', { textContent: nm }))));
    head.append(el('th', { scope: 'col', textContent: 'accuracy' }));
    t.append(el('thead', {}, head));
    const tb = el('tbody');
    cm.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0) || 1;
      const tr = el('tr', {}, el('th', { scope: 'row', textContent: names[i] ?? i }));
      row.forEach((v, k) => {
        const share = v / total;
        const td = el('td', { textContent: v, title: (names[i] ?? i) + ' predicted as ' + (names[k] ?? k) + ': ' + v + ' (' + pct(share) + ')' });
        /* Mistakes are rarer than hits: their shade is stretched so that
         * a 10% confusion is visible next to a 90% diagonal. */
        const a = i === k ? share : Math.min(1, share * 3);
        td.className = i === k ? 'diag' : 'off';
        td.style.setProperty('--a', a.toFixed(3));
        if (a > 0.55) td.classList.add('dark');
        tr.append(td);
      });
      tr.append(el('td', { className: 'acc', textContent: pct(perClass[i]) }));
      tb.append(tr);
    });
    t.append(tb);
    t.hidden = false;
  }

  /* ---- classification ---- */

  function resetModelPanel() {
    $('filters').hidden = true;
    $('filters').removeAttribute('src');
    delete $('filters').dataset.loaded;
    $('filters-msg').hidden = false;
    $('filters-msg').textContent = 'No checkpoint yet: filters appear after the first epoch.';
    $('filters-info').textContent = '';
    $('filters-epochs').hidden = true;
    $('predictions').textContent = '';
    $('drop-preview').hidden = true;
    showError($('classify-error'), null);
    showError($('eval-error'), null);
    showError($('action-error'), null);
    $('eval-summary').textContent = 'Evaluated when the job succeeds (or press Evaluate).';
    $('confusion').hidden = true;
  }

  async function classify(file) {
    const gen = S.gen, id = S.sel;
    const errNode = $('classify-error'), list = $('predictions');
    if (!file) return;
    const prev = $('drop-preview');
    if (prev.dataset.url) URL.revokeObjectURL(prev.dataset.url);
    prev.dataset.url = URL.createObjectURL(file);
    prev.src = prev.dataset.url;
    prev.alt = 'uploaded image ' + file.name;
    prev.hidden = false;
    const k = Math.max(1, Math.min(10, Number($('topk').value) || 5));
    const form = new FormData();
    form.append('image', file, file.name || 'image.png');
    list.textContent = '';
    list.setAttribute('aria-busy', 'true');
    try {
      const res = await api('POST', '/v1/models/' + id + '/classify?top_k=' + k, { body: form });
      if (gen !== S.gen) return;
      showError(errNode, null);
      renderPredictions(res);
    } catch (e) {
      if (gen !== S.gen) return;
      showError(errNode, e);
    } finally {
      list.removeAttribute('aria-busy');
    }
  }

  /* The classify answer: {"predictions":[{"class","index","probability"}, ...]}, sorted. */
  function renderPredictions(res) {
    const items = res.predictions || [];
    const list = $('predictions');
    list.textContent = '';
    for (const it of items) {
      const name = it.class;
      const p = Number(it.probability);
      const bar = el('span', { className: 'bar' });
      bar.style.setProperty('--p', Math.max(0, Math.min(1, p)).toFixed(4));
      bar.setAttribute('aria-hidden', 'true');
      list.append(el('li', {}, el('span', { className: 'cls', textContent: name }), bar,
                     el('span', { className: 'prob', textContent: pct(p) })));
    }
    if (items.length === 0) list.append(el('li', { className: 'muted', textContent: 'no classes in the answer' }));
  }

  function setupDrop() {
    const drop = $('drop'), input = $('file');
    drop.addEventListener('click', () => input.click());
    drop.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); input.click(); }
    });
    drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (ev) => {
      ev.preventDefault();
      drop.classList.remove('over');
      const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (f) classify(f);
    });
    input.addEventListener('change', () => {
      if (input.files && input.files[0]) classify(input.files[0]);
      input.value = '';
    });
  }

  /* ---- job actions ---- */

  async function action(verb) {
    const gen = S.gen, id = S.sel;
    const errNode = $('action-error');
    for (const b of ['btn-pause', 'btn-resume', 'btn-cancel']) $(b).disabled = true;
    try {
      const job = await api('POST', '/v1/jobs/' + id + '/' + verb);
      if (gen !== S.gen) return;
      showError(errNode, null);
      applyJob(job);
      if (ACTIVE.has(job.status) && !S.es && !S.pollTimer) openStream(gen);
      pollJobsOnce();
    } catch (e) {
      if (gen !== S.gen) return;
      showError(errNode, e);
      if (S.job) applyJob(S.job);
    }
  }

  /* ---- banners ---- */

  const banners = new Map();
  function banner(key, text) {
    banners.set(key, text);
    $('banner').textContent = [...banners.values()].join(' ');
    $('banner').hidden = false;
  }
  function hideBanner(key) {
    if (!banners.delete(key)) return;
    $('banner').textContent = [...banners.values()].join(' ');
    $('banner').hidden = banners.size === 0;
  }

  /* ---- start ---- */

  function start() {
    writeSpec(defaultSpec('three_layer_convnet', 'fashion-mnist'));
    $('preset').addEventListener('change', onPresetChange);
    $('dataset').addEventListener('change', onDatasetChange);
    $('reset-spec').addEventListener('click', () => writeSpec(defaultSpec($('preset').value, $('dataset').value)));
    $('job-form').addEventListener('submit', onSubmit);
    $('btn-pause').addEventListener('click', () => action('pause'));
    $('btn-resume').addEventListener('click', () => action('resume'));
    $('btn-cancel').addEventListener('click', () => action('cancel'));
    $('btn-eval').addEventListener('click', loadEvaluation);
    $('filters-epoch').addEventListener('input', () => {
      const v = Number($('filters-epoch').value);
      S.filtersEpoch = v >= Number($('filters-epoch').max) ? null : v;
      loadFilters();
    });
    $('smoothing').addEventListener('input', () => {
      $('smoothing-out').value = Number($('smoothing').value).toFixed(2);
      draw();
    });
    const tok = $('token-input');
    tok.value = token();
    const saveToken = () => {
      try { sessionStorage.setItem('convnetd.token', tok.value.trim()); } catch (_) { /* private mode */ }
    };
    tok.addEventListener('change', saveToken);
    $('token-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveToken(); });
    setupDrop();
    window.addEventListener('hashchange', selectFromHash);
    loadHealth();
    pollJobs();
    selectFromHash();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
