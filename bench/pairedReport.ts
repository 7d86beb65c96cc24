// bench/REPORT.md §2 from bench/results/paired.json (bench/paired.ts's summary): the paired ground-truth
// tables, their agreement, and the live searches under the machine's own load and under the load generator.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const f = (x: number | undefined | null, d = 3) =>
  x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(d);
const cfg = (c: Record<string, unknown>) =>
  Object.entries(c)
    .map(([k, v]) => `${k.replace(/^quantize\./, '').replace(/^runtime\./, '')}=${v}`)
    .join(', ');
const when = (iso?: string) => (iso ? iso.slice(0, 16).replace('T', ' ') + ' UTC' : '?');
const loads = (l?: number[]) => (l?.length ? `${f(l[0], 1)} at the start, ${f(l[3], 1)} at the end` : '?');

const MARKS = [1, 2, 4, 6, 8, 10, 12];
const SETTINGS: Record<string, string> = {
  'live-own': "the machine's own load",
  'live-loadgen': 'the load generator beside the search (server/src/bench/loadgen.ts, seed 13, 1 busy thread)',
};
/** The same searches with each new plan raced against the incumbent instead of fp32 (duels): the comparison. */
const ABLATIONS: Record<string, string> = {
  'live-own-duel': "the machine's own load, each new plan raced against the incumbent (a duel)",
  'live-loadgen-duel': 'the load generator, each new plan raced against the incumbent (a duel)',
};

/** "fp32 or the incumbent": the duel-bias stage and the live searches raced both ways. */
function referenceChoice(j: Json, live: [string, Json][]): string[] {
  const compared = live.filter(([stage]) => ABLATIONS[stage] && j.live?.[stage.replace(/-duel$/, '')]);
  const b = j.duel_bias;
  if (!compared.length && !b) return [];
  const out = ['**fp32 or the incumbent.**'];
  const fig = (x: Json) => `${f(x.ratio)} [${f(x.lo)}, ${f(x.hi)}], ${x.n} pairs`;
  if (b)
    out.push(
      `Is a duel fair to both sides (\`--stage duel-bias\`, ${when(b.started_at)} – ${when(b.finished_at).slice(11)}, ` +
        `load average ${loads(b.load)})? A = ${cfg(b.A)}, B = ${cfg(b.B)}. ` +
        `A raced against a copy of its own artifact read ${b.self.map(fig).join('; ')} (1.000 if the race favours ` +
        `neither side); A against B read ${b.a_vs_b.map(fig).join('; ')} and B against A ` +
        `${b.b_vs_a.map(fig).join('; ')}, products ${b.products.map((x: number) => f(x)).join(', ')} (1.000 if unbiased). ` +
        `Against fp32 in the same run: A ${b.a_fp32.map(fig).join('; ')}; B ${b.b_fp32.map(fig).join('; ')}. ` +
        'Both sides of a duel read slower than their rival (products above 1): the reference side is favoured. ' +
        'Raced against one fixed model, a side bias common to every contender cancels in the ranking; in a duel ' +
        'it is an advantage of whichever plan leads.',
    );
  for (const [stage, a] of compared) {
    const d = j.live[stage.replace(/-duel$/, '')];
    const m = (l: Json) => f(l.mean_curve?.offline?.[l.trials - 1]);
    out.push(
      `Under ${SETTINGS[stage.replace(/-duel$/, '')]}, offline at ${d.trials} trials: raced against fp32 ` +
        `(${when(d.started_at)}) **${d.within_5pct_at_budget.offline}/${d.seeds}** seeds within 5%, mean ${m(d)}, ` +
        `median trial ${f(d.median_trial_s?.offline, 1)} s; with duels (${when(a.started_at)}) ` +
        `**${a.within_5pct_at_budget.offline}/${a.seeds}**, mean ${m(a)}, median trial ${f(a.median_trial_s?.offline, 1)} s. ` +
        'A duel of two similar plans more often runs to the cap unresolved, and a contender with other threads ' +
        "cannot duel at all (one process: a multi-threaded session's spinning pool slows the rival), so its race " +
        'against fp32 mixes the two scales again.',
    );
  }
  return [out.join(' '), ''];
}

