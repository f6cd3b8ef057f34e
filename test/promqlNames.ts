// Metric names used by PromQL expressions (rules, dashboards, adapter queries), for the test
// that holds them to what the services really export.

const FUNCTIONS = new Set(
  `abs absent absent_over_time avg avg_over_time bottomk ceil changes clamp clamp_max clamp_min count
  count_over_time count_values delta deriv exp floor group histogram_quantile holt_winters idelta
  increase irate label_join label_replace last_over_time ln log10 log2 max max_over_time min
  min_over_time predict_linear quantile quantile_over_time rate resets round scalar sgn sort sort_desc
  sqrt stddev stddev_over_time stdvar sum sum_over_time time timestamp topk vector by without on
  ignoring group_left group_right and or unless bool offset inf nan`.split(/\s+/),
);

/**
 * The metric names an expression selects: label matchers, strings, grouping clauses, ranges
 * and template variables removed; what is left that is not a function or keyword is a metric
 * (or a recording rule, which has a colon).
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ')
    .replace(/<<\.[A-Za-z]+>>/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)/g)) {
    const t = m[1]!;
    if (FUNCTIONS.has(t)) continue;
    names.add(t);
  }
  return [...names];
}

/** Sample names a /metrics text really carries, from its # TYPE lines. */
export function exportedSampleNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\w+)/gm)) {
    const [name, type] = [m[1]!, m[2]!];
    out.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  return out;
}
