// The end-to-end tests, in order. Each gets { page, base, shot, log } and throws on failure.
'use strict';
const assert = require('assert');

module.exports = {
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
