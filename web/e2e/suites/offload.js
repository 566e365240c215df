// The calculator when a model does not fit the GPU: the offload split, and the GPU-layers /
// expert-layers / host-memory settings from the form and the link.
'use strict';
const assert = require('assert');
const { verdict } = require('../lib');

module.exports = {
  async 'calculator: offload split when it does not fit, and forced from the form and the link'({ page, base, log }) {
    // A MoE that does not fit an 8 GB card: its experts go to host RAM.
    await page.goto(`${base}?model=qwen3-30b-a3b&device=rtx-4060-ti-8gb&format=Q4_K_M&host=64`);
    const text = await verdict(page);
    log(text);
    assert.match(text, /needs offload \(--n-cpu-moe \d+\)/);
    await page.waitForSelector('#offload-split', { timeout: 30000 });
    assert.match(await page.textContent('#offload-flag'), /^--n-cpu-moe \d+$/);
    assert.match(await page.textContent('#offload-gpu'), /GiB of .*GiB/);
    assert.match(await page.textContent('#offload-alternative'), /Alternative: -ngl \d+/);
    const moe = parseFloat((await page.textContent('#offload-decode')).replace(/,/g, ''));
    assert.ok(moe > 0, `decode ${moe}`);
    assert.strictEqual(await page.inputValue('#host-memory'), '64');
    // GPU layers from the form: the split follows, and the link keeps it.
    await page.fill('#gpu-layers', '10');
    await page.waitForFunction(() => document.querySelector('#offload-flag')?.textContent.trim() === '-ngl 10', null, { timeout: 30000 });
    assert.match(page.url(), /[?&]ngl=10(&|$)/);
    const ngl = parseFloat((await page.textContent('#offload-decode')).replace(/,/g, ''));
    log(`decode: --n-cpu-moe ${moe}, -ngl 10 ${ngl}`);
    assert.ok(ngl < moe, `-ngl 10 (${ngl}) slower than experts on the host (${moe})`);
    // From the link: expert layers on the host.
    await page.goto(`${base}?model=qwen3-30b-a3b&device=rtx-4060-ti-8gb&format=Q4_K_M&host=64&ncmoe=40`);
    await page.waitForSelector('#offload-flag', { timeout: 30000 });
    assert.strictEqual((await page.textContent('#offload-flag')).trim(), '--n-cpu-moe 40');
    assert.strictEqual(await page.inputValue('#n-cpu-moe'), '40');
    // A model no format fits on the GPU alone, which the split runs: the format advice says so
    // instead of "try a shorter context".
    await page.goto(`${base}?model=gpt-oss-120b&device=rtx-4090&runtime=llama.cpp&host=128`);
    assert.match(await verdict(page), /needs offload \(--n-cpu-moe \d+\)/);
    await page.waitForSelector('#best-format-next', { timeout: 30000 });
    assert.match(await page.textContent('#best-format-next'), /No format fits the GPU alone with these settings: the offload split below runs this one/);
    // Bad settings are inline errors naming the control.
    await page.goto(`${base}?model=qwen3-30b-a3b&device=rtx-4060-ti-8gb&format=Q4_K_M&ngl=60`);
    await page.waitForSelector('.error', { timeout: 30000 });
    assert.match(await page.textContent('body'), /GPU layers `60`: .*at most 49/);
    await page.goto(`${base}?model=qwen3-8b&device=rtx-4090&format=Q4_K_M&ncmoe=4`);
    await page.waitForSelector('.error', { timeout: 30000 });
    assert.match(await page.textContent('body'), /Expert layers on the host `4`: .*dense model/);
    await page.goto(`${base}?model=qwen3-30b-a3b&device=rtx-4060-ti-8gb&format=Q4_K_M&host=8&ncmoe=48`);
    await page.waitForSelector('.error', { timeout: 30000 });
    assert.match(await page.textContent('body'), /Host memory `8 GiB`: offload may use/);
  },
};
