// Helpers shared by the end-to-end suites (web/e2e/suites/*.js).
'use strict';
const assert = require('assert');
const path = require('path');

// The workspace's one fixture folder: published config.json files and reports from `headroom probe`.
const DATA = path.join(__dirname, '..', '..', 'tests', 'data');
// A report written by `headroom probe` (the CI run passes the one it just produced).
const PROBE_REPORT = process.env.HEADROOM_PROBE_REPORT || path.join(DATA, 'reports', 'lavapipe-report.json');

/** Wait for the calculator's verdict and return its text. */
async function verdict(page) {
  await page.waitForSelector('#verdict', { timeout: 30000 });
  return (await page.textContent('#verdict')).trim();
}

/**
 * The rendered size of the text in the charts matching `selector`: for every <text>, its CSS
 * font size (in SVG units) times the SVG's scale (rendered width / viewBox width), in CSS px; and
 * whether it stays inside its SVG's box. Waits two frames first, so a chart drawn for its box's
 * measured width has been redrawn.
 */
async function chartText(page, selector) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const textSelector = selector.split(',').map((s) => `${s.trim()} text`).join(', ');
  return page.$$eval(textSelector, (texts) => texts.map((t) => {
    const svg = t.ownerSVGElement;
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    const r = t.getBoundingClientRect();
    return {
      chart: svg.getAttribute('class'),
      cls: t.getAttribute('class'),
      text: t.textContent,
      px: parseFloat(getComputedStyle(t).fontSize) * scale,
      rectH: r.height,
      inside: r.left >= box.left - 2 && r.right <= box.right + 2,
    };
  }));
}

/** Assert every chart text is at least `min` CSS px and inside its chart; log the sizes. */
function assertReadable(texts, min, log) {
  assert.ok(texts.length > 0, 'no chart text found');
  const byClass = {};
  for (const t of texts) {
    const k = `${t.chart} .${t.cls}`;
    byClass[k] = Math.min(byClass[k] ?? Infinity, t.px);
  }
  log(`smallest rendered chart text (CSS px): ${Object.entries(byClass).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
  // Cross-check from the layout: the lowest text box (about 1.2 × the font size).
  const boxes = texts.map((t) => t.rectH).filter((h) => h > 0);
  log(`lowest chart text box: ${Math.min(...boxes).toFixed(1)} px high`);
  const small = texts.filter((t) => !(t.px >= min));
  assert.strictEqual(small.length, 0, `chart text under ${min} px: ${small.map((t) => `"${t.text}" ${t.px.toFixed(1)} px`).join(', ')}`);
  const outside = texts.filter((t) => !t.inside);
  assert.strictEqual(outside.length, 0, `chart text cut off at the edge: ${outside.map((t) => `"${t.text}"`).join(', ')}`);
}

module.exports = { DATA, PROBE_REPORT, verdict, chartText, assertReadable };
