// The end-to-end tests, in order. Each gets { page, base, shot, log } and throws on failure.
'use strict';
const assert = require('assert');

/** Wait for the calculator's verdict and return its text. */
async function verdict(page) {
  await page.waitForSelector('#verdict', { timeout: 30000 });
  return (await page.textContent('#verdict')).trim();
}

module.exports = {
  async 'calculator: pick a model and a device, see the verdict'({ page, base, shot, log }) {
    await page.goto(base);
    await page.fill('#model-search', 'qwen3-8b');
    await page.fill('#device-search', 'rtx-4090');
    await page.selectOption('#format', 'Q4_K_M');
    const text = await verdict(page);
    log(text);
    assert.match(text, /qwen3-8b in Q4_K_M on .*4090.*: fits/);
    await page.waitForSelector('#formats tbody tr', { timeout: 30000 });
    const rows = await page.$$eval('#formats tbody tr', (r) => r.length);
    assert.ok(rows >= 10, `format table has ${rows} rows`);
    assert.match(await page.textContent('#best-format'), /Best format that fits: /);
    // Budget: the main result recomputes in < 5 ms per change. Measure several changes.
    const times = [];
    for (const ctx of ['8192', '16384', '32768', '4096']) {
      await page.fill('#context', ctx);
      await page.waitForFunction((c) => document.querySelector('#verdict') && document.location.search.includes(`ctx=${c}`), ctx);
      times.push(Number(await page.getAttribute('#result', 'data-recompute-ms')));
    }
    const tableMs = Number(await page.getAttribute('#formats', 'data-table-ms'));
    log(`recompute per change: ${times.join(', ')} ms (budget 5 ms); every-format table (background): ${tableMs} ms`);
    const worst = Math.max(...times);
    assert.ok(worst < 5, `recompute took ${worst} ms (budget 5 ms)`);
    assert.match(page.url(), /model=qwen3-8b/);
    assert.match(page.url(), /device=rtx-4090/);
    await shot('calculator');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('calculator-phone');
  },

  async 'page loads and WebGPU finds an adapter'({ page, base, shot, log }) {
    await page.goto(`${base}?page=benchmark`);
    await page.waitForSelector('#webgpu-status[data-ready]', { timeout: 60000 });
    const ready = await page.getAttribute('#webgpu-status', 'data-ready');
    const text = await page.textContent('#webgpu-status');
    log(text.trim());
    assert.strictEqual(ready, 'true', `no WebGPU adapter: ${text}`);
    await shot('benchmark-ready');
  },
};
