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
    const rows = await page.$$eval('#formats tbody tr', (r) => r.length);
    assert.ok(rows >= 10, `format table has ${rows} rows`);
    const ms = Number(await page.getAttribute('#result', 'data-recompute-ms'));
    log(`recompute: ${ms} ms`);
    assert.ok(ms < 5, `recompute took ${ms} ms (budget 5 ms)`);
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