export function pairedSection(j: Json): string[] {
  const lines = ['## 2. Decisions under load: paired ground truth and live searches (issue 13)', ''];
  lines.push(
    'Every trial of the tuner is a paired race in one worker (ABBA order of generations; median of per-pair log ' +
      'ratios with an order-statistics 95% interval; stop at better / worse / tied within `search.tolerance`, ' +
      'default 3%, or a 20 s cap: `server/src/bench/race.ts`), and plans rank by those ratios ' +
      '(`server/src/agent/ranking.ts`, the one rule the loop owns). The reference is fp32, chosen by measurement ' +
      "over the incumbent's compressed model (a duel; `RecipeEvaluator` `raceReference: 'incumbent'`, which puts " +
      "a duel's figure on the fp32 scale as the incumbent's ratio times the duel's): see \"fp32 or the " +
      'incumbent\" below. When the two sessions do not fit in memory the race is unpaired and the record says ' +
      '`paired: false` with the reason.',
    '',
    `Measured by \`node --import tsx bench/paired.ts\` (\`npm run bench -- --only paired\`): ground truth is every ` +
      `configuration of the recipe's space raced against fp32 until the 95% interval of its decode-time ratio lies ` +
      `within ±${f((j.precision ?? 0.02) * 100, 0)}% (or the per-configuration cap), measured twice at different ` +
      `hours, the second table in the reverse order. A search's answer is scored by the ground truth (the geometric ` +
      `mean of the tables' ratios) over the best feasible configuration's.`,
    '',
  );
  const tables = Object.entries<Json>(j.tables ?? {});
  if (tables.length) {
    lines.push(
      '| table | measured | load average | configurations | within ±2% | median pairs | median race (s) | unpaired |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const [name, t] of tables)
      lines.push(
        `| ${name} | ${when(t.started_at)} – ${when(t.finished_at).slice(11)} | ${loads(t.load)} | ` +
          `${t.configurations - t.failed} of ${t.configurations} | ${t.within_precision} | ${f(t.median_pairs, 0)} | ` +
          `${f(t.median_race_s, 1)} (cap ${t.cap_s}) | ${t.unpaired} |`,
      );
    lines.push('', `CPU: ${tables[0][1].cpu} (${(tables[0][1].flags ?? []).join(', ')}).`, '');
    lines.push(
      'A configuration whose whole interval lay above 1.1× the best so far stopped early, as its precision ' +
        'cannot change which configuration is best: ' +
        tables.map(([n, t]) => `${n} ${t.stopped_worse} of ${t.configurations}`).join(', ') +
        ". Of the configurations within 10% of their table's best, " +
        tables.map(([n, t]) => `${n} measured ${t.near_best_within_precision} of ${t.near_best} to ±2%`).join(', ') +
        ' (the others hit the cap).',
      '',
    );
  }
  if (j.agreement) {
    const a = j.agreement;
    const worst = a.largest
      ? `${f(a.largest.factor, 3)}× (${a.largest.key.replace(/"/g, '')}: ${f(a.largest.a)} vs ${f(a.largest.b)})`
      : '—';
    lines.push(
      `**Agreement of the two tables:** Spearman rank correlation **${f(a.spearman, 3)}** over ${a.common} ` +
        `configurations; the largest disagreement is ${worst}.`,
      '',
    );
    if (j.disjoint?.compared)
      lines.push(
        `Of the ${j.disjoint.compared} configurations both tables measured to at least 30 pairs, ` +
          `${j.disjoint.disjoint} have disjoint 95% intervals: there the ratio itself moved between the two ` +
          "hours (a load changes the two models' costs unequally), which pairing cannot cancel; the ground " +
          'truth a search is scored by is their geometric mean.',
        '',
      );
  } else lines.push('**Agreement:** not measured — only one table exists.', '');
  if (j.top?.length) {
    lines.push(
      '| configuration (best first) | ground truth × fp32 | ' +
        tables.map(([n]) => `${n} [95% interval], pairs`).join(' | ') +
        ' | perplexity change |',
      '| --- | --- | ' + tables.map(() => '---').join(' | ') + ' | --- |',
    );
    for (const r of j.top)
      lines.push(
        `| ${cfg(r.config)} | ${f(r.ratio)} | ` +
          r.tables.map((t: Json) => (t ? `${f(t.ratio)} [${f(t.lo)}, ${f(t.hi)}], ${t.n}` : '—')).join(' | ') +
          ` | ${r.ppl_increase === undefined ? '—' : `${r.ppl_increase >= 0 ? '+' : ''}${f(r.ppl_increase * 100, 2)}%`} |`,
      );
    lines.push('');
  }
  const live = Object.entries<Json>(j.live ?? {});
  for (const [stage, l] of live) {
    lines.push(
      `**Live searches under ${SETTINGS[stage] ?? ABLATIONS[stage] ?? stage}** ` +
        `(${when(l.started_at)} – ${when(l.finished_at).slice(11)}, ` +
        `load average ${loads(l.load)}; ${l.seeds} seeds × ${l.trials} trials each, every trial a real ` +
        `compression — reused when an earlier search of this setting tried the plan — and a real race; scored ` +
        `by ${l.scored_by?.join(' + ')}): mean over seeds of the answer's ground truth over the best, and seeds within 5%.`,
      '',
      '| strategy | ' +
        MARKS.filter((t) => t <= l.trials)
          .map((t) => `${t} trials`)
          .join(' | ') +
        ' | median trial (s) |',
      '| --- | ' +
        MARKS.filter((t) => t <= l.trials)
          .map(() => '---')
          .join(' | ') +
        ' | --- |',
    );
    for (const s of ['offline', 'random']) {
      const c = l.mean_curve?.[s] ?? [];
      lines.push(
        `| ${s} | ` +
          MARKS.filter((t) => t <= l.trials)
            .map((t) => f(c[t - 1]))
            .join(' | ') +
          ` | ${f(l.median_trial_s?.[s], 1)} |`,
      );
    }
    lines.push(
      '',
      `At ${l.trials} trials: offline within 5% in **${l.within_5pct_at_budget.offline}/${l.seeds}** seeds ` +
        `(answers ${l.answers.offline.map((x: number) => f(x)).join(', ')}), random in ` +
        `${l.within_5pct_at_budget.random}/${l.seeds} (${l.answers.random.map((x: number) => f(x)).join(', ')}). ` +
        `Offline better than or equal to random at every trial count: **${l.beats_random_at_every_trial ? 'yes' : 'no'}**.`,
      '',
    );
  }
  lines.push(...referenceChoice(j, live));
  const judged = live.filter(([stage]) => SETTINGS[stage]);
  if (judged.length) {
    const live = judged;
    const met = (l: Json) => l.within_5pct_at_budget.offline >= Math.ceil(0.8 * l.seeds);
    const precise = tables.length > 0 && tables.every(([, t]) => t.near_best_within_precision === t.near_best);
    lines.push(
      `Goals (issue 13): offline within 5% in ≤ 12 trials in 4 of 5 seeds in each setting — ` +
        live
          .map(
            ([stage, l]) =>
              `${SETTINGS[stage] ? stage.replace('live-', '') : stage}: **${met(l) ? 'met' : 'not met'}**`,
          )
          .join(', ') +
        '; better than random at every trial count — ' +
        live
          .map(
            ([stage, l]) => `${stage.replace('live-', '')}: **${l.beats_random_at_every_trial ? 'met' : 'not met'}**`,
          )
          .join(', ') +
        `; ground truth to ±2% near the best in both tables — **${precise ? 'met' : 'not met'}**.`,
      '',
    );
  }
  const missing = Object.keys(SETTINGS).filter((s) => !j.live?.[s]);
  if (missing.length)
    lines.push(`Not measured: live searches under ${missing.map((s) => SETTINGS[s]).join('; ')}.`, '');
  lines.push(
    'Not measured: the same on a bandwidth-bound synthetic decoder of Llama-3.2-1B shape (the issue asks for ' +
      'it; only the bundled model ran).',
    '',
  );
  return lines;
}
