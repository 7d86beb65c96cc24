// HAQA results view. Runs inside the webview: no network, no eval, data only from postMessage.
// Draws decode latency (x: each run placed by its paired ratio to fp32, the figure the tuner ranks by)
// against perplexity increase (y) with the Pareto front (lower-left is better), a table of the runs, and
// the per-layer plan of the selected run. All text goes in through textContent, so names from recipes or
// agents can never become markup.
(function () {
  'use strict';
  const vscode = acquireVsCodeApi();
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);
  let state = { runs: [], selected: undefined };

  function el(tag, attrs, text) {
    const e = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  const fmt = (v, d = 2) => (typeof v === 'number' && isFinite(v) ? v.toFixed(d) : '–');
  const latency = (r) => r.decode_ms ?? r.inference_ms ?? r.prefill_ms;
  const accuracy = (r) => r.ppl_delta_pct;
  // Runs are named by what they were: the fp32 baseline, a tuning trial, or a benchmark at its local time.
  const label = (r) => {
    if (r.trial && r.trial.agent === 'baseline') return 'fp32 baseline';
    if (r.trial && r.trial.number !== undefined)
      return `trial ${r.trial.number}${r.trial.agent ? ` (${r.trial.agent})` : ''}`;
    const d = new Date(r.started);
    return isNaN(d.getTime())
      ? 'benchmark'
      : 'benchmark ' +
          `${d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })}`;
  };
  const short = (r) =>
    r.trial && r.trial.agent === 'baseline'
      ? 'fp32'
      : r.trial && r.trial.number !== undefined
        ? `#${r.trial.number}`
        : '';

  /** Tick values at 1, 2 or 5 × 10^k covering [lo, hi], about n of them. */
  function ticks(lo, hi, n) {
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || mag * 10;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
    return { values: out, digits: Math.max(0, -Math.floor(Math.log10(step))) };
  }

  /** Runs not dominated in (x, accuracy loss): nobody else is at least as good in both and better in one. */
  function pareto(points, x) {
    const sorted = [...points].sort((a, b) => x(a) - x(b) || accuracy(a) - accuracy(b));
    const front = [];
    let best = Infinity;
    for (const p of sorted)
      if (accuracy(p) < best) {
        front.push(p);
        best = accuracy(p);
      }
    return front;
  }

  function chart(runs, budget) {
    const box = $('chart');
    box.replaceChildren();
    const pts = runs.filter(
      (r) => r.status === 'ok' && typeof latency(r) === 'number' && typeof accuracy(r) === 'number',
    );
    if (pts.length === 0) {
      box.append(el('p', { class: 'muted' }, 'No run has both a latency and an accuracy figure yet.'));
      return new Set();
    }
    const W = 640,
      H = 320,
      L = 64,
      R = 16,
      T = 16,
      B = 44;
    // fp32's latency, from the runs' paired ratios (× fp32), so it can be marked even without its own point.
    const fp32s = runs
      .filter((r) => typeof r.speedup_decode === 'number' && typeof latency(r) === 'number')
      .map((r) => latency(r) * r.speedup_decode)
      .sort((a, b) => a - b);
    const fp32 = fp32s.length ? fp32s[Math.floor(fp32s.length / 2)] : undefined;
    // x is where the run's paired ratio puts it against that one fp32 latency, so left-to-right is the order
    // the tuner ranks by (× fp32), not the order of medians measured at different times under different loads;
    // the fp32 run sits on the fp32 line. A run without a ratio is at its own median.
    const isFp32 = (r) => r.trial && r.trial.agent === 'baseline';
    const x = (r) =>
      fp32 !== undefined && typeof r.speedup_decode === 'number' && r.speedup_decode > 0
        ? fp32 / r.speedup_decode
        : fp32 !== undefined && isFp32(r)
          ? fp32
          : latency(r);
    const xs = pts.map(x),
      ys = pts.map(accuracy).concat(budget !== undefined ? [budget] : []);
    const pad = (lo, hi) => (hi - lo < 1e-9 ? [lo - 1, hi + 1] : [lo - (hi - lo) * 0.08, hi + (hi - lo) * 0.08]);
    const [x0, x1] = pad(
      Math.min(...xs, ...(fp32 !== undefined ? [fp32] : [])),
      Math.max(...xs, ...(fp32 !== undefined ? [fp32] : [])),
    );
    const [y0, y1] = pad(Math.min(0, ...ys), Math.max(...ys));
    const sx = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
    const sy = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
    const svg = el('svg:svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', width: '100%' });
    const tx = ticks(x0, x1, 5),
      ty = ticks(y0, y1, 5);
    for (const xv of tx.values) {
      svg.append(el('svg:line', { x1: sx(xv), x2: sx(xv), y1: T, y2: H - B, class: 'grid' }));
      svg.append(
        el('svg:text', { x: sx(xv), y: H - B + 16, class: 'tick', 'text-anchor': 'middle' }, fmt(xv, tx.digits)),
      );
    }
    for (const yv of ty.values) {
      svg.append(el('svg:line', { x1: L, x2: W - R, y1: sy(yv), y2: sy(yv), class: 'grid' }));
      svg.append(el('svg:text', { x: L - 6, y: sy(yv) + 4, class: 'tick', 'text-anchor': 'end' }, fmt(yv, ty.digits)));
    }
    if (fp32 !== undefined) {
      svg.append(el('svg:line', { x1: sx(fp32), x2: sx(fp32), y1: T, y2: H - B, class: 'fp32' }));
      // The fp32 latency the runs' paired ratios imply (their median): every run is placed against it.
      const right = sx(fp32) > L + 90; // to the line's left (the budget label is at the right end), room allowing
      svg.append(
        el(
          'svg:text',
          {
            x: sx(fp32) + (right ? -4 : 4),
            y: T + 10,
            class: 'tick fp32-label',
            'text-anchor': right ? 'end' : 'start',
          },
          `fp32 ${fmt(fp32, 2)} ms`,
        ),
      );
    }
    svg.append(
      el(
        'svg:text',
        { x: (L + W - R) / 2, y: H - 6, class: 'axis', 'text-anchor': 'middle' },
        "decode ms per token, placed by each run's paired ratio to fp32 (lower is better)",
      ),
    );
    svg.append(
      el(
        'svg:text',
        {
          x: 14,
          y: (T + H - B) / 2,
          class: 'axis',
          'text-anchor': 'middle',
          transform: `rotate(-90 14 ${(T + H - B) / 2})`,
        },
        'perplexity increase vs fp32, %',
      ),
    );
    if (budget !== undefined && budget >= y0 && budget <= y1) {
      svg.append(el('svg:line', { x1: L, x2: W - R, y1: sy(budget), y2: sy(budget), class: 'budget' }));
      // At the left end: fp32's label is at the top, left of its line, usually on the right.
      svg.append(
        el(
          'svg:text',
          { x: L + 4, y: sy(budget) - 4, class: 'tick budget-label', 'text-anchor': 'start' },
          `budget ${fmt(budget, 1)}%`,
        ),
      );
    }
    const front = pareto(pts, x);
    if (front.length > 1)
      svg.append(
        el('svg:polyline', {
          points: front.map((p) => `${sx(x(p))},${sy(accuracy(p))}`).join(' '),
          class: 'front',
        }),
      );
    const onFront = new Set(front.map((p) => p.id));
    for (const p of pts) {
      const c = el('svg:circle', {
        cx: sx(x(p)),
        cy: sy(accuracy(p)),
        r: onFront.has(p.id) ? 6 : 4,
        class: `pt${onFront.has(p.id) ? ' onfront' : ''}${p.id === state.selected ? ' selected' : ''}`,
        tabindex: 0,
        'data-id': p.id,
      });
      c.append(
        el(
          'svg:title',
          {},
          `${label(p)}: ${fmt(x(p))} ms at its ratio to fp32 (${fmt(latency(p))} ms measured), ` +
            `ppl ${accuracy(p) >= 0 ? '+' : ''}${fmt(accuracy(p))}%`,
        ),
      );
      c.addEventListener('click', () => select(p.id));
      c.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') select(p.id);
      });
      svg.append(c);
      // Labelled points; the announced best (the tuner's ranking, the same as the lens) is ringed and named.
      const isBest = p.id === state.bestId;
      if (isBest) svg.append(el('svg:circle', { cx: sx(x(p)), cy: sy(accuracy(p)), r: 10, class: 'best-ring' }));
      const name = isBest ? `${short(p) || label(p)} best` : short(p);
      if (name)
        svg.append(
          el(
            'svg:text',
            { x: sx(x(p)) + 8, y: sy(accuracy(p)) - 8, class: `tick pt-label${isBest ? ' best-label' : ''}` },
            name,
          ),
        );
    }
    box.append(svg);
    const left = runs.length - pts.length;
    box.append(
      el(
        'p',
        { class: 'legend' },
        `${pts.length} of ${runs.length} run${runs.length === 1 ? '' : 's'} ` +
          `plotted${left ? ` (${left} without both figures)` : ''} · ${front.length} ` +
          'on the Pareto front (larger dots, joined) · ringed: the best trial',
      ),
    );
    return onFront;
  }

  function table(runs, onFront, currentHash) {
    const cols = [
      ['run', (r) => label(r)],
      ['status', (r) => r.status + (r.error ? `: ${r.error}` : '')],
      ['decode ms', (r) => fmt(r.decode_ms, 3)],
      ['prefill ms', (r) => fmt(r.prefill_ms, 2)],
      ['tok/s', (r) => fmt(r.throughput_tok_s, 1)],
      [
        '× fp32',
        (r) =>
          fmt(r.speedup_decode, 2) +
          (r.paired === false ? ' (unpaired)' : r.race_reference ? ` (via ${r.race_reference})` : ''),
      ],
      ['ppl', (r) => fmt(r.ppl, 3)],
      ['Δppl %', (r) => fmt(r.ppl_delta_pct, 2)],
      ['top-1', (r) => fmt(r.top1 !== undefined ? r.top1 * 100 : undefined, 1)],
      ['size MB', (r) => fmt(r.model_bytes !== undefined ? r.model_bytes / 1e6 : undefined, 2)],
      ['runtime', (r) => r.runtime || ''],
      ['started', (r) => (r.started || '').replace('T', ' ').slice(0, 19)],
    ];
    const t = el('table', { class: 'runs' });
    const head = el('tr');
    for (const [name] of cols) head.append(el('th', {}, name));
    const thead = el('thead');
    thead.append(head);
    t.append(thead);
    const body = el('tbody');
    // One "(current)" row: the newest run of the recipe as it reads now.
    const current = [...runs].reverse().find((r) => r.recipe_hash === currentHash);
    for (const r of [...runs].reverse()) {
      const cls = [
        r.id === state.selected ? 'selected' : '',
        onFront.has(r.id) ? 'onfront' : '',
        r === current ? 'current' : '',
        r.id === state.bestId ? 'best' : '',
      ];
      const tr = el('tr', { class: cls.join(' ').trim(), tabindex: 0 });
      for (const [, f] of cols) tr.append(el('td', {}, f(r)));
      tr.addEventListener('click', () => select(r.id));
      body.append(tr);
    }
    t.append(body);
    $('table').replaceChildren(t);
  }

  function layers(run) {
    const box = $('layers');
    box.replaceChildren();
    if (!run || !run.layers || run.layers.length === 0) {
      box.append(
        el('p', { class: 'muted' }, run ? 'This run kept every layer at fp32 (or recorded no plan).' : 'Select a run.'),
      );
      return;
    }
    box.append(
      el(
        'p',
        { class: 'legend' },
        `${label(run)} — colour: bit-width (darker = fewer bits), then what sparsity or low rank did; skip: kept fp32`,
      ),
    );
    const grid = el('div', { class: 'layermap' });
    for (const l of run.layers) {
      const bits = l.skip ? 32 : l.bits;
      const cell = el('div', {
        class: `cell bits-${bits ?? 'none'}`,
        title:
          `${l.name}\n` +
          `${l.skip ? 'skipped (fp32)' : `${bits ?? 32} bits${l.block_size ? `, block ${l.block_size}` : ''}`}` +
          (l.methods ?? []).map((m) => `, ${m}`).join(''),
      });
      cell.append(el('span', { class: 'name' }, l.name.replace(/^model\./, '')));
      cell.append(
        el(
          'span',
          { class: 'tag' },
          [l.skip ? 'skip' : bits ? `${bits}b` : 'fp32', ...(l.methods ?? [])].filter(Boolean).join(' '),
        ),
      );
      grid.append(cell);
    }
    box.append(grid);
  }

  function select(id) {
    state.selected = id;
    vscode.setState({ selected: id });
    render();
  }

  function render() {
    const { runs, budgetPct, currentHash } = state;
    $('empty').hidden = runs.length > 0;
    const count = `${runs.length} run${runs.length === 1 ? '' : 's'}`;
    const best = state.bestHeadline ? ` · best: ${state.bestHeadline}` : '';
    $('summary').textContent = (state.recipe ? `${state.recipe} · ${count}` : count) + best;
    const onFront = chart(runs, budgetPct);
    table(runs, onFront, currentHash);
    layers(runs.find((r) => r.id === state.selected));
    document.body.dataset.rendered = String(runs.length);
  }

  window.addEventListener('message', (e) => {
    const m = e.data;
    if (m.type === 'runs') {
      state = { ...state, ...m, runs: m.runs || [] };
      if (!state.runs.some((r) => r.id === state.selected)) {
        const ok = state.runs.filter((r) => r.status === 'ok');
        state.selected = (ok[ok.length - 1] || state.runs[state.runs.length - 1] || {}).id;
      }
      render();
    } else if (m.type === 'error') {
      $('summary').textContent = `error: ${m.message}`;
    }
  });
  $('refresh').addEventListener('click', () => vscode.postMessage({ type: 'refresh' }));
  $('apply').addEventListener('click', () => vscode.postMessage({ type: 'applyBest' }));
  state.selected = (vscode.getState() || {}).selected;
  vscode.postMessage({ type: 'ready' });
})();
